import BasinLandscape
import BasinNN

/// `plane`: the plane through three models. Without `x` and `y`, each axis spans the models'
/// coordinates with a quarter of their range beyond them on each side (found when the job is
/// prepared), in `Axis.defaultSteps` steps.
public struct PlaneJob: Codable, Sendable, Equatable {
    public enum Basis: String, Codable, Sendable {
        /// θ1 + x(θ2 − θ1) + y(θ3 − θ1): the models at (0,0), (1,0), (0,1).
        case raw
        /// θ1 + x·u + y·v with u, v orthonormal (Gram–Schmidt): coordinates are distances.
        case orthonormal

        public init(from decoder: Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let basis = Basis(rawValue: text) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "is raw or orthonormal, not '\(text)'"))
            }
            self = basis
        }
    }

    public var name: String?
    public var models: [String]
    public var basis: Basis?
    public var x: Axis?
    public var y: Axis?
    public var bn: BatchNormMode?

    public init(models: [String]) {
        self.models = models
    }

    private enum CodingKeys: String, CodingKey { case name, models, basis, x, y, bn }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        models = try c.decode([String].self, forKey: .models)
        guard models.count == 3 else {
            throw DecodingError.dataCorruptedError(
                forKey: .models, in: c, debugDescription: "a plane needs three checkpoints, not \(models.count)")
        }
        basis = try c.decodeIfPresent(Basis.self, forKey: .basis)
        x = try c.decodeIfPresent(Axis.self, forKey: .x)
        y = try c.decodeIfPresent(Axis.self, forKey: .y)
        bn = try c.decodeIfPresent(BatchNormMode.self, forKey: .bn)
    }

    public var isOrthonormal: Bool { basis == .orthonormal }
}

extension PlaneJob: GridJob {
    /// The steps are known before the models are; a missing axis's range is not (a
    /// placeholder of the default steps stands for it here).
    public var axes: [(name: String, axis: Axis)] {
        [("x", x ?? .unit), ("y", y ?? .unit)]
    }
    public var batchNorm: BatchNormMode { bn ?? .eval }
}
