import BasinNN

/// Weight matching (Ainsworth et al. 2023, "Git Re-Basin"): permutes the hidden units of one
/// model so its weights line up with another's, without changing the function it computes.
///
/// Every Linear or Conv2d layer but the last owns a permutation of its outputs. It moves that
/// layer's weight rows and bias, the BatchNorm that follows (parameters and running
/// statistics), and the next Linear/Conv2d's input columns (in blocks of kernel or spatial
/// positions after a Flatten). Activations, pooling and dropout act per unit, so the model's
/// outputs stay the same. Coordinate descent: each permutation in turn (in an order drawn from
/// the seed) is the linear assignment that maximizes Σ ⟨A's weights, B's permuted weights⟩
/// over every tensor it touches, the others held fixed, until a full pass improves nothing.
public enum WeightMatching {
    public struct Result: Sendable {
        /// `to`'s model with its units permuted.
        public var model: Model
        /// Per permutable layer: aligned unit i is the original unit `permutations[g][i]`.
        public var permutations: [[Int]]
        /// Full passes over the permutations.
        public var passes: Int
        /// Σ⟨θ_A, θ_B⟩ over the matched tensors before and after.
        public var similarityBefore: Double
        public var similarityAfter: Double
    }

    /// One permutable group of units and the tensors it moves.
    struct Group {
        var size: Int
        /// Tensors whose axis 0 is this group (weight rows, biases, BatchNorm), parameters.
        var producers: [TensorLayout.Entry]
        /// Running statistics that follow the group (moved, not matched).
        var states: [TensorLayout.Entry]
        /// The next layer's weight: its inputs are this group's units, in equal blocks.
        var consumer: TensorLayout.Entry
        /// Index of the group that permutes the consumer's outputs (nil for the last layer).
        var next: Int?
        /// Index of the group that permutes the producer weight's inputs (nil for the first).
        var previous: Int?
    }

    static func groups(_ network: Network) throws -> [Group] {
        let layers = network.description.layers
        // Permuting around a layer these groups do not describe would change the function.
        for (i, layer) in layers.enumerated() {
            switch layer {
            case .residual, .layerNorm, .groupNorm:
                throw NNError(
                    "alignment: layer \(i) is a \(layer.typeName); weight matching here permutes plain Sequential stacks of linear, conv2d, batchnorm and elementwise layers only")
            default: continue
            }
        }
        let parametric = layers.indices.filter {
            if case .linear = layers[$0] { return true }
            if case .conv2d = layers[$0] { return true }
            return false
        }
        var groups: [Group] = []
        for (g, k) in parametric.dropLast().enumerated() {
            let next = parametric[g + 1]
            let p = network.parameterLayout, s = network.stateLayout
            guard let weight = p.entry(named: "\(k).weight"), let consumer = p.entry(named: "\(next).weight") else {
                throw NNError("alignment: layer \(k) has no weight")
            }
            var producers = [weight]
            if let bias = p.entry(named: "\(k).bias") { producers.append(bias) }
            var states: [TensorLayout.Entry] = []
            for m in (k + 1)..<next {
                switch layers[m] {
                case .batchNorm1d, .batchNorm2d:
                    producers += ["weight", "bias"].compactMap { p.entry(named: "\(m).\($0)") }
                    states += ["running_mean", "running_var"].compactMap { s.entry(named: "\(m).\($0)") }
                default:
                    continue
                }
            }
            let size = weight.shape[0]
            let inputs = consumer.shape[1] * consumer.shape.dropFirst(2).reduce(1, *)
            guard inputs % size == 0 else {
                throw NNError("alignment: layer \(next) reads \(inputs) values, not a multiple of \(size) units")
            }
            groups.append(
                Group(
                    size: size, producers: producers, states: states, consumer: consumer,
                    next: g + 1 < parametric.count - 1 ? g + 1 : nil, previous: g > 0 ? g - 1 : nil))
        }
        return groups
    }

    /// Aligns `b` onto `a` (same network). `seed` orders the coordinate descent.
    public static func align(_ b: Model, to a: Model, seed: UInt64 = 0, maxPasses: Int = 100) throws -> Result {
        guard a.network.description == b.network.description else {
            throw NNError("alignment: the two models have different architectures")
        }
        let groups = try groups(a.network)
        var permutations = groups.map { Array(0..<$0.size) }
        let before = similarity(a, b, groups: groups, permutations: permutations)
        var passes = 0
        var random = RandomSource(seed: seed, stream: RandomStream.probe.id(1 << 30))
        while passes < maxPasses {
            passes += 1
            var improved = false
            for g in random.permutation(groups.count) {
                let score = cost(g, a, b, groups: groups, permutations: permutations)
                let n = groups[g].size
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
        let aligned = apply(permutations, to: b, groups: groups)
        return Result(
            model: aligned, permutations: permutations, passes: passes, similarityBefore: before,
            similarityAfter: similarity(a, aligned, groups: groups, permutations: groups.map { Array(0..<$0.size) }))
    }

    /// score[i][j]: how well B's unit j matches A's unit i, the other permutations fixed.
    static func cost(_ g: Int, _ a: Model, _ b: Model, groups: [Group], permutations: [[Int]]) -> [Double] {
        let group = groups[g], n = group.size
        var score = [Double](repeating: 0, count: n * n)
        for entry in group.producers {
            let width = entry.count / n
            // The producer weight's inputs belong to the previous group (in blocks).
            let inputPermutation: [Int]? = entry == group.producers[0] ? group.previous.map { permutations[$0] } : nil
            let inputBlock = inputPermutation.map { width / $0.count } ?? 1
            var bRow = [Double](repeating: 0, count: width)
            for j in 0..<n {
                for c in 0..<width {
                    let source = inputPermutation.map { $0[c / inputBlock] * inputBlock + c % inputBlock } ?? c
                    bRow[c] = Double(b.parameters[entry.offset + j * width + source])
                }
                for i in 0..<n {
                    var sum = 0.0
                    let base = entry.offset + i * width
                    for c in 0..<width { sum += Double(a.parameters[base + c]) * bRow[c] }
                    score[i * n + j] += sum
                }
            }
        }
        // The consumer's columns: ⟨A[o, i, s], B[π_next(o), j, s]⟩.
        let consumer = group.consumer, outputs = consumer.shape[0], width = consumer.count / outputs
        let block = width / n
        let outputPermutation = group.next.map { permutations[$0] } ?? Array(0..<outputs)
        for o in 0..<outputs {
            let aBase = consumer.offset + o * width, bBase = consumer.offset + outputPermutation[o] * width
            for i in 0..<n {
                for j in 0..<n {
                    var sum = 0.0
                    for s in 0..<block {
                        sum += Double(a.parameters[aBase + i * block + s]) * Double(b.parameters[bBase + j * block + s])
                    }
                    score[i * n + j] += sum
                }
            }
        }
        return score
    }

    /// `b` with every group's units reordered.
    static func apply(_ permutations: [[Int]], to b: Model, groups: [Group]) -> Model {
        var out = b
        for (g, group) in groups.enumerated() {
            let p = permutations[g], n = group.size
            for entry in group.producers {
                let width = entry.count / n
                for i in 0..<n {
                    for c in 0..<width {
                        out.parameters[entry.offset + i * width + c] = b.parameters[entry.offset + p[i] * width + c]
                    }
                }
            }
            for entry in group.states {
                for i in 0..<n { out.state[entry.offset + i] = b.state[entry.offset + p[i]] }
            }
        }
        // Consumer columns last, from the rows already permuted above (a consumer is the next
        // group's producer weight, whose rows moved).
        let rowsMoved = out
        for (g, group) in groups.enumerated() {
            let p = permutations[g], n = group.size
            let consumer = group.consumer, outputs = consumer.shape[0], width = consumer.count / outputs
            let block = width / n
            for o in 0..<outputs {
                let base = consumer.offset + o * width
                for i in 0..<n {
                    for s in 0..<block {
                        out.parameters[base + i * block + s] = rowsMoved.parameters[base + p[i] * block + s]
                    }
                }
            }
        }
        return out
    }

    /// Σ⟨A, B permuted⟩ over every tensor the groups touch (each counted once).
    static func similarity(_ a: Model, _ b: Model, groups: [Group], permutations: [[Int]]) -> Double {
        let moved = apply(permutations, to: b, groups: groups)
        var names = Set<String>()
        var sum = 0.0
        for group in groups {
            for entry in group.producers + [group.consumer] where names.insert(entry.name).inserted {
                for i in entry.range { sum += Double(a.parameters[i]) * Double(moved.parameters[i]) }
            }
        }
        return sum
    }
}
