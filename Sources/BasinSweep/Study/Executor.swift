import BasinLandscape
import BasinNN
import Foundation

/// Turns job definitions into landscape jobs and evaluates their shards: the pure
/// `task → result` function that `basin run --workers 0`, the cluster workers and the tests
/// all call. Holds the spec's data and each prepared job, so a worker loads them once.
public final class Executor {
    public let spec: StudySpec
    /// Directory that relative paths in the spec start from.
    public let base: URL
    private var cachedData: DataSplit?
    private var prepared: [String: LandscapeJob] = [:]

    public init(spec: StudySpec, base: URL) {
        self.spec = spec
        self.base = base
    }

    public func path(_ file: String) -> URL {
        file.hasPrefix("/") ? URL(fileURLWithPath: file) : base.appendingPathComponent(file)
    }

    public func data() throws -> DataSplit {
        if let cachedData { return cachedData }
        let split = try spec.data.load(relativeTo: base)
        cachedData = split
        return split
    }

    private func model(_ file: String) throws -> Model {
        let url = path(file)
        let tensors = try SafeTensors(contentsOf: url)
        let description = try Checkpoint.description(in: tensors, source: url.path) ?? spec.model
        return try Checkpoint.load(tensors, into: try Network(description), source: url.path)
    }

    /// The landscape job a definition describes (cached by `id`). Deterministic: every machine
    /// prepares the same points and family from the same files.
    public func prepare(_ definition: JobDefinition, id: String) throws -> LandscapeJob {
        if let job = prepared[id] { return job }
        var job: LandscapeJob
        switch definition.kind {
        case .surface:
            let center = try model(definition.checkpoint!)
            let count = definition.line == true ? 1 : 2
            let directions: [[Float]]
            var projection: [[Double]]?
            if let trajectory = definition.trajectory {
                let snapshots = try TrajectoryPCA.snapshots(in: path(trajectory), network: center.network)
                let pca = try TrajectoryPCA(snapshots: snapshots, final: center.parameters, components: count)
                directions = pca.directions
                projection = pca.projections
            } else {
                let directionSpec = DirectionSpec(
                    norm: definition.norm ?? .filter, ignore: definition.ignore ?? .biasbn,
                    orthogonalize: definition.orthogonalize ?? false, seed: definition.seed ?? 0)
                directions = Directions.random(around: center, count: count, spec: directionSpec)
            }
            let x = definition.x ?? Axis(min: -1, max: 1, steps: 21)
            let y = count == 1 ? nil : (definition.y ?? Axis(min: -1, max: 1, steps: 21))
            job = LandscapeJob.surface(around: center, directions: directions, x: x, y: y, trajectory: projection)
        case .interpolate:
            let ends = [try model(definition.from!), try model(definition.to!)]
            job = LandscapeJob.path(
                .interpolate, through: ends, curve: .line, t: (definition.t ?? Axis(min: 0, max: 1, steps: 21)).values)
        case .plane:
            let models = try definition.models!.map(model)
            let orthonormal = definition.basis == "orthonormal"
            let (_, coordinates) = LandscapeJob.plane(
                through: models, orthonormal: orthonormal, x: Axis(min: 0, max: 1, steps: 1),
                y: Axis(min: 0, max: 1, steps: 1))
            func axis(_ j: Int) -> Axis {
                let values = coordinates.map { $0[j] }
                let low = values.min()!, high = values.max()!, margin = 0.25 * (high - low)
                return Axis(min: low - margin, max: high + margin, steps: 21)
            }
            (job, _) = LandscapeJob.plane(
                through: models, orthonormal: orthonormal, x: definition.x ?? axis(0), y: definition.y ?? axis(1))
        case .curve:
            let (curve, points) = try CurveFile.load(contentsOf: path(definition.file!), fallback: spec.model)
            job = LandscapeJob.path(
                .curve, through: points, curve: curve, t: (definition.t ?? Axis(min: 0, max: 1, steps: 21)).values)
            job.metadata["curve"] = .object(["kind": .string(curve.kind.rawValue), "bends": .integer(curve.bends)])
        }
        job.metadata["job"] = try JSONValue(encoding: definition)
        prepared[id] = job
        return job
    }

    /// Per-point metrics of points `range` of a job.
    public func run(_ definition: JobDefinition, id: String, range: Range<Int>) throws -> [PointMetrics] {
        let job = try prepare(definition, id: id)
        guard range.lowerBound >= 0, range.upperBound <= job.points.count else {
            throw NNError("job \(definition.defaultName): points \(range) outside 0..<\(job.points.count)")
        }
        let batchNorm = definition.bn ?? (definition.kind == .curve ? .recompute : .eval)
        return try job.evaluate(
            range, data: try data(), loss: spec.train.loss, batchNorm: batchNorm, fast: !spec.sweep.plain)
    }
}
