import BasinLandscape
import BasinNN
import Foundation

/// One landscape job of a study spec, as the user wrote it (paths relative to the spec).
///
/// Written in YAML as a one-key mapping: `- surface: {checkpoint: a.safetensors, x: "-1:1:41"}`,
/// `- interpolate: {from: a.safetensors, to: b.safetensors, t: "-0.5:1.5:81"}`,
/// `- plane: {models: [a, b, c], basis: orthonormal}`,
/// `- curve: {file: fitted.safetensors, t: "0:1:61"}` (a curve written by `basin curve --save-curve`);
/// an optional `name` names the result file.
///
/// A study's `stages` expand into further kinds (DESIGN.md §2): `train` (a model from a seed
/// and training settings), `align` (weight matching of `to` onto `from`), `fit` (a curve
/// between `from` and `to`) and `hessian` (sharpness at `checkpoint`). Their inputs may name
/// another job's output as `@<job name>`: the coordinator runs a job once those exist.
public struct JobDefinition: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case surface, interpolate, plane, curve, train, align, fit, hessian

        /// Grid kinds have many points, cut into shards; the others are one shard each.
        public var isGrid: Bool { [.surface, .interpolate, .plane, .curve].contains(self) }
        /// Kinds whose result is an artifact (a checkpoint or a curve) besides their values.
        public var makesArtifact: Bool { [.train, .align, .fit].contains(self) }
        /// Kinds a spec's `jobs:` list may hold (the others come from `stages`).
        public static let listed: [Kind] = [.surface, .interpolate, .plane, .curve]
    }

    public var kind: Kind
    public var name: String?
    public var checkpoint: String?
    public var x: Axis?
    public var y: Axis?
    public var line: Bool?
    public var norm: DirectionSpec.Normalization?
    public var ignore: DirectionSpec.OneDimensional?
    public var orthogonalize: Bool?
    public var seed: UInt64?
    public var trajectory: String?
    public var from: String?
    public var to: String?
    public var t: Axis?
    public var models: [String]?
    public var basis: String?
    public var bn: BatchNormMode?
    /// A fitted curve (`curve` jobs): a file, or `@fit/...`.
    public var file: String?
    /// Training (`train`) or curve-fitting (`fit`) settings, complete.
    public var config: TrainingConfig?
    /// `fit`: the curve's family and number of bends.
    public var curve: Curve?
    /// `hessian`: power-iteration steps at most, its relative tolerance, Hutchinson probes.
    public var iterations: Int?
    public var tolerance: Double?
    public var probes: Int?

    public init(kind: Kind) {
        self.kind = kind
    }

    private enum CodingKeys: String, CodingKey {
        case kind, name, checkpoint, x, y, line, norm, ignore, orthogonalize, seed, trajectory, from, to, t, models,
            basis, bn, file, config, curve, iterations, tolerance, probes
    }

    private struct KindKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes the one-key YAML form, or the flat form with `kind` (as written to study.json).
    public init(from decoder: Decoder) throws {
        let flat = try decoder.container(keyedBy: CodingKeys.self)
        if flat.contains(.kind) {
            try self.init(kind: flat.decode(Kind.self, forKey: .kind), fields: flat)
            return
        }
        let outer = try decoder.container(keyedBy: KindKey.self)
        let kinds = outer.allKeys.filter { Kind(rawValue: $0.stringValue).map(Kind.listed.contains) ?? false }
        guard kinds.count == 1, let key = kinds.first else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "a job is one of surface, interpolate, plane, curve: write `- surface: {...}`"))
        }
        try self.init(
            kind: Kind(rawValue: key.stringValue)!, fields: outer.nestedContainer(keyedBy: CodingKeys.self, forKey: key)
        )
    }

    private init(kind: Kind, fields c: KeyedDecodingContainer<CodingKeys>) throws {
        self.kind = kind
        name = try c.decodeIfPresent(String.self, forKey: .name)
        checkpoint = try c.decodeIfPresent(String.self, forKey: .checkpoint)
        x = try c.decodeIfPresent(Axis.self, forKey: .x)
        y = try c.decodeIfPresent(Axis.self, forKey: .y)
        line = try c.decodeIfPresent(Bool.self, forKey: .line)
        norm = try c.decodeIfPresent(DirectionSpec.Normalization.self, forKey: .norm)
        ignore = try c.decodeIfPresent(DirectionSpec.OneDimensional.self, forKey: .ignore)
        orthogonalize = try c.decodeIfPresent(Bool.self, forKey: .orthogonalize)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        trajectory = try c.decodeIfPresent(String.self, forKey: .trajectory)
        from = try c.decodeIfPresent(String.self, forKey: .from)
        to = try c.decodeIfPresent(String.self, forKey: .to)
        t = try c.decodeIfPresent(Axis.self, forKey: .t)
        models = try c.decodeIfPresent([String].self, forKey: .models)
        basis = try c.decodeIfPresent(String.self, forKey: .basis)
        bn = try c.decodeIfPresent(BatchNormMode.self, forKey: .bn)
        file = try c.decodeIfPresent(String.self, forKey: .file)
        config = try c.decodeIfPresent(TrainingConfig.self, forKey: .config)
        curve = try c.decodeIfPresent(Curve.self, forKey: .curve)
        iterations = try c.decodeIfPresent(Int.self, forKey: .iterations)
        tolerance = try c.decodeIfPresent(Double.self, forKey: .tolerance)
        probes = try c.decodeIfPresent(Int.self, forKey: .probes)
        let required: [(CodingKeys, Bool)] =
            switch kind {
            case .surface, .hessian: [(.checkpoint, checkpoint != nil)]
            case .interpolate, .align: [(.from, from != nil), (.to, to != nil)]
            case .plane: [(.models, models?.count == 3)]
            case .curve: [(.file, file != nil)]
            case .train: [(.config, config != nil)]
            case .fit: [(.from, from != nil), (.to, to != nil), (.config, config != nil), (.curve, curve != nil)]
            }
        for (key, present) in required where !present {
            throw DecodingError.keyNotFound(
                key,
                .init(
                    codingPath: c.codingPath,
                    debugDescription: kind == .plane
                        ? "a plane needs 'models' with three checkpoints"
                        : "\(kind.rawValue) needs '\(key.stringValue)'"))
        }
        if let basis, basis != "raw" && basis != "orthonormal" {
            throw DecodingError.dataCorruptedError(
                forKey: .basis, in: c, debugDescription: "'basis' is raw or orthonormal, not '\(basis)'")
        }
    }

    /// Everything this job reads, in a fixed order: files and `@job` references.
    public var inputs: [String] {
        [checkpoint, from, to, file].compactMap { $0 } + (models ?? [])
    }

    /// Files this job reads (their contents go into the job id).
    public var inputFiles: [String] { inputs.filter { !$0.hasPrefix("@") } }

    /// Names of the jobs whose outputs this job reads (`@name` inputs), in order.
    public var inputJobs: [String] { inputs.filter { $0.hasPrefix("@") }.map { String($0.dropFirst()) } }

    /// A readable name: `surface/a`, `interpolate/a-b`, `plane/a-b-c` (file stems), unless `name` is given.
    public var defaultName: String {
        if let name { return name }
        let stems = inputs.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
        return "\(kind.rawValue)/" + stems.joined(separator: "-")
    }
}
