/// 2-D convolution over NCHW input, weight `[out, in, kh, kw]` row-major (PyTorch's `nn.Conv2d`,
/// groups 1, dilation 1, zero padding).
///
/// Each sample is unfolded (im2col) into a `[in·kh·kw, oh·ow]` matrix held in scratch, so the
/// output `[out, oh·ow]` of that sample is one sgemm written straight into NCHW order.
struct Conv2dKernel: LayerKernel {
    let inChannels: Int
    let outChannels: Int
    let height: Int
    let width: Int
    let kernel: LayerSpec.Pair
    let stride: LayerSpec.Pair
    let padding: LayerSpec.Pair
    let hasBias: Bool

    var outHeight: Int { (height + 2 * padding.h - kernel.h) / stride.h + 1 }
    var outWidth: Int { (width + 2 * padding.w - kernel.w) / stride.w + 1 }
    var patchSize: Int { inChannels * kernel.h * kernel.w }
    var inputShape: [Int] { [inChannels, height, width] }
    var outputShape: [Int] { [outChannels, outHeight, outWidth] }

    var parameterSpecs: [TensorSpec] {
        let bound = Float(1 / Double(patchSize).squareRoot())
        var specs = [
            TensorSpec(
                suffix: "weight", shape: [outChannels, inChannels, kernel.h, kernel.w], initial: .uniform(bound: bound))
        ]
        if hasBias {
            specs.append(TensorSpec(suffix: "bias", shape: [outChannels], initial: .uniform(bound: bound)))
        }
        return specs
    }

    func scratchCount(batch: Int) -> Int { patchSize * outHeight * outWidth }

    /// Unfolds one sample `[C, H, W]` into `columns[(c·kh + i)·kw + j, oh·ow]`.
    func im2col(_ image: UnsafePointer<Float>, _ columns: UnsafeMutablePointer<Float>) {
        let oh = outHeight, ow = outWidth
        var row = 0
        for c in 0..<inChannels {
            let plane = image + c * height * width
            for i in 0..<kernel.h {
                for j in 0..<kernel.w {
                    let dst = columns + row * oh * ow
                    for y in 0..<oh {
                        let iy = y * stride.h - padding.h + i
                        let line = dst + y * ow
                        if iy < 0 || iy >= height {
                            line.update(repeating: 0, count: ow)
                            continue
                        }
                        let src = plane + iy * width
                        for x in 0..<ow {
                            let ix = x * stride.w - padding.w + j
                            line[x] = (ix >= 0 && ix < width) ? src[ix] : 0
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// Adds the unfolded gradient back into one sample's image gradient (the adjoint of im2col).
    func col2imAdd(_ columns: UnsafePointer<Float>, _ image: UnsafeMutablePointer<Float>) {
        let oh = outHeight, ow = outWidth
        var row = 0
        for c in 0..<inChannels {
            let plane = image + c * height * width
            for i in 0..<kernel.h {
                for j in 0..<kernel.w {
                    let src = columns + row * oh * ow
                    for y in 0..<oh {
                        let iy = y * stride.h - padding.h + i
                        if iy < 0 || iy >= height { continue }
                        let dst = plane + iy * width
                        let line = src + y * ow
                        for x in 0..<ow {
                            let ix = x * stride.w - padding.w + j
                            if ix >= 0 && ix < width { dst[ix] += line[x] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        let weight = m.parameters.baseAddress!
        let columns = m.scratch.baseAddress!
        let spatial = outHeight * outWidth
        for s in 0..<m.batch {
            let out = m.output.baseAddress! + s * outChannels * spatial
            im2col(m.input.baseAddress! + s * inputSize, columns)
            if hasBias {
                let bias = weight + outChannels * patchSize
                for o in 0..<outChannels { (out + o * spatial).update(repeating: bias[o], count: spatial) }
            }
            BLAS.sgemm(
                m: outChannels, n: spatial, k: patchSize, a: weight, lda: patchSize, b: columns, ldb: spatial,
                beta: hasBias ? 1 : 0, c: out, ldc: spatial)
        }
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        let weight = m.parameters.baseAddress!
        let columns = m.scratch.baseAddress!
        let spatial = outHeight * outWidth
        let gradWeight = g.parameterGradients.baseAddress!
        gradWeight.update(repeating: 0, count: g.parameterGradients.count)
        if let gradIn = g.inputGradient { gradIn.update(repeating: 0) }
        for s in 0..<m.batch {
            let gradOut = g.outputGradient.baseAddress! + s * outChannels * spatial
            im2col(m.input.baseAddress! + s * inputSize, columns)
            BLAS.sgemm(
                transB: true, m: outChannels, n: patchSize, k: spatial, a: gradOut, lda: spatial, b: columns,
                ldb: spatial, beta: 1, c: gradWeight, ldc: patchSize)
            if hasBias {
                let gradBias = gradWeight + outChannels * patchSize
                for o in 0..<outChannels {
                    let r = gradOut + o * spatial
                    var sum: Float = 0
                    for p in 0..<spatial { sum += r[p] }
                    gradBias[o] += sum
                }
            }
            if let gradIn = g.inputGradient {
                BLAS.sgemm(
                    transA: true, m: patchSize, n: spatial, k: outChannels, a: weight, lda: patchSize, b: gradOut,
                    ldb: spatial, c: columns, ldc: spatial)
                col2imAdd(columns, gradIn.baseAddress! + s * inputSize)
            }
        }
    }
}
