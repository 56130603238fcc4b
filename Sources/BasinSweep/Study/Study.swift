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
        /// A capability a worker must announce besides the job's kind (`model:external` for a
        /// model Basin does not build); nil: none.
        public let needs: String?
        /// A grid job's estimated work in seconds of one worker (the deterministic estimate that
        /// sizes its shards: forward FLOPs at 40 GFLOP/s); nil for the other kinds.
        public let estimatedSeconds: Double?

        public init(
            definition: JobDefinition, id: String, name: String, pointCount: Int, shards: [Range<Int>],
            dependencies: [Int], needs: String? = nil, estimatedSeconds: Double? = nil
        ) {
            self.estimatedSeconds = estimatedSeconds
            self.definition = definition
            self.id = id
            self.name = name
            self.pointCount = pointCount
            self.shards = shards
            self.dependencies = dependencies
            self.needs = needs
        }

        public var isGrid: Bool { definition.kind.isGrid }

        /// Whether a worker that announced `kinds` (HELLO; nil: every kind Basin builds) computes
        /// this job: it names the job's kind or variant, and what the job needs besides.
        public func isComputed(by kinds: Set<String>?) -> Bool {
            guard definition.isComputed(by: kinds) else { return false }
            guard let needs else { return true }
            return kinds?.contains(needs) == true
        }
    }

    public let jobs: [Job]
    /// SHA-256 of every file the spec names (data files, listed jobs' inputs), by the path the
    /// spec writes: each read once here, so the run can store them without reading them again.
    public let fileHashes: [String: String]

    /// Index in `jobs` by job id.
    public let indices: [String: Int]

    public func job(id: String) -> Job? { indices[id].map { jobs[$0] } }

    /// Expands `spec` (paths relative to `executor.base`). Every job is counted from its
    /// definition alone; the files a job reads are checked here (a bad checkpoint is an error
    /// now, not a failing shard later), and nothing is prepared: a job's points and directions
    /// are made where it is computed.
    public init(spec: StudySpec, executor: Executor) throws {
        let data = try executor.data()
        var jobs: [Job] = []
        var names: [String: Int] = [:]
        let definitions = try spec.allJobs()
        let external = spec.model.external
        if external != nil, let stage = definitions.first(where: { !$0.kind.isGrid }) {
            throw SpecError(
                "model",
                "an external model is evaluated by PyTorch workers only, which compute surface, interpolate, "
                    + "plane and curve jobs; '\(stage.defaultName)' (\(stage.kind.rawValue)) needs a model Basin builds")
        }
        if external != nil,
            let trajectory = definitions.first(where: {
                if case .surface(let surface) = $0 { return surface.trajectory != nil }
                return false
            })
        {
            throw SpecError(
                trajectory.defaultName, "a trajectory surface needs a model Basin builds, and the spec's model is external")
        }
        let network = try spec.model.description.map(Network.init)
        var fileHashes: [String: String] = [:]
        func hash(_ file: String, _ label: String) throws -> String {
            if let known = fileHashes[file] { return known }
            let url = executor.path(file)
            guard let bytes = try? Data(contentsOf: url, options: .mappedIfSafe) else {
                throw SpecError(label, "cannot read '\(file)' (\(url.path))")
            }
            fileHashes[file] = ArtifactStore.hash(bytes)
            return fileHashes[file]!
        }
        // The data files' contents are part of every job's identity.
        let dataHashes = try spec.data.files.map { JSONValue.string(try hash($0, "data")) }
        for (index, definition) in definitions.enumerated() {
            let name = definition.defaultName
            let label =
                definition.grid != nil && index >= definitions.count - spec.jobs.count
                ? "jobs[\(index - (definitions.count - spec.jobs.count))] (\(name))" : name
            guard names[name] == nil else {
                throw SpecError(label, "a second job named '\(name)'; give one a 'name'")
            }
            var dependencies: [Int] = []
            for input in definition.inputJobs {
                guard let upstream = names[input] else {
                    throw SpecError(label, "reads '@\(input)', which is not a job before it")
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
            if let recompute = spec.bnRecompute { fields["bn_recompute"] = try JSONValue(encoding: recompute) }
            let identity = try JSONValue(encoding: fields)
            hasher.update(data: identity.serialized())
            for file in definition.inputFiles {
                hasher.update(data: Self.digest(try hash(file, label)))
            }
            for upstream in dependencies { hasher.update(data: Data(jobs[upstream].id.utf8)) }
            let id = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            var count = 1
            var shards = [0..<1]
            var estimate: Double?
            if let grid = definition.grid {
                if let problem = grid.sizeProblem { throw SpecError(label, problem) }
                if case .surface(let surface) = definition, surface.trajectory != nil, !dependencies.isEmpty {
                    throw SpecError(label, "a trajectory surface needs a checkpoint file, not another job's output")
                }
                count = grid.pointCount
                let perPointFlops: Int
                do {
                    if let external {
                        // Opaque checkpoints: checked to agree, the cost given or 2 per parameter.
                        let parameters = try executor.externalParameterCount(of: definition)
                        perPointFlops = external.flopsPerSample.map { Int($0) } ?? 2 * parameters
                    } else if let perPointNetwork = try executor.network(of: definition) ?? network {
                        // With the fast evaluator only the layers after a Linear/Conv2d first layer run per point.
                        perPointFlops =
                            !spec.sweep.plain && LandscapeEvaluator.reusesFirstLayer(perPointNetwork)
                            ? perPointNetwork.flopsPerSample(1..<perPointNetwork.layerCount)
                            : perPointNetwork.flopsPerSample()
                    } else {
                        throw NNError("no model to evaluate")
                    }
                } catch let error as NNError {
                    throw SpecError(label, error.description)
                }
                let samples = data.train.count + data.test.count
                estimate = Double(count) * Self.secondsPerPoint(flops: perPointFlops, samples: samples)
                let perShard = max(
                    1,
                    spec.sweep.shardPoints
                        ?? Self.pointsPerShard(flops: perPointFlops, samples: samples, seconds: spec.sweep.shardSeconds))
                shards = stride(from: 0, to: count, by: perShard).map { $0..<min(count, $0 + perShard) }
            }
            names[name] = jobs.count
            jobs.append(
                Job(
                    definition: definition, id: id, name: name, pointCount: count, shards: shards,
                    dependencies: dependencies, needs: external == nil ? nil : ExternalModel.capability,
                    estimatedSeconds: estimate))
        }
        self.jobs = jobs
        self.fileHashes = fileHashes
        indices = Dictionary(jobs.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The 32 bytes a SHA-256 hex string spells (what the job id hashes, as it always has).
    static func digest(_ hex: String) -> Data {
        let digits = Array(hex.utf8).map { $0 <= 57 ? $0 - 48 : $0 - 87 }
        return Data(stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] })
    }

    /// A deterministic estimate (never a timing, so shard boundaries never change): a point
    /// costs the forward flops of the layers that run per point for every sample (2 per
    /// parameter, times the positions of a convolution) at an assumed 40 GFLOP/s per worker
    /// (one core's sgemm runs at about 110 here).
    static func pointsPerShard(flops: Int, samples: Int, seconds: Double) -> Int {
        let perPoint = secondsPerPoint(flops: flops, samples: samples)
        // Clamped in Double first: shard_seconds comes from the user.
        let points = seconds / max(perPoint, 1e-9)
        return points.isNaN ? 1 : Int(max(1, min(100_000, points)))
    }

    static func secondsPerPoint(flops: Int, samples: Int) -> Double { Double(flops) * Double(max(samples, 1)) / 40e9 }
}
