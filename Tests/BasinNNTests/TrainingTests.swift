import BasinNN
import BasinTestSupport
import Foundation
import Testing

@Suite struct TrainingTests {
    static let cnnSpec = TrainingSpec(
        model: ModelDescription(
            input: [1, 6, 6],
            layers: [
                .conv2d(
                    inChannels: nil, outChannels: 4, kernel: .init(3), stride: .init(1), padding: .init(1), bias: true),
                .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .relu,
                .maxPool2d(kernel: .init(2), stride: .init(2), padding: .init(0)), .flatten, .dropout(p: 0.2),
                .linear(inFeatures: nil, outFeatures: 3, bias: true),
            ]),
        data: {
            var data = DataSpec(source: "blobs")
            data.samples = 300
            data.features = 36
            data.classes = 3
            data.shape = [1, 6, 6]
            return data
        }())

    private func train(_ spec: TrainingSpec, optimizer: TrainingConfig.OptimizerKind) throws -> Data {
        var config = spec.train
        config.optimizer = optimizer
        config.lr = optimizer == .sgd ? 0.05 : 0.01
        config.momentum = optimizer == .sgd ? 0.9 : 0
        config.nesterov = optimizer == .sgd
        config.weightDecay = 0.01
        config.epochs = 3
        config.batchSize = 16
        config.seed = 9
        config.schedule = .cosine(etaMin: 0)
        let data = try spec.data.load(relativeTo: URL(fileURLWithPath: "/"))
        var model = try Network(spec.model).initialize(seed: config.seed)
        try Trainer(config: config).train(&model, on: data.train)
        return Checkpoint.tensors(of: model).serialized()
    }

    @Test(arguments: TrainingConfig.OptimizerKind.allCases)
    func sameSeedGivesBitwiseIdenticalCheckpoints(_ optimizer: TrainingConfig.OptimizerKind) throws {
        let first = try train(Self.cnnSpec, optimizer: optimizer)
        let second = try train(Self.cnnSpec, optimizer: optimizer)
        #expect(first == second)
        var other = Self.cnnSpec
        other.data.seed = 1
        #expect(try train(other, optimizer: optimizer) != first)
    }

    @Test func trainingLowersTheLossOnSpirals() throws {
        var data = DataSpec(source: "spirals")
        data.samples = 600
        let spec = TrainingSpec(
            model: ModelDescription(
                input: [2],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 32, bias: true), .tanh,
                    .linear(inFeatures: nil, outFeatures: 2, bias: true),
                ]),
            data: data)
        var config = TrainingConfig()
        config.optimizer = .adam
        config.lr = 0.02
        config.epochs = 30
        let split = try spec.data.load(relativeTo: URL(fileURLWithPath: "/"))
        var model = try Network(spec.model).initialize(seed: 0)
        let before = try model.evaluate(on: split.test, loss: .crossEntropy)
        var losses: [Double] = []
        try Trainer(config: config).train(&model, on: split.train) { report, _ in losses.append(report.meanLoss) }
        let after = try model.evaluate(on: split.test, loss: .crossEntropy)
        #expect(losses.count == 31)
        #expect(after.meanLoss < before.meanLoss / 2)
        #expect(after.accuracy > 0.85)
    }

    /// In eval mode BatchNorm uses the running statistics: y = (x − mean)/√(var + eps)·γ + β.
    @Test func batchNormEvalUsesRunningStatistics() throws {
        let network = try Network(
            ModelDescription(input: [2], layers: [.batchNorm1d(numFeatures: nil, eps: 1e-5, momentum: 0.1)]))
        var model = network.initialize(seed: 0)
        model.parameters = [2, 3, 0.5, -1]  // weight, bias
        model.state = [1, -2, 4, 0.25]  // running_mean, running_var
        let input: [Float] = [3, 0, 1, -2, 5, 2]
        let workspace = Workspace(network: network, capacity: 3)
        input.withUnsafeBufferPointer { model.infer($0.baseAddress!, batch: 3, workspace: workspace) }
        let output = Array(workspace.output(batch: 3))
        for b in 0..<3 {
            for c in 0..<2 {
                let x = Double(input[b * 2 + c])
                let mean = [1.0, -2][c], variance = [4.0, 0.25][c], gamma = [2.0, 3][c], beta = [0.5, -1][c]
                let expected = (x - mean) / (variance + 1e-5).squareRoot() * gamma + beta
                #expect(abs(Double(output[b * 2 + c]) - expected) < 1e-5)
            }
        }
        // A training-mode pass normalizes with batch statistics and moves the running ones.
        input.withUnsafeBufferPointer {
            model.forward($0.baseAddress!, batch: 3, mode: .train(seed: 0, step: 0), workspace: workspace)
        }
        let trainOutput = Array(workspace.output(batch: 3))
        let mean0 = (trainOutput[0] + trainOutput[2] + trainOutput[4]) / 3
        #expect(abs(mean0 - 0.5) < 1e-5)  // normalized batch → mean β
        #expect(abs(model.state[0] - (0.9 * 1 + 0.1 * 3)) < 1e-6)  // running_mean moved towards batch mean 3
        #expect(abs(model.state[2] - (0.9 * 4 + 0.1 * 4)) < 1e-5)  // unbiased batch variance of [3, 1, 5] is 4
        #expect(model.batchesTracked == [1])
    }

    @Test func schedulesFollowPyTorch() {
        let step = TrainingConfig.Schedule.step(stepSize: 3, gamma: 0.5)
        #expect((0..<7).map { step.learningRate(base: 1, epoch: $0, epochs: 7) } == [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
        let cosine = TrainingConfig.Schedule.cosine(etaMin: 0.1)
        #expect(cosine.learningRate(base: 1, epoch: 0, epochs: 10) == 1)
        #expect(abs(cosine.learningRate(base: 1, epoch: 5, epochs: 10) - 0.55) < 1e-12)
        // Garipov et al.'s learning_rate_schedule(base, epoch, total): 1 to half, linear to 1% at 90%.
        let garipov = TrainingConfig.Schedule.garipov
        let rates = (0..<10).map { garipov.learningRate(base: 0.1, epoch: $0, epochs: 10) }
        let expected = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1 * (1 - 0.25 * 0.99), 0.1 * (1 - 0.5 * 0.99), 0.1 * (1 - 0.75 * 0.99), 0.001]
        #expect(zip(rates, expected).allSatisfy { abs($0 - $1) < 1e-12 }, "\(rates)")
        // Linear warm-up, then the schedule over the epochs that remain.
        var config = TrainingConfig()
        config.lr = 0.4
        config.epochs = 6
        config.warmupEpochs = 2
        config.schedule = .cosine(etaMin: 0)
        let warm = (0..<6).map { config.learningRate(epoch: $0) }
        #expect(warm[0] == 0.2 && warm[1] == 0.4 && warm[2] == 0.4 && abs(warm[4] - 0.2) < 1e-12, "\(warm)")
        config.warmupEpochs = 7
        #expect(config.validationError()?.contains("'warmup_epochs'") == true)
    }

    /// Hand-computed first steps of SGD with momentum and Nesterov, Adam and AdamW.
    @Test func optimizerStepsMatchTorchFormulas() {
        var sgd = TrainingConfig()
        sgd.momentum = 0.9
        sgd.nesterov = true
        sgd.weightDecay = 0.1
        var optimizer = Optimizer(config: sgd, parameterCount: 1)
        var p: [Float] = [1]
        optimizer.step(parameters: &p, gradients: [0.5], lr: 0.1)
        // d = 0.5 + 0.1·1 = 0.6; buf = 0.6; nesterov d = 0.6 + 0.9·0.6 = 1.14; p = 1 − 0.114
        #expect(abs(p[0] - 0.886) < 1e-6)
        optimizer.step(parameters: &p, gradients: [0.5], lr: 0.1)
        let d2: Float = 0.5 + 0.1 * 0.886, buf2: Float = 0.9 * 0.6 + d2
        #expect(abs(p[0] - (0.886 - 0.1 * (d2 + 0.9 * buf2))) < 1e-6)

        for kind in [TrainingConfig.OptimizerKind.adam, .adamw] {
            var config = TrainingConfig()
            config.optimizer = kind
            config.weightDecay = 0.1
            var adam = Optimizer(config: config, parameterCount: 1)
            var q: [Float] = [1]
            adam.step(parameters: &q, gradients: [0.5], lr: 0.01)
            // First Adam step moves by lr·sign(g) (bias-corrected m/√v = g/|g|), up to eps.
            let expected: Float = kind == .adam ? 1 - 0.01 : (1 - 0.01 * 0.1) - 0.01
            #expect(abs(q[0] - expected) < 1e-6, "\(kind)")
        }
    }

    @Test func badSettingsAreRejectedByName() {
        var config = TrainingConfig()
        config.batchSize = 0
        #expect(throws: NNError("training settings: 'batch_size' must be at least 1, got 0")) {
            try Trainer(config: config)
        }
        config = TrainingConfig()
        config.nesterov = true
        #expect(throws: NNError("training settings: 'nesterov' needs momentum > 0 and dampening 0")) {
            try Trainer(config: config)
        }
    }
}
