import CBasinKernels

/// Batch normalization over the channel dimension of `[N, C]`, `[N, C, L]` or `[N, C, H, W]`
/// input (`nn.BatchNorm1d` / `nn.BatchNorm2d`, affine, tracking running statistics).
///
/// Training normalizes with the batch's biased variance and updates
/// `running_var` with the unbiased one, as PyTorch does. Statistics are summed in Double (with
/// AVX2 in `CBasinKernels` where the processor has it).
/// Scratch holds the batch mean and 1/σ per channel for backward.
struct BatchNormKernel: LayerKernel {
    let shape: [Int]
    let eps: Double
    let momentum: Double

    var channels: Int { shape[0] }
    var spatial: Int { shape.dropFirst().reduce(1, *) }
    var inputShape: [Int] { shape }
    var outputShape: [Int] { shape }

    var parameterSpecs: [TensorSpec] {
        [
            TensorSpec(suffix: "weight", shape: [channels], initial: .constant(1)),
            TensorSpec(suffix: "bias", shape: [channels], initial: .constant(0)),
        ]
    }

    var stateSpecs: [TensorSpec] {
        [
            TensorSpec(suffix: "running_mean", shape: [channels], initial: .constant(0)),
            TensorSpec(suffix: "running_var", shape: [channels], initial: .constant(1)),
        ]
    }

    func scratchCount(batch: Int) -> Int { 2 * channels }
    var batchNormPaths: [String] { [""] }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        let c = channels, s = spatial, n = m.batch
        let x = m.input.baseAddress!, y = m.output.baseAddress!
        let gamma = m.parameters.baseAddress!, beta = gamma + c
        let runningMean = m.state.baseAddress!, runningVar = runningMean + c
        let savedMean = m.scratch.baseAddress!, savedInvStd = savedMean + c
        let count = Double(n * s)
        var momentum = self.momentum
        if case .recomputeStatistics(let weight) = mode { momentum = weight }
        for ch in 0..<c {
            var mean: Double, variance: Double
            if mode.usesBatchStatistics {
                if Conv2dKernel.kernelsSupported {
                    (mean, variance) = (0, 0)
                    basin_channel_moments(x + ch * s, Int32(clamping: n), c * s, s, &mean, &variance)
                } else {
                    var sum = 0.0
                    for b in 0..<n { sum += Self.sum(x + (b * c + ch) * s, count: s) }
                    mean = sum / count
                    var squares = 0.0
                    for b in 0..<n { squares += Self.sum(x + (b * c + ch) * s, count: s, squaredAround: mean) }
                    variance = squares / count
                }
                let unbiased = count > 1 ? variance * count / (count - 1) : variance
                runningMean[ch] = Float((1 - momentum) * Double(runningMean[ch]) + momentum * mean)
                runningVar[ch] = Float((1 - momentum) * Double(runningVar[ch]) + momentum * unbiased)
            } else {
                mean = Double(runningMean[ch])
                variance = Double(runningVar[ch])
            }
            let invStd = 1 / (variance + eps).squareRoot()
            savedMean[ch] = Float(mean)
            savedInvStd[ch] = Float(invStd)
            let (scale, shift) = Self.affine(gamma: gamma[ch], beta: beta[ch], mean: mean, invStd: invStd)
            for b in 0..<n {
                let offset = (b * c + ch) * s
                for i in 0..<s { y[offset + i] = x[offset + i] * scale + shift }
            }
        }
    }

    /// Σ values (or Σ (value − center)² with `squaredAround`) in Double, in four interleaved
    /// partial sums so the additions do not wait on each other.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, count: Int, squaredAround center: Double? = nil) -> Double {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        if let center {
            while i + 4 <= count {
                let d0 = Double(p[i]) - center, d1 = Double(p[i + 1]) - center
                let d2 = Double(p[i + 2]) - center, d3 = Double(p[i + 3]) - center
                a0 += d0 * d0
                a1 += d1 * d1
                a2 += d2 * d2
                a3 += d3 * d3
                i += 4
            }
            while i < count {
                let d = Double(p[i]) - center
                a0 += d * d
                i += 1
            }
        } else {
            while i + 4 <= count {
                a0 += Double(p[i])
                a1 += Double(p[i + 1])
                a2 += Double(p[i + 2])
                a3 += Double(p[i + 3])
                i += 4
            }
            while i < count {
                a0 += Double(p[i])
                i += 1
            }
        }
        return (a0 + a1) + (a2 + a3)
    }

    /// Normalization with `mean` and `invStd` = 1/σ as one affine map `x·scale + shift`.
    @inline(__always)
    static func affine(gamma: Float, beta: Float, mean: Double, invStd: Double) -> (scale: Float, shift: Float) {
        (Float(Double(gamma) * invStd), Float(Double(beta) - mean * Double(gamma) * invStd))
    }

    /// This layer in eval mode, for a layer before it to apply (`Epilogue`).
    func inferenceNorm(_ m: LayerMemory) -> Epilogue.Norm {
        let gamma = m.parameters.baseAddress!, mean = m.state.baseAddress!
        return Epilogue.Norm(gamma: gamma, beta: gamma + channels, mean: mean, variance: mean + channels, eps: eps)
    }

    var absorbs: Absorbs { .relu }

    /// Eval-mode normalization and the ReLU after it in one pass.
    func forward(_ m: LayerMemory, epilogue: Epilogue, layerIndex: Int) {
        precondition(epilogue.norm == nil)
        Epilogue(norm: inferenceNorm(m), relu: epilogue.relu).apply(
            m.input.baseAddress!, into: m.output.baseAddress!, batch: m.batch, channels: channels, spatial: spatial)
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        let c = channels, s = spatial, n = m.batch
        let x = m.input.baseAddress!, gy = g.outputGradient.baseAddress!
        let gamma = m.parameters.baseAddress!
        let savedMean = m.scratch.baseAddress!, savedInvStd = savedMean + c
        let gradGamma = g.parameterGradients.baseAddress!, gradBeta = gradGamma + c
        let count = Double(n * s)
        for ch in 0..<c {
            let mean = Double(savedMean[ch]), invStd = Double(savedInvStd[ch])
            var sumGrad = 0.0, sumGradXhat = 0.0
            for b in 0..<n {
                let offset = (b * c + ch) * s
                for i in 0..<s {
                    let grad = Double(gy[offset + i])
                    sumGrad += grad
                    sumGradXhat += grad * (Double(x[offset + i]) - mean) * invStd
                }
            }
            gradGamma[ch] = Float(sumGradXhat)
            gradBeta[ch] = Float(sumGrad)
            guard let gradIn = g.inputGradient?.baseAddress else { continue }
            let g0 = Double(gamma[ch]) * invStd
            for b in 0..<n {
                let offset = (b * c + ch) * s
                for i in 0..<s {
                    let grad = Double(gy[offset + i])
                    if mode.usesBatchStatistics {
                        let xhat = (Double(x[offset + i]) - mean) * invStd
                        gradIn[offset + i] = Float(g0 * (grad - sumGrad / count - xhat * sumGradXhat / count))
                    } else {
                        gradIn[offset + i] = Float(g0 * grad)
                    }
                }
            }
        }
    }
}
