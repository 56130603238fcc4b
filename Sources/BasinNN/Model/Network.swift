/// A Sequential model (whose layers may be residual blocks) compiled from its description: shapes resolved, kernels built, the
/// parameter and state layouts fixed. Immutable and shared by every copy of a model.
public struct Network: Sendable {
    /// The description with every inferred size filled in.
    public let description: ModelDescription
    public let parameterLayout: TensorLayout
    /// Float buffers that are not parameters (BatchNorm running statistics).
    public let stateLayout: TensorLayout
    /// The `state_dict` prefix of every BatchNorm layer (`3`, `4.body.1`), each keeping a
    /// `num_batches_tracked` counter, in order.
    public let batchNormNames: [String]
    let kernels: [any LayerKernel]
    let parameterRanges: [Range<Int>]
    let stateRanges: [Range<Int>]
    let plan: InferencePlan

    public var inputSize: Int { description.input.reduce(1, *) }
    public var outputSize: Int { kernels.last?.outputSize ?? inputSize }
    public var layerCount: Int { kernels.count }
    public var hasBatchNorm: Bool { !batchNormNames.isEmpty }
    public var hasDropout: Bool { kernels.contains { $0.containsDropout } }

    /// Output shape of layer `index` for one sample.
    public func outputShape(ofLayer index: Int) -> [Int] { kernels[index].outputShape }

    /// The shape of one sample after `layer` given one of `input` (checked as a model would be).
    public static func outputShape(of layer: LayerSpec, input: [Int]) throws -> [Int] {
        try compile(layer, input: input, at: "layer").0.outputShape
    }

    /// Builds the network, inferring and checking each layer's input size.
    public init(_ description: ModelDescription) throws {
        guard !description.input.isEmpty, description.input.allSatisfy({ $0 > 0 }) else {
            throw NNError("model 'input' must be a non-empty list of positive sizes, got \(description.input)")
        }
        guard !description.layers.isEmpty else {
            throw NNError("model 'layers' is empty; a model needs at least one layer")
        }
        var shape = description.input
        var kernels: [any LayerKernel] = []
        var resolved: [LayerSpec] = []
        var parameterLayout = TensorLayout(), stateLayout = TensorLayout()
        var parameterRanges: [Range<Int>] = [], stateRanges: [Range<Int>] = []
        var batchNormNames: [String] = []
        for (index, spec) in description.layers.enumerated() {
            let (kernel, spec) = try Self.compile(spec, input: shape, at: "layer \(index)")
            let parameterStart = parameterLayout.count
            for tensor in kernel.parameterSpecs {
                parameterLayout.append(name: "\(index).\(tensor.suffix)", shape: tensor.shape)
            }
            parameterRanges.append(parameterStart..<parameterLayout.count)
            let stateStart = stateLayout.count
            for tensor in kernel.stateSpecs {
                stateLayout.append(name: "\(index).\(tensor.suffix)", shape: tensor.shape)
            }
            stateRanges.append(stateStart..<stateLayout.count)
            batchNormNames += kernel.batchNormPaths.map { $0.isEmpty ? "\(index)" : "\(index).\($0)" }
            kernels.append(kernel)
            resolved.append(spec)
            shape = kernel.outputShape
        }
        self.description = ModelDescription(input: description.input, layers: resolved)
        self.kernels = kernels
        plan = InferencePlan(kernels)
        self.parameterLayout = parameterLayout
        self.stateLayout = stateLayout
        self.parameterRanges = parameterRanges
        self.stateRanges = stateRanges
        self.batchNormNames = batchNormNames
    }

    /// One layer compiled for an input of `shape`: its kernel and its description with every
    /// inferred size filled in. `place` names it in errors ("layer 3", "layer 3 body 1").
    static func compile(_ spec: LayerSpec, input shape: [Int], at place: String) throws -> (any LayerKernel, LayerSpec) {
        let where_ = "\(place) (\(spec.typeName))"
        func check(_ given: Int?, _ actual: Int, _ field: String) throws {
            if let given, given != actual {
                throw NNError("\(where_): '\(field)' is \(given) but its input has \(actual) (input shape \(shape))")
            }
        }
        func image() throws -> (Int, Int, Int) {
            guard shape.count == 3 else {
                throw NNError("\(where_) needs [channels, height, width] input but gets shape \(shape)")
            }
            return (shape[0], shape[1], shape[2])
        }
        func positive(_ values: [Int], _ field: String) throws {
            guard values.allSatisfy({ $0 > 0 }) else { throw NNError("\(where_): '\(field)' must be positive") }
        }
        func chain(_ layers: [LayerSpec], _ part: String) throws -> (KernelChain, [LayerSpec]) {
            var kernels: [any LayerKernel] = [], specs: [LayerSpec] = []
            var current = shape
            for (i, layer) in layers.enumerated() {
                let (kernel, spec) = try compile(layer, input: current, at: "\(place) \(part) \(i)")
                kernels.append(kernel)
                specs.append(spec)
                current = kernel.outputShape
            }
            return (KernelChain(kernels, inputShape: shape), specs)
        }
        switch spec {
        case .linear(let inFeatures, let outFeatures, let bias):
            guard shape.count == 1 else {
                throw NNError("\(where_) needs a flat input but gets shape \(shape); add a flatten layer before it")
            }
            try check(inFeatures, shape[0], "in_features")
            try positive([outFeatures], "out_features")
            return (
                LinearKernel(inFeatures: shape[0], outFeatures: outFeatures, hasBias: bias),
                .linear(inFeatures: shape[0], outFeatures: outFeatures, bias: bias)
            )
        case .conv2d(let inChannels, let outChannels, let k, let s, let p, let bias):
            let (c, h, w) = try image()
            try check(inChannels, c, "in_channels")
            try positive([outChannels, k.h, k.w, s.h, s.w], "out_channels, kernel_size and stride")
            guard p.h >= 0, p.w >= 0, h + 2 * p.h >= k.h, w + 2 * p.w >= k.w else {
                throw NNError("\(where_): kernel \(k.h)x\(k.w) does not fit input \(h)x\(w) with padding \(p.h),\(p.w)")
            }
            return (
                Conv2dKernel(
                    inChannels: c, outChannels: outChannels, height: h, width: w, kernel: k, stride: s, padding: p,
                    hasBias: bias),
                .conv2d(inChannels: c, outChannels: outChannels, kernel: k, stride: s, padding: p, bias: bias)
            )
        case .relu: return (ActivationKernel(function: .relu, shape: shape), spec)
        case .leakyReLU(let slope): return (ActivationKernel(function: .leakyReLU(Float(slope)), shape: shape), spec)
        case .tanh: return (ActivationKernel(function: .tanh, shape: shape), spec)
        case .sigmoid: return (ActivationKernel(function: .sigmoid, shape: shape), spec)
        case .gelu(let approx): return (ActivationKernel(function: approx ? .geluTanh : .gelu, shape: shape), spec)
        case .maxPool2d(let k, let s, let p), .avgPool2d(let k, let s, let p):
            let (c, h, w) = try image()
            try positive([k.h, k.w, s.h, s.w], "kernel_size and stride")
            guard p.h >= 0, p.w >= 0, 2 * p.h <= k.h, 2 * p.w <= k.w, h + 2 * p.h >= k.h, w + 2 * p.w >= k.w else {
                throw NNError(
                    "\(where_): padding must be at most half the kernel and the kernel must fit the \(h)x\(w) input")
            }
            var isMax = false
            if case .maxPool2d = spec { isMax = true }
            return (
                Pool2dKernel(
                    kind: isMax ? .max : .average, channels: c, height: h, width: w, kernel: k, stride: s, padding: p),
                spec
            )
        case .adaptiveAvgPool2d(let size):
            let (c, h, w) = try image()
            guard size == LayerSpec.Pair(1) else {
                throw NNError("\(where_): only 'output_size' 1 (global average pooling) is supported, got \(size.h)x\(size.w)")
            }
            return (GlobalAveragePoolKernel(channels: c, height: h, width: w), spec)
        case .flatten: return (FlattenKernel(inputShape: shape), spec)
        case .identity: return (IdentityKernel(shape: shape), spec)
        case .batchNorm1d(let features, let eps, let momentum):
            guard shape.count == 1 || shape.count == 2 else {
                throw NNError("\(where_) needs [features] or [channels, length] input but gets shape \(shape)")
            }
            try check(features, shape[0], "num_features")
            return (
                BatchNormKernel(shape: shape, eps: eps, momentum: momentum),
                .batchNorm1d(numFeatures: shape[0], eps: eps, momentum: momentum)
            )
        case .batchNorm2d(let features, let eps, let momentum):
            _ = try image()
            try check(features, shape[0], "num_features")
            return (
                BatchNormKernel(shape: shape, eps: eps, momentum: momentum),
                .batchNorm2d(numFeatures: shape[0], eps: eps, momentum: momentum)
            )
        case .layerNorm(let normalized, let eps):
            guard eps > 0 else { throw NNError("\(where_): 'eps' must be positive") }
            if let normalized, normalized != shape {
                throw NNError(
                    "\(where_): 'normalized_shape' \(normalized) must be the whole sample's shape \(shape) (Basin normalizes every value of a sample)")
            }
            return (GroupNormKernel(shape: shape, groups: 1, eps: eps, affine: .perElement), .layerNorm(normalizedShape: shape, eps: eps))
        case .groupNorm(let groups, let channels, let eps):
            guard shape.count >= 1 else { throw NNError("\(where_) needs an input with channels") }
            try check(channels, shape[0], "num_channels")
            guard groups > 0, shape[0] % groups == 0 else {
                throw NNError("\(where_): 'num_groups' \(groups) must divide the \(shape[0]) channels")
            }
            guard eps > 0 else { throw NNError("\(where_): 'eps' must be positive") }
            return (
                GroupNormKernel(shape: shape, groups: groups, eps: eps, affine: .perChannel),
                .groupNorm(numGroups: groups, numChannels: shape[0], eps: eps)
            )
        case .dropout(let p):
            guard p >= 0, p <= 1 else { throw NNError("\(where_): 'p' must be in [0, 1], got \(p)") }
            return (DropoutKernel(p: Float(p), shape: shape), spec)
        case .residual(let bodySpecs, let shortcutSpecs):
            guard !bodySpecs.isEmpty else { throw NNError("\(where_): 'body' needs at least one layer") }
            let (body, bodyResolved) = try chain(bodySpecs, "body")
            let (shortcut, shortcutResolved) = try chain(shortcutSpecs, "shortcut")
            guard body.outputShape == shortcut.outputShape else {
                throw NNError(
                    "\(where_): the body's output shape \(body.outputShape) differs from the shortcut's \(shortcut.outputShape)"
                        + (shortcutSpecs.isEmpty ? " (an empty shortcut is the identity: give one that maps \(shape) to \(body.outputShape))" : ""))
            }
            return (ResidualKernel(body: body, shortcut: shortcut), .residual(body: bodyResolved, shortcut: shortcutResolved))
        }
    }

    /// Fresh parameters and state: PyTorch's default initialization, drawn from the
    /// `initialization` stream of `seed` (one stream per tensor, so layers do not shift each other).
    public func initialize(seed: UInt64) -> Model {
        var parameters = [Float](repeating: 0, count: parameterLayout.count)
        var state = [Float](repeating: 0, count: stateLayout.count)
        var tensorIndex = 0
        for (layer, kernel) in kernels.enumerated() {
            var offset = parameterRanges[layer].lowerBound
            for tensor in kernel.parameterSpecs {
                switch tensor.initial {
                case .constant(let value):
                    for i in 0..<tensor.count { parameters[offset + i] = value }
                case .uniform(let bound):
                    var random = RandomSource(seed: seed, stream: RandomStream.initialization.id(tensorIndex))
                    for i in 0..<tensor.count { parameters[offset + i] = (2 * random.nextFloat() - 1) * bound }
                }
                offset += tensor.count
                tensorIndex += 1
            }
            var stateOffset = stateRanges[layer].lowerBound
            for tensor in kernel.stateSpecs {
                if case .constant(let value) = tensor.initial {
                    for i in 0..<tensor.count { state[stateOffset + i] = value }
                }
                stateOffset += tensor.count
            }
        }
        return Model(
            network: self, parameters: parameters, state: state,
            batchesTracked: [Int64](repeating: 0, count: batchNormNames.count))
    }

    /// Estimated forward flops for one sample through layers `range` (shard sizing).
    public func flopsPerSample(_ range: Range<Int>? = nil) -> Int {
        kernels[range ?? kernels.indices].reduce(0) { $0 + $1.flopsPerSample }
    }

    /// Where layer `index`'s parameters start in the flat buffer.
    public func parameterRange(ofLayer index: Int) -> Range<Int> { parameterRanges[index] }

    /// Where layer `index`'s state (running statistics) lies in the flat state buffer.
    public func stateRange(ofLayer index: Int) -> Range<Int> { stateRanges[index] }

    /// Layers `range` as a network of their own. Its flat parameters (and state) are exactly
    /// the slice `parameterRange(ofLayer: lower)..<...` of this network's, in the same order;
    /// only the names are renumbered from 0.
    public func layers(_ range: Range<Int>) throws -> Network {
        let input = range.lowerBound == 0 ? description.input : kernels[range.lowerBound - 1].outputShape
        return try Network(ModelDescription(input: input, layers: Array(description.layers[range])))
    }

    /// Flat parameter (and state) slices covering layers `range`.
    public func parameterSlice(_ range: Range<Int>) -> Range<Int> {
        parameterRanges[range.lowerBound].lowerBound..<parameterRanges[range.upperBound - 1].upperBound
    }

    public func stateSlice(_ range: Range<Int>) -> Range<Int> {
        stateRanges[range.lowerBound].lowerBound..<stateRanges[range.upperBound - 1].upperBound
    }
}
