/// Flat-vector arithmetic for parameter vectors, accumulated in Double.
public enum VectorMath {
    public static func dot(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var sum = 0.0
        for i in a.indices { sum += Double(a[i]) * Double(b[i]) }
        return sum
    }

    public static func norm(_ a: [Float]) -> Double { dot(a, a).squareRoot() }

    public static func norm(_ a: ArraySlice<Float>) -> Double {
        var sum = 0.0
        for v in a { sum += Double(v) * Double(v) }
        return sum.squareRoot()
    }

    /// a − b.
    public static func difference(_ a: [Float], _ b: [Float]) -> [Float] {
        precondition(a.count == b.count)
        return (0..<a.count).map { a[$0] - b[$0] }
    }

    /// Σₖ cₖ·vₖ, each element accumulated in Double then rounded once.
    public static func combination(_ coefficients: [Double], _ vectors: [[Float]]) -> [Float] {
        precondition(coefficients.count == vectors.count)
        guard let count = vectors.first?.count else { return [] }
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var sum = 0.0
            for k in vectors.indices { sum += coefficients[k] * Double(vectors[k][i]) }
            out[i] = Float(sum)
        }
        return out
    }
}
