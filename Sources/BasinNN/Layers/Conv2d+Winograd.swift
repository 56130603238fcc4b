import CBasinKernels

/// The forward pass of a stride-1 3×3 convolution by Winograd's minimal filtering F(2×2, 3×3)
/// (Lavin & Gray 2016): each 2×2 output tile is `Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A` of its 4×4 input
/// tile d, so the 36 multiplications per tile and input channel of the direct form become 16,
/// done as 16 GEMMs `M[ξ] = U[ξ]·V[ξ]` (`[out, in] × [in, tiles]`) over many images' tiles.
///
/// Layout in scratch, all row-major: `U[16][out][in]` (the transformed weights), `V[16][in][T]`
/// and `M[16][out][T]` for the `T` tiles of one group of images (tile `t = s·tiles + ty·tw + tx`;
/// planes `planeStride` apart), and the rows of the transforms (`transformRows`). The transforms
/// add and subtract only, so every output differs from the direct convolution by a few
/// roundings (tested to 1e-5 relative).
extension Conv2dKernel {
    /// Winograd pays where the GEMMs' inner dimension (input channels) is not tiny.
    var usesWinograd: Bool {
        kernel == LayerSpec.Pair(3) && stride == LayerSpec.Pair(1) && inChannels >= 8 && outHeight >= 2
            && outWidth >= 2
    }

    var tileRows: Int { (outHeight + 1) / 2 }
    var tileColumns: Int { (outWidth + 1) / 2 }
    var tilesPerSample: Int { tileRows * tileColumns }
    /// Length of one row of the input transform: the tiles' input columns.
    var transformRow: Int { 2 * tileColumns + 2 }

    /// Images whose tiles go through one set of GEMMs: as many as keep V and M near 4 MB (2²⁰
    /// floats), measured best on this machine's 1 MB L2 / 32 MB L3 (2048 tiles at 16 channels,
    /// 512 at 64: larger groups spill, smaller ones pay per-call overhead).
    func winogradGroup(batch: Int) -> Int {
        let tiles = (1 << 20) / (16 * (inChannels + outChannels))
        return max(1, min(batch, tiles / tilesPerSample))
    }

    func winogradScratch(batch: Int) -> Int {
        if var shape = kernelShape {
            // Either kernel may run (by the batch of the call): room for the larger.
            var f2 = 0
            if basin_winograd_accepts(&shape) != 0 {
                f2 = basin_winograd_weights_count(&shape) + basin_winograd_scratch_count(&shape)
            }
            let f4 = basin_winograd4_weights_count(&shape) + basin_winograd4_scratch_count(&shape)
            return max(f2, f4) + 2 * outChannels
        }
        let tiles = winogradGroup(batch: batch) * tilesPerSample
        return 16 * outChannels * inChannels + 16 * planeStride(rows: inChannels, tiles: tiles)
            + 16 * planeStride(rows: outChannels, tiles: tiles) + transformRows
    }

    /// Rows of the input transform (4 of `transformRow` + 8, and a zero row of the input's
    /// width) and of the output (2 of 2·tw + 8).
    var transformRows: Int { 4 * (transformRow + 8) + width + 2 * (2 * tileColumns + 8) }

    /// U[ξ][o][c] = (G g Gᵀ) of filter (o, c), G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]].
    func transformWeights(_ weight: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        let plane = outChannels * inChannels
        for o in 0..<outChannels {
            for c in 0..<inChannels {
                let g = weight + (o * inChannels + c) * 9
                let out = u + o * inChannels + c
                // G·g, row by row (4×3), each row then times Gᵀ (4 values).
                func emit(_ i: Int, _ a: Float, _ b: Float, _ d: Float) {
                    let row = out + (4 * i) * plane
                    row[0] = a
                    row[plane] = 0.5 * (a + b + d)
                    row[2 * plane] = 0.5 * (a - b + d)
                    row[3 * plane] = d
                }
                emit(0, g[0], g[1], g[2])
                emit(1, 0.5 * (g[0] + g[3] + g[6]), 0.5 * (g[1] + g[4] + g[7]), 0.5 * (g[2] + g[5] + g[8]))
                emit(2, 0.5 * (g[0] - g[3] + g[6]), 0.5 * (g[1] - g[4] + g[7]), 0.5 * (g[2] - g[5] + g[8]))
                emit(3, g[6], g[7], g[8])
            }
        }
    }

    /// Floats between the starts of two of the 16 planes of `rows × tiles`: one cache line more
    /// than the plane, so the 16 streams a transform reads or writes do not share cache sets.
    func planeStride(rows: Int, tiles: Int) -> Int { rows * tiles + 16 }

    /// V[ξ][c][t] = (Bᵀ d B) of every tile of `count` images from `image`, with
    /// Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]]; tiles past the image read zeros.
    func transformInput(
        _ image: UnsafePointer<Float>, count: Int, into v: UnsafeMutablePointer<Float>,
        rows: UnsafeMutablePointer<Float>
    ) {
        let tw = tileColumns, th = tileRows, length = transformRow
        let tiles = count * tilesPerSample
        let plane = planeStride(rows: inChannels, tiles: tiles)
        // The tile row's four input rows combined down the columns (Bᵀ d), one row of `row`
        // floats each: position x holds input column x − pw, zero outside the image (those
        // positions are zeroed once), plus 8 floats of slack for the last tiles' vector loads.
        let row = length + 8
        let b = rows, zero = rows + 4 * row
        for k in 0..<(4 * row + width) { rows[k] = 0 }
        let ph = padding.h, pw = padding.w
        let firstX = min(length, pw), inside = max(0, min(length, width + pw) - firstX)
        for s in 0..<count {
            for c in 0..<inChannels {
                let source = image + (s * inChannels + c) * height * width
                let out = v + c * tiles + s * tilesPerSample
                for ty in 0..<th {
                    // Input rows above or below the image read the zero row.
                    func input(_ k: Int) -> UnsafePointer<Float> {
                        let y = 2 * ty - ph + k
                        return y >= 0 && y < height ? source + y * width + (firstX - pw) : UnsafePointer(zero)
                    }
                    let r0 = input(0), r1 = input(1), r2 = input(2), r3 = input(3)
                    let b0 = b + firstX, b1 = b0 + row, b2 = b1 + row, b3 = b2 + row
                    var x = 0
                    while x + 4 <= inside {
                        let v = Self.bt(Self.load4(r0 + x), Self.load4(r1 + x), Self.load4(r2 + x), Self.load4(r3 + x))
                        Self.store4(v.0, b0 + x)
                        Self.store4(v.1, b1 + x)
                        Self.store4(v.2, b2 + x)
                        Self.store4(v.3, b3 + x)
                        x += 4
                    }
                    while x < inside {
                        (b0[x], b1[x], b2[x], b3[x]) = Self.bt(r0[x], r1[x], r2[x], r3[x])
                        x += 1
                    }
                    // Across each tile's four columns (· B), four tiles at a time, into the 16 planes.
                    let base = out + ty * tw
                    for k in 0..<4 {
                        let line = b + k * row
                        let p0 = base + (4 * k) * plane, p1 = p0 + plane, p2 = p1 + plane, p3 = p2 + plane
                        var tx = 0
                        while tx + 4 <= tw {
                            let first = Self.load8(line + 2 * tx), second = Self.load8(line + 2 * tx + 2)
                            let v = Self.bt(first.evenHalf, first.oddHalf, second.evenHalf, second.oddHalf)
                            Self.store4(v.0, p0 + tx)
                            Self.store4(v.1, p1 + tx)
                            Self.store4(v.2, p2 + tx)
                            Self.store4(v.3, p3 + tx)
                            tx += 4
                        }
                        while tx < tw {
                            let x = 2 * tx
                            (p0[tx], p1[tx], p2[tx], p3[tx]) = Self.bt(line[x], line[x + 1], line[x + 2], line[x + 3])
                            tx += 1
                        }
                    }
                }
            }
        }
    }

    /// Output tiles Aᵀ m A, Aᵀ = [[1,1,1,0],[0,1,−1,−1]], with the bias and the epilogue, into
    /// `count` NCHW images at `output`; every value of `m` it reads it sets back to zero. `rows`
    /// holds two output rows (and slack) per tile row.
    func transformOutput(
        _ m: UnsafeMutablePointer<Float>, count: Int, bias: UnsafePointer<Float>?, epilogue: Epilogue,
        into output: UnsafeMutablePointer<Float>, rows: UnsafeMutablePointer<Float>
    ) {
        let tw = tileColumns, th = tileRows, oh = outHeight, ow = outWidth
        let tiles = count * tilesPerSample
        let plane = planeStride(rows: outChannels, tiles: tiles)
        let spatial = oh * ow
        // Two full rows of tiles (2·tw columns, which may be one more than ow).
        let row = 2 * tw + 8
        let top = rows, bottom = rows + row
        for s in 0..<count {
            for o in 0..<outChannels {
                let dst = output + (s * outChannels + o) * spatial
                let src = m + o * tiles + s * tilesPerSample
                let b = SIMD4<Float>(repeating: bias?[o] ?? 0)
                for ty in 0..<th {
                    let t = src + ty * tw
                    var tx = 0
                    while tx < tw {
                        // Four tiles at a time (the last loads read past the row into padding).
                        let m0 = Self.load4(t + tx), m1 = Self.load4(t + tx + plane)
                        let m2 = Self.load4(t + tx + 2 * plane), m3 = Self.load4(t + tx + 3 * plane)
                        let m4 = Self.load4(t + tx + 4 * plane), m5 = Self.load4(t + tx + 5 * plane)
                        let m6 = Self.load4(t + tx + 6 * plane), m7 = Self.load4(t + tx + 7 * plane)
                        let m8 = Self.load4(t + tx + 8 * plane), m9 = Self.load4(t + tx + 9 * plane)
                        let m10 = Self.load4(t + tx + 10 * plane), m11 = Self.load4(t + tx + 11 * plane)
                        let m12 = Self.load4(t + tx + 12 * plane), m13 = Self.load4(t + tx + 13 * plane)
                        let m14 = Self.load4(t + tx + 14 * plane), m15 = Self.load4(t + tx + 15 * plane)
                        // M is left zero behind the reads, so the next group's GEMMs can
                        // accumulate (β = 1) instead of OpenBLAS zeroing C in a pass of its own.
                        let lanes = min(4, tw - tx)
                        for k in 0..<16 { Self.clear(t + tx + k * plane, lanes: lanes) }
                        // Aᵀ m: the two rows of the 2×4 intermediate, then · A.
                        let s0 = m0 + m4 + m8, s1 = m1 + m5 + m9, s2 = m2 + m6 + m10, s3 = m3 + m7 + m11
                        let u0 = m4 - m8 - m12, u1 = m5 - m9 - m13, u2 = m6 - m10 - m14, u3 = m7 - m11 - m15
                        let y00 = (s0 + s1 + s2) + b, y01 = (s1 - s2 - s3) + b
                        let y10 = (u0 + u1 + u2) + b, y11 = (u1 - u2 - u3) + b
                        // Straight into the image where all eight columns and both rows exist.
                        let y0 = 2 * ty, x0 = 2 * tx
                        let direct = x0 + 8 <= ow && y0 + 1 < oh
                        Self.store8(Self.interleave(y00, y01), direct ? dst + y0 * ow + x0 : top + x0)
                        Self.store8(Self.interleave(y10, y11), direct ? dst + (y0 + 1) * ow + x0 : bottom + x0)
                        if !direct {
                            for x in x0..<min(ow, x0 + 8) {
                                dst[y0 * ow + x] = top[x]
                                if y0 + 1 < oh { dst[(y0 + 1) * ow + x] = bottom[x] }
                            }
                        }
                        tx += 4
                    }
                }
                epilogue.apply(dst, into: dst, count: spatial, channel: o)
            }
        }
    }

    /// Bᵀ times four values down a column or along a row of a tile: (d₀−d₂, d₁+d₂, d₂−d₁, d₁−d₃).
    @inline(__always) static func bt(_ d0: Float, _ d1: Float, _ d2: Float, _ d3: Float) -> (Float, Float, Float, Float) {
        (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
    }

    /// `bt` on four tiles at once.
    @inline(__always) static func bt(_ d0: SIMD4<Float>, _ d1: SIMD4<Float>, _ d2: SIMD4<Float>, _ d3: SIMD4<Float>)
        -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>)
    {
        (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
    }

    /// Zeroes `lanes` (1 to 4) floats at `p`.
    @inline(__always) static func clear(_ p: UnsafeMutablePointer<Float>, lanes: Int) {
        if lanes == 4 {
            store4(SIMD4(repeating: 0), p)
        } else {
            for l in 0..<lanes { p[l] = 0 }
        }
    }

    /// (a₀, b₀, a₁, b₁, a₂, b₂, a₃, b₃).
    @inline(__always) static func interleave(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD8<Float> {
        SIMD8(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3])
    }

    @inline(__always) static func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
    }

    @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always) static func store4(_ value: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: value, as: SIMD4<Float>.self)
    }

    @inline(__always) static func store8(_ value: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: value, as: SIMD8<Float>.self)
    }

    /// The shape for the AVX2/FMA kernels (`CBasinKernels`), where this processor runs them and
    /// they take this layer (output channels a multiple of 4); else nil, and the forward runs on
    /// OpenBLAS below.
    var kernelShape: basin_winograd_shape? {
        guard Self.kernelsSupported, let c = Int32(exactly: inChannels), let h = Int32(exactly: height),
            let w = Int32(exactly: width), let k = Int32(exactly: outChannels), let ph = Int32(exactly: padding.h),
            let pw = Int32(exactly: padding.w), let oh = Int32(exactly: outHeight), let ow = Int32(exactly: outWidth)
        else { return nil }
        var shape = basin_winograd_shape(
            channels: c, height: h, width: w, out_channels: k, pad_h: ph, pad_w: pw, out_height: oh, out_width: ow)
        return basin_winograd4_accepts(&shape) != 0 ? shape : nil
    }

    static let kernelsSupported = basin_winograd_supported() != 0

    /// The forward through `CBasinKernels`: F(4×4, 3×3) with 8 images to a vector, or for fewer
    /// than 8 images (where its lanes would idle) F(2×2, 3×3) where that kernel takes the shape.
    /// Weights are transformed once per call; the eval-mode BatchNorm's map is computed per
    /// channel exactly as `Epilogue` computes it.
    func kernelForward(_ m: LayerMemory, shape: basin_winograd_shape, epilogue: Epilogue) {
        var shape = shape
        let weight = m.parameters.baseAddress!
        let u = m.scratch.baseAddress!
        let small = m.batch < 8 && basin_winograd_accepts(&shape) != 0
        let scale = u + (small ? basin_winograd_weights_count(&shape) : basin_winograd4_weights_count(&shape))
        let shift = scale + outChannels
        let scratch = shift + outChannels
        let affine = epilogue.fill(scale: scale, shift: shift, channels: outChannels)
        let bias = self.bias(weight), count = Self.kernelCount(m.batch)
        if small {
            basin_winograd_transform_weights(&shape, weight, u)
            basin_winograd_forward(
                &shape, m.input.baseAddress!, count, u, bias, affine, shift, epilogue.relu ? 1 : 0,
                m.output.baseAddress!, scratch)
        } else {
            basin_winograd4_transform_weights(&shape, weight, u)
            basin_winograd4_forward(
                &shape, m.input.baseAddress!, count, u, bias, affine, shift, epilogue.relu ? 1 : 0,
                m.output.baseAddress!, scratch)
        }
    }

    /// The Winograd forward of `m.batch` images into `m.output`, group by group.
    func winogradForward(_ m: LayerMemory, epilogue: Epilogue) {
        if let shape = kernelShape { return kernelForward(m, shape: shape, epilogue: epilogue) }
        let weight = m.parameters.baseAddress!
        let group = winogradGroup(batch: m.batch)
        let u = m.scratch.baseAddress!
        let maxTiles = group * tilesPerSample
        let v = u + 16 * outChannels * inChannels
        let product = v + 16 * planeStride(rows: inChannels, tiles: maxTiles)
        let rows = product + 16 * planeStride(rows: outChannels, tiles: maxTiles)
        transformWeights(weight, into: u)
        // The GEMMs add into M (β = 1), which the output transform leaves zero behind it; the
        // scratch may hold another layer's numbers, so it starts zeroed once per call.
        product.update(repeating: 0, count: 16 * planeStride(rows: outChannels, tiles: maxTiles))
        let bias = self.bias(weight)
        var first = 0
        while first < m.batch {
            let n = min(group, m.batch - first)
            let tiles = n * tilesPerSample
            transformInput(m.input.baseAddress! + first * inputSize, count: n, into: v, rows: rows)
            let inPlane = planeStride(rows: inChannels, tiles: tiles),
                outPlane = planeStride(rows: outChannels, tiles: tiles)
            for xi in 0..<16 {
                BLAS.sgemm(
                    m: outChannels, n: tiles, k: inChannels, a: u + xi * outChannels * inChannels, lda: inChannels,
                    b: v + xi * inPlane, ldb: tiles, beta: 1, c: product + xi * outPlane, ldc: tiles)
            }
            transformOutput(
                product, count: n, bias: bias, epilogue: epilogue,
                into: m.output.baseAddress! + first * outChannels * outHeight * outWidth,
                rows: rows + 4 * (transformRow + 8) + width)
            first += n
        }
    }
}
