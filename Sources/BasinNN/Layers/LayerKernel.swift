/// How a forward pass treats layers that differ between training and evaluation.
public enum ForwardMode: Sendable, Equatable {
    /// BatchNorm uses running statistics; Dropout is the identity.
    case eval
    /// BatchNorm uses batch statistics and updates running ones; Dropout draws its mask from
    /// the `(seed, step)` stream, so the same step gives the same mask on any machine.
    case train(seed: UInt64, step: UInt64)
    /// Re-estimates BatchNorm running statistics (PyTorch's `update_bn`): BatchNorm normalizes
    /// with batch statistics and folds batch `index` into a cumulative average
    /// (momentum 1/(index+1)); Dropout is the identity.
    case recomputeStatistics(batchIndex: Int)

    /// Whether BatchNorm normalizes with the batch's own statistics and updates running ones.
    public var usesBatchStatistics: Bool {
        switch self {
        case .eval: false
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
/// layer's own slices.
struct LayerMemory {
    var batch: Int
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

/// A compiled layer: shapes fixed, forward and backward over raw minibatch memory.
protocol LayerKernel: Sendable {
    var inputShape: [Int] { get }
    var outputShape: [Int] { get }
    /// Parameters in PyTorch `state_dict` order.
    var parameterSpecs: [TensorSpec] { get }
    /// Non-parameter float buffers (BatchNorm running statistics) in `state_dict` order.
    var stateSpecs: [TensorSpec] { get }
    func scratchCount(batch: Int) -> Int
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
}

extension LayerKernel {
    var inputSize: Int { inputShape.reduce(1, *) }
    var outputSize: Int { outputShape.reduce(1, *) }
    var parameterSpecs: [TensorSpec] { [] }
    var stateSpecs: [TensorSpec] { [] }
    func scratchCount(batch: Int) -> Int { 0 }
    var batchNormPaths: [String] { [] }
    var containsDropout: Bool { false }
    var flopsPerSample: Int { 2 * parameterSpecs.reduce(0) { $0 + $1.count } }
}
