import BasinLandscape
import BasinNN

/// `interpolate`: the straight line (1 − t)·θa + t·θb between two models.
public struct InterpolateJob: Codable, Sendable, Equatable {
    public var name: String?
    public var from: String
    public var to: String
    public var t: Axis?
    public var bn: BatchNormMode?

    public init(from: String, to: String) {
        self.from = from
        self.to = to
    }

    public var tAxis: Axis { t ?? .unit }
}

extension InterpolateJob: GridJob {
    public var axes: [(name: String, axis: Axis)] { [("t", tAxis)] }
    public var pointCount: Int { tAxis.steps + 2 }
    public var batchNorm: BatchNormMode { bn ?? .eval }
}
