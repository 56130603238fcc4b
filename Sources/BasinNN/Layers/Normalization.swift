/// Normalization over groups of each sample's own values: `nn.GroupNorm(groups, C)` (a group
/// is C/groups channels × H × W, with a per-channel weight and bias) and `nn.LayerNorm` over
/// the whole sample (`normalized_shape` = the input shape, an elementwise weight and bias).
/// Statistics are summed in Double; the biased variance, as PyTorch uses. Scratch holds each
/// (sample, group)'s mean and 1/σ for backward.
struct GroupNormKernel: LayerKernel {
    enum Affine: Sendable { case perChannel, perElement }

    let shape: [Int]
    let groups: Int
    let eps: Double
    let affine: Affine

    var inputShape: [Int] { shape }
    var outputShape: [Int] { shape }
    var channels: Int { shape[0] }
    /// Values per channel (H·W, or 1 for flat input).
    var spatial: Int { shape.dropFirst().reduce(1, *) }
    var groupSize: Int { inputSize / groups }
    var affineShape: [Int] { affine == .perChannel ? [channels] : shape }

    var parameterSpecs: [TensorSpec] {
        [
            TensorSpec(suffix: "weight", shape: affineShape, initial: .constant(1)),
            TensorSpec(suffix: "bias", shape: affineShape, initial: .constant(0)),
        ]
    }

    func scratchCount(batch: Int) -> Int { 2 * batch * groups }

    /// Index of the weight that element `i` of a sample uses.
    @inline(__always) func affineIndex(_ i: Int) -> Int { affine == .perChannel ? i / spatial : i }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        let size = inputSize, len = groupSize
        let weight = m.parameters.baseAddress!, bias = weight + affineShape.reduce(1, *)
        let saved = m.scratch.baseAddress!
        for b in 0..<m.batch {
            for g in 0..<groups {
                let start = b * size + g * len
                let x = m.input.baseAddress! + start, y = m.output.baseAddress! + start
                var sum = 0.0
                for i in 0..<len { sum += Double(x[i]) }
                let mean = sum / Double(len)
                var squares = 0.0
                for i in 0..<len {
                    let d = Double(x[i]) - mean
                    squares += d * d
                }
                let invStd = 1 / (squares / Double(len) + eps).squareRoot()
                saved[2 * (b * groups + g)] = Float(mean)
                saved[2 * (b * groups + g) + 1] = Float(invStd)
                for i in 0..<len {
                    let a = affineIndex(g * len + i)
                    y[i] = Float((Double(x[i]) - mean) * invStd) * weight[a] + bias[a]
                }
            }
        }
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        let size = inputSize, len = groupSize, count = affineShape.reduce(1, *)
        let weight = m.parameters.baseAddress!
        let gradWeight = g.parameterGradients.baseAddress!, gradBias = gradWeight + count
        let saved = m.scratch.baseAddress!
        var sumW = [Double](repeating: 0, count: count), sumB = [Double](repeating: 0, count: count)
        for b in 0..<m.batch {
            for group in 0..<groups {
                let start = b * size + group * len
                let x = m.input.baseAddress! + start, gy = g.outputGradient.baseAddress! + start
                let mean = Double(saved[2 * (b * groups + group)]), invStd = Double(saved[2 * (b * groups + group) + 1])
                var meanDx = 0.0, meanDxXhat = 0.0
                for i in 0..<len {
                    let a = affineIndex(group * len + i)
                    let xhat = (Double(x[i]) - mean) * invStd, grad = Double(gy[i])
                    sumW[a] += grad * xhat
                    sumB[a] += grad
                    let dx = grad * Double(weight[a])
                    meanDx += dx
                    meanDxXhat += dx * xhat
                }
                guard let gradIn = g.inputGradient?.baseAddress.map({ $0 + start }) else { continue }
                meanDx /= Double(len)
                meanDxXhat /= Double(len)
                for i in 0..<len {
                    let a = affineIndex(group * len + i)
                    let xhat = (Double(x[i]) - mean) * invStd
                    let dx = Double(gy[i]) * Double(weight[a])
                    gradIn[i] = Float(invStd * (dx - meanDx - xhat * meanDxXhat))
                }
            }
        }
        for a in 0..<count {
            gradWeight[a] = Float(sumW[a])
            gradBias[a] = Float(sumB[a])
        }
    }
}

/// `nn.AdaptiveAvgPool2d(1)`: each channel's mean over the image, `[C, H, W]` → `[C, 1, 1]`.
struct GlobalAveragePoolKernel: LayerKernel {
    let channels: Int
    let height: Int
    let width: Int

    var inputShape: [Int] { [channels, height, width] }
    var outputShape: [Int] { [channels, 1, 1] }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        let s = height * width, scale = 1 / Float(s)
        let x = m.input.baseAddress!, y = m.output.baseAddress!
        for r in 0..<(m.batch * channels) {
            let p = x + r * s
            var sum: Float = 0
            for i in 0..<s { sum += p[i] }
            y[r] = sum * scale
        }
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        guard let gradIn = g.inputGradient?.baseAddress else { return }
        let s = height * width, scale = 1 / Float(s)
        let gy = g.outputGradient.baseAddress!
        for r in 0..<(m.batch * channels) {
            (gradIn + r * s).update(repeating: gy[r] * scale, count: s)
        }
    }
}
