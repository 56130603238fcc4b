import ArgumentParser
import BasinNN
import Foundation

/// Benchmarks whose figures the scripts under `scripts/bench-*` print and compare.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "basin-bench",
        abstract: "Basin's benchmarks (run them through scripts/bench-*).",
        subcommands: [EngineBench.self, LandscapeBench.self, FuzzBench.self, ScaleBench.self, JournalBench.self, ResNetBench.self]
    )
}

/// Forward-pass throughput of an MLP against OpenBLAS sgemm on the same matrix shapes.
struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "sgemm GFLOP/s vs Basin's forward GFLOP/s for an MLP (default 784-256-256-10 over 10,000 samples)."
    )

    @Option(help: "Layer widths, input first.")
    var widths: [Int] = [784, 256, 256, 10]

    @Option(help: "Samples per forward pass.")
    var samples: Int = 10_000

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Option(help: "Timed repetitions (the best is reported).")
    var repeats: Int = 7

    func run() throws {
        BLAS.setThreads(threads)
        var layers: [LayerSpec] = []
        for (i, width) in widths.dropFirst().enumerated() {
            layers.append(.linear(inFeatures: nil, outFeatures: width, bias: true))
            if i < widths.count - 2 { layers.append(.relu) }
        }
        let network = try Network(ModelDescription(input: [widths[0]], layers: layers))
        let model = network.initialize(seed: 0)
        var random = RandomSource(seed: 1, stream: 1)
        let input = (0..<(samples * widths[0])).map { _ in Float(random.nextGaussian()) }
        let workspace = Workspace(network: network, capacity: samples)
        let flops = zip(widths, widths.dropFirst()).reduce(0.0) { $0 + 2 * Double(samples) * Double($1.0 * $1.1) }

        // The same GEMMs the forward pass performs, straight into OpenBLAS.
        let weights = zip(widths, widths.dropFirst()).map { (i, o) in [Float](repeating: 0.01, count: i * o) }
        var buffers = widths.dropFirst().map { [Float](repeating: 0, count: samples * $0) }
        func sgemmPass() {
            input.withUnsafeBufferPointer { x in
                var previous = x.baseAddress!
                for layer in 0..<weights.count {
                    let inWidth = widths[layer], outWidth = widths[layer + 1]
                    buffers[layer].withUnsafeMutableBufferPointer { out in
                        weights[layer].withUnsafeBufferPointer { w in
                            BLAS.sgemm(
                                transB: true, m: samples, n: outWidth, k: inWidth, a: previous, lda: inWidth,
                                b: w.baseAddress!, ldb: inWidth, c: out.baseAddress!, ldc: outWidth)
                        }
                        previous = UnsafePointer(out.baseAddress!)
                    }
                }
            }
        }
        func forwardPass() {
            input.withUnsafeBufferPointer { model.infer($0.baseAddress!, batch: samples, workspace: workspace) }
        }
        func seconds(_ body: () -> Void) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        sgemmPass()
        forwardPass()
        var bestSgemm = Double.infinity, bestForward = Double.infinity
        for _ in 0..<repeats {
            bestSgemm = min(bestSgemm, seconds(sgemmPass))
            bestForward = min(bestForward, seconds(forwardPass))
        }
        let sgemmRate = flops / bestSgemm / 1e9, forwardRate = flops / bestForward / 1e9
        print("model \(widths.map(String.init).joined(separator: "-")) samples \(samples) threads \(threads)")
        print(String(format: "sgemm_gflops %.2f", sgemmRate))
        print(String(format: "forward_gflops %.2f", forwardRate))
        print(String(format: "forward_ms %.3f", bestForward * 1000))
    }
}
