import BasinNN
import BasinTestSupport
import Foundation
import Testing

/// Inference (`Model.infer`) runs conv → batchnorm → relu, batchnorm → relu and residual → relu
/// as single passes in a forward-only workspace (no gradients, one scratch region shared by all
/// layers); the numbers must be bitwise those of the layer-by-layer eval pass in a full one.
@Suite struct InferenceTests {
    func outputs(_ model: Model, _ input: [Float], batch: Int, fused: Bool) -> [Float] {
        var model = model
        // Inference as evaluation runs it: a forward-only workspace, every layer's scratch shared.
        let workspace = Workspace(network: model.network, capacity: batch, backward: !fused)
        input.withUnsafeBufferPointer { input in
            if fused {
                model.infer(input.baseAddress!, batch: batch, workspace: workspace)
            } else {
                model.forward(input.baseAddress!, batch: batch, mode: .eval, workspace: workspace)
            }
        }
        return Array(workspace.output(batch: batch))
    }

    /// A running variance below zero (BatchNorm statistics extrapolated beyond two models) makes
    /// its channel NaN, and ReLU passes the NaN on as torch.relu does, fused or not, instead of
    /// zeroing the channel and scoring a model no one defined.
    @Test func reluPassesNaNAsPyTorchDoes() throws {
        let network = try Network(
            try ModelDescription.fromJSON(
                #"{"input": [2], "layers": [{"type": "batchnorm1d"}, "relu", {"type": "linear", "out_features": 2}]}"#,
                source: "nan"))
        var model = network.initialize(seed: 1)
        model.state = [0, 0, -0.5, 1]  // running_mean, then running_var: channel 0's is negative
        let input: [Float] = [1, -2, -1, 3]
        for fused in [false, true] {
            let out = outputs(model, input, batch: 2, fused: fused)
            #expect(out.count == 4 && out.allSatisfy { $0.isNaN }, "fused \(fused): \(out)")
        }
        var healthy = model
        healthy.state = [0, 0, 0.5, 1]
        #expect(outputs(healthy, input, batch: 2, fused: true).allSatisfy { $0.isFinite })
    }

    @Test(arguments: ["residual", "preactivation", "vgg"])
    func fusedInferenceIsBitwiseTheEvalPass(_ name: String) throws {
        let descriptions = [
            // Conv with and without bias before BatchNorm, BN → ReLU, residual → ReLU, nested blocks.
            "residual": ResidualTests.description,
            // Pre-activation blocks: BatchNorm and ReLU first in the body, nothing after the sum.
            "preactivation": """
            {"input": [3, 8, 8], "layers": [
              {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
              {"type": "residual", "body": [{"type": "batchnorm2d"}, "relu",
                {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
                {"type": "batchnorm2d"}, "relu",
                {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false}]},
              {"type": "batchnorm2d"}, "relu", {"type": "adaptive_avgpool2d", "output_size": 1}, "flatten",
              {"type": "linear", "out_features": 3}]}
            """,
            // VGG: conv (bias) → BN → ReLU → pool, Winograd convs (8 channels) → ReLU and → BN → ReLU,
            // dropout in the head.
            "vgg": """
            {"input": [3, 8, 8], "layers": [
              {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "batchnorm2d"}, "relu",
              {"type": "maxpool2d", "kernel_size": 2},
              {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, "relu",
              {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": false}, {"type": "batchnorm2d"}, "relu",
              {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1},
              {"type": "batchnorm2d"}, "flatten", {"type": "dropout", "p": 0.5},
              {"type": "linear", "out_features": 4}, {"type": "batchnorm1d"}, "relu", {"type": "linear", "out_features": 2}]}
            """,
        ]
        let network = try Network(try ModelDescription.fromJSON(descriptions[name]!, source: name))
        let model = Self.perturbed(network)
        let batch = 5
        let input = TestSupport.gaussian(batch * network.inputSize, seed: 13)
        let plain = outputs(model, input, batch: batch, fused: false)
        let fused = outputs(model, input, batch: batch, fused: true)
        #expect(plain.count == batch * network.outputSize)
        #expect(plain.map(\.bitPattern) == fused.map(\.bitPattern), "\(name): fused inference differs from eval")
        #expect(Set(plain).count > plain.count / 2, "\(name): outputs collapsed, the test would not see a difference")

        // BatchNorm re-estimation (a forward-only workspace) against the same passes in a full one.
        let data = Dataset(
            sampleShape: network.description.input, features: TestSupport.gaussian(7 * network.inputSize, seed: 14),
            labels: [Int32](repeating: 0, count: 7), classCount: 2)
        var recomputed = model
        recomputed.recomputeBatchNormStatistics(on: data, settings: BatchNormRecompute(batchSize: 3))
        var reference = model
        reference.resetBatchNormStatistics()
        let workspace = Workspace(network: network, capacity: 3)
        data.features.withUnsafeBufferPointer { features in
            for (index, start) in stride(from: 0, to: 7, by: 3).enumerated() {
                reference.forward(
                    features.baseAddress! + start * network.inputSize, batch: min(3, 7 - start),
                    mode: .recomputeStatistics(momentum: 1 / Double(index + 1)), workspace: workspace)
            }
        }
        #expect(
            recomputed.state.map(\.bitPattern) == reference.state.map(\.bitPattern),
            "\(name): re-estimated statistics differ")
        #expect(recomputed.state != model.state)
    }

    /// Evaluation chunks shrink until a chunk's workspace fits the budget (an MLP keeps its 500,
    /// a wide convolutional net takes tens), and the chunking does not change the tally beyond
    /// rounding.
    @Test func evaluationChunksFitTheirBudget() throws {
        let mlp = try Network(
            ModelDescription(input: [20], layers: [.linear(inFeatures: nil, outFeatures: 64, bias: true), .relu]))
        #expect(Workspace.evaluationCapacity(network: mlp, limit: 500) == 500)
        let wide = try Network(
            ModelDescription(
                input: [16, 32, 32],
                layers: [
                    .conv2d(
                        inChannels: nil, outChannels: 64, kernel: .init(3), stride: .init(1), padding: .init(1),
                        bias: false),
                    .relu, .adaptiveAvgPool2d(outputSize: .init(1)), .flatten,
                    .linear(inFeatures: nil, outFeatures: 3, bias: true),
                ]))
        let capacity = Workspace.evaluationCapacity(network: wide, limit: 500)
        #expect(capacity < 500 && capacity >= 16, "capacity \(capacity)")
        #expect(Workspace.floats(network: wide, capacity: capacity, backward: false) <= 1 << 24)
        let count = 40
        let data = Dataset(
            sampleShape: [16, 32, 32], features: TestSupport.gaussian(count * wide.inputSize, seed: 3),
            labels: (0..<count).map { Int32($0 % 3) }, classCount: 3)
        let model = wide.initialize(seed: 2)
        let small = try model.evaluate(on: data, loss: .crossEntropy, batchSize: 500)  // chunks of `capacity` at most
        let whole = try model.evaluate(
            on: data, loss: .crossEntropy, workspace: Workspace(network: wide, capacity: count, backward: false))
        #expect(abs(small.meanLoss - whole.meanLoss) <= 1e-6 * abs(whole.meanLoss))
        #expect(small.correct == whole.correct && small.count == count)
    }

    /// Parameters and running statistics away from their initial values, so a BatchNorm
    /// skipped or applied twice shows.
    static func perturbed(_ network: Network) -> Model {
        var model = network.initialize(seed: 11)
        let noise = TestSupport.gaussian(model.state.count, seed: 12)
        for entry in network.stateLayout.entries {
            for i in entry.range {
                model.state[i] = entry.name.hasSuffix("running_var") ? 0.2 + abs(noise[i]) : 0.5 * noise[i]
            }
        }
        for i in model.parameters.indices
        where network.parameterLayout.entries.contains(where: {
            $0.range.contains(i) && $0.shape.count == 1
        }) {
            model.parameters[i] += 0.3 * noise[i % noise.count]
        }
        return model
    }
}
