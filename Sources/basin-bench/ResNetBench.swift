import ArgumentParser
import BasinLandscape
import BasinNN
import Foundation

/// Basin's side of `scripts/bench-resnet`: 3×3 convolutions at CIFAR shapes against sgemm,
/// eval-mode landscape points of a checkpoint over a dataset, the cost of recomputing
/// BatchNorm per point, and training throughput; one thread.
struct ResNetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resnet", abstract: "Convolutions vs sgemm, landscape points/s and training images/s of a checkpoint.")

    @Option(help: "The checkpoint (its model description inside).")
    var checkpoint: String

    @Option(help: "Folder with train_x.npy and train_y.npy (basin data).")
    var data: String

    @Option(help: "Images trained on for the training figure.")
    var trainImages: Int = 1024

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Option(help: "Alternating timing rounds of sgemm and the convolutions (each keeps its best).")
    var rounds: Int = 10

    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func run() throws {
        BLAS.setThreads(threads)
        // sgemm at a size where it runs at its best.
        let n = 1024
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        func gemm() {
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    c.withUnsafeMutableBufferPointer { c in
                        BLAS.sgemm(m: n, n: n, k: n, a: a.baseAddress!, lda: n, b: b.baseAddress!, ldb: n, c: c.baseAddress!, ldc: n)
                    }
                }
            }
        }
        // The three 3×3 convolutions of a CIFAR ResNet, batch 128, forward. This machine's speed
        // drifts from second to second, so sgemm and the convolutions are timed in alternating
        // rounds and each keeps its best; the ratio compares like with like.
        var passes: [(label: String, flops: Double, run: () -> Void)] = []
        for (channels, size) in [(16, 32), (32, 16), (64, 8)] {
            let network = try Network(
                ModelDescription(
                    input: [channels, size, size],
                    layers: [.conv2d(inChannels: nil, outChannels: channels, kernel: .init(3), stride: .init(1), padding: .init(1), bias: false)]))
            let model = network.initialize(seed: 1)
            let batch = 128
            var random = RandomSource(seed: 2, stream: 2)
            let input = (0..<(batch * network.inputSize)).map { _ in Float(random.nextGaussian()) }
            let workspace = Workspace(network: network, capacity: batch, backward: false)
            passes.append(
                (
                    String(format: "conv3x3 %d->%d at %dx%d", channels, channels, size, size),
                    2 * Double(channels * channels * 9 * size * size * batch),
                    { input.withUnsafeBufferPointer { model.infer($0.baseAddress!, batch: batch, workspace: workspace) } }
                ))
        }
        gemm()
        passes.forEach { $0.run() }
        var bestGemm = Double.infinity
        var best = [Double](repeating: .infinity, count: passes.count)
        for _ in 0..<rounds {
            bestGemm = min(bestGemm, seconds(gemm))
            for (i, pass) in passes.enumerated() { best[i] = min(best[i], seconds(pass.run)) }
        }
        let sgemm = 2 * Double(n * n * n) / bestGemm / 1e9
        print(String(format: "sgemm_gflops %.2f", sgemm))
        for (i, pass) in passes.enumerated() {
            print(String(format: "%@: %.2f GFLOP/s", pass.label, pass.flops / best[i] / 1e9))
        }
        let convFlops = passes.reduce(0) { $0 + $1.flops }, convSeconds = best.reduce(0, +)
        print(String(format: "conv3x3_gflops %.2f", convFlops / convSeconds / 1e9))

        // Landscape points of the checkpoint over the data: eval-mode BatchNorm, then recomputed.
        let model = try Checkpoint.load(contentsOf: URL(fileURLWithPath: checkpoint))
        let folder = URL(fileURLWithPath: data)
        let x = try NpyArray(contentsOf: folder.appendingPathComponent("train_x.npy")).tensor
        let y = try NpyArray(contentsOf: folder.appendingPathComponent("train_y.npy")).tensor
        guard let features = x.floats(), let labels = y.integers() else { throw NNError("\(data): train_x/train_y unreadable") }
        let images = Dataset(
            sampleShape: Array(x.shape.dropFirst()), features: features, labels: labels.map { Int32($0) }, classCount: 10)
        let family = AffineFamily.through([model, model])
        var perPoint: [BatchNormMode: Double] = [:]
        for mode in [BatchNormMode.eval, .recompute] {
            let evaluator = try LandscapeEvaluator(family: family, train: images, test: nil, loss: .crossEntropy, batchNorm: mode)
            var loss = 0.0
            let time = try seconds { loss = try evaluator.fast([[0.5, 0.5]])[0].trainLoss }
            perPoint[mode] = time
            print(String(format: "point (%@, %d images): %.2f s, loss %.6f", mode.rawValue, images.count, time, loss))
        }
        print(String(format: "points_per_s %.4f", 1 / perPoint[.eval]!))
        print(String(format: "bn_recompute_vs_eval %.3f", perPoint[.recompute]! / perPoint[.eval]!))

        // Training: one epoch of SGD over the first images.
        let subset = images.subset(Array(0..<min(trainImages, images.count)))
        var config = TrainingConfig()
        config.lr = 0.05
        config.momentum = 0.9
        config.epochs = 1
        config.batchSize = 128
        var trained = model
        let trainTime = try seconds { try Trainer(config: config).train(&trained, on: subset) }
        print(String(format: "train_images_per_s %.2f", Double(subset.count) / trainTime))
    }
}
