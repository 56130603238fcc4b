import BasinLandscape
import BasinNN
import BasinTestSupport
import Foundation
import Testing

@Suite struct EvaluatorTests {
    static func data(_ source: String, samples: Int, features: Int, shape: [Int]? = nil, classes: Int = 3) throws
        -> DataSplit
    {
        var spec = DataSpec(source: source)
        spec.samples = samples
        spec.features = features
        spec.classes = classes
        spec.shape = shape
        return try spec.load(relativeTo: URL(fileURLWithPath: "/"))
    }

    static func maxRelativeDifference(_ a: [PointMetrics], _ b: [PointMetrics]) -> Double {
        var worst = 0.0
        for (x, y) in zip(a, b) {
            for (_, value) in PointMetrics.fields {
                let u = value(x), v = value(y)
                if u.isNaN && v.isNaN { continue }
                worst = max(worst, abs(u - v) / max(abs(u), abs(v), 1e-12))
            }
        }
        return worst
    }

    static func grid(_ n: Int) -> [[Double]] {
        var points: [[Double]] = []
        for j in 0..<n {
            for i in 0..<n {
                points.append([1, -1 + 2 * Double(i) / Double(n - 1), -1 + 2 * Double(j) / Double(n - 1)])
            }
        }
        return points
    }

    @Test func fastEqualsPlainOnAnMLP() throws {
        let network = try Network(
            ModelDescription(
                input: [20],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 32, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 16, bias: true), .tanh,
                    .linear(inFeatures: nil, outFeatures: 3, bias: true),
                ]))
        let model = network.initialize(seed: 1)
        let directions = Directions.random(around: model, count: 2, spec: DirectionSpec(seed: 2))
        let split = try Self.data("teacher", samples: 700, features: 20)
        var evaluator = try LandscapeEvaluator(
            family: .around(model, directions: directions), train: split.train, test: split.test, loss: .crossEntropy,
            batchNorm: .eval)
        evaluator.chunkSize = 128
        evaluator.groupFloats = 3000  // several point groups
        let points = Self.grid(5)
        let fast = try evaluator.fast(points), plain = try evaluator.plain(points)
        #expect(evaluator.canReuseFirstLayer)
        #expect(Self.maxRelativeDifference(fast, plain) <= 1e-5)
        #expect(fast.allSatisfy { !$0.testLoss.isNaN })
    }

    @Test(arguments: [BatchNormMode.eval, .recompute])
    func fastEqualsPlainOnACNNWithBatchNorm(_ batchNorm: BatchNormMode) throws {
        let network = try Network(
            ModelDescription(
                input: [1, 8, 8],
                layers: [
                    .conv2d(
                        inChannels: nil, outChannels: 4, kernel: .init(3), stride: .init(1), padding: .init(1),
                        bias: true),
                    .batchNorm2d(numFeatures: nil, eps: 1e-5, momentum: 0.1), .relu,
                    .maxPool2d(kernel: .init(2), stride: .init(2), padding: .init(0)),
                    .conv2d(
                        inChannels: nil, outChannels: 6, kernel: .init(3), stride: .init(1), padding: .init(0),
                        bias: true),
                    .relu, .flatten, .linear(inFeatures: nil, outFeatures: 3, bias: true),
                ]))
        var model = network.initialize(seed: 4)
        let split = try Self.data("blobs", samples: 300, features: 64, shape: [1, 8, 8])
        model.recomputeBatchNormStatistics(on: split.train)
        let directions = Directions.random(around: model, count: 2, spec: DirectionSpec(seed: 3))
        var evaluator = try LandscapeEvaluator(
            family: .around(model, directions: directions), train: split.train, test: split.test, loss: .crossEntropy,
            batchNorm: batchNorm)
        evaluator.chunkSize = 100
        let points = Self.grid(3)
        let difference = Self.maxRelativeDifference(try evaluator.fast(points), try evaluator.plain(points))
        #expect(difference <= 1e-5, "\(difference)")
    }

    /// Recomputed BatchNorm statistics at the centre equal those of a full pass over the data.
    @Test func recomputeMatchesUpdateBN() throws {
        let network = try Network(
            ModelDescription(input: [3], layers: [.batchNorm1d(numFeatures: nil, eps: 1e-5, momentum: 0.1)]))
        var model = network.initialize(seed: 0)
        let split = try Self.data("blobs", samples: 256, features: 3)
        model.recomputeBatchNormStatistics(on: split.train, settings: BatchNormRecompute(batchSize: split.train.count))
        let (mean, _) = split.train.featureStatistics()
        for c in 0..<3 { #expect(abs(model.state[c] - mean[c]) < 1e-5) }
    }
}
