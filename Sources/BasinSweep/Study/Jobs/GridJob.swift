import BasinLandscape
import BasinNN

/// What a grid job (surface, interpolate, plane, curve) says about its points from its
/// definition alone: the coordinator counts and cuts them without loading anything.
public protocol GridJob: Sendable {
    /// The job's axes as they will be evaluated, named as in the spec (defaults filled in).
    var axes: [(name: String, axis: Axis)] { get }
    /// Points evaluated: the grid, and for paths the two ends after it.
    var pointCount: Int { get }
    /// How BatchNorm statistics are taken at each point.
    var batchNorm: BatchNormMode { get }
}

extension GridJob {
    /// A grid's points: the product of its axes' steps (paths add their two ends).
    public var pointCount: Int { axes.reduce(1) { $0 * $1.axis.steps } }

    /// Why the grid could not fit in memory (checked before anything is allocated), or nil.
    public var sizeProblem: String? {
        var points = 1
        for (name, axis) in axes {
            let (product, overflow) = points.multipliedReportingOverflow(by: max(axis.steps, 1))
            guard !overflow, product <= Axis.maximumPoints else {
                return "'\(name)' makes the grid larger than \(Axis.maximumPoints) points, the most one job may have"
            }
            points = product
        }
        return nil
    }
}
