import BasinLandscape
import BasinNN
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
    /// Eigenvalues reported beside λmax, by Lanczos (nil or 1: none).
    public var topK: Int?
    /// The eigenvalue density by stochastic Lanczos quadrature (nil: not measured).
    public var density: Density?

    /// PyHessian's ESD settings (`runs` starts, `steps` Lanczos steps, `bins` grid points,
    /// Gaussian variance `sigma_squared`·max(1, range)).
    public struct Density: Codable, Sendable, Equatable {
        public var runs: Int?
        public var steps: Int?
        public var bins: Int?
        public var sigmaSquared: Double?

        public init(runs: Int? = nil, steps: Int? = nil, bins: Int? = nil, sigmaSquared: Double? = nil) {
            (self.runs, self.steps, self.bins, self.sigmaSquared) = (runs, steps, bins, sigmaSquared)
        }

        private enum CodingKeys: String, CodingKey { case runs, steps, bins, sigmaSquared = "sigma_squared" }

        public var settings: Sharpness.DensitySettings {
            let d = Sharpness.DensitySettings()
            return Sharpness.DensitySettings(
                runs: runs ?? d.runs, steps: steps ?? d.steps, bins: bins ?? d.bins, sigmaSquared: sigmaSquared ?? d.sigmaSquared)
        }
    }

    /// Values the job reports after the 7 of power iteration and Hutchinson: the top-k
    /// eigenvalues, then the density's grid bounds and its values.
    public var extraValueCount: Int { reportedTopK + (density.map { 2 + $0.settings.bins } ?? 0) }

    /// Eigenvalues reported beside λmax (0 unless `top_k` > 1).
    var reportedTopK: Int {
        let k = topK ?? 1
        return k > 1 ? k : 0
    }

    /// The job's values from a measurement, in the order above. Lanczos may close its Krylov
    /// space early (fewer Ritz values than asked): NaN fills.
    public func values(_ r: Sharpness.Result) -> [Double] {
        var values = [
            r.topEigenvalue, Double(r.iterationsUsed), r.lastChange, r.converged ? 1 : 0, r.trace,
            r.traceStandardError, Double(r.products),
        ]
        values += (0..<reportedTopK).map { $0 < r.topEigenvalues.count ? r.topEigenvalues[$0] : .nan }
        if let bins = density?.settings.bins {
            let grid = r.spectralDensity?.grid ?? [], density = r.spectralDensity?.density ?? []
            values += [grid.first ?? .nan, grid.last ?? .nan]
            values += (0..<bins).map { $0 < density.count ? density[$0] : .nan }
        }
        return values
    }

    /// The arrays the values after the 7 hold: `top_eigenvalues`, `density_grid`, `density`.
    public func arrays(fromExtra extra: [Double]) -> [(name: String, tensor: TensorData)] {
        guard extra.count == extraValueCount else { return [] }
        var arrays: [(name: String, tensor: TensorData)] = []
        let k = reportedTopK
        if k > 0 { arrays.append(("top_eigenvalues", TensorData(Array(extra.prefix(k)), shape: [k]))) }
        if let bins = density?.settings.bins {
            let (low, high) = (extra[k], extra[k + 1])
            let grid = (0..<bins).map { low + (high - low) * Double($0) / Double(bins - 1) }
            arrays.append(("density_grid", TensorData(grid, shape: [bins])))
            arrays.append(("density", TensorData(Array(extra.suffix(bins)), shape: [bins])))
        }
        return arrays
    }

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
        if let topK, !(1...1000).contains(topK) { return "'top_k' must be from 1 to 1000" }
        if let d = density?.settings {
            guard (1...1000).contains(d.runs), (1...10000).contains(d.steps), (2...100_000).contains(d.bins),
                d.sigmaSquared > 0, d.sigmaSquared.isFinite
            else {
                return "'density' needs runs 1-1000, steps 1-10000, bins 2-100000 and a positive sigma_squared"
            }
        }
        return nil
    }

    private enum CodingKeys: String, CodingKey {
        case name, checkpoint, iterations, tolerance, probes, seed, topK = "top_k", density
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        checkpoint = try c.decode(String.self, forKey: .checkpoint)
        iterations = try c.decode(Int.self, forKey: .iterations)
        tolerance = try c.decode(Double.self, forKey: .tolerance)
        probes = try c.decode(Int.self, forKey: .probes)
        seed = try c.decode(UInt64.self, forKey: .seed)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        density = try c.decodeIfPresent(Density.self, forKey: .density)
        if let problem {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
        }
    }
}
