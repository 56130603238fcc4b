import BasinNN
import BasinTestSupport
import Foundation
import Testing

/// BatchNorm re-estimation under each convention (`BatchNormRecompute.weighting`) against its
/// definition, on data whose last batch is short (10 samples in batches of 4: 4, 4, 2).
@Suite struct BatchNormRecomputeTests {
    /// Running mean and variance by definition: per batch the mean and unbiased variance,
    /// averaged with equal weights (`batch`) or weights proportional to the batch sizes (`samples`).
    func definition(_ x: [[Double]], batch: Int, weighting: BatchNormRecompute.Weighting) -> ([Double], [Double]) {
        let chunks = stride(from: 0, to: x.count, by: batch).map { Array(x[$0..<min(x.count, $0 + batch)]) }
        let raw = chunks.map { weighting == .batch ? 1.0 : Double($0.count) }
        let weights = raw.map { $0 / raw.reduce(0, +) }
        let features = x[0].count
        var mean = [Double](repeating: 0, count: features), variance = mean
        for (chunk, w) in zip(chunks, weights) {
            for f in 0..<features {
                let values = chunk.map { $0[f] }
                let m = values.reduce(0, +) / Double(values.count)
                let v = values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)
                mean[f] += w * m
                variance[f] += w * v
            }
        }
        return (mean, variance)
    }

    @Test(arguments: BatchNormRecompute.Weighting.allCases)
    func recomputedStatisticsMatchTheirDefinition(_ weighting: BatchNormRecompute.Weighting) throws {
        let network = try Network(ModelDescription(input: [3], layers: [.batchNorm1d(numFeatures: nil, eps: 1e-5, momentum: 0.1)]))
        var model = network.initialize(seed: 1)
        let features = TestSupport.gaussian(30, seed: 9).enumerated().map { i, v in v * Float(1 + i % 3) + Float(i % 3) }
        let data = Dataset(
            sampleShape: [3], features: features, labels: [Int32](repeating: 0, count: 10), classCount: 2)
        model.recomputeBatchNormStatistics(on: data, settings: BatchNormRecompute(batchSize: 4, weighting: weighting))
        let rows = (0..<10).map { s in (0..<3).map { Double(features[s * 3 + $0]) } }
        let (mean, variance) = definition(rows, batch: 4, weighting: weighting)
        let state = model.state.map(Double.init)
        for f in 0..<3 {
            #expect(abs(state[f] - mean[f]) <= 1e-5 * max(1, abs(mean[f])), "running_mean[\(f)]")
            #expect(abs(state[3 + f] - variance[f]) <= 1e-5 * max(1, abs(variance[f])), "running_var[\(f)]")
        }
        let other = definition(rows, batch: 4, weighting: weighting == .batch ? .samples : .batch)
        #expect(zip(other.0, mean).contains { abs($0 - $1) > 1e-3 }, "a short last batch must tell them apart")
    }

    @Test func badSettingsAreRefused() {
        for text in [#"{"batch_size": 0}"#, #"{"weighting": "mean"}"#, #"{"batch_size": 2000000}"#] {
            #expect(throws: DecodingError.self) {
                try JSONDecoder().decode(BatchNormRecompute.self, from: Data(text.utf8))
            }
        }
        #expect(
            (try? JSONDecoder().decode(BatchNormRecompute.self, from: Data("{}".utf8))) == BatchNormRecompute())
    }
}
