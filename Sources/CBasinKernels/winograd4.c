// Winograd F(4x4, 3x3) (Lavin & Gray 2016; interpolation points 0, ±1, ±2, ∞) for stride-1 3x3
// convolutions over NCHW images, with AVX2 and FMA chosen per function as in winograd.c. Each
// 4x4 output tile costs 36 multiplications per input and output channel instead of 144, done as
// 36 GEMMs by the shared 4x24 micro-kernel.
//
// The vector lanes hold 8 images: a group of 8 images is first transposed into
// P[c][y][x][8] with its zero padding, so both transforms are plain vertical arithmetic on whole
// vectors, for any image size. Tile positions are taken in blocks (3 positions = one 24-lane
// column of the micro-kernel), sized so that a block's V and M stay in L2:
//   V[xi][b][c][24] = (B^T d B)[xi] of positions 3b..3b+2 x 8 images, input channel c
//   M[xi][k][lanes] = sum_c U[xi][k][c] V[xi][c][lane]
//   output          = epilogue(A^T M A + bias), transposed back to NCHW
// Transforms use FMA with their small integer constants; the epilogue multiplies then adds,
// unfused, as the separate BatchNorm layer does, so fused and separate inference agree bit for bit.
// Every output is within a few 1e-7 of the direct sum relative to its terms' magnitudes (tested to 1e-5).
#pragma clang fp contract(off)

#include "CBasinKernels.h"

#if defined(__x86_64__)

#include <string.h>

#include "microkernel.h"

static int rows4(const basin_winograd_shape *s) { return (s->out_height + 3) / 4; }
static int columns4(const basin_winograd_shape *s) { return (s->out_width + 3) / 4; }
static int padded_rows(const basin_winograd_shape *s) { return 4 * rows4(s) + 2; }
static int padded_columns(const basin_winograd_shape *s) { return 4 * columns4(s) + 2; }

/// Tile positions per block, a multiple of 3: V and M take 36 (C + K) 8 floats a position; about 256 KB.
static int block_positions(const basin_winograd_shape *s) {
    int p = 262144 / (36 * 8 * 4 * (s->channels + s->out_channels));
    p = p / 3 * 3;
    return p < 3 ? 3 : p;
}

static size_t v_plane(const basin_winograd_shape *s) { return (size_t)block_positions(s) * 8 * s->channels + 16; }
static size_t m_plane(const basin_winograd_shape *s) { return (size_t)block_positions(s) * 8 * s->out_channels + 16; }
static size_t padded_count(const basin_winograd_shape *s) {
    return (size_t)s->channels * padded_rows(s) * padded_columns(s) * 8;
}

int basin_winograd4_accepts(const basin_winograd_shape *s) {
    return s->channels > 0 && s->out_channels > 0 && s->out_channels % 4 == 0 && s->out_height >= 1
        && s->out_width >= 1 && s->pad_h >= 0 && s->pad_w >= 0 && s->out_height == s->height + 2 * s->pad_h - 2
        && s->out_width == s->width + 2 * s->pad_w - 2;
}

size_t basin_winograd4_weights_count(const basin_winograd_shape *s) {
    return (size_t)36 * s->channels * s->out_channels;
}

size_t basin_winograd4_scratch_count(const basin_winograd_shape *s) {
    return padded_count(s) + 36 * v_plane(s) + 36 * m_plane(s);
}

/// U = G g G^T, G = [[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]],
/// summed in double (multiply, then add left to right), packed [xi][K/4][C][4]: four output
/// channels at a time, one per double lane, so each (xi, c) writes its 4 floats at once. Once per
/// call of the forward, for every chunk of images: it was 5 % of a ResNet-20 point done a filter
/// at a time.
AVX2 void basin_winograd4_transform_weights(const basin_winograd_shape *s, const float *weight, float *u) {
    static const double G[6][3] = {
        {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    const int C = s->channels, K = s->out_channels;
    const size_t plane = (size_t)C * K, filter = (size_t)C * 9;
    for (int k = 0; k < K; k += 4) {
        for (int c = 0; c < C; c++) {
            const float *w = weight + ((size_t)k * C + c) * 9;
            __m256d g[9];
            for (int e = 0; e < 9; e++)
                g[e] = _mm256_set_pd(w[3 * filter + e], w[2 * filter + e], w[filter + e], w[e]);
            __m256d t[6][3];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 3; j++)
                    t[i][j] = _mm256_add_pd(
                        _mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(G[i][0]), g[j]),
                                      _mm256_mul_pd(_mm256_set1_pd(G[i][1]), g[3 + j])),
                        _mm256_mul_pd(_mm256_set1_pd(G[i][2]), g[6 + j]));
            float *out = u + (size_t)(k / 4) * C * 4 + (size_t)c * 4;
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) {
                    __m256d v = _mm256_add_pd(
                        _mm256_add_pd(_mm256_mul_pd(t[i][0], _mm256_set1_pd(G[j][0])),
                                      _mm256_mul_pd(t[i][1], _mm256_set1_pd(G[j][1]))),
                        _mm256_mul_pd(t[i][2], _mm256_set1_pd(G[j][2])));
                    _mm_storeu_ps(out + (6 * i + j) * plane, _mm256_cvtpd_ps(v));
                }
        }
    }
}

/// Rows r0..r7 (8 floats each) transposed in place: afterwards r[j][l] is the old r[l][j].
AVX2 static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
    }
}

/// P[c][y][x][l] = image (first + l)'s input[c][y - pad_h][x - pad_w], zero outside the image and
/// for l >= valid.
AVX2 static void gather_images(
    const basin_winograd_shape *s, const float *input, size_t first, int valid, float *padded) {
    const int C = s->channels, H = s->height, W = s->width, rows = padded_rows(s), columns = padded_columns(s);
    const size_t image_size = (size_t)C * H * W;
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < rows; y++) {
            float *line = padded + ((size_t)c * rows + y) * columns * 8;
            int iy = y - s->pad_h;
            if (iy < 0 || iy >= H) {
                memset(line, 0, sizeof(float) * 8 * columns);
                continue;
            }
            const float *source = input + first * image_size + ((size_t)c * H + iy) * W;
            int x = 0;
            // Eight columns inside the image for all eight images: one 8x8 transpose.
            for (; x < columns; x++) {
                int ix = x - s->pad_w;
                if (valid == 8 && ix >= 0 && ix + 8 <= W) {
                    __m256 r[8];
                    for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(source + l * image_size + ix);
                    transpose8(r);
                    for (int j = 0; j < 8; j++) _mm256_storeu_ps(line + (size_t)(x + j) * 8, r[j]);
                    x += 7;
                    continue;
                }
                float *out = line + (size_t)x * 8;
                for (int l = 0; l < 8; l++) out[l] = l < valid && ix >= 0 && ix < W ? source[l * image_size + ix] : 0.0f;
            }
        }
    }
}

/// B^T times six vectors, B^T = [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],[0,-2,-1,2,1,0],
/// [0,2,-1,-2,1,0],[0,4,0,-5,0,1]].
AVX2 static inline void bt6(const __m256 d[6], __m256 o[6]) {
    const __m256 four = _mm256_set1_ps(4), five = _mm256_set1_ps(5), two = _mm256_set1_ps(2);
    __m256 t0 = _mm256_fnmadd_ps(four, d[2], d[4]);  // d4 - 4 d2
    __m256 t1 = _mm256_fnmadd_ps(four, d[1], d[3]);  // d3 - 4 d1
    __m256 t2 = _mm256_sub_ps(d[4], d[2]);
    __m256 t3 = _mm256_mul_ps(two, _mm256_sub_ps(d[3], d[1]));
    o[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
    o[1] = _mm256_add_ps(t0, t1);
    o[2] = _mm256_sub_ps(t0, t1);
    o[3] = _mm256_add_ps(t2, t3);
    o[4] = _mm256_sub_ps(t2, t3);
    o[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

/// A^T times six vectors, A^T = [[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]].
AVX2 static inline void at6(const __m256 m[6], __m256 y[4]) {
    __m256 a = _mm256_add_ps(m[1], m[2]), b = _mm256_sub_ps(m[1], m[2]);
    __m256 c = _mm256_add_ps(m[3], m[4]), d = _mm256_sub_ps(m[3], m[4]);
    y[0] = _mm256_add_ps(_mm256_add_ps(m[0], a), c);
    y[1] = _mm256_fmadd_ps(_mm256_set1_ps(2), d, b);
    y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4), c, a);
    y[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8), d, b), m[5]);
}

/// V for positions [first, first + count) of the tile grid (8 images each).
AVX2 static void transform_input(const basin_winograd_shape *s, const float *padded, int first, int count, float *v) {
    const int C = s->channels, tw = columns4(s), rows = padded_rows(s), columns = padded_columns(s);
    const size_t plane = v_plane(s);
    for (int p = 0; p < count; p++) {
        int ty = (first + p) / tw, tx = (first + p) % tw;
        float *column = v + (size_t)(p / 3) * C * LANES + (p % 3) * 8;
        for (int c = 0; c < C; c++) {
            const float *base = padded + (((size_t)c * rows + 4 * ty) * columns + 4 * tx) * 8;
            __m256 t[6][6];
            for (int j = 0; j < 6; j++) {
                // Down column j of the tile: B^T d.
                __m256 d[6], o[6];
                for (int r = 0; r < 6; r++) d[r] = _mm256_loadu_ps(base + ((size_t)r * columns + j) * 8);
                bt6(d, o);
                for (int i = 0; i < 6; i++) t[i][j] = o[i];
            }
            float *out = column + (size_t)c * LANES;
            for (int i = 0; i < 6; i++) {
                __m256 o[6];
                bt6(t[i], o);  // along row i: (B^T d) B
                for (int j = 0; j < 6; j++) _mm256_storeu_ps(out + (6 * i + j) * plane, o[j]);
            }
        }
    }
    if (count % 3 != 0) {
        // Lanes of the last column that no position fills: zeros, multiplied and never read.
        float *column = v + (size_t)(count / 3) * C * LANES;
        for (int xi = 0; xi < 36; xi++)
            for (int c = 0; c < C; c++)
                memset(column + xi * plane + (size_t)c * LANES + (count % 3) * 8, 0, sizeof(float) * (LANES - (count % 3) * 8));
    }
}

AVX2 static void multiply(const basin_winograd_shape *s, const float *u, const float *v, int count, float *m) {
    const int C = s->channels, K = s->out_channels, row = block_positions(s) * 8;
    const size_t vp = v_plane(s), mp = m_plane(s), up = (size_t)C * K;
    const int blocks = (count + 2) / 3;
    for (int xi = 0; xi < 36; xi++)
        for (int b = 0; b < blocks; b++)
            for (int k = 0; k < K; k += 4)
                gemm_block(u + xi * up + (size_t)k * C, v + xi * vp + (size_t)b * C * LANES, C,
                           m + xi * mp + (size_t)k * row + b * LANES, row);
}

/// Outputs of positions [first, first + count) for images [image, image + valid).
AVX2 static void transform_output(
    const basin_winograd_shape *s, const float *m, int first, int count, size_t image, int valid, const float *bias,
    const float *scale, const float *shift, int relu, float *output) {
    const int K = s->out_channels, oh = s->out_height, ow = s->out_width, tw = columns4(s), row = block_positions(s) * 8;
    const size_t plane = m_plane(s), spatial = (size_t)oh * ow;
    for (int k = 0; k < K; k++) {
        const __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
        const __m256 a = _mm256_set1_ps(scale ? scale[k] : 1.0f), h = _mm256_set1_ps(scale ? shift[k] : 0.0f);
        float *channel = output + (image * K + k) * spatial;
        for (int p = 0; p < count; p++) {
            int ty = (first + p) / tw, tx = (first + p) % tw;
            const float *mk = m + (size_t)k * row + p * 8;
            __m256 t[4][6];
            for (int j = 0; j < 6; j++) {
                __m256 col[6], y[4];
                for (int i = 0; i < 6; i++) col[i] = _mm256_loadu_ps(mk + (6 * i + j) * plane);
                at6(col, y);
                for (int i = 0; i < 4; i++) t[i][j] = y[i];
            }
            for (int i = 0; i < 4; i++) {
                int y0 = 4 * ty + i;
                __m256 y[4];
                at6(t[i], y);
                for (int j = 0; j < 4; j++) {
                    y[j] = _mm256_add_ps(y[j], b);
                    if (scale) y[j] = _mm256_add_ps(_mm256_mul_ps(y[j], a), h);
                    // y < 0 ? 0 : y, which keeps NaN (the comparison is false for it).
                    if (relu) y[j] = _mm256_andnot_ps(_mm256_cmp_ps(y[j], _mm256_setzero_ps(), _CMP_LT_OQ), y[j]);
                }
                if (y0 >= oh) continue;
                // Four vectors of 8 images -> per image its 4 columns (lanes l and l + 4 per register).
                __m256 t0 = _mm256_unpacklo_ps(y[0], y[1]), t1 = _mm256_unpackhi_ps(y[0], y[1]);
                __m256 t2 = _mm256_unpacklo_ps(y[2], y[3]), t3 = _mm256_unpackhi_ps(y[2], y[3]);
                __m256 r[4] = {
                    _mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                    _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
                int x0 = 4 * tx, width = ow - x0 < 4 ? ow - x0 : 4;
                for (int l = 0; l < valid; l++) {
                    __m128 q = l < 4 ? _mm256_castps256_ps128(r[l]) : _mm256_extractf128_ps(r[l - 4], 1);
                    float *dst = channel + l * K * spatial + (size_t)y0 * ow + x0;
                    if (width == 4) {
                        _mm_storeu_ps(dst, q);
                    } else {
                        float lane[4];
                        _mm_storeu_ps(lane, q);
                        for (int x = 0; x < width; x++) dst[x] = lane[x];
                    }
                }
            }
        }
    }
}

AVX2 void basin_winograd4_forward(
    const basin_winograd_shape *s, const float *input, int count, const float *u, const float *bias,
    const float *scale, const float *shift, int relu, float *output, float *scratch) {
    const int positions = rows4(s) * columns4(s), block = block_positions(s);
    float *padded = scratch, *v = padded + padded_count(s), *m = v + 36 * v_plane(s);
    for (int image = 0; image < count; image += 8) {
        int valid = count - image < 8 ? count - image : 8;
        gather_images(s, input, (size_t)image, valid, padded);
        for (int first = 0; first < positions; first += block) {
            int n = positions - first < block ? positions - first : block;
            transform_input(s, padded, first, n, v);
            multiply(s, u, v, n, m);
            transform_output(s, m, first, n, (size_t)image, valid, bias, scale, shift, relu, output);
        }
    }
}

#else

int basin_winograd4_accepts(const basin_winograd_shape *shape) { return 0; }
size_t basin_winograd4_weights_count(const basin_winograd_shape *shape) { return 0; }
size_t basin_winograd4_scratch_count(const basin_winograd_shape *shape) { return 0; }
void basin_winograd4_transform_weights(const basin_winograd_shape *shape, const float *weight, float *transformed) {}
void basin_winograd4_forward(
    const basin_winograd_shape *shape, const float *input, int count, const float *transformed, const float *bias,
    const float *scale, const float *shift, int relu, float *output, float *scratch) {}

#endif
