import Foundation

/// `hessian` (from `stages.hessian`): sharpness at a checkpoint, by power iteration and
/// Hutchinson's trace estimate. Stages write every field, so all are present.
public struct HessianJob: Codable, Sendable, Equatable {
    public var name: String?
    public var checkpoint: String
    /// Power-iteration steps at most.
    public var iterations: Int
    /// Relative change of the Rayleigh quotient at which power iteration stops.
    public var tolerance: Double
    /// Rademacher probes of the trace estimate.
    public var probes: Int
    public var seed: UInt64

    public static let defaultIterations = 100
    public static let defaultTolerance = 1e-3
    public static let defaultProbes = 30

    public init(name: String, checkpoint: String, iterations: Int, tolerance: Double, probes: Int, seed: UInt64) {
        self.name = name
        self.checkpoint = checkpoint
        self.iterations = iterations
        self.tolerance = tolerance
        self.probes = probes
        self.seed = seed
    }

    /// Why these settings cannot be measured, or nil.
    public var problem: String? {
        guard (1...1_000_000).contains(iterations), (1...1_000_000).contains(probes), tolerance > 0,
            tolerance.isFinite
        else {
            return "'iterations' and 'probes' must be from 1 to 1000000, 'tolerance' finite and > 0"
        }
        return nil
    }

    private enum CodingKeys: String, CodingKey { case name, checkpoint, iterations, tolerance, probes, seed }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        checkpoint = try c.decode(String.self, forKey: .checkpoint)
        iterations = try c.decode(Int.self, forKey: .iterations)
        tolerance = try c.decode(Double.self, forKey: .tolerance)
        probes = try c.decode(Int.self, forKey: .probes)
        seed = try c.decode(UInt64.self, forKey: .seed)
        if let problem {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
        }
    }
}
