/// How a forward pass treats layers that differ between training and evaluation.
public enum ForwardMode: Sendable, Equatable {
    /// BatchNorm uses running statistics; Dropout is the identity.
    case eval
    /// BatchNorm uses batch statistics and updates running ones; Dropout draws its mask from
    /// the `(seed, step)` stream, so the same step gives the same mask on any machine.
    case train(seed: UInt64, step: UInt64)
    /// Re-estimates BatchNorm running statistics (`update_bn`, `BatchNormRecompute`): BatchNorm
    /// normalizes with batch statistics and folds them into the running ones with `momentum`
    /// (1 for the first batch, which replaces the reset statistics); Dropout is the identity.
    case recomputeStatistics(momentum: Double)
    /// Evaluation with no backward pass after it (`Model.infer`): as `eval`, but a layer may
    /// apply the eval-mode BatchNorm and the ReLU that follow it in its own pass over the output
    /// (`Epilogue`), leaving their activations unwritten. The numbers are bitwise those of `eval`.
    case inference

    /// Whether BatchNorm normalizes with the batch's own statistics and updates running ones.
    public var usesBatchStatistics: Bool {
        switch self {
        case .eval, .inference: false
        case .train, .recomputeStatistics: true
        }
    }
}

/// How a parameter starts before training.
public enum ParameterInit: Sendable, Equatable {
    /// Uniform on [-bound, bound] (PyTorch's default Kaiming-uniform for Linear and Conv2d).
    case uniform(bound: Float)
    case constant(Float)
}

/// A named tensor a layer owns: a parameter (`weight`) or a state buffer (`running_mean`).
public struct TensorSpec: Sendable, Equatable {
    public var suffix: String
    public var shape: [Int]
    public var initial: ParameterInit

    public var count: Int { shape.reduce(1, *) }
}

/// The memory one layer works on for one minibatch. Sizes are `batch × sample size`.
///
/// `input` and `output` are distinct regions; `parameters`, `state` and `scratch` are this
/// layer's own slices. `scratch` has `scratchCount(batch:)` floats when `backward` is true and
/// `forwardScratchCount(batch:)` when the workspace serves forward passes only.
struct LayerMemory {
    var batch: Int
    var backward = true
    var input: UnsafeMutableBufferPointer<Float>
    var output: UnsafeMutableBufferPointer<Float>
    var parameters: UnsafeMutableBufferPointer<Float>
    var state: UnsafeMutableBufferPointer<Float>
    var scratch: UnsafeMutableBufferPointer<Float>
}

/// Gradient memory for one layer's backward pass.
///
/// `parameterGradients` is overwritten (not accumulated). `inputGradient` is nil for the
/// first layer, whose input gradient nobody needs.
struct LayerGradientMemory {
    var outputGradient: UnsafeMutableBufferPointer<Float>
    var inputGradient: UnsafeMutableBufferPointer<Float>?
    var parameterGradients: UnsafeMutableBufferPointer<Float>
}

/// What a layer applies to its own output in the pass that writes it, in inference: the
/// per-channel affine map of the eval-mode BatchNorm after it (`y = x·scale + shift`, channel =
/// the first dimension of a sample) and then a ReLU. Each is computed as the separate layer
/// computes it, so a fused pass gives bitwise the separate layers' numbers.
struct Epilogue {
    /// An eval-mode BatchNorm's parameters and running statistics (its own slices).
    struct Norm {
        var gamma: UnsafePointer<Float>
        var beta: UnsafePointer<Float>
        var mean: UnsafePointer<Float>
        var variance: UnsafePointer<Float>
        var eps: Double

        /// Channel `c`'s map, as `BatchNormKernel.forward` computes it in eval mode.
        @inline(__always)
        func affine(_ c: Int) -> (scale: Float, shift: Float) {
            BatchNormKernel.affine(
                gamma: gamma[c], beta: beta[c], mean: Double(mean[c]), invStd: 1 / (Double(variance[c]) + eps).squareRoot())
        }
    }

    var norm: Norm? = nil
    var relu = false

    static var none: Epilogue { Epilogue() }
    var isEmpty: Bool { norm == nil && !relu }

    /// `values` of one channel through the epilogue into `output` (which may be `values`).
    @inline(__always)
    func apply(_ values: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, count: Int, channel: Int) {
        if let norm {
            let (a, b) = norm.affine(channel)
            if relu {
                for i in 0..<count {
                    let v = values[i] * a + b
                    output[i] = rectified(v)
                }
            } else {
                for i in 0..<count { output[i] = values[i] * a + b }
            }
        } else if relu {
            for i in 0..<count { output[i] = rectified(values[i]) }
        } else if UnsafePointer(output) != values {
            output.update(from: values, count: count)
        }
    }

    /// The BatchNorm map of `channels` channels written into `scale` and `shift`, exactly as
    /// `apply` computes it, for the C kernels, which take it as two arrays: `scale`, or nil when
    /// there is no BatchNorm to apply.
    func fill(scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>, channels: Int)
        -> UnsafePointer<Float>?
    {
        guard let norm else { return nil }
        for c in 0..<channels { (scale[c], shift[c]) = norm.affine(c) }
        return UnsafePointer(scale)
    }

    /// `batch` samples of `channels × spatial` values through the epilogue into `output`.
    func apply(_ values: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int) {
        for b in 0..<batch {
            for c in 0..<channels {
                let offset = (b * channels + c) * spatial
                apply(values + offset, into: output + offset, count: spatial, channel: c)
            }
        }
    }
}

/// Which following layers a layer can take into its own pass in inference (`Epilogue`).
struct Absorbs: OptionSet, Sendable {
    let rawValue: Int
    static let batchNorm = Absorbs(rawValue: 1)
    static let relu = Absorbs(rawValue: 2)
}

/// A compiled layer: shapes fixed, forward and backward over raw minibatch memory.
protocol LayerKernel: Sendable {
    var inputShape: [Int] { get }
    var outputShape: [Int] { get }
    /// Parameters in PyTorch `state_dict` order.
    var parameterSpecs: [TensorSpec] { get }
    /// Non-parameter float buffers (BatchNorm running statistics) in `state_dict` order.
    var stateSpecs: [TensorSpec] { get }
    func scratchCount(batch: Int) -> Int
    /// Scratch when no backward pass will run (a workspace without gradients).
    func forwardScratchCount(batch: Int) -> Int
    func forward(_ memory: LayerMemory, mode: ForwardMode, layerIndex: Int)
    func backward(_ memory: LayerMemory, _ gradients: LayerGradientMemory, mode: ForwardMode, layerIndex: Int)
    /// Where the BatchNorm layers inside this one are, as `state_dict` prefixes relative to it
    /// (`""`: this layer is one; `body.1`: inside a block). Each keeps a `num_batches_tracked`.
    var batchNormPaths: [String] { get }
    /// Whether a Dropout layer is this one or inside it.
    var containsDropout: Bool { get }
    /// Forward flops for one sample, as shard sizing estimates them: 2 per parameter, times the
    /// positions a convolution applies its weights at.
    var flopsPerSample: Int { get }
    /// The following layers this one's `forward(_:epilogue:layerIndex:)` can take on.
    var absorbs: Absorbs { get }
    /// Inference forward with `epilogue` applied to the output (only what `absorbs` allows).
    func forward(_ memory: LayerMemory, epilogue: Epilogue, layerIndex: Int)
}

extension LayerKernel {
    var inputSize: Int { inputShape.reduce(1, *) }
    var outputSize: Int { outputShape.reduce(1, *) }
    var parameterSpecs: [TensorSpec] { [] }
    var stateSpecs: [TensorSpec] { [] }
    func scratchCount(batch: Int) -> Int { 0 }
    func forwardScratchCount(batch: Int) -> Int { scratchCount(batch: batch) }
    var batchNormPaths: [String] { [] }
    var containsDropout: Bool { false }
    var flopsPerSample: Int { 2 * parameterSpecs.reduce(0) { $0 + $1.count } }
    var absorbs: Absorbs { [] }
    func forward(_ memory: LayerMemory, epilogue: Epilogue, layerIndex: Int) {
        precondition(epilogue.isEmpty, "\(type(of: self)) takes no epilogue")
        forward(memory, mode: .inference, layerIndex: layerIndex)
    }
}
