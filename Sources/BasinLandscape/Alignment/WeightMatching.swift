import BasinNN

/// Weight matching (Ainsworth et al. 2023, "Git Re-Basin"): permutes the hidden units of one
/// model so its weights line up with another's, without changing the function it computes.
///
/// The groups of units and the tensors each moves come from `PermutationSpec` (residual
/// streams share one group). Coordinate descent: each permutation in turn (in an order drawn
/// from the seed) is the linear assignment that maximizes Σ ⟨A's weights, B's permuted
/// weights⟩ over every parameter it touches, the others held fixed, until a full pass improves
/// nothing. Running statistics move with their group but do not vote.
public enum WeightMatching {
    public struct Result: Sendable {
        /// `to`'s model with its units permuted.
        public var model: Model
        /// Per group: aligned unit i is the original unit `permutations[g][i]`.
        public var permutations: [[Int]]
        /// Full passes over the permutations.
        public var passes: Int
        /// Σ⟨θ_A, θ_B⟩ over the matched tensors before and after.
        public var similarityBefore: Double
        public var similarityAfter: Double
    }

    /// Aligns `b` onto `a` (same network). `seed` orders the coordinate descent.
    public static func align(_ b: Model, to a: Model, seed: UInt64 = 0, maxPasses: Int = 100) throws -> Result {
        guard a.network.description == b.network.description else {
            throw NNError("alignment: the two models have different architectures")
        }
        let spec = try PermutationSpec(a.network)
        var permutations = spec.sizes.map { Array(0..<$0) }
        let before = similarity(a, b, spec: spec, permutations: permutations)
        var passes = 0
        var random = RandomSource(seed: seed, stream: RandomStream.probe.id(1 << 30))
        while passes < maxPasses {
            passes += 1
            var improved = false
            for g in random.permutation(spec.sizes.count) {
                let score = cost(g, a, b, spec: spec, permutations: permutations)
                let n = spec.sizes[g]
                let proposal = LinearAssignment.maximize(score, n: n)
                let old = (0..<n).reduce(0.0) { $0 + score[$1 * n + permutations[g][$1]] }
                let new = (0..<n).reduce(0.0) { $0 + score[$1 * n + proposal[$1]] }
                if new > old + 1e-12 * max(1, abs(old)) {
                    permutations[g] = proposal
                    improved = true
                }
            }
            if !improved { break }
        }
        let aligned = spec.apply(permutations, to: b)
        return Result(
            model: aligned, permutations: permutations, passes: passes, similarityBefore: before,
            similarityAfter: similarity(a, aligned, spec: spec, permutations: spec.sizes.map { Array(0..<$0) }))
    }

    /// score[i][j]: how well B's unit j matches A's unit i, the other permutations fixed.
    static func cost(_ g: Int, _ a: Model, _ b: Model, spec: PermutationSpec, permutations: [[Int]]) -> [Double] {
        let n = spec.sizes[g]
        var score = [Double](repeating: 0, count: n * n)
        for (t, axis) in spec.appearances(of: g) {
            let tensor = spec.tensors[t]
            let aRows = PermutationSpec.rows(
                Array(a.parameters[tensor.entry.range]), shape: tensor.entry.shape, axis: axis, units: n)
            let bRows = PermutationSpec.rows(
                spec.permuted(t, b.parameters, permutations, except: axis.axis), shape: tensor.entry.shape, axis: axis,
                units: n)
            for i in 0..<n {
                for j in 0..<n {
                    var sum = 0.0
                    for (x, y) in zip(aRows[i], bRows[j]) { sum += x * y }
                    score[i * n + j] += sum
                }
            }
        }
        return score
    }

    /// Σ⟨A, B permuted⟩ over every parameter a group moves.
    static func similarity(_ a: Model, _ b: Model, spec: PermutationSpec, permutations: [[Int]]) -> Double {
        let moved = spec.apply(permutations, to: b)
        var sum = 0.0
        for tensor in spec.tensors where !tensor.isState {
            for i in tensor.entry.range { sum += Double(a.parameters[i]) * Double(moved.parameters[i]) }
        }
        return sum
    }
}
