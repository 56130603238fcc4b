import BasinLandscape
import BasinNN

/// `curve`: a fitted Bezier or polygonal chain (a file written by `basin curve --save-curve`,
/// or `@fit/…`) evaluated along `t`. BatchNorm statistics are recomputed at each point by
/// default: a point on a curve is a new model whose running statistics nobody measured.
public struct CurveJob: Codable, Sendable, Equatable {
    public var name: String?
    public var file: String
    public var t: Axis?
    public var bn: BatchNormMode?

    public init(file: String) {
        self.file = file
    }

    public var tAxis: Axis { t ?? .unit }
}

extension CurveJob: GridJob {
    public var axes: [(name: String, axis: Axis)] { [("t", tAxis)] }
    public var pointCount: Int { tAxis.steps + 2 }
    public var batchNorm: BatchNormMode { bn ?? .recompute }
}
