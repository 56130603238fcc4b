import BasinNN

/// Which axis of which tensor each permutation of hidden units moves (Git Re-Basin's
/// "permutation spec"), derived from a model description.
///
/// Every Linear or Conv2d opens a group for its outputs: its weight's axis 0 and bias, the
/// per-channel parameters and statistics of the normalizations after it (BatchNorm,
/// LayerNorm, GroupNorm with one group), and the next Linear/Conv2d's axis 1 (in blocks of
/// H·W after a Flatten). A residual block's body and shortcut end in the same group: with an
/// identity shortcut the body's last layer writes into the stream's group, so every block's
/// output and its shortcut share one permutation down the whole residual stream. The input's
/// channels and the model's outputs are not permuted.
public struct PermutationSpec: Sendable {
    /// An axis of a tensor that a group moves: `size(group) × block` long, unit u the
    /// contiguous `block` values from u·block.
    struct Axis: Sendable {
        var axis: Int
        var group: Int
        var block: Int
    }

    struct Tensor: Sendable {
        var entry: TensorLayout.Entry
        var isState: Bool
        var axes: [Axis]
    }

    /// Units per group, in the order the groups open.
    public let sizes: [Int]
    let tensors: [Tensor]

    /// Where each group appears: (tensor index, axis) pairs of parameters, for the cost.
    func appearances(of group: Int) -> [(Int, Axis)] {
        tensors.indices.flatMap { t in
            tensors[t].isState ? [] : tensors[t].axes.filter { $0.group == group }.map { (t, $0) }
        }
    }

    public init(_ network: Network) throws {
        var builder = Builder(network: network)
        let input = builder.fresh(network.description.input.first ?? 1, fixed: true)
        let output = try builder.walk(
            network.description.layers, prefix: "", stream: .init(group: input, block: 1, shape: network.description.input))
        builder.fix(output.group)
        (sizes, tensors) = builder.finish()
    }

    /// The activations flowing between layers: their channels' group, values per unit, shape.
    struct Stream {
        var group: Int
        var block: Int
        var shape: [Int]
    }

    /// Groups as they are opened and joined (union–find), and the tensors they move.
    struct Builder {
        let network: Network
        var parent: [Int] = []
        var size: [Int] = []
        var fixed: [Bool] = []
        var pending: [(entry: TensorLayout.Entry, isState: Bool, axes: [Axis])] = []

        init(network: Network) { self.network = network }

        mutating func fresh(_ n: Int, fixed: Bool = false) -> Int {
            parent.append(parent.count)
            size.append(n)
            self.fixed.append(fixed)
            return parent.count - 1
        }

        mutating func root(_ g: Int) -> Int {
            var r = g
            while parent[r] != r { r = parent[r] }
            var c = g
            while parent[c] != r { (parent[c], c) = (r, parent[c]) }
            return r
        }

        mutating func unify(_ a: Int, _ b: Int, at place: String) throws {
            let (ra, rb) = (root(a), root(b))
            guard ra != rb else { return }
            guard size[ra] == size[rb] else {
                throw NNError("alignment: \(place) adds \(size[ra]) and \(size[rb]) channels")
            }
            // The older group stays the root, so groups keep the order they opened in.
            let (keep, join) = ra < rb ? (ra, rb) : (rb, ra)
            parent[join] = keep
            fixed[keep] = fixed[keep] || fixed[join]
        }

        mutating func fix(_ g: Int) {
            let r = root(g)
            fixed[r] = true
        }

        mutating func add(_ name: String, state: Bool = false, _ axes: [Axis]) throws {
            let layout = state ? network.stateLayout : network.parameterLayout
            guard let entry = layout.entry(named: name) else { throw NNError("alignment: the model has no tensor '\(name)'") }
            pending.append((entry, state, axes))
        }

        /// Follows `layers` (named under `prefix`) from `stream`; returns the stream after them.
        mutating func walk(_ layers: [LayerSpec], prefix: String, stream start: Stream) throws -> Stream {
            var stream = start
            for (i, layer) in layers.enumerated() {
                let name = "\(prefix)\(i)"
                let outputShape = try Network.outputShape(of: layer, input: stream.shape)
                switch layer {
                case .linear(_, let out, let bias), .conv2d(_, let out, _, _, _, let bias):
                    let g = fresh(out)
                    try add("\(name).weight", [Axis(axis: 0, group: g, block: 1), Axis(axis: 1, group: stream.group, block: stream.block)])
                    if bias { try add("\(name).bias", [Axis(axis: 0, group: g, block: 1)]) }
                    stream = Stream(group: g, block: 1, shape: outputShape)
                    continue
                case .batchNorm1d, .batchNorm2d:
                    let unit = Axis(axis: 0, group: stream.group, block: stream.block)
                    try add("\(name).weight", [unit])
                    try add("\(name).bias", [unit])
                    try add("\(name).running_mean", state: true, [unit])
                    try add("\(name).running_var", state: true, [unit])
                case .layerNorm:
                    // Elementwise weights shaped like the sample: axis 0 is the channels.
                    let unit = Axis(axis: 0, group: stream.group, block: stream.shape.count == 1 ? stream.block : 1)
                    try add("\(name).weight", [unit])
                    try add("\(name).bias", [unit])
                case .groupNorm(let groups, _, _):
                    guard groups == 1 else {
                        throw NNError(
                            "alignment: layer \(name) is a groupnorm of \(groups) groups; permuting channels across its groups would change the function (use num_groups 1 or layernorm)")
                    }
                    let unit = Axis(axis: 0, group: stream.group, block: stream.block)
                    try add("\(name).weight", [unit])
                    try add("\(name).bias", [unit])
                case .flatten:
                    stream.block *= stream.shape.dropFirst().reduce(1, *)
                case .residual(let body, let shortcut):
                    let main = try walk(body, prefix: "\(name).body.", stream: stream)
                    let side = shortcut.isEmpty ? stream : try walk(shortcut, prefix: "\(name).shortcut.", stream: stream)
                    guard main.block == side.block else {
                        throw NNError("alignment: layer \(name)'s body and shortcut lay out their channels differently")
                    }
                    try unify(main.group, side.group, at: "layer \(name)")
                    stream.group = main.group
                case .relu, .leakyReLU, .tanh, .sigmoid, .gelu, .dropout, .identity, .maxPool2d, .avgPool2d,
                    .adaptiveAvgPool2d:
                    break  // per unit: the channels stay where they are
                }
                stream.shape = outputShape
            }
            return stream
        }

        /// The groups that may move, numbered in the order they opened, and every tensor with
        /// an axis one of them moves.
        mutating func finish() -> ([Int], [Tensor]) {
            var number: [Int: Int] = [:]
            var sizes: [Int] = []
            for g in parent.indices where root(g) == g && !fixed[g] {
                number[g] = sizes.count
                sizes.append(size[g])
            }
            var tensors: [Tensor] = []
            for item in pending {
                var axes: [Axis] = []
                for axis in item.axes {
                    guard let n = number[root(axis.group)] else { continue }
                    axes.append(Axis(axis: axis.axis, group: n, block: axis.block))
                }
                if !axes.isEmpty { tensors.append(Tensor(entry: item.entry, isState: item.isState, axes: axes)) }
            }
            return (sizes, tensors)
        }
    }

    // MARK: Moving values

    /// Values of tensor `t` of `values` (a model's parameters or state) with every axis
    /// permuted but `except`: element at index u along a moved axis comes from perm[u].
    func permuted(_ t: Int, _ values: [Float], _ permutations: [[Int]], except: Int? = nil) -> [Float] {
        let tensor = tensors[t], shape = tensor.entry.shape
        let source = Array(values[tensor.entry.range])
        var strides = [Int](repeating: 1, count: shape.count)
        for k in stride(from: shape.count - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * shape[k + 1] }
        var out = source
        var index = [Int](repeating: 0, count: shape.count)
        for flat in 0..<source.count {
            var from = flat
            for axis in tensor.axes where axis.axis != except {
                let i = index[axis.axis], unit = i / axis.block
                let moved = permutations[axis.group][unit] * axis.block + i % axis.block
                from += (moved - i) * strides[axis.axis]
            }
            out[flat] = source[from]
            var k = shape.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return out
    }

    /// `model` with every group's units reordered.
    func apply(_ permutations: [[Int]], to model: Model) -> Model {
        var out = model
        for t in tensors.indices {
            let tensor = tensors[t]
            if tensor.isState {
                out.state.replaceSubrange(tensor.entry.range, with: permuted(t, model.state, permutations))
            } else {
                out.parameters.replaceSubrange(tensor.entry.range, with: permuted(t, model.parameters, permutations))
            }
        }
        return out
    }

    /// The values of `tensor` grouped by unit along `axis`: n rows, each every value whose
    /// index along the axis lies in that unit, in one fixed order.
    static func rows(_ values: [Float], shape: [Int], axis: Axis, units n: Int) -> [[Double]] {
        let outer = shape[..<axis.axis].reduce(1, *), inner = shape[(axis.axis + 1)...].reduce(1, *)
        let length = shape[axis.axis]
        var rows = [[Double]](repeating: [], count: n)
        for u in 0..<n { rows[u].reserveCapacity(values.count / n) }
        for o in 0..<outer {
            for i in 0..<length {
                let unit = i / axis.block, base = (o * length + i) * inner
                for r in 0..<inner { rows[unit].append(Double(values[base + r])) }
            }
        }
        return rows
    }
}
