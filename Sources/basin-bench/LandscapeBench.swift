import ArgumentParser
import BasinLandscape
import BasinNN
import Foundation

/// Points per second of the fast evaluator and of the plain path on a 21×21 plane around a
/// model, and the files a PyTorch comparison needs (scripts/bench-landscape drives it).
struct LandscapeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "landscape",
        abstract: "Fast evaluator vs plain path on a plane around an MLP (784-256-256-10) or a small CNN (1x28x28)."
    )

    enum Architecture: String, ExpressibleByArgument { case mlp, cnn }

    @Option(help: "mlp (784-256-256-10) or cnn (conv 16, conv 32, linear 10 on 1x28x28).")
    var model: Architecture = .mlp

    @Option(help: "Training samples evaluated at every point.")
    var samples: Int = 10_000

    @Option(help: "Grid size of the plane (n x n over [-1, 1]²).")
    var grid: Int = 21

    @Option(help: "Rows of the plane to time (rates are per point; all rows for the full plane).")
    var rows: Int = 21

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Option(help: "Write model, directions, data and the fast path's losses here for the PyTorch side.")
    var export: String?

    static func description(_ architecture: Architecture) -> ModelDescription {
        switch architecture {
        case .mlp:
            return ModelDescription(
                input: [784],
                layers: [
                    .linear(inFeatures: nil, outFeatures: 256, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 256, bias: true), .relu,
                    .linear(inFeatures: nil, outFeatures: 10, bias: true),
                ])
        case .cnn:
            return ModelDescription(
                input: [1, 28, 28],
                layers: [
                    .conv2d(
                        inChannels: nil, outChannels: 16, kernel: .init(3), stride: .init(1), padding: .init(1),
                        bias: true),
                    .relu, .maxPool2d(kernel: .init(2), stride: .init(2), padding: .init(0)),
                    .conv2d(
                        inChannels: nil, outChannels: 32, kernel: .init(3), stride: .init(1), padding: .init(1),
                        bias: true),
                    .relu, .maxPool2d(kernel: .init(2), stride: .init(2), padding: .init(0)), .flatten,
                    .linear(inFeatures: nil, outFeatures: 10, bias: true),
                ])
        }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let network = try Network(Self.description(model))
        let center = network.initialize(seed: 0)
        var random = RandomSource(seed: 7, stream: 1)
        let features = (0..<(samples * network.inputSize)).map { _ in Float(random.nextGaussian()) }
        let labels = (0..<samples).map { _ in Int32(random.nextInt(below: 10)) }
        let data = Dataset(sampleShape: network.description.input, features: features, labels: labels, classCount: 10)
        let directions = Directions.random(
            around: center, count: 2, spec: DirectionSpec(norm: .filter, ignore: .biasbn, seed: 1))
        let axis = Axis(min: -1, max: 1, steps: grid).values
        var points: [[Double]] = []
        for y in axis.prefix(rows) { for x in axis { points.append([1, x, y]) } }
        var evaluator = try LandscapeEvaluator(
            family: .around(center, directions: directions), train: data, test: nil, loss: .crossEntropy,
            batchNorm: .eval)
        evaluator.chunkSize = 500
        func timed(_ body: () throws -> [PointMetrics]) rethrows -> ([PointMetrics], Double) {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try body()
            return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let (fast, fastSeconds) = try timed { try evaluator.fast(points) }
        let (plain, plainSeconds) = try timed { try evaluator.plain(points) }
        var worst = 0.0
        for (a, b) in zip(fast, plain) {
            worst = max(worst, abs(a.trainLoss - b.trainLoss) / max(abs(b.trainLoss), 1e-12))
        }
        print(
            "model \(model.rawValue) samples \(samples) points \(points.count) (\(rows) of \(grid) rows) threads \(threads)"
        )
        print(String(format: "fast_points_per_s %.4f", Double(points.count) / fastSeconds))
        print(String(format: "plain_points_per_s %.4f", Double(points.count) / plainSeconds))
        print(String(format: "fast_vs_plain_max_rel_diff %.3g", worst))
        if let export {
            let directory = URL(fileURLWithPath: export)
            try Checkpoint.save(center, to: directory.appendingPathComponent("model.safetensors"))
            try Directions.save(
                directions, layout: network.parameterLayout, metadata: [:],
                to: directory.appendingPathComponent("directions.safetensors"))
            try NpyArray(TensorData(features, shape: [samples] + network.description.input)).write(
                to: directory.appendingPathComponent("x.npy"))
            try NpyArray(TensorData(labels.map { Int64($0) }, shape: [samples])).write(
                to: directory.appendingPathComponent("y.npy"))
            try NpyArray(TensorData(points.flatMap { $0 }, shape: [points.count, 3])).write(
                to: directory.appendingPathComponent("points.npy"))
            try NpyArray(TensorData(fast.map(\.trainLoss), shape: [points.count])).write(
                to: directory.appendingPathComponent("fast_loss.npy"))
        }
    }
}
