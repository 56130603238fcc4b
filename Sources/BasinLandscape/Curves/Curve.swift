import BasinNN

/// A path θ(t), t ∈ [0, 1], through control points P₀ (start model) … Pₙ (end model) with
/// n − 1 = `bends` movable points between them (Garipov et al. 2018).
public struct Curve: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// θ(t) = Σⱼ C(n, j)·tʲ·(1 − t)ⁿ⁻ʲ·Pⱼ.
        case bezier
        /// Straight segments P₀→P₁→…→Pₙ, each spanning 1/n of t.
        case polychain
    }

    public var kind: Kind
    public var bends: Int

    public init(kind: Kind, bends: Int) {
        self.kind = kind
        self.bends = bends
    }

    /// The straight line θ(t) = (1 − t)·P₀ + t·P₁.
    public static let line = Curve(kind: .polychain, bends: 0)

    public var controlPointCount: Int { bends + 2 }

    /// The weight of each control point at `t`; they sum to 1 and are exactly [1, 0, …] at
    /// t = 0 and [… 0, 1] at t = 1.
    public func coefficients(at t: Double) -> [Double] {
        let n = bends + 1
        switch kind {
        case .bezier:
            var binomial = 1.0
            return (0...n).map { j in
                if j > 0 { binomial = binomial * Double(n - j + 1) / Double(j) }
                return binomial * power(t, j) * power(1 - t, n - j)
            }
        case .polychain:
            let position = t * Double(n)
            // Outside [0, 1] the first or last segment continues straight (an interpolation
            // over t = -0.25...1.25 extrapolates the line instead of shrinking toward zero).
            if position < 0 || position > Double(n) {
                let k = position < 0 ? 0 : n - 1
                let s = position - Double(k)
                return (0...n).map { j in j == k ? 1 - s : (j == k + 1 ? s : 0) }
            }
            return (0...n).map { j in Swift.max(0, 1 - abs(position - Double(j))) }
        }
    }

    private func power(_ x: Double, _ k: Int) -> Double {
        var result = 1.0
        for _ in 0..<k { result *= x }
        return result
    }

    /// Control points for a fresh fit: the bends evenly spaced on the straight line.
    public func initialControlPoints(from start: Model, to end: Model) -> [Model] {
        let n = Double(bends + 1)
        return (0...(bends + 1)).map { j in
            if j == 0 { return start }
            if j == bends + 1 { return end }
            let w = Double(j) / n
            return Model(
                network: start.network,
                parameters: VectorMath.combination([1 - w, w], [start.parameters, end.parameters]),
                state: VectorMath.combination([1 - w, w], [start.state, end.state]),
                batchesTracked: start.batchesTracked)
        }
    }
}
