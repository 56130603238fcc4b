// Winograd F(2x2, 3x3) (Lavin & Gray 2016) for stride-1 3x3 convolutions over NCHW images, with
// AVX2 and FMA chosen per function (target attributes), so the rest of the build stays baseline
// x86-64 and a processor without them never runs this code (basin_winograd_supported).
//
// The images' 2x2 output tiles are taken in blocks of B tiles (a multiple of 24, sized so that a
// block's transformed input and product stay in L2), each image padded with its zeros once into
// scratch so that no tile tests bounds. Per block:
//   V[xi][b][c][24] = (B^T d B)[xi] of tile 24 b + lane, input channel c   (input transform)
//   M[xi][k][B]     = sum_c U[xi][k][c] V[xi][c][tile]                      (16 GEMMs, FMA)
//   output          = epilogue(A^T M A + bias)                              (output transform)
// U is packed [xi][K/4][C][4], so the GEMM's micro-kernel keeps 4 output channels x 24 tiles in
// 12 registers and reads per input channel 3 vectors of V and 4 broadcasts of U.
// The transforms only add and subtract; the epilogue multiplies then adds, unfused, as the
// separate BatchNorm layer does, so fused and layer-by-layer inference agree bit for bit.
#pragma clang fp contract(off)

#include "CBasinKernels.h"

#if defined(__x86_64__)

#include <string.h>

#include "microkernel.h"

int basin_winograd_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int tile_columns(const basin_winograd_shape *s) { return (s->out_width + 1) / 2; }
static int tile_rows(const basin_winograd_shape *s) { return (s->out_height + 1) / 2; }

int basin_winograd_accepts(const basin_winograd_shape *s) {
    return s->channels > 0 && s->out_channels > 0 && s->out_channels % 4 == 0 && s->out_height >= 2
        && s->out_width >= 2 && tile_columns(s) % 4 == 0 && s->out_height == s->height + 2 * s->pad_h - 2
        && s->out_width == s->width + 2 * s->pad_w - 2 && s->pad_h >= 0 && s->pad_w >= 0;
}

/// Tiles per block: a multiple of 24 whose V and M (16 (C + K) floats a tile) fill about 192 KB.
static int block_tiles(const basin_winograd_shape *s) {
    int blocks = 3072 / (LANES * (s->channels + s->out_channels));
    return LANES * (blocks < 1 ? 1 : blocks);
}

/// One cache line beyond a plane, so the 16 planes' streams do not share cache sets.
static size_t v_plane(const basin_winograd_shape *s) { return (size_t)block_tiles(s) * s->channels + 16; }
static size_t m_plane(const basin_winograd_shape *s) { return (size_t)block_tiles(s) * s->out_channels + 16; }

/// Row length of an image padded for the tiles: 2 tw + 2 columns and 16 floats of slack for the
/// last tiles' vector loads.
static int padded_width(const basin_winograd_shape *s) { return 2 * tile_columns(s) + 2 + 16; }
static size_t padded_count(const basin_winograd_shape *s) {
    // Even, so the offsets that follow it in scratch are 8-byte aligned.
    return ((size_t)s->channels * (2 * tile_rows(s) + 2) * padded_width(s) + 1) & ~(size_t)1;
}

size_t basin_winograd_weights_count(const basin_winograd_shape *s) {
    return (size_t)16 * s->channels * s->out_channels;
}

size_t basin_winograd_scratch_count(const basin_winograd_shape *s) {
    // V, M, a padded image, and per group of 4 tiles its output offset and a flag.
    return 16 * v_plane(s) + 16 * m_plane(s) + padded_count(s)
        + (size_t)block_tiles(s) / 4 * (sizeof(size_t) / sizeof(float) + 1) + 16;
}

void basin_winograd_transform_weights(const basin_winograd_shape *s, const float *weight, float *u) {
    const int C = s->channels, K = s->out_channels;
    const size_t plane = (size_t)C * K;
    for (int k = 0; k < K; k++) {
        for (int c = 0; c < C; c++) {
            const float *g = weight + ((size_t)k * C + c) * 9;
            float *out = u + (size_t)(k / 4) * C * 4 + (size_t)c * 4 + k % 4;
            // G g, row by row (4 x 3), each row then times G^T; G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]].
            float rows[4][3] = {
                {g[0], g[1], g[2]},
                {0.5f * (g[0] + g[3] + g[6]), 0.5f * (g[1] + g[4] + g[7]), 0.5f * (g[2] + g[5] + g[8])},
                {0.5f * (g[0] - g[3] + g[6]), 0.5f * (g[1] - g[4] + g[7]), 0.5f * (g[2] - g[5] + g[8])},
                {g[6], g[7], g[8]},
            };
            for (int i = 0; i < 4; i++) {
                float a = rows[i][0], b = rows[i][1], d = rows[i][2];
                out[(4 * i + 0) * plane] = a;
                out[(4 * i + 1) * plane] = 0.5f * (a + b + d);
                out[(4 * i + 2) * plane] = 0.5f * (a - b + d);
                out[(4 * i + 3) * plane] = d;
            }
        }
    }
}

/// B^T d B of four horizontally adjacent tiles of one channel; rows[i] points at input column
/// 2 tx0 - pad_w of the tile row's input row i (10 readable floats). v[xi] gets 4 tiles' values.
AVX2 static inline void input_tiles(const float *const rows[4], float *v, size_t plane) {
    __m128 d[4][4];
    for (int i = 0; i < 4; i++) {
        const float *p = rows[i];
        __m128 a = _mm_loadu_ps(p), b = _mm_loadu_ps(p + 4), c = _mm_loadu_ps(p + 2), e = _mm_loadu_ps(p + 6);
        d[i][0] = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // columns 0, 2, 4, 6: each tile's first
        d[i][1] = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        d[i][2] = _mm_shuffle_ps(c, e, _MM_SHUFFLE(2, 0, 2, 0));
        d[i][3] = _mm_shuffle_ps(c, e, _MM_SHUFFLE(3, 1, 3, 1));
    }
    for (int j = 0; j < 4; j++) {
        // Down the columns: B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]].
        __m128 t0 = _mm_sub_ps(d[0][j], d[2][j]), t1 = _mm_add_ps(d[1][j], d[2][j]);
        __m128 t2 = _mm_sub_ps(d[2][j], d[1][j]), t3 = _mm_sub_ps(d[1][j], d[3][j]);
        d[0][j] = t0, d[1][j] = t1, d[2][j] = t2, d[3][j] = t3;
    }
    for (int i = 0; i < 4; i++) {
        float *out = v + (size_t)(4 * i) * plane;
        _mm_storeu_ps(out, _mm_sub_ps(d[i][0], d[i][2]));
        _mm_storeu_ps(out + plane, _mm_add_ps(d[i][1], d[i][2]));
        _mm_storeu_ps(out + 2 * plane, _mm_sub_ps(d[i][2], d[i][1]));
        _mm_storeu_ps(out + 3 * plane, _mm_sub_ps(d[i][1], d[i][3]));
    }
}

/// Even and odd columns of 16 floats: (p0, p2, ..., p14) and (p1, p3, ..., p15).
AVX2 static inline void deinterleave(const float *p, __m256 *even, __m256 *odd) {
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    // In-lane shuffles give (0 2 8 10 | 4 6 12 14); the 64-bit permute puts them in order.
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

/// `input_tiles` for eight adjacent tiles (18 readable floats a row; v 8 lanes a plane).
AVX2 static inline void input_tiles8(const float *const rows[4], float *v, size_t plane) {
    __m256 d[4][4];
    for (int i = 0; i < 4; i++) {
        deinterleave(rows[i], &d[i][0], &d[i][1]);
        deinterleave(rows[i] + 2, &d[i][2], &d[i][3]);
    }
    for (int j = 0; j < 4; j++) {
        __m256 t0 = _mm256_sub_ps(d[0][j], d[2][j]), t1 = _mm256_add_ps(d[1][j], d[2][j]);
        __m256 t2 = _mm256_sub_ps(d[2][j], d[1][j]), t3 = _mm256_sub_ps(d[1][j], d[3][j]);
        d[0][j] = t0, d[1][j] = t1, d[2][j] = t2, d[3][j] = t3;
    }
    for (int i = 0; i < 4; i++) {
        float *out = v + (size_t)(4 * i) * plane;
        _mm256_storeu_ps(out, _mm256_sub_ps(d[i][0], d[i][2]));
        _mm256_storeu_ps(out + plane, _mm256_add_ps(d[i][1], d[i][2]));
        _mm256_storeu_ps(out + 2 * plane, _mm256_sub_ps(d[i][2], d[i][1]));
        _mm256_storeu_ps(out + 3 * plane, _mm256_sub_ps(d[i][1], d[i][3]));
    }
}

/// Image `image` with its zero padding, as the tiles read it: padded[c][y][x] = input[c][y - pad_h][x - pad_w]
/// inside the image, else 0, for y < 2 th + 2.
AVX2 static void pad_image(const basin_winograd_shape *s, const float *input, size_t image, float *padded) {
    pad_planes(input + image * s->channels * (size_t)s->height * s->width, s->channels, s->height, s->width,
               s->pad_h, s->pad_w, 2 * tile_rows(s) + 2, padded_width(s), padded);
}

/// The input transform of tiles [first, first + count) (count a multiple of 4) into V, walked by
/// runs of tiles within one tile row; each image is padded once (`padded`, which remembers
/// which image it holds in *held) so every tile reads without bounds checks.
AVX2 static void transform_input(
    const basin_winograd_shape *s, const float *input, size_t first, int count, float *v, float *padded,
    size_t *held) {
    const int C = s->channels, tw = tile_columns(s), th = tile_rows(s), width = padded_width(s);
    const size_t plane = v_plane(s), rows = 2 * (size_t)th + 2;
    size_t image = first / ((size_t)tw * th);
    int r = (int)(first % ((size_t)tw * th)), ty = r / tw, tx = r % tw;
    for (int t = 0; t < count;) {
        int run = tw - tx < count - t ? tw - tx : count - t;
        if (*held != image) {
            pad_image(s, input, image, padded);
            *held = image;
        }
        for (int c = 0; c < C; c++) {
            const float *top = padded + ((size_t)c * rows + 2 * ty) * width + 2 * tx;
            for (int g = 0; g < run;) {
                const float *rows4[4] = {top + 2 * g, top + width + 2 * g, top + 2 * width + 2 * g, top + 3 * width + 2 * g};
                int lane = t + g;
                float *out = v + (size_t)(lane / LANES) * C * LANES + (size_t)c * LANES + lane % LANES;
                // Eight tiles where they lie in one 24-lane column of V, else four.
                if (lane % 8 == 0 && g + 8 <= run) {
                    input_tiles8(rows4, out, plane);
                    g += 8;
                } else {
                    input_tiles(rows4, out, plane);
                    g += 4;
                }
            }
        }
        t += run;
        tx += run;
        if (tx == tw) {
            tx = 0;
            if (++ty == th) ty = 0, image++;
        }
    }
}

AVX2 static void multiply(const basin_winograd_shape *s, const float *u, const float *v, int count, float *m) {
    const int C = s->channels, K = s->out_channels, B = block_tiles(s);
    const size_t vp = v_plane(s), mp = m_plane(s), up = (size_t)C * K;
    const int columns = (count + LANES - 1) / LANES;
    for (int xi = 0; xi < 16; xi++) {
        for (int b = 0; b < columns; b++) {
            const float *vb = v + xi * vp + (size_t)b * C * LANES;
            for (int k = 0; k < K; k += 4) {
                gemm_block(u + xi * up + (size_t)k * C, vb, C, m + xi * mp + (size_t)k * B + b * LANES, B);
            }
        }
    }
}

/// A^T m A (A^T = [[1,1,1,0],[0,1,-1,-1]]) for 8 tiles of one output channel, plus bias, then
/// the epilogue: the tiles' 2 x 2 outputs y00, y01 (top row), y10, y11.
AVX2 static inline void output_tiles(
    const float *m, size_t plane, __m256 bias, __m256 scale, __m256 shift, int affine, int relu, __m256 y[4]) {
    __m256 v[16];
    for (int xi = 0; xi < 16; xi++) v[xi] = _mm256_loadu_ps(m + xi * plane);
    __m256 s0 = _mm256_add_ps(_mm256_add_ps(v[0], v[4]), v[8]), s1 = _mm256_add_ps(_mm256_add_ps(v[1], v[5]), v[9]);
    __m256 s2 = _mm256_add_ps(_mm256_add_ps(v[2], v[6]), v[10]);
    __m256 s3 = _mm256_add_ps(_mm256_add_ps(v[3], v[7]), v[11]);
    __m256 u0 = _mm256_sub_ps(_mm256_sub_ps(v[4], v[8]), v[12]), u1 = _mm256_sub_ps(_mm256_sub_ps(v[5], v[9]), v[13]);
    __m256 u2 = _mm256_sub_ps(_mm256_sub_ps(v[6], v[10]), v[14]);
    __m256 u3 = _mm256_sub_ps(_mm256_sub_ps(v[7], v[11]), v[15]);
    y[0] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), s2), bias);
    y[1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s1, s2), s3), bias);
    y[2] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(u0, u1), u2), bias);
    y[3] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(u1, u2), u3), bias);
    for (int i = 0; i < 4; i++) {
        if (affine) y[i] = _mm256_add_ps(_mm256_mul_ps(y[i], scale), shift);
        // y < 0 ? 0 : y, which keeps NaN (the comparison is false for it).
        if (relu) y[i] = _mm256_andnot_ps(_mm256_cmp_ps(y[i], _mm256_setzero_ps(), _CMP_LT_OQ), y[i]);
    }
}

/// Where each group of 4 tiles of the block writes its outputs: the offset of its top-left output
/// in image 0's channel 0 terms (image K oh ow + row ow + column), and whether all 8 columns and
/// both rows lie inside the image (else its stores are clipped).
AVX2 static void output_places(const basin_winograd_shape *s, size_t first, int count, size_t *offsets, char *whole) {
    const int K = s->out_channels, oh = s->out_height, ow = s->out_width, tw = tile_columns(s), th = tile_rows(s);
    size_t image = first / ((size_t)tw * th);
    int r = (int)(first % ((size_t)tw * th)), ty = r / tw, tx = r % tw;
    for (int g = 0; g < count / 4; g++) {
        int row = 2 * ty, column = 2 * tx;
        offsets[g] = image * K * (size_t)oh * ow + (size_t)row * ow + column;
        whole[g] = column + 8 <= ow && row + 1 < oh;
        tx += 4;
        if (tx == tw) {
            tx = 0;
            if (++ty == th) ty = 0, image++;
        }
    }
}

AVX2 static void transform_output(
    const basin_winograd_shape *s, const float *m, int count, const size_t *offsets, const char *whole,
    const float *bias, const float *scale, const float *shift, int relu, float *output) {
    const int K = s->out_channels, oh = s->out_height, ow = s->out_width, B = block_tiles(s);
    const size_t plane = m_plane(s), spatial = (size_t)oh * ow;
    for (int k = 0; k < K; k++) {
        __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
        __m256 a = _mm256_set1_ps(scale ? scale[k] : 1.0f), h = _mm256_set1_ps(scale ? shift[k] : 0.0f);
        const float *mk = m + (size_t)k * B;
        float *channel = output + k * spatial;
        // Eight tiles at a time (a last group of four computes four lanes it never stores: M's
        // rows run to the end of their 24-lane column), stored as two groups of four.
        for (int t = 0; t < count; t += 8) {
            __m256 y[4];
            output_tiles(mk + t, plane, b, a, h, scale != NULL, relu, y);
            for (int half = 0; half < 2 && t + 4 * half < count; half++) {
                int g = t / 4 + half;
                __m128 y0, y1, y2, y3;
                if (half == 0) {
                    y0 = _mm256_castps256_ps128(y[0]), y1 = _mm256_castps256_ps128(y[1]);
                    y2 = _mm256_castps256_ps128(y[2]), y3 = _mm256_castps256_ps128(y[3]);
                } else {
                    y0 = _mm256_extractf128_ps(y[0], 1), y1 = _mm256_extractf128_ps(y[1], 1);
                    y2 = _mm256_extractf128_ps(y[2], 1), y3 = _mm256_extractf128_ps(y[3], 1);
                }
                float *top = channel + offsets[g];
                __m128 t0 = _mm_unpacklo_ps(y0, y1), t1 = _mm_unpackhi_ps(y0, y1);
                __m128 b0 = _mm_unpacklo_ps(y2, y3), b1 = _mm_unpackhi_ps(y2, y3);
                if (whole[g]) {
                    _mm_storeu_ps(top, t0);
                    _mm_storeu_ps(top + 4, t1);
                    _mm_storeu_ps(top + ow, b0);
                    _mm_storeu_ps(top + ow + 4, b1);
                } else {
                    float line[2][8];
                    _mm_storeu_ps(line[0], t0);
                    _mm_storeu_ps(line[0] + 4, t1);
                    _mm_storeu_ps(line[1], b0);
                    _mm_storeu_ps(line[1] + 4, b1);
                    size_t place = offsets[g] % spatial;
                    int row = (int)(place / ow), column = (int)(place % ow);
                    int width = ow - column < 8 ? ow - column : 8;
                    for (int x = 0; x < width; x++) {
                        top[x] = line[0][x];
                        if (row + 1 < oh) top[ow + x] = line[1][x];
                    }
                }
            }
        }
    }
}

AVX2 void basin_winograd_forward(
    const basin_winograd_shape *s, const float *input, int count, const float *u, const float *bias,
    const float *scale, const float *shift, int relu, float *output, float *scratch) {
    const int B = block_tiles(s);
    float *v = scratch, *m = v + 16 * v_plane(s), *padded = m + 16 * m_plane(s);
    size_t *offsets = (size_t *)(padded + padded_count(s)), held = (size_t)-1;
    char *whole = (char *)(offsets + B / 4);
    const size_t total = (size_t)count * tile_columns(s) * tile_rows(s);
    for (size_t first = 0; first < total; first += B) {
        int n = total - first < (size_t)B ? (int)(total - first) : B;
        transform_input(s, input, first, n, v, padded, &held);
        if (n % LANES != 0) {
            // The lanes past the last tile of a partial 24-lane column are multiplied and never
            // read; zeros keep them finite and ordinary (no subnormals in the FMAs).
            const int C = s->channels, lane = n % LANES;
            float *column = v + (size_t)(n / LANES) * C * LANES;
            for (int xi = 0; xi < 16; xi++)
                for (int c = 0; c < C; c++)
                    memset(column + xi * v_plane(s) + (size_t)c * LANES + lane, 0, sizeof(float) * (LANES - lane));
        }
        multiply(s, u, v, n, m);
        output_places(s, first, n, offsets, whole);
        transform_output(s, m, n, offsets, whole, bias, scale, shift, relu, output);
    }
}

#else

// Other processors run the callers' own path: nothing here is ever called.
int basin_winograd_supported(void) { return 0; }
int basin_winograd_accepts(const basin_winograd_shape *shape) { return 0; }
size_t basin_winograd_weights_count(const basin_winograd_shape *shape) { return 0; }
size_t basin_winograd_scratch_count(const basin_winograd_shape *shape) { return 0; }
void basin_winograd_transform_weights(const basin_winograd_shape *shape, const float *weight, float *transformed) {}
void basin_winograd_forward(
    const basin_winograd_shape *shape, const float *input, int count, const float *transformed, const float *bias,
    const float *scale, const float *shift, int relu, float *output, float *scratch) {}

#endif
