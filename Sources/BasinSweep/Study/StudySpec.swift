import BasinNN

/// A sweep spec: the model, data and loss, the landscape jobs, the study's stages, and how to
/// cut them.
public struct StudySpec: Codable, Sendable, Equatable {
    public var model: ModelSource
    public var data: DataSpec
    public var train: TrainingConfig
    public var jobs: [JobDefinition]
    public var stages: Stages?
    public var sweep: SweepSettings
    /// How `bn: recompute` re-estimates BatchNorm statistics (`bn_recompute: {batch_size,
    /// weighting}`); nil: the default (128, batch), and job ids as before the setting existed.
    public var bnRecompute: BatchNormRecompute?

    private enum CodingKeys: String, CodingKey {
        case model, data, train, jobs, stages, sweep
        case bnRecompute = "bn_recompute"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(ModelSource.self, forKey: .model)
        data = try c.decode(DataSpec.self, forKey: .data)
        train = try c.decodeIfPresent(TrainingConfig.self, forKey: .train) ?? TrainingConfig()
        jobs = try c.decodeIfPresent([JobDefinition].self, forKey: .jobs) ?? []
        stages = try c.decodeIfPresent(Stages.self, forKey: .stages)
        sweep = try c.decodeIfPresent(SweepSettings.self, forKey: .sweep) ?? SweepSettings()
        bnRecompute = try c.decodeIfPresent(BatchNormRecompute.self, forKey: .bnRecompute)
    }

    /// The files the spec names, by the path it writes: data files and the listed jobs' inputs
    /// (stage jobs read only other jobs' outputs).
    public var namedFiles: Set<String> { Set(data.files + jobs.flatMap(\.inputFiles)) }

    /// Every job: the stages' (training first), then the listed `jobs`.
    public func allJobs() throws -> [JobDefinition] {
        try (stages?.jobs(base: train) ?? []) + jobs
    }
}

/// How jobs are cut into shards and leased.
public struct SweepSettings: Codable, Sendable, Equatable {
    /// Target seconds of work per shard (1–10 s is right for most clusters).
    public var shardSeconds: Double = 3
    /// Points per shard, overriding the estimate from `shard_seconds`.
    public var shardPoints: Int?
    /// Seconds a lease may run before it is re-issued to another worker.
    public var leaseSeconds: Double = 120
    /// Use the plain evaluator instead of the fast one.
    public var plain: Bool = false
    /// Fraction of shards (0–1, seeded) computed again by a different worker and compared bit
    /// for bit; a worker that disagrees with two others is quarantined.
    public var verify: Double?

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case shardSeconds = "shard_seconds", shardPoints = "shard_points", leaseSeconds = "lease_seconds", plain,
            verify
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        shardSeconds = try c.decodeIfPresent(Double.self, forKey: .shardSeconds) ?? 3
        shardPoints = try c.decodeIfPresent(Int.self, forKey: .shardPoints)
        leaseSeconds = try c.decodeIfPresent(Double.self, forKey: .leaseSeconds) ?? 120
        plain = try c.decodeIfPresent(Bool.self, forKey: .plain) ?? false
        verify = try c.decodeIfPresent(Double.self, forKey: .verify)
        // Both become durations and message fields (milliseconds as integers): bounded here.
        guard shardSeconds > 0 && shardSeconds <= 1e6 else {
            throw DecodingError.dataCorruptedError(
                forKey: .shardSeconds, in: c, debugDescription: "must be seconds above 0 and at most 1000000, got \(shardSeconds)")
        }
        guard leaseSeconds >= 1 && leaseSeconds <= 1e7 else {
            throw DecodingError.dataCorruptedError(
                forKey: .leaseSeconds, in: c, debugDescription: "must be seconds from 1 to 10000000, got \(leaseSeconds)")
        }
        if let verify, !(0...1).contains(verify) {
            throw DecodingError.dataCorruptedError(
                forKey: .verify, in: c, debugDescription: "must be a fraction from 0 to 1, got \(verify)")
        }
    }
}
