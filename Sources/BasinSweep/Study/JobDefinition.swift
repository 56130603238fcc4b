import BasinLandscape
import BasinNN
import Foundation

/// One job of a study, as the user wrote it (paths relative to the spec): one case per kind,
/// each with a struct of its own fields.
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
///
/// Encoded flat, `{"kind": "surface", "checkpoint": …}` (study.json, the wire, and the job
/// id's hash): the fields the user left out stay out.
public enum JobDefinition: Codable, Sendable, Equatable {
    case surface(SurfaceJob)
    case interpolate(InterpolateJob)
    case plane(PlaneJob)
    case curve(CurveJob)
    case train(TrainJob)
    case align(AlignJob)
    case fit(FitJob)
    case hessian(HessianJob)

    public enum Kind: String, Codable, Sendable, CaseIterable {
        case surface, interpolate, plane, curve, train, align, fit, hessian

        /// Grid kinds have many points, cut into shards; the others are one shard each.
        public var isGrid: Bool { [.surface, .interpolate, .plane, .curve].contains(self) }
        /// Kinds whose result is an artifact (a checkpoint or a curve) besides their values.
        public var makesArtifact: Bool { [.train, .align, .fit].contains(self) }
        /// Kinds a spec's `jobs:` list may hold (the others come from `stages`).
        public static let listed: [Kind] = [.surface, .interpolate, .plane, .curve]
    }

    public var kind: Kind {
        switch self {
        case .surface: .surface
        case .interpolate: .interpolate
        case .plane: .plane
        case .curve: .curve
        case .train: .train
        case .align: .align
        case .fit: .fit
        case .hessian: .hessian
        }
    }

    /// The variant of its kind, for a kind that has several: `surface:random` or
    /// `surface:trajectory` (the directions), `plane:raw` or `plane:orthonormal` (the basis).
    public var variant: String? {
        switch self {
        case .surface(let job): job.trajectory == nil ? "surface:random" : "surface:trajectory"
        case .plane(let job): job.isOrthonormal ? "plane:orthonormal" : "plane:raw"
        default: nil
        }
    }

    /// Whether a worker that announced `kinds` (HELLO; nil: every kind) computes this job: it
    /// names the kind (every variant of it) or this job's variant.
    public func isComputed(by kinds: Set<String>?) -> Bool {
        guard let kinds else { return true }
        return kinds.contains(kind.rawValue) || variant.map(kinds.contains) == true
    }

    /// The name the spec gave, if any.
    public var name: String? {
        switch self {
        case .surface(let job): job.name
        case .interpolate(let job): job.name
        case .plane(let job): job.name
        case .curve(let job): job.name
        case .train(let job): job.name
        case .align(let job): job.name
        case .fit(let job): job.name
        case .hessian(let job): job.name
        }
    }

    /// The grid job, for the four kinds that have many points.
    public var grid: (any GridJob)? {
        switch self {
        case .surface(let job): job
        case .interpolate(let job): job
        case .plane(let job): job
        case .curve(let job): job
        case .train, .align, .fit, .hessian: nil
        }
    }

    /// Everything this job reads, in a fixed order: files and `@job` references.
    public var inputs: [String] {
        switch self {
        case .surface(let job): [job.checkpoint]
        case .interpolate(let job): [job.from, job.to]
        case .plane(let job): job.models
        case .curve(let job): [job.file]
        case .train: []
        case .align(let job): [job.from, job.to]
        case .fit(let job): [job.from, job.to]
        case .hessian(let job): [job.checkpoint]
        }
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

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
        static let kind = Key(stringValue: "kind")
    }

    /// Decodes the one-key YAML form, or the flat form with `kind` (as written to study.json).
    public init(from decoder: Decoder) throws {
        let outer = try decoder.container(keyedBy: Key.self)
        if let kind = try outer.decodeIfPresent(Kind.self, forKey: .kind) {
            try self.init(kind, from: decoder)
            return
        }
        let kinds = outer.allKeys.filter { Kind(rawValue: $0.stringValue).map(Kind.listed.contains) ?? false }
        guard kinds.count == 1, let key = kinds.first, let kind = Kind(rawValue: key.stringValue) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "a job is one of surface, interpolate, plane, curve: write `- surface: {...}`"))
        }
        try self.init(kind, from: outer.superDecoder(forKey: key))
    }

    private init(_ kind: Kind, from decoder: Decoder) throws {
        switch kind {
        case .surface: self = .surface(try SurfaceJob(from: decoder))
        case .interpolate: self = .interpolate(try InterpolateJob(from: decoder))
        case .plane: self = .plane(try PlaneJob(from: decoder))
        case .curve: self = .curve(try CurveJob(from: decoder))
        case .train: self = .train(try TrainJob(from: decoder))
        case .align: self = .align(try AlignJob(from: decoder))
        case .fit: self = .fit(try FitJob(from: decoder))
        case .hessian: self = .hessian(try HessianJob(from: decoder))
        }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .surface(let job): try job.encode(to: encoder)
        case .interpolate(let job): try job.encode(to: encoder)
        case .plane(let job): try job.encode(to: encoder)
        case .curve(let job): try job.encode(to: encoder)
        case .train(let job): try job.encode(to: encoder)
        case .align(let job): try job.encode(to: encoder)
        case .fit(let job): try job.encode(to: encoder)
        case .hessian(let job): try job.encode(to: encoder)
        }
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(kind, forKey: .kind)
    }
}
