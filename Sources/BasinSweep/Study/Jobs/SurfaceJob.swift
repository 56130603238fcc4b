import BasinLandscape
import BasinNN

/// `surface`: θ0 + x·d1 (+ y·d2) around a checkpoint, along random filter-normalized
/// directions or a trajectory's principal components. Fields the spec leaves out stay nil
/// (the job id hashes what the spec wrote); the resolved values below fill in the defaults.
public struct SurfaceJob: Codable, Sendable, Equatable {
    public var name: String?
    public var checkpoint: String
    public var x: Axis?
    public var y: Axis?
    /// One direction only (a 1-D line along `x`).
    public var line: Bool?
    public var norm: DirectionSpec.Normalization?
    public var ignore: DirectionSpec.OneDimensional?
    public var orthogonalize: Bool?
    public var seed: UInt64?
    /// A directory of snapshots whose principal components give the directions.
    public var trajectory: String?
    public var bn: BatchNormMode?

    public init(checkpoint: String) {
        self.checkpoint = checkpoint
    }

    public var isLine: Bool { line == true }
    public var xAxis: Axis { x ?? .around }
    public var yAxis: Axis? { isLine ? nil : (y ?? .around) }

    /// How the random directions are drawn.
    public var directions: DirectionSpec {
        DirectionSpec(
            norm: norm ?? .filter, ignore: ignore ?? .biasbn, orthogonalize: orthogonalize ?? false, seed: seed ?? 0)
    }
}

extension SurfaceJob: GridJob {
    public var axes: [(name: String, axis: Axis)] { [("x", xAxis)] + (yAxis.map { [("y", $0)] } ?? []) }
    public var batchNorm: BatchNormMode { bn ?? .eval }
}
