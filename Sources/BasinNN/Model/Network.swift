/// A Sequential model compiled from its description: shapes resolved, kernels built, the
/// parameter and state layouts fixed. Immutable and shared by every copy of a model.
public struct Network: Sendable {
    /// The description with every inferred size filled in.
    public let description: ModelDescription
    public let parameterLayout: TensorLayout
    /// Float buffers that are not parameters (BatchNorm running statistics).
    public let stateLayout: TensorLayout
    /// Layers that keep a `num_batches_tracked` counter (BatchNorm), by layer index.
    public let batchNormLayers: [Int]
    let kernels: [any LayerKernel]
    let parameterRanges: [Range<Int>]
    let stateRanges: [Range<Int>]

    public var inputSize: Int { description.input.reduce(1, *) }
    public var outputSize: Int { kernels.last?.outputSize ?? inputSize }
    public var layerCount: Int { kernels.count }
    public var hasBatchNorm: Bool { !batchNormLayers.isEmpty }
    public var hasDropout: Bool { kernels.contains { $0 is DropoutKernel } }

    /// Output shape of layer `index` for one sample.
    public func outputShape(ofLayer index: Int) -> [Int] { kernels[index].outputShape }

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
        var batchNormLayers: [Int] = []
        for (index, spec) in description.layers.enumerated() {
            let where_ = "layer \(index) (\(spec.typeName))"
            func check(_ given: Int?, _ actual: Int, _ field: String) throws {
                if let given, given != actual {
                    throw NNError(
                        "\(where_): '\(field)' is \(given) but its input has \(actual) (input shape \(shape))")
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
            let kernel: any LayerKernel
            var spec = spec
            switch spec {
            case .linear(let inFeatures, let outFeatures, let bias):
                guard shape.count == 1 else {
                    throw NNError("\(where_) needs a flat input but gets shape \(shape); add a flatten layer before it")
                }
                try check(inFeatures, shape[0], "in_features")
                try positive([outFeatures], "out_features")
                kernel = LinearKernel(inFeatures: shape[0], outFeatures: outFeatures, hasBias: bias)
                spec = .linear(inFeatures: shape[0], outFeatures: outFeatures, bias: bias)
            case .conv2d(let inChannels, let outChannels, let k, let s, let p, let bias):
                let (c, h, w) = try image()
                try check(inChannels, c, "in_channels")
                try positive([outChannels, k.h, k.w, s.h, s.w], "out_channels, kernel_size and stride")
                guard p.h >= 0, p.w >= 0, h + 2 * p.h >= k.h, w + 2 * p.w >= k.w else {
                    throw NNError(
                        "\(where_): kernel \(k.h)x\(k.w) does not fit input \(h)x\(w) with padding \(p.h),\(p.w)")
                }
                kernel = Conv2dKernel(
                    inChannels: c, outChannels: outChannels, height: h, width: w, kernel: k, stride: s, padding: p,
                    hasBias: bias)
                spec = .conv2d(inChannels: c, outChannels: outChannels, kernel: k, stride: s, padding: p, bias: bias)
            case .relu: kernel = ActivationKernel(function: .relu, shape: shape)
            case .leakyReLU(let slope): kernel = ActivationKernel(function: .leakyReLU(Float(slope)), shape: shape)
            case .tanh: kernel = ActivationKernel(function: .tanh, shape: shape)
            case .sigmoid: kernel = ActivationKernel(function: .sigmoid, shape: shape)
            case .gelu(let approx): kernel = ActivationKernel(function: approx ? .geluTanh : .gelu, shape: shape)
            case .maxPool2d(let k, let s, let p), .avgPool2d(let k, let s, let p):
                let (c, h, w) = try image()
                try positive([k.h, k.w, s.h, s.w], "kernel_size and stride")
                guard p.h >= 0, p.w >= 0, 2 * p.h <= k.h, 2 * p.w <= k.w, h + 2 * p.h >= k.h, w + 2 * p.w >= k.w else {
                    throw NNError(
                        "\(where_): padding must be at most half the kernel and the kernel must fit the \(h)x\(w) input"
                    )
                }
                var isMax = false
                if case .maxPool2d = spec { isMax = true }
                kernel = Pool2dKernel(
                    kind: isMax ? .max : .average, channels: c, height: h, width: w, kernel: k, stride: s, padding: p)
            case .flatten: kernel = FlattenKernel(inputShape: shape)
            case .batchNorm1d(let features, let eps, let momentum):
                guard shape.count == 1 || shape.count == 2 else {
                    throw NNError("\(where_) needs [features] or [channels, length] input but gets shape \(shape)")
                }
                try check(features, shape[0], "num_features")
                kernel = BatchNormKernel(shape: shape, eps: eps, momentum: momentum)
                spec = .batchNorm1d(numFeatures: shape[0], eps: eps, momentum: momentum)
                batchNormLayers.append(index)
            case .batchNorm2d(let features, let eps, let momentum):
                _ = try image()
                try check(features, shape[0], "num_features")
                kernel = BatchNormKernel(shape: shape, eps: eps, momentum: momentum)
                spec = .batchNorm2d(numFeatures: shape[0], eps: eps, momentum: momentum)
                batchNormLayers.append(index)
            case .dropout(let p):
                guard p >= 0, p <= 1 else { throw NNError("\(where_): 'p' must be in [0, 1], got \(p)") }
                kernel = DropoutKernel(p: Float(p), shape: shape)
            }
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
            kernels.append(kernel)
            resolved.append(spec)
            shape = kernel.outputShape
        }
        self.description = ModelDescription(input: description.input, layers: resolved)
        self.kernels = kernels
        self.parameterLayout = parameterLayout
        self.stateLayout = stateLayout
        self.parameterRanges = parameterRanges
        self.stateRanges = stateRanges
        self.batchNormLayers = batchNormLayers
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
            batchesTracked: [Int64](repeating: 0, count: batchNormLayers.count))
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
