import BasinNN

/// Where a study's model comes from: a description Basin builds (`model: {input, layers}`), or
/// an external model that only PyTorch workers build (`model: {external: NAME}`, each worker
/// started with `basin-worker --model FILE.py:FUNCTION`). An external model's checkpoints are
/// opaque to the coordinator: it hashes them, checks that they are safetensors files whose
/// tensors agree, and leases their jobs only to workers that announce `model:external`.
public enum ModelSource: Codable, Sendable, Equatable {
    case described(ModelDescription)
    case external(ExternalModel)

    /// The description Basin builds, or nil for an external model.
    public var description: ModelDescription? {
        if case .described(let description) = self { return description }
        return nil
    }

    public var external: ExternalModel? {
        if case .external(let model) = self { return model }
        return nil
    }

    private enum Keys: String, CodingKey { case external }

    public init(from decoder: Decoder) throws {
        if try decoder.container(keyedBy: Keys.self).contains(.external) {
            self = .external(try ExternalModel(from: decoder))
        } else {
            self = .described(try ModelDescription(from: decoder))
        }
    }

    /// A description encodes as it always has (so job ids of such specs do not change).
    public func encode(to encoder: Encoder) throws {
        switch self {
        case .described(let description): try description.encode(to: encoder)
        case .external(let model): try model.encode(to: encoder)
        }
    }
}

/// A model Basin does not build: its name (part of every job's identity) and, optionally, its
/// forward cost, which sizes shards.
public struct ExternalModel: Codable, Sendable, Equatable {
    /// What the user calls it (`resnet18`, `vit-tiny`): 1-128 characters.
    public var name: String
    /// Forward FLOPs per sample. Without it a point is estimated at 2 per parameter (a dense
    /// network's count), which undercounts convolutions: give it, or `sweep.shard_points`.
    public var flopsPerSample: Double?

    /// The capability a worker announces in HELLO `kinds` to be leased external-model jobs.
    public static let capability = "model:external"

    private enum CodingKeys: String, CodingKey { case name = "external", flopsPerSample = "flops_per_sample" }

    public init(name: String, flopsPerSample: Double? = nil) {
        self.name = name
        self.flopsPerSample = flopsPerSample
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        flopsPerSample = try c.decodeIfPresent(Double.self, forKey: .flopsPerSample)
        guard (1...128).contains(name.count) else {
            throw DecodingError.dataCorruptedError(
                forKey: .name, in: c, debugDescription: "must name the model in 1 to 128 characters")
        }
        if let flops = flopsPerSample, !(flops.isFinite && flops >= 1 && flops <= 1e15) {
            throw DecodingError.dataCorruptedError(
                forKey: .flopsPerSample, in: c, debugDescription: "must be a number of FLOPs from 1 to 1e15")
        }
    }
}
