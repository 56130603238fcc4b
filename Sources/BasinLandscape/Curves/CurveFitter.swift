import BasinNN
import Foundation

/// Fits the bends of a curve between two fixed models (Garipov et al. 2018).
///
/// Each minibatch draws t ~ U(0, 1) from the `curve` stream of the seed, forms θ(t), and
/// back-propagates the loss plus Garipov's ½·wd·‖θ(t)‖² regularizer; bend j receives
/// coefficientⱼ(t)·∂/∂θ(t). The optimizer (SGD or Adam, without its own weight decay)
/// updates the bends only.
public struct CurveFitter {
    public let curve: Curve
    public let config: TrainingConfig

    public init(curve: Curve, config: TrainingConfig) throws {
        if let problem = config.validationError() { throw NNError("curve fitting settings: \(problem)") }
        guard curve.bends >= 1 else { throw NNError("curve fitting: 'bends' must be at least 1, got \(curve.bends)") }
        self.curve = curve
        self.config = config
    }

    /// The fitted control points (start and end unchanged).
    public func fit(
        from start: Model, to end: Model, on data: Dataset,
        onEpoch: (EpochReport) -> Void = { _ in }
    ) throws -> [Model] {
        let network = start.network
        if let problem = config.loss.incompatibility(network: network, dataset: data) {
            throw NNError("cannot fit a curve: \(problem)")
        }
        var points = curve.initialControlPoints(from: start, to: end)
        let count = network.parameterLayout.count
        var bends = [Float]()
        for j in 1...curve.bends { bends += points[j].parameters }
        var optimizerConfig = config
        optimizerConfig.weightDecay = 0
        var optimizer = Optimizer(config: optimizerConfig, parameterCount: bends.count)
        var bendGradients = [Float](repeating: 0, count: bends.count)
        var gradients = [Float](repeating: 0, count: count)
        let batchSize = min(config.batchSize, data.count)
        let workspace = Workspace(network: network, capacity: batchSize)
        var model = start
        let startParameters = start.parameters, endParameters = end.parameters
        let weightDecay = Float(config.weightDecay)
        var step: UInt64 = 0
        for epoch in 0..<config.epochs {
            let lr = config.learningRate(epoch: epoch)
            var shuffle = RandomSource(seed: config.seed, stream: RandomStream.shuffle.id(epoch))
            let order = shuffle.permutation(data.count)
            var epochLoss = 0.0, batches = 0, start = 0
            while start < order.count {
                let batch = min(batchSize, order.count - start)
                var draw = RandomSource(seed: config.seed, stream: RandomStream.curve.id(Int(step)))
                let c = curve.coefficients(at: draw.nextDouble())
                // θ(t) from the fixed ends and the current bends.
                for i in 0..<count {
                    var sum = c[0] * Double(startParameters[i])
                    for j in 1...curve.bends { sum += c[j] * Double(bends[(j - 1) * count + i]) }
                    sum += c[curve.bends + 1] * Double(endParameters[i])
                    model.parameters[i] = Float(sum)
                }
                let tally = Trainer.gradient(
                    of: &model, on: data, samples: order[start..<(start + batch)], loss: config.loss,
                    mode: .train(seed: config.seed, step: step), workspace: workspace, into: &gradients,
                    augment: (config.seed, epoch))
                for j in 1...curve.bends {
                    let cj = Float(c[j])
                    for i in 0..<count {
                        bendGradients[(j - 1) * count + i] = cj * (gradients[i] + weightDecay * model.parameters[i])
                    }
                }
                optimizer.step(parameters: &bends, gradients: bendGradients, lr: lr)
                epochLoss += tally.meanLoss
                batches += 1
                step += 1
                start += batch
            }
            let mean = epochLoss / Double(max(batches, 1))
            guard mean.isFinite else {
                throw NNError("curve fitting diverged in epoch \(epoch + 1): the loss is \(mean); lower 'lr'")
            }
            onEpoch(EpochReport(epoch: epoch + 1, learningRate: lr, meanLoss: mean))
        }
        for j in 1...curve.bends {
            points[j].parameters = Array(bends[((j - 1) * count)..<(j * count)])
        }
        return points
    }
}
