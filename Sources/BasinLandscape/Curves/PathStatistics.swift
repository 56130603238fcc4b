import BasinNN

/// Summary of one metric along a path (Garipov et al.'s `stats`): min, max, mean over the
/// evaluated points, and the integral along the path weighted by arc length,
/// Σᵢ ½(vᵢ + vᵢ₋₁)·‖θ(tᵢ) − θ(tᵢ₋₁)‖ / Σᵢ ‖θ(tᵢ) − θ(tᵢ₋₁)‖.
public struct PathStatistics: Codable, Sendable, Equatable {
    public var min: Double
    public var max: Double
    public var mean: Double
    public var integral: Double

    public init(values: [Double], segmentLengths: [Double]) {
        precondition(segmentLengths.count == Swift.max(values.count - 1, 0))
        min = values.min() ?? .nan
        max = values.max() ?? .nan
        mean = values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
        var weighted = 0.0, total = 0.0
        for i in segmentLengths.indices {
            weighted += 0.5 * (values[i] + values[i + 1]) * segmentLengths[i]
            total += segmentLengths[i]
        }
        integral = total > 0 ? weighted / total : mean
    }

    /// ‖θ(tᵢ) − θ(tᵢ₋₁)‖ between consecutive points of a family.
    public static func segmentLengths(_ family: AffineFamily, points: [[Double]]) -> [Double] {
        guard points.count > 1 else { return [] }
        return (1..<points.count).map { i in
            let delta = zip(points[i], points[i - 1]).map { $0 - $1 }
            return VectorMath.norm(VectorMath.combination(delta, family.bases))
        }
    }
}

/// Barriers between the two ends of a path.
///
/// `loss_barrier` = maxₜ L(θ(t)) − ½(L(θ₀) + L(θ₁)) (Ainsworth et al., Git Re-Basin);
/// `error_barrier` = maxₜ E(θ(t)) − ½(E(θ₀) + E(θ₁)) with E = 1 − accuracy (Frankle et al. 2020).
/// The maximum runs over the evaluated points with 0 ≤ t ≤ 1.
public struct Barrier: Codable, Sendable, Equatable {
    public var lossBarrier: Double
    public var errorBarrier: Double

    public static let definitions = [
        "loss_barrier": "max_t L(theta(t)) - (L(theta_0) + L(theta_1)) / 2 over evaluated t in [0, 1] (Git Re-Basin)",
        "error_barrier": "max_t E(theta(t)) - (E(theta_0) + E(theta_1)) / 2, E = 1 - accuracy (Frankle et al. 2020)",
        "integral":
            "sum_i (v_i + v_{i-1}) / 2 * |theta(t_i) - theta(t_{i-1})| / sum_i |theta(t_i) - theta(t_{i-1})| (Garipov et al. 2018)",
    ]

    public init(
        t: [Double], loss: [Double], accuracy: [Double], start: (loss: Double, accuracy: Double),
        end: (loss: Double, accuracy: Double)
    ) {
        let inside = t.indices.filter { t[$0] >= -1e-12 && t[$0] <= 1 + 1e-12 }
        let maxLoss = inside.map { loss[$0] }.max() ?? .nan
        let maxError = inside.map { 1 - accuracy[$0] }.max() ?? .nan
        lossBarrier = maxLoss - 0.5 * (start.loss + end.loss)
        errorBarrier = maxError - 0.5 * ((1 - start.accuracy) + (1 - end.accuracy))
    }
}
