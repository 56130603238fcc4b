import BasinLandscape
import BasinNN
import Crypto
import Foundation

/// A spec expanded into jobs with stable ids, point counts and shards.
public struct Study: Sendable {
    public struct Job: Sendable {
        public let definition: JobDefinition
        /// SHA-256 (hex) of the canonical JSON of the job, the model, data and loss, and the
        /// SHA-256 of every input file: equal on every machine, new when anything it reads changes.
        public let id: String
        public let name: String
        public let pointCount: Int
        public let shards: [Range<Int>]
    }

    public let jobs: [Job]

    public func job(id: String) -> Job? { jobs.first { $0.id == id } }

    /// Expands `spec` (paths relative to `executor.base`), preparing every job once to learn its size.
    public init(spec: StudySpec, executor: Executor) throws {
        let data = try executor.data()
        var jobs: [Job] = []
        var names = Set<String>()
        for (index, definition) in spec.jobs.enumerated() {
            let name = definition.defaultName
            guard names.insert(name).inserted else {
                throw NNError("jobs[\(index)]: a second job named '\(name)'; give one a 'name'")
            }
            var hasher = SHA256()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let identity = try JSONValue(encoding: [
                "job": try JSONValue(encoding: definition), "model": try JSONValue(encoding: spec.model),
                "data": try JSONValue(encoding: spec.data), "loss": .string(spec.train.loss.rawValue),
                "plain": .bool(spec.sweep.plain),
            ])
            hasher.update(data: identity.serialized())
            for file in definition.inputFiles {
                let url = executor.path(file)
                let bytes: Data
                do {
                    bytes = try Data(contentsOf: url, options: .mappedIfSafe)
                } catch {
                    throw NNError("jobs[\(index)] (\(name)): cannot read '\(file)' (\(url.path))")
                }
                hasher.update(data: Data(SHA256.hash(data: bytes)))
            }
            let id = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            let prepared: LandscapeJob
            do {
                prepared = try executor.prepare(definition, id: id)
            } catch let error as NNError {
                throw NNError("jobs[\(index)] (\(name)): \(error.description)")
            }
            let count = prepared.points.count
            let network = prepared.family.network
            // With the fast evaluator only the layers after a Linear/Conv2d first layer run per point.
            let perPointParameters =
                !spec.sweep.plain && LandscapeEvaluator.reusesFirstLayer(network)
                ? network.parameterSlice(1..<network.layerCount).count : network.parameterLayout.count
            let perShard =
                spec.sweep.shardPoints
                ?? Self.pointsPerShard(
                    parameters: perPointParameters, samples: data.train.count + data.test.count,
                    seconds: spec.sweep.shardSeconds)
            let shards = stride(from: 0, to: count, by: max(1, perShard)).map { $0..<min(count, $0 + max(1, perShard)) }
            jobs.append(Job(definition: definition, id: id, name: name, pointCount: count, shards: shards))
        }
        self.jobs = jobs
    }

    /// A deterministic estimate (never a timing, so shard boundaries never change): a point
    /// costs about 2·parameters·samples flops (the parameters that run per point) at an
    /// assumed 40 GFLOP/s per worker (one core's sgemm runs at about 110 here).
    static func pointsPerShard(parameters: Int, samples: Int, seconds: Double) -> Int {
        let perPoint = 2 * Double(parameters) * Double(max(samples, 1)) / 40e9
        return max(1, min(100_000, Int(seconds / max(perPoint, 1e-9))))
    }
}
