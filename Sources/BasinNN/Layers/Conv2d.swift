import CBasinKernels

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
    var flopsPerSample: Int { 2 * (outChannels * patchSize + (hasBias ? outChannels : 0)) * outHeight * outWidth }

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

    /// Samples unfolded together in the direct forward and in backward, so one sgemm covers
    /// about 4096 output positions instead of one sample's.
    func forwardGroup(batch: Int) -> Int { max(1, min(batch, 4096 / max(outHeight * outWidth, 1))) }

    /// The direct forward and every backward: unfolded columns `[patchSize, group·oh·ow]` and
    /// the product or gathered output gradient `[out, group·oh·ow]`; a Winograd forward uses
    /// `winogradScratch` instead.
    func scratchCount(batch: Int) -> Int { max(directScratch(batch: batch), forwardScratchCount(batch: batch)) }

    func forwardScratchCount(batch: Int) -> Int {
        if usesWinograd { return winogradScratch(batch: batch) }
        if var shape = directKernelShape {
            return basin_conv_weights_count(&shape) + basin_conv_scratch_count(&shape) + 2 * outChannels
        }
        return directScratch(batch: batch)
    }

    /// The shape for the AVX2/FMA direct kernel (`CBasinKernels`), where this processor runs it
    /// and it takes this layer (output channels a multiple of 4, output width of 8, stride 1 or 2
    /// along the width); else nil, and the forward unfolds for OpenBLAS.
    var directKernelShape: basin_conv_shape? {
        guard Self.kernelsSupported, let c = Int32(exactly: inChannels), let h = Int32(exactly: height),
            let w = Int32(exactly: width), let k = Int32(exactly: outChannels), let kh = Int32(exactly: kernel.h),
            let kw = Int32(exactly: kernel.w), let sh = Int32(exactly: stride.h), let sw = Int32(exactly: stride.w),
            let ph = Int32(exactly: padding.h), let pw = Int32(exactly: padding.w),
            let oh = Int32(exactly: outHeight), let ow = Int32(exactly: outWidth)
        else { return nil }
        var shape = basin_conv_shape(
            channels: c, height: h, width: w, out_channels: k, kernel_h: kh, kernel_w: kw, stride_h: sh, stride_w: sw,
            pad_h: ph, pad_w: pw, out_height: oh, out_width: ow)
        return basin_conv_accepts(&shape) != 0 ? shape : nil
    }

    /// The forward through the direct kernel; the epilogue's per-channel map computed as
    /// `Epilogue` computes it, so fused and separate layers agree bit for bit.
    private func directKernelForward(_ m: LayerMemory, shape: basin_conv_shape, epilogue: Epilogue) {
        var shape = shape
        let weight = m.parameters.baseAddress!
        let packed = m.scratch.baseAddress!
        let scale = packed + basin_conv_weights_count(&shape)
        let shift = scale + outChannels
        basin_conv_pack_weights(&shape, weight, packed)
        let affine = epilogue.fill(scale: scale, shift: shift, channels: outChannels)
        basin_conv_forward(
            &shape, m.input.baseAddress!, Self.kernelCount(m.batch), packed, bias(weight), affine, shift,
            epilogue.relu ? 1 : 0, m.output.baseAddress!, shift + outChannels)
    }

    /// The bias, stored after the weights, for the C kernels (nil without one).
    func bias(_ weight: UnsafeMutablePointer<Float>) -> UnsafePointer<Float>? {
        hasBias ? UnsafePointer(weight + outChannels * patchSize) : nil
    }

    /// A batch as the C kernels count it (workspaces hold far fewer than 2³¹ samples).
    static func kernelCount(_ batch: Int) -> Int32 {
        guard let count = Int32(exactly: batch) else { preconditionFailure("batch \(batch) exceeds Int32") }
        return count
    }

    private func directScratch(batch: Int) -> Int {
        (patchSize + outChannels) * forwardGroup(batch: batch) * outHeight * outWidth
    }

    /// Unfolds one sample `[C, H, W]` into `columns[(c·kh + i)·kw + j, oh·ow]`, whose rows are
    /// `rowStride` floats apart. Rows are short (a few dozen floats), so they are written by
    /// plain loops rather than calls to memset/memmove.
    func im2col(_ image: UnsafePointer<Float>, _ columns: UnsafeMutablePointer<Float>, rowStride: Int) {
        let oh = outHeight, ow = outWidth, sw = stride.w
        var row = 0
        for c in 0..<inChannels {
            let plane = image + c * height * width
            for i in 0..<kernel.h {
                for j in 0..<kernel.w {
                    let dst = columns + row * rowStride
                    // Output columns x whose input column x·sw − pw + j lies inside the image.
                    let firstX = min(ow, max(0, (padding.w - j + sw - 1) / sw))
                    let endX = max(firstX, min(ow, (width + padding.w - j + sw - 1) / sw))
                    for y in 0..<oh {
                        let iy = y * stride.h - padding.h + i
                        let line = dst + y * ow
                        guard iy >= 0 && iy < height else {
                            for x in 0..<ow { line[x] = 0 }
                            continue
                        }
                        let src = plane + iy * width - padding.w + j
                        for x in 0..<firstX { line[x] = 0 }
                        if sw == 1 {
                            for x in firstX..<endX { line[x] = src[x] }
                        } else {
                            for x in firstX..<endX { line[x] = src[x * sw] }
                        }
                        for x in endX..<ow { line[x] = 0 }
                    }
                    row += 1
                }
            }
        }
    }

    /// `count` samples unfolded side by side: `columns[patchSize, count·oh·ow]`, sample s in
    /// columns s·oh·ow ..< (s+1)·oh·ow.
    func unfold(_ images: UnsafePointer<Float>, count: Int, into columns: UnsafeMutablePointer<Float>) {
        let spatial = outHeight * outWidth
        for s in 0..<count { im2col(images + s * inputSize, columns + s * spatial, rowStride: count * spatial) }
    }

    /// Adds the unfolded gradient back into one sample's image gradient (the adjoint of im2col;
    /// rows `rowStride` floats apart).
    func col2imAdd(_ columns: UnsafePointer<Float>, _ image: UnsafeMutablePointer<Float>, rowStride: Int) {
        let oh = outHeight, ow = outWidth, sw = stride.w
        var row = 0
        for c in 0..<inChannels {
            let plane = image + c * height * width
            for i in 0..<kernel.h {
                for j in 0..<kernel.w {
                    let src = columns + row * rowStride
                    // The output columns whose input column lies inside the image, as in im2col.
                    let firstX = min(ow, max(0, (padding.w - j + sw - 1) / sw))
                    let endX = max(firstX, min(ow, (width + padding.w - j + sw - 1) / sw))
                    for y in 0..<oh {
                        let iy = y * stride.h - padding.h + i
                        if iy < 0 || iy >= height { continue }
                        let dst = plane + iy * width - padding.w + j
                        let line = src + y * ow
                        if sw == 1 {
                            for x in firstX..<endX { dst[x] += line[x] }
                        } else {
                            for x in firstX..<endX { dst[x * sw] += line[x] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        forward(m, epilogue: .none, layerIndex: layerIndex)
    }

    var absorbs: Absorbs { [.batchNorm, .relu] }

    /// The output of `group` samples at a time is one sgemm into scratch; the pass that moves it
    /// into NCHW order adds the bias and applies the epilogue (the eval-mode BatchNorm and ReLU
    /// after this layer), so those layers cost no pass of their own.
    func forward(_ m: LayerMemory, epilogue: Epilogue, layerIndex: Int) {
        if usesWinograd { return winogradForward(m, epilogue: epilogue) }
        if let shape = directKernelShape { return directKernelForward(m, shape: shape, epilogue: epilogue) }
        let weight = m.parameters.baseAddress!
        let spatial = outHeight * outWidth
        let group = forwardGroup(batch: m.batch)
        let columns = m.scratch.baseAddress!
        let product = columns + patchSize * group * spatial
        var first = 0
        while first < m.batch {
            let n = min(group, m.batch - first)
            let width = n * spatial
            unfold(m.input.baseAddress! + first * inputSize, count: n, into: columns)
            BLAS.sgemm(
                m: outChannels, n: width, k: patchSize, a: weight, lda: patchSize, b: columns, ldb: width,
                c: product, ldc: width)
            for s in 0..<n {
                let out = m.output.baseAddress! + (first + s) * outChannels * spatial
                for o in 0..<outChannels {
                    let src = product + o * width + s * spatial, dst = out + o * spatial
                    if hasBias {
                        let b = weight[outChannels * patchSize + o]
                        for p in 0..<spatial { dst[p] = src[p] + b }
                        epilogue.apply(dst, into: dst, count: spatial, channel: o)
                    } else {
                        epilogue.apply(src, into: dst, count: spatial, channel: o)
                    }
                }
            }
            first += n
        }
    }

    /// Backward over the same groups of images as the direct forward: their unfolded inputs
    /// and output gradients side by side (`[patchSize, n·oh·ow]`, `[out, n·oh·ow]`), so ∂W is one
    /// GEMM over n·oh·ow positions and ∂columns another, folded back image by image.
    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        let weight = m.parameters.baseAddress!
        let spatial = outHeight * outWidth
        let group = forwardGroup(batch: m.batch)
        let columns = m.scratch.baseAddress!
        let gathered = columns + patchSize * group * spatial
        let gradWeight = g.parameterGradients.baseAddress!
        gradWeight.update(repeating: 0, count: g.parameterGradients.count)
        if let gradIn = g.inputGradient { gradIn.update(repeating: 0) }
        var first = 0
        while first < m.batch {
            let n = min(group, m.batch - first)
            let width = n * spatial
            unfold(m.input.baseAddress! + first * inputSize, count: n, into: columns)
            for s in 0..<n {
                let gradOut = g.outputGradient.baseAddress! + (first + s) * outChannels * spatial
                for o in 0..<outChannels {
                    (gathered + o * width + s * spatial).update(from: gradOut + o * spatial, count: spatial)
                }
            }
            BLAS.sgemm(
                transB: true, m: outChannels, n: patchSize, k: width, a: gathered, lda: width, b: columns,
                ldb: width, beta: 1, c: gradWeight, ldc: patchSize)
            if hasBias {
                let gradBias = gradWeight + outChannels * patchSize
                for o in 0..<outChannels {
                    let r = gathered + o * width
                    var sum: Float = 0
                    for p in 0..<width { sum += r[p] }
                    gradBias[o] += sum
                }
            }
            if let gradIn = g.inputGradient {
                BLAS.sgemm(
                    transA: true, m: patchSize, n: width, k: outChannels, a: weight, lda: patchSize, b: gathered,
                    ldb: width, c: columns, ldc: width)
                for s in 0..<n {
                    col2imAdd(columns + s * spatial, gradIn.baseAddress! + (first + s) * inputSize, rowStride: width)
                }
            }
            first += n
        }
    }
}
