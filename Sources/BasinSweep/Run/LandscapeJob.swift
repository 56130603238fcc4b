import BasinLandscape
import BasinNN
import Foundation

/// A resolved landscape computation: an affine family, the grid of coefficient rows to
/// evaluate, and how the results become arrays.
///
/// Points `0..<gridCount` fill the arrays in row-major `shape` order (`[ny, nx]`, x along a
/// row; `[n]` for paths). Path jobs append the two ends (t = 0, t = 1) after the grid so
/// barriers use the models' own values whatever the grid.
public struct LandscapeJob: Sendable {
    public enum Kind: String, Codable, Sendable {
        case surface, interpolate, plane, curve
    }

    public var kind: Kind
    public var family: AffineFamily
    public var points: PointRows
    public var shape: [Int]
    /// Coordinate arrays stored with the result (`x`, `y`, or `t`).
    public var axes: [(name: String, values: [Double])]
    /// Whether this is a path (1-D in t) whose statistics and barriers are reported.
    public var isPath: Bool
    public var metadata: [String: JSONValue]
    /// Arrays stored beside the metrics (a projected trajectory, the models' plane coordinates).
    public var extraArrays: [(name: String, tensor: TensorData)] = []

    public var gridCount: Int { shape.reduce(1, *) }

    /// θ0 + x·d1 (+ y·d2) around a model; `y` nil for a 1-D line.
    /// `trajectory` (optional): the trajectory's coordinates along the directions, stored as
    /// `trajectory_x` (and `trajectory_y`).
    public static func surface(
        around model: Model, directions: [[Float]], x: Axis, y: Axis?, trajectory: [[Double]]? = nil
    ) -> LandscapeJob {
        let xs = x.values, ys = y?.values
        let family = AffineFamily.around(model, directions: Array(directions.prefix(ys == nil ? 1 : 2)))
        var job = LandscapeJob(
            kind: .surface, family: family, points: PointRows(.around(xs: xs, ys: ys)), shape: ys.map { [$0.count, xs.count] } ?? [xs.count],
            axes: [("x", xs)] + (ys.map { [("y", $0)] } ?? []), isPath: false, metadata: [:])
        if let trajectory {
            job.extraArrays.append(("trajectory_x", TensorData(trajectory.map { $0[0] }, shape: [trajectory.count])))
            if ys != nil {
                job.extraArrays.append(
                    ("trajectory_y", TensorData(trajectory.map { $0[1] }, shape: [trajectory.count])))
            }
        }
        return job
    }

    /// A path through control points (two models for a straight line) at parameters `t`.
    public static func path(_ kind: Kind, through controlPoints: [Model], curve: Curve, t: [Double]) -> LandscapeJob {
        let family = AffineFamily.through(controlPoints)
        return LandscapeJob(
            kind: kind, family: family,
            points: PointRows(
                .listed(t.map(curve.coefficients(at:)) + [curve.coefficients(at: 0), curve.coefficients(at: 1)])),
            shape: [t.count], axes: [("t", t)], isPath: true, metadata: [:])
    }

    /// The plane through three models. `raw`: θ1 + x(θ2 − θ1) + y(θ3 − θ1), the models at (0,0),
    /// (1,0), (0,1). `orthonormal`: θ1 + x·u + y·v with u, v an orthonormal basis of the same
    /// plane (Gram–Schmidt), coordinates in parameter-space distance.
    public static func plane(through models: [Model], orthonormal: Bool, x: Axis, y: Axis) -> (LandscapeJob, [[Double]])
    {
        let xs = x.values, ys = y.values
        let points: PointRows
        let family: AffineFamily
        let coordinates: [[Double]]
        if orthonormal {
            var u = VectorMath.difference(models[1].parameters, models[0].parameters)
            var v = VectorMath.difference(models[2].parameters, models[0].parameters)
            let du = VectorMath.difference(models[1].state, models[0].state)
            let dv = VectorMath.difference(models[2].state, models[0].state)
            let uNorm = VectorMath.norm(u)
            let projection = VectorMath.dot(v, u) / (uNorm * uNorm)
            Directions.orthogonalize(&v, against: u)
            let vNorm = VectorMath.norm(v)
            u = u.map { Float(Double($0) / uNorm) }
            v = v.map { Float(Double($0) / vNorm) }
            // States follow the same change of basis, so each model keeps its own statistics.
            let uState = du.map { Float(Double($0) / uNorm) }
            let vState = zip(dv, du).map { Float((Double($0) - projection * Double($1)) / vNorm) }
            family = AffineFamily(
                network: models[0].network, bases: [models[0].parameters, u, v],
                states: [models[0].state, uState, vState])
            points = PointRows(.orthonormal(xs: xs, ys: ys))
            coordinates = [[0, 0], [uNorm, 0], [projection * uNorm, vNorm]]
        } else {
            family = AffineFamily.through(models)
            points = PointRows(.raw(xs: xs, ys: ys))
            coordinates = [[0, 0], [1, 0], [0, 1]]
        }
        var job = LandscapeJob(
            kind: .plane, family: family, points: points, shape: [ys.count, xs.count], axes: [("x", xs), ("y", ys)],
            isPath: false, metadata: [:])
        job.metadata["basis"] = .string(orthonormal ? "orthonormal" : "raw")
        job.metadata["model_coordinates"] = .array(coordinates.map { .array($0.map { .number($0) }) })
        job.extraArrays = [
            ("model_x", TensorData(coordinates.map { $0[0] }, shape: [3])),
            ("model_y", TensorData(coordinates.map { $0[1] }, shape: [3])),
        ]
        return (job, coordinates)
    }

    /// An axis framing `values` (the models' coordinates along it) with a quarter of their
    /// range beyond them on each side: a plane's axis where the spec gives none.
    public static func framing(_ values: [Double]) -> Axis {
        let low = values.min() ?? 0, high = values.max() ?? 1, margin = 0.25 * (high - low)
        return Axis(min: low - margin, max: high + margin, steps: Axis.defaultSteps)
    }

    /// Evaluates points `range` (a shard) with the fast or the plain evaluator; `recompute` is
    /// how `bn: recompute` re-estimates BatchNorm statistics.
    public func evaluate(
        _ range: Range<Int>, data: DataSplit, loss: LossFunction, batchNorm: BatchNormMode,
        recompute: BatchNormRecompute = .init(), fast: Bool = true
    ) throws -> [PointMetrics] {
        var evaluator = try LandscapeEvaluator(
            family: family, train: data.train, test: data.test.count > 0 ? data.test : nil, loss: loss,
            batchNorm: batchNorm)
        evaluator.batchNormRecompute = recompute
        let selected = Array(points[range])
        return fast ? try evaluator.fast(selected) : try evaluator.plain(selected)
    }

    /// The result file for per-point metrics (nil = not computed: NaN and `done` false).
    public func result(_ metrics: [PointMetrics?], prefix: String = "") -> ResultFile {
        precondition(metrics.count == points.count)
        var columns = PointColumns(count: gridCount)
        for i in 0..<gridCount {
            if let m = metrics[i] {
                columns.set(i, m.trainLoss, m.trainAccuracy, m.testLoss, m.testAccuracy)
            }
        }
        var statistics: JSONValue?
        if isPath, metrics.allSatisfy({ $0 != nil }) { statistics = pathStatistics(metrics.compactMap { $0 }) }
        return result(columns, statistics: statistics, complete: metrics.allSatisfy { $0 != nil }, prefix: prefix)
    }

    /// The result file from filled columns (what a merge builds straight from the journal);
    /// `statistics` for a path, `complete` when every point (a path's ends too) is there.
    public func result(_ columns: PointColumns, statistics: JSONValue? = nil, complete: Bool, prefix: String = "")
        -> ResultFile
    {
        precondition(columns.done.count == gridCount)
        var file = ResultFile()
        for (c, field) in PointMetrics.fields.enumerated() {
            file.set(prefix + field.name, TensorData(dtype: .f32, shape: shape, bytes: columns.columns[c]))
        }
        for (name, values) in axes where prefix.isEmpty { file.set(name, TensorData(values, shape: [values.count])) }
        for (name, tensor) in extraArrays where prefix.isEmpty { file.set(name, tensor) }
        file.set(prefix + "done", TensorData(dtype: .bool, shape: shape, bytes: columns.done))
        var meta = metadata
        meta["kind"] = .string(kind.rawValue)
        meta["shape"] = .array(shape.map { .integer($0) })
        meta["complete"] = .bool(complete)
        meta["points_done"] = .integer(columns.pointsDone)
        meta["points_total"] = .integer(gridCount)
        if let statistics { meta["statistics"] = statistics }
        file.metadata = .object(meta)
        return file
    }

    /// Min/max/mean/integral of each metric along the path, and the loss and error barriers.
    func pathStatistics(_ metrics: [PointMetrics]) -> JSONValue {
        let grid = Array(metrics[0..<gridCount])
        let t = axes.first { $0.name == "t" }?.values ?? []
        let lengths = PathStatistics.segmentLengths(family, points: Array(points[0..<gridCount]))
        var out: [String: JSONValue] = [:]
        for (name, value) in PointMetrics.fields {
            let values = grid.map(value)
            if values.allSatisfy({ $0.isNaN }) { continue }
            let s = PathStatistics(values: values, segmentLengths: lengths)
            out[name] = .object([
                "min": .number(s.min), "max": .number(s.max), "mean": .number(s.mean), "integral": .number(s.integral),
            ])
        }
        let start = metrics[gridCount], end = metrics[gridCount + 1]
        for split in ["train", "test"] {
            let loss = grid.map { split == "train" ? $0.trainLoss : $0.testLoss }
            let accuracy = grid.map { split == "train" ? $0.trainAccuracy : $0.testAccuracy }
            if loss.allSatisfy({ $0.isNaN }) { continue }
            let barrier = Barrier(
                t: t, loss: loss, accuracy: accuracy,
                start: split == "train" ? (start.trainLoss, start.trainAccuracy) : (start.testLoss, start.testAccuracy),
                end: split == "train" ? (end.trainLoss, end.trainAccuracy) : (end.testLoss, end.testAccuracy))
            out["\(split)_loss_barrier"] = .number(barrier.lossBarrier)
            out["\(split)_error_barrier"] = .number(barrier.errorBarrier)
            out["\(split)_endpoint_loss"] = .array([
                .number(split == "train" ? start.trainLoss : start.testLoss),
                .number(split == "train" ? end.trainLoss : end.testLoss),
            ])
        }
        out["definitions"] = .object(Barrier.definitions.mapValues { .string($0) })
        return .object(out)
    }
}

extension TensorData {
    /// The same bytes typed as NumPy bool (`|b1`).
    var asBool: TensorData { TensorData(dtype: .bool, shape: shape, bytes: bytes) }
}
