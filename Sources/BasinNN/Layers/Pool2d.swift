/// Max or average pooling over NCHW input (`nn.MaxPool2d`, `nn.AvgPool2d` with
/// `count_include_pad=True`, `ceil_mode=False`).
///
/// Max pooling pads with −∞ and, like PyTorch, takes the first maximum in row-major window
/// order; backward finds it again from the input instead of storing indices.
struct Pool2dKernel: LayerKernel {
    enum Kind: Sendable { case max, average }

    let kind: Kind
    let channels: Int
    let height: Int
    let width: Int
    let kernel: LayerSpec.Pair
    let stride: LayerSpec.Pair
    let padding: LayerSpec.Pair

    var outHeight: Int { (height + 2 * padding.h - kernel.h) / stride.h + 1 }
    var outWidth: Int { (width + 2 * padding.w - kernel.w) / stride.w + 1 }
    var inputShape: [Int] { [channels, height, width] }
    var outputShape: [Int] { [channels, outHeight, outWidth] }

    /// Index within the plane of the window's first maximum, or -1 when the window is all padding.
    @inline(__always)
    private func argmax(_ plane: UnsafePointer<Float>, _ y: Int, _ x: Int) -> Int {
        var best = -Float.infinity
        var bestIndex = -1
        for i in 0..<kernel.h {
            let iy = y * stride.h - padding.h + i
            if iy < 0 || iy >= height { continue }
            for j in 0..<kernel.w {
                let ix = x * stride.w - padding.w + j
                if ix < 0 || ix >= width { continue }
                let v = plane[iy * width + ix]
                if v > best || v.isNaN || bestIndex < 0 {
                    best = v
                    bestIndex = iy * width + ix
                    if v.isNaN { return bestIndex }
                }
            }
        }
        return bestIndex
    }

    func forward(_ m: LayerMemory, mode: ForwardMode, layerIndex: Int) {
        if kind == .max && padding.h == 0 && padding.w == 0 {
            forwardUnpaddedMax(m)
            return
        }
        let oh = outHeight, ow = outWidth
        let divisor = Float(kernel.h * kernel.w)
        for plane in 0..<(m.batch * channels) {
            let src = UnsafePointer(m.input.baseAddress! + plane * height * width)
            let dst = m.output.baseAddress! + plane * oh * ow
            for y in 0..<oh {
                for x in 0..<ow {
                    switch kind {
                    case .max:
                        let index = argmax(src, y, x)
                        dst[y * ow + x] = index >= 0 ? src[index] : -.infinity
                    case .average:
                        var sum: Float = 0
                        for i in 0..<kernel.h {
                            let iy = y * stride.h - padding.h + i
                            if iy < 0 || iy >= height { continue }
                            for j in 0..<kernel.w {
                                let ix = x * stride.w - padding.w + j
                                if ix >= 0 && ix < width { sum += src[iy * width + ix] }
                            }
                        }
                        dst[y * ow + x] = sum / divisor
                    }
                }
            }
        }
    }

    /// Max pooling without padding: every window lies inside the image, so no bounds checks.
    /// A NaN anywhere in a window propagates (as in PyTorch).
    private func forwardUnpaddedMax(_ m: LayerMemory) {
        let oh = outHeight, ow = outWidth, kh = kernel.h, kw = kernel.w, sh = stride.h, sw = stride.w
        for plane in 0..<(m.batch * channels) {
            let src = m.input.baseAddress! + plane * height * width
            let dst = m.output.baseAddress! + plane * oh * ow
            if kh == 2 && kw == 2 && sh == 2 && sw == 2 {
                for y in 0..<oh {
                    let top = src + 2 * y * width, bottom = top + width, out = dst + y * ow
                    for x in 0..<ow {
                        var best = top[2 * x]
                        let b = top[2 * x + 1], c = bottom[2 * x], d = bottom[2 * x + 1]
                        if b > best || b.isNaN { best = b }
                        if c > best || c.isNaN { best = c }
                        if d > best || d.isNaN { best = d }
                        out[x] = best
                    }
                }
                continue
            }
            for y in 0..<oh {
                for x in 0..<ow {
                    let corner = src + (y * sh) * width + x * sw
                    var best = corner[0]
                    for i in 0..<kh {
                        let row = corner + i * width
                        for j in 0..<kw where row[j] > best || row[j].isNaN { best = row[j] }
                    }
                    dst[y * ow + x] = best
                }
            }
        }
    }

    func backward(_ m: LayerMemory, _ g: LayerGradientMemory, mode: ForwardMode, layerIndex: Int) {
        guard let gradIn = g.inputGradient else { return }
        gradIn.update(repeating: 0)
        let oh = outHeight, ow = outWidth
        let divisor = Float(kernel.h * kernel.w)
        for plane in 0..<(m.batch * channels) {
            let src = UnsafePointer(m.input.baseAddress! + plane * height * width)
            let gIn = gradIn.baseAddress! + plane * height * width
            let gOut = g.outputGradient.baseAddress! + plane * oh * ow
            for y in 0..<oh {
                for x in 0..<ow {
                    let grad = gOut[y * ow + x]
                    switch kind {
                    case .max:
                        let index = argmax(src, y, x)
                        if index >= 0 { gIn[index] += grad }
                    case .average:
                        for i in 0..<kernel.h {
                            let iy = y * stride.h - padding.h + i
                            if iy < 0 || iy >= height { continue }
                            for j in 0..<kernel.w {
                                let ix = x * stride.w - padding.w + j
                                if ix >= 0 && ix < width { gIn[iy * width + ix] += grad / divisor }
                            }
                        }
                    }
                }
            }
        }
    }
}
