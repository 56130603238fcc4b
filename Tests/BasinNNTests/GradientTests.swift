import BasinNN
import BasinTestSupport
import Testing

/// Every layer's backward pass against central finite differences. The layer under test sits
/// between two Linear (or Conv2d) layers, so both its parameter gradients and the gradient it
/// passes to its input (which reaches the first layer's weights) are checked.
@Suite struct GradientTests {
    static let flatCases: [(String, LayerSpec)] = [
        ("relu", .relu),
        ("leaky_relu", .leakyReLU(negativeSlope: 0.1)),
        ("tanh", .tanh),
        ("sigmoid", .sigmoid),
        ("gelu", .gelu(tanhApproximation: false)),
        ("gelu_tanh", .gelu(tanhApproximation: true)),
        ("batchnorm1d", .batchNorm1d(numFeatures: nil, eps: 1e-5, momentum: 0.1)),
        ("dropout", .dropout(p: 0.3)),
        ("linear_no_bias", .linear(inFeatures: nil, outFeatures: 7, bias: false)),
        ("layernorm", .layerNorm(normalizedShape: nil, eps: 1e-5)),
        ("identity", .identity),
        (
            "residual_mlp",
            .residual(body: [.linear(inFeatures: nil, outFeatures: 6, bias: true), .tanh], shortcut: [])
        ),
        (
            "residual_dropout_projection",
            .residual(
                body: [.linear(inFeatures: nil, outFeatures: 4, bias: true), .dropout(p: 0.3)],
                shortcut: [.linear(inFeatures: nil, outFeatures: 4, bias: false)])
        ),
    ]

    @Test(arguments: flatCases.map(\.0))
    func flatLayer(_ name: String) throws {
        let layer = Self.flatCases.first { $0.0 == name }!.1
        let description = ModelDescription(
            input: [5],
            layers: [
                .linear(inFeatures: nil, outFeatures: 6, bias: true), layer,
                .linear(inFeatures: nil, outFeatures: 3, bias: true),
            ])
        for mode in [ForwardMode.train(seed: 3, step: 2), .eval] {
            let check = try GradientCheck(description: description, batch: 4, mode: mode)
            let mismatches = check.mismatches()
            #expect(mismatches.isEmpty, "\(name) \(mode): \(mismatches.prefix(5))")
        }
    }

    static let imageCases: [(String, LayerSpec)] = [
        (
            "conv2d_stride_padding",
            .conv2d(inChannels: nil, outChannels: 3, kernel: .init(3), stride: .init(2), padding: .init(1), bias: true)
        ),
        (
            "conv2d_rect",
            .conv2d(
                inChannels: nil, outChannels: 2, kernel: .init(2, 3), stride: .init(1, 2), padding: .init(0, 1),
                bias: false)
        ),
        ("maxpool2d", .maxPool2d(kernel: .init(2), stride: .init(2), padding: .init(0))),
        ("maxpool2d_overlap_pad", .maxPool2d(kernel: .init(3), stride: .init(2), padding: .init(1))),
        ("avgpool2d", .avgPool2d(kernel: .init(2), stride: .init(2), padding: .init(0))),
        ("avgpool2d_pad", .avgPool2d(kernel: .init(3), stride: .init(1), padding: .init(1))),
        ("batchnorm2d", .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1)),
        ("relu", .relu),
        ("dropout", .dropout(p: 0.25)),
        ("layernorm", .layerNorm(normalizedShape: [3, 6, 6], eps: 1e-5)),
        ("groupnorm", .groupNorm(numGroups: 3, numChannels: 3, eps: 1e-5)),
        ("adaptive_avgpool2d", .adaptiveAvgPool2d(outputSize: .init(1))),
        ("basic_block", Self.basicBlock(out: 3, stride: 1)),
        ("basic_block_downsample", Self.basicBlock(out: 4, stride: 2)),
        (
            "preactivation_block",
            .residual(
                body: [
                    .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .gelu(tanhApproximation: false),
                    .conv2d(inChannels: nil, outChannels: 3, kernel: .init(3), stride: .init(1), padding: .init(1), bias: false),
                ], shortcut: [])
        ),
        (
            "nested_blocks",
            .residual(
                body: [Self.basicBlock(out: 3, stride: 1), .groupNorm(numGroups: 1, numChannels: nil, eps: 1e-5)],
                shortcut: [.identity])
        ),
    ]

    /// A ResNet basic block: conv-BN-activation-conv-BN plus the input, or its 1×1 strided
    /// projection (conv + BN) when the shape changes. GELU stands in for the ReLU here: a ReLU
    /// kink between the two finite-difference points fails central differences (ReLU's own
    /// backward is checked alone above).
    static func basicBlock(out: Int, stride: Int) -> LayerSpec {
        func conv(_ k: Int, _ s: Int) -> LayerSpec {
            .conv2d(inChannels: nil, outChannels: out, kernel: .init(k), stride: .init(s), padding: .init(k / 2), bias: false)
        }
        let bn = LayerSpec.batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1)
        return .residual(
            body: [conv(3, stride), bn, .gelu(tanhApproximation: false), conv(3, 1), bn],
            shortcut: stride == 1 ? [] : [conv(1, stride), bn])
    }

    @Test(arguments: imageCases.map(\.0))
    func imageLayer(_ name: String) throws {
        let layer = Self.imageCases.first { $0.0 == name }!.1
        let description = ModelDescription(
            input: [2, 6, 6],
            layers: [
                .conv2d(
                    inChannels: nil, outChannels: 3, kernel: .init(3), stride: .init(1), padding: .init(1), bias: true),
                layer, .flatten, .linear(inFeatures: nil, outFeatures: 4, bias: true),
            ])
        for mode in [ForwardMode.train(seed: 3, step: 2), .eval] {
            let check = try GradientCheck(description: description, batch: 3, mode: mode)
            let mismatches = check.mismatches()
            #expect(mismatches.isEmpty, "\(name) \(mode): \(mismatches.prefix(5))")
        }
    }

    /// Convolutions at the sizes where the fast paths engage: Winograd forwards (8 channels, 3×3,
    /// stride 1) and backward over several groups of images (20×20 outputs: 10 images a group,
    /// 12 in the batch), with and without bias.
    @Test func convolutionsOverSeveralGroups() throws {
        func conv(_ out: Int, bias: Bool) -> LayerSpec {
            .conv2d(inChannels: nil, outChannels: out, kernel: .init(3), stride: .init(1), padding: .init(1), bias: bias)
        }
        let description = ModelDescription(
            input: [8, 20, 20],
            layers: [
                conv(8, bias: true), .gelu(tanhApproximation: false), conv(8, bias: false),
                .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .adaptiveAvgPool2d(outputSize: .init(1)), .flatten,
                .linear(inFeatures: nil, outFeatures: 3, bias: true),
            ])
        for mode in [ForwardMode.train(seed: 3, step: 2), .eval] {
            let check = try GradientCheck(description: description, batch: 12, mode: mode)
            let mismatches = check.mismatches()
            #expect(mismatches.isEmpty, "\(mode): \(mismatches.prefix(5))")
        }
    }

    /// ∂loss/∂logits of both losses against finite differences computed in Double.
    @Test(arguments: LossFunction.allCases)
    func lossGradient(_ loss: LossFunction) {
        let batch = 5, classes = 4
        let data = Dataset(
            sampleShape: [1], features: [Float](repeating: 0, count: batch), labels: [0, 3, 1, 2, 3],
            classCount: classes)
        let logits = TestSupport.gaussian(batch * classes, seed: 11, scale: 3)
        func meanLoss(_ values: [Float]) -> Double {
            var tally = LossTally()
            values.withUnsafeBufferPointer {
                loss.score(output: $0, batch: batch, dataset: data, sampleIndex: { $0 }, gradient: nil, tally: &tally)
            }
            return tally.meanLoss
        }
        var gradient = [Float](repeating: 0, count: logits.count)
        var tally = LossTally()
        logits.withUnsafeBufferPointer { out in
            gradient.withUnsafeMutableBufferPointer {
                loss.score(output: out, batch: batch, dataset: data, sampleIndex: { $0 }, gradient: $0, tally: &tally)
            }
        }
        for i in logits.indices {
            var plus = logits, minus = logits
            plus[i] += 1e-2
            minus[i] -= 1e-2
            let numeric = (meanLoss(plus) - meanLoss(minus)) / (Double(plus[i]) - Double(minus[i]))
            #expect(abs(Double(gradient[i]) - numeric) < 1e-3, "\(loss) logit \(i)")
        }
    }

    /// Cross-entropy stays finite for huge logits (log-sum-exp, not exp then log).
    @Test func crossEntropyIsStable() {
        let data = Dataset(sampleShape: [1], features: [0, 0], labels: [0, 1], classCount: 2)
        let logits: [Float] = [1000, -1000, 1000, -1000]
        var tally = LossTally()
        logits.withUnsafeBufferPointer {
            LossFunction.crossEntropy.score(
                output: $0, batch: 2, dataset: data, sampleIndex: { $0 }, gradient: nil, tally: &tally)
        }
        #expect(tally.lossSum == 2000)
        #expect(tally.correct == 1)
    }
}
