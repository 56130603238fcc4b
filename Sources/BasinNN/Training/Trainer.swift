import Foundation

/// What one epoch of training did.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var learningRate: Double
    /// Mean of the minibatch losses seen during the epoch (training mode).
    public var meanLoss: Double

    public init(epoch: Int, learningRate: Double, meanLoss: Double) {
        self.epoch = epoch
        self.learningRate = learningRate
        self.meanLoss = meanLoss
    }
}

/// Minibatch training of a model: deterministic order, dropout and initialization from the seed.
///
/// Two runs with the same model, data and config produce bitwise-identical parameters (BLAS
/// thread count held fixed).
public struct Trainer {
    public let config: TrainingConfig

    public init(config: TrainingConfig) throws {
        if let problem = config.validationError() { throw NNError("training settings: \(problem)") }
        self.config = config
    }

    /// Trains `model` on `data` for `config.epochs` epochs.
    ///
    /// `onEpoch` is called with the model after each epoch (and after epoch 0 = the
    /// starting point, with `epoch == 0` and NaN loss), so callers can snapshot a trajectory.
    public func train(
        _ model: inout Model, on data: Dataset,
        onEpoch: (EpochReport, Model) throws -> Void = { _, _ in }
    ) throws {
        if let problem = config.loss.incompatibility(network: model.network, dataset: data) {
            throw NNError("cannot train: \(problem)")
        }
        try onEpoch(EpochReport(epoch: 0, learningRate: config.lr, meanLoss: .nan), model)
        guard data.count > 0 else { return }
        let batchSize = min(config.batchSize, data.count)
        let workspace = Workspace(network: model.network, capacity: batchSize)
        var optimizer = Optimizer(config: config, parameterCount: model.parameters.count)
        var gradients = [Float](repeating: 0, count: model.parameters.count)
        var step: UInt64 = 0
        for epoch in 0..<config.epochs {
            let lr = config.learningRate(epoch: epoch)
            var shuffle = RandomSource(seed: config.seed, stream: RandomStream.shuffle.id(epoch))
            let order = shuffle.permutation(data.count)
            var epochLoss = 0.0, batches = 0
            var start = 0
            while start < order.count {
                let batch = min(batchSize, order.count - start)
                let tally = Trainer.gradient(
                    of: &model, on: data, samples: order[start..<(start + batch)], loss: config.loss,
                    mode: .train(seed: config.seed, step: step), workspace: workspace, into: &gradients,
                    augment: (config.seed, epoch))
                optimizer.step(parameters: &model.parameters, gradients: gradients, lr: lr)
                epochLoss += tally.meanLoss
                batches += 1
                step += 1
                start += batch
            }
            let mean = epochLoss / Double(max(batches, 1))
            guard mean.isFinite else {
                throw NNError("training diverged in epoch \(epoch + 1): the loss is \(mean); lower 'lr'")
            }
            try onEpoch(EpochReport(epoch: epoch + 1, learningRate: lr, meanLoss: mean), model)
        }
    }
}

extension Trainer {
    /// One minibatch: gathers `samples` of `data` into the workspace, runs the forward pass
    /// in `mode`, scores it, and back-propagates, writing ∂(mean loss)/∂θ into `gradients`.
    /// With `augment` (seed, epoch), a dataset's augmentation is applied to each sample as it
    /// is gathered. Returns the minibatch's loss and accuracy.
    public static func gradient(
        of model: inout Model, on data: Dataset, samples: ArraySlice<Int>, loss: LossFunction, mode: ForwardMode,
        workspace: Workspace, into gradients: inout [Float], augment: (seed: UInt64, epoch: Int)? = nil
    ) -> LossTally {
        let batch = samples.count, sampleSize = data.sampleSize
        let indices = Array(samples)
        data.features.withUnsafeBufferPointer { features in
            for b in 0..<batch {
                let source = features.baseAddress! + indices[b] * sampleSize
                let target = workspace.input.baseAddress! + b * sampleSize
                if let augment, let augmentation = data.augmentation, data.sampleShape.count == 3 {
                    augmentation.apply(
                        source, into: target, shape: data.sampleShape, index: indices[b], seed: augment.seed,
                        epoch: augment.epoch)
                } else {
                    target.update(from: source, count: sampleSize)
                }
            }
        }
        model.forward(workspace.input.baseAddress!, batch: batch, mode: mode, workspace: workspace)
        var tally = LossTally()
        loss.score(
            output: UnsafeBufferPointer(workspace.output(batch: batch)), batch: batch, dataset: data,
            sampleIndex: { indices[$0] }, gradient: workspace.outputGradient(batch: batch), tally: &tally)
        gradients.withUnsafeMutableBufferPointer { g in
            model.backward(workspace.input.baseAddress!, batch: batch, mode: mode, workspace: workspace, gradients: g)
        }
        return tally
    }
}

extension Model {
    /// Loss and accuracy over a whole dataset in evaluation mode, in chunks of `batchSize` (fewer
    /// where a chunk's workspace would pass 64 MB: `Workspace.evaluationCapacity`).
    ///
    /// Pass a `workspace` to reuse its memory across calls; its capacity sets the chunk size.
    public func evaluate(
        on data: Dataset, loss: LossFunction, batchSize: Int = 500, workspace: Workspace? = nil
    ) throws -> LossTally {
        if let problem = loss.incompatibility(network: network, dataset: data) {
            throw NNError("cannot evaluate: \(problem)")
        }
        var tally = LossTally()
        guard data.count > 0 else { return tally }
        let workspace =
            workspace
            ?? Workspace(
                network: network,
                capacity: Workspace.evaluationCapacity(network: network, limit: min(batchSize, data.count)),
                backward: false)
        let chunk = workspace.capacity
        data.features.withUnsafeBufferPointer { features in
            var start = 0
            while start < data.count {
                let batch = min(chunk, data.count - start)
                infer(features.baseAddress! + start * data.sampleSize, batch: batch, workspace: workspace)
                let first = start
                loss.score(
                    output: UnsafeBufferPointer(workspace.output(batch: batch)), batch: batch, dataset: data,
                    sampleIndex: { first + $0 }, gradient: nil, tally: &tally)
                start += batch
            }
        }
        return tally
    }
}
