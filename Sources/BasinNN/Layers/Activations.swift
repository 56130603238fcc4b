import Foundation

/// An elementwise activation; `y` is the forward output, kept for backward.
struct ActivationKernel: LayerKernel {
    enum Function: Sendable {
        case relu, leakyReLU(Float), tanh, sigmoid, gelu, geluTanh
    }

    let function: Function
    let shape: [Int]

    var inputShape: [Int] { shape }
    var outputShape: [Int] { shape }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        let n = m.batch * inputSize
        let x = m.input.baseAddress!, y = m.output.baseAddress!
        switch function {
        case .relu:
            for i in 0..<n { y[i] = rectified(x[i]) }
        case .leakyReLU(let slope):
            for i in 0..<n { y[i] = x[i] > 0 ? x[i] : x[i] * slope }
        case .tanh:
            for i in 0..<n { y[i] = Foundation.tanh(x[i]) }
        case .sigmoid:
            for i in 0..<n { y[i] = 1 / (1 + exp(-x[i])) }
        case .gelu:
            for i in 0..<n { y[i] = 0.5 * x[i] * (1 + erf(x[i] * Float(0.5).squareRoot())) }
        case .geluTanh:
            let c = Float((2 / Double.pi).squareRoot())
            for i in 0..<n {
                let v = x[i]
                y[i] = 0.5 * v * (1 + Foundation.tanh(c * (v + 0.044715 * v * v * v)))
            }
        }
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        guard let gradIn = g.inputGradient?.baseAddress else { return }
        let n = m.batch * inputSize
        let x = m.input.baseAddress!, y = m.output.baseAddress!, gy = g.outputGradient.baseAddress!
        switch function {
        case .relu:
            for i in 0..<n { gradIn[i] = x[i] > 0 ? gy[i] : 0 }
        case .leakyReLU(let slope):
            for i in 0..<n { gradIn[i] = x[i] > 0 ? gy[i] : gy[i] * slope }
        case .tanh:
            for i in 0..<n { gradIn[i] = gy[i] * (1 - y[i] * y[i]) }
        case .sigmoid:
            for i in 0..<n { gradIn[i] = gy[i] * y[i] * (1 - y[i]) }
        case .gelu:
            let invSqrt2 = Float(0.5).squareRoot()
            let invSqrt2Pi = Float(1 / (2 * Double.pi).squareRoot())
            for i in 0..<n {
                let v = x[i]
                let cdf = 0.5 * (1 + erf(v * invSqrt2))
                let pdf = invSqrt2Pi * exp(-0.5 * v * v)
                gradIn[i] = gy[i] * (cdf + v * pdf)
            }
        case .geluTanh:
            let c = Float((2 / Double.pi).squareRoot())
            for i in 0..<n {
                let v = x[i]
                let inner = c * (v + 0.044715 * v * v * v)
                let t = Foundation.tanh(inner)
                let dInner = c * (1 + 3 * 0.044715 * v * v)
                gradIn[i] = gy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dInner)
            }
        }
    }
}

/// `nn.Flatten()`: the same numbers with the sample dimensions joined.
struct FlattenKernel: LayerKernel {
    let inputShape: [Int]
    var outputShape: [Int] { [inputSize] }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        m.output.baseAddress!.update(from: m.input.baseAddress!, count: m.batch * inputSize)
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        g.inputGradient?.baseAddress!.update(from: g.outputGradient.baseAddress!, count: m.batch * inputSize)
    }
}

/// Inverted dropout: in training each element is kept with probability 1 − p and scaled by 1/(1 − p).
///
/// The mask is a function of `(seed, layer, step)`, regenerated in backward instead of stored.
struct DropoutKernel: LayerKernel {
    var containsDropout: Bool { true }
    let p: Float
    let shape: [Int]

    var inputShape: [Int] { shape }
    var outputShape: [Int] { shape }

    private func applyMask(
        _ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>, count: Int, seed: UInt64, step: UInt64,
        layerIndex: Int
    ) {
        var random = RandomSource(seed: seed, stream: RandomStream.dropout.id(layerIndex), offset: step << 32)
        let scale = p < 1 ? 1 / (1 - p) : 0
        for i in 0..<count {
            target[i] = random.nextFloat() >= p ? source[i] * scale : 0
        }
    }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        let n = m.batch * inputSize
        if case .train(let seed, let step) = mode, p > 0 {
            applyMask(
                m.input.baseAddress!, m.output.baseAddress!, count: n, seed: seed, step: step, layerIndex: layerIndex)
        } else {
            m.output.baseAddress!.update(from: m.input.baseAddress!, count: n)
        }
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        guard let gradIn = g.inputGradient?.baseAddress else { return }
        let n = m.batch * inputSize
        if case .train(let seed, let step) = mode, p > 0 {
            applyMask(g.outputGradient.baseAddress!, gradIn, count: n, seed: seed, step: step, layerIndex: layerIndex)
        } else {
            gradIn.update(from: g.outputGradient.baseAddress!, count: n)
        }
    }
}

/// max(v, 0) with NaN passed through, as `torch.relu` does: a point whose numbers broke (an
/// extrapolated BatchNorm variance below zero) reads NaN instead of silently losing a channel.
@inline(__always)
func rectified(_ v: Float) -> Float { v < 0 ? 0 : v }
