import BasinLandscape
import BasinNN
import Crypto
import Foundation

/// A spec expanded into a graph of jobs with stable ids, point counts and shards.
public struct Study: Sendable {
    public struct Job: Sendable {
        public let definition: JobDefinition
        /// SHA-256 (hex) of the canonical JSON of the job, the model, data and loss, the
        /// SHA-256 of every input file and the ids of the jobs it reads: equal on every machine,
        /// new when anything it reads changes.
        public let id: String
        public let name: String
        public let pointCount: Int
        public let shards: [Range<Int>]
        /// Indices of the jobs whose outputs this one reads (all earlier in `jobs`).
        public let dependencies: [Int]

        public var isGrid: Bool { definition.kind.isGrid }
    }

    public let jobs: [Job]

    public func job(id: String) -> Job? { jobs.first { $0.id == id } }
    public func index(named name: String) -> Int? { jobs.firstIndex { $0.name == name } }

    /// Expands `spec` (paths relative to `executor.base`). Jobs that read only files are
    /// prepared once to learn their size; jobs that read other jobs' outputs are sized from
    /// their definition.
    public init(spec: StudySpec, executor: Executor) throws {
        let data = try executor.data()
        var jobs: [Job] = []
        var names: [String: Int] = [:]
        let definitions = try spec.allJobs()
        let network = try Network(spec.model)
        // The data files' contents are part of every job's identity.
        var dataHashes: [JSONValue] = []
        for file in spec.data.files {
            guard let bytes = try? Data(contentsOf: executor.path(file), options: .mappedIfSafe) else {
                throw NNError("data: cannot read '\(file)' (\(executor.path(file).path))")
            }
            dataHashes.append(.string(ArtifactStore.hash(bytes)))
        }
        for (index, definition) in definitions.enumerated() {
            let name = definition.defaultName
            let label =
                definition.kind.isGrid && index >= definitions.count - spec.jobs.count
                ? "jobs[\(index - (definitions.count - spec.jobs.count))] (\(name))" : name
            guard names[name] == nil else {
                throw NNError("\(label): a second job named '\(name)'; give one a 'name'")
            }
            var dependencies: [Int] = []
            for input in definition.inputJobs {
                guard let upstream = names[input] else {
                    throw NNError("\(label): reads '@\(input)', which is not a job before it")
                }
                dependencies.append(upstream)
            }
            var hasher = SHA256()
            var fields: [String: JSONValue] = [
                "job": try JSONValue(encoding: definition), "model": try JSONValue(encoding: spec.model),
                "data": try JSONValue(encoding: spec.data), "loss": .string(spec.train.loss.rawValue),
                "plain": .bool(spec.sweep.plain),
            ]
            if !dataHashes.isEmpty { fields["data_files"] = .array(dataHashes) }
            let identity = try JSONValue(encoding: fields)
            hasher.update(data: identity.serialized())
            for file in definition.inputFiles {
                let url = executor.path(file)
                let bytes: Data
                do {
                    bytes = try Data(contentsOf: url, options: .mappedIfSafe)
                } catch {
                    throw NNError("\(label): cannot read '\(file)' (\(url.path))")
                }
                hasher.update(data: Data(SHA256.hash(data: bytes)))
            }
            for upstream in dependencies { hasher.update(data: Data(jobs[upstream].id.utf8)) }
            let id = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            var count = 1
            var perPointNetwork = network
            if definition.kind.isGrid {
                if dependencies.isEmpty {
                    let prepared: LandscapeJob
                    do {
                        prepared = try executor.prepare(definition, id: id)
                    } catch let error as NNError {
                        throw NNError("\(label): \(error.description)")
                    }
                    count = prepared.points.count
                    perPointNetwork = prepared.family.network
                } else {
                    count = try Self.pointCount(definition, label: label)
                }
            }
            var shards = [0..<1]
            if definition.kind.isGrid {
                // With the fast evaluator only the layers after a Linear/Conv2d first layer run per point.
                let perPointParameters =
                    !spec.sweep.plain && LandscapeEvaluator.reusesFirstLayer(perPointNetwork)
                    ? perPointNetwork.parameterSlice(1..<perPointNetwork.layerCount).count
                    : perPointNetwork.parameterLayout.count
                let perShard = max(
                    1,
                    spec.sweep.shardPoints
                        ?? Self.pointsPerShard(
                            parameters: perPointParameters, samples: data.train.count + data.test.count,
                            seconds: spec.sweep.shardSeconds))
                shards = stride(from: 0, to: count, by: perShard).map { $0..<min(count, $0 + perShard) }
            }
            names[name] = jobs.count
            jobs.append(
                Job(
                    definition: definition, id: id, name: name, pointCount: count, shards: shards,
                    dependencies: dependencies))
        }
        self.jobs = jobs
    }

    /// Points of a grid job whose inputs do not exist yet, from its definition alone (the same
    /// count `Executor.prepare` gives once they do).
    static func pointCount(_ definition: JobDefinition, label: String) throws -> Int {
        switch definition.kind {
        case .surface:
            if definition.trajectory != nil {
                throw NNError("\(label): a trajectory surface needs a checkpoint file, not another job's output")
            }
            let x = definition.x?.steps ?? 21
            return definition.line == true ? x : x * (definition.y?.steps ?? 21)
        case .interpolate, .curve:
            return (definition.t?.steps ?? 21) + 2
        case .plane:
            guard let x = definition.x, let y = definition.y else {
                throw NNError("\(label): a plane through other jobs' models needs 'x' and 'y' axes")
            }
            return x.steps * y.steps
        default:
            return 1
        }
    }

    /// A deterministic estimate (never a timing, so shard boundaries never change): a point
    /// costs about 2·parameters·samples flops (the parameters that run per point) at an
    /// assumed 40 GFLOP/s per worker (one core's sgemm runs at about 110 here).
    static func pointsPerShard(parameters: Int, samples: Int, seconds: Double) -> Int {
        let perPoint = 2 * Double(parameters) * Double(max(samples, 1)) / 40e9
        return max(1, min(100_000, Int(seconds / max(perPoint, 1e-9))))
    }
}
