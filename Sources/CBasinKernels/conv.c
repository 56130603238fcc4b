// Direct convolution over NCHW images for the layers Winograd does not take (strided, 1x1, few
// input channels): the output positions of all images, 24 at a time, are unfolded into a
// column block cols[r][24] (r = (c, i, j), the weight's order), multiplied by the weights packed
// [K/4][r][4] with the shared 4x24 micro-kernel, and written through the same bias/BatchNorm/
// ReLU epilogue as the Winograd kernel. Each image is padded with its zeros once into scratch,
// so unfolding tests no bounds; 8 output columns of one row are unfolded by one vector load
// (stride 1) or one load pair and a deinterleave (stride 2).
#pragma clang fp contract(off)

#include "CBasinKernels.h"

#if defined(__x86_64__)

#include <string.h>

#include "microkernel.h"

static int patch(const basin_conv_shape *s) { return s->channels * s->kernel_h * s->kernel_w; }

/// Padded image rows and row length (16 floats of slack for the stride-2 loads).
static int padded_rows(const basin_conv_shape *s) { return (s->out_height - 1) * s->stride_h + s->kernel_h; }
static int padded_width(const basin_conv_shape *s) { return (s->out_width - 1) * s->stride_w + s->kernel_w + 16; }

int basin_conv_accepts(const basin_conv_shape *s) {
    return s->channels > 0 && s->out_channels > 0 && s->out_channels % 4 == 0 && s->kernel_h > 0
        && s->kernel_w > 0 && s->stride_h > 0 && (s->stride_w == 1 || s->stride_w == 2) && s->pad_h >= 0
        && s->pad_w >= 0 && s->out_width > 0 && s->out_width % 8 == 0 && s->out_height > 0
        && s->out_height == (s->height + 2 * s->pad_h - s->kernel_h) / s->stride_h + 1
        && s->out_width == (s->width + 2 * s->pad_w - s->kernel_w) / s->stride_w + 1;
}

size_t basin_conv_weights_count(const basin_conv_shape *s) { return (size_t)s->out_channels * patch(s); }

size_t basin_conv_scratch_count(const basin_conv_shape *s) {
    // A padded image, one column block, the micro-kernel's 4 x 24 product.
    return (size_t)s->channels * padded_rows(s) * padded_width(s) + (size_t)patch(s) * LANES + 4 * LANES;
}

void basin_conv_pack_weights(const basin_conv_shape *s, const float *weight, float *packed) {
    const int K = s->out_channels, R = patch(s);
    for (int k = 0; k < K; k++)
        for (int r = 0; r < R; r++) packed[((size_t)(k / 4) * R + r) * 4 + k % 4] = weight[(size_t)k * R + r];
}

/// padded[c][y][x] = input[c][y - pad_h][x - pad_w] inside the image, else 0.
AVX2 static void pad_image(const basin_conv_shape *s, const float *image, float *padded) {
    pad_planes(image, s->channels, s->height, s->width, s->pad_h, s->pad_w, padded_rows(s), padded_width(s), padded);
}

/// Unfolds 8 output positions of one row (output row y, columns x0 ..< x0 + 8) into lanes
/// `column` of every row r of the block.
AVX2 static void unfold8(const basin_conv_shape *s, const float *padded, int y, int x0, float *column) {
    const int rows = padded_rows(s), width = padded_width(s);
    float *out = column;
    for (int c = 0; c < s->channels; c++) {
        for (int i = 0; i < s->kernel_h; i++) {
            const float *line = padded + ((size_t)c * rows + y * s->stride_h + i) * width + x0 * s->stride_w;
            for (int j = 0; j < s->kernel_w; j++, out += LANES) {
                if (s->stride_w == 1) {
                    _mm256_storeu_ps(out, _mm256_loadu_ps(line + j));
                } else {
                    __m256 a = _mm256_loadu_ps(line + j), b = _mm256_loadu_ps(line + j + 8);
                    __m256 even = _mm256_shuffle_ps(a, b, 0x88);  // (0 2 8 10 | 4 6 12 14)
                    _mm256_storeu_ps(out, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8)));
                }
            }
        }
    }
}

AVX2 void basin_conv_forward(
    const basin_conv_shape *s, const float *input, int count, const float *packed, const float *bias,
    const float *scale, const float *shift, int relu, float *output, float *scratch) {
    const int K = s->out_channels, R = patch(s), oh = s->out_height, ow = s->out_width;
    const size_t spatial = (size_t)oh * ow, image_size = (size_t)s->channels * s->height * s->width;
    float *padded = scratch, *block = padded + (size_t)s->channels * padded_rows(s) * padded_width(s);
    float *product = block + (size_t)R * LANES;
    const size_t groups = (size_t)count * oh * (ow / 8);
    size_t held = (size_t)-1, image = 0;
    int y = 0, x = 0;
    for (size_t first = 0; first < groups; first += 3) {
        // Up to three groups of 8 positions, each within one row of one image.
        int n = groups - first < 3 ? (int)(groups - first) : 3;
        size_t where[3];
        for (int g = 0; g < 3; g++) {
            if (g < n) {
                if (held != image) {
                    pad_image(s, input + image * image_size, padded);
                    held = image;
                }
                unfold8(s, padded, y, x, block + 8 * g);
                where[g] = image * K * spatial + (size_t)y * ow + x;
                x += 8;
                if (x == ow) {
                    x = 0;
                    if (++y == oh) y = 0, image++;
                }
            } else {
                // Lanes no position fills: zeros, multiplied and never stored.
                for (int r = 0; r < R; r++) _mm256_storeu_ps(block + (size_t)r * LANES + 8 * g, _mm256_setzero_ps());
            }
        }
        for (int k0 = 0; k0 < K; k0 += 4) {
            gemm_block(packed + (size_t)k0 * R, block, R, product, LANES);
            for (int i = 0; i < 4; i++) {
                int k = k0 + i;
                __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
                for (int g = 0; g < n; g++) {
                    __m256 v = _mm256_loadu_ps(product + i * LANES + 8 * g);
                    if (bias) v = _mm256_add_ps(v, b);
                    if (scale) v = _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(scale[k])), _mm256_set1_ps(shift[k]));
                    if (relu) v = _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ), v);
                    _mm256_storeu_ps(output + where[g] + k * spatial, v);
                }
            }
        }
    }
}

#else

int basin_conv_accepts(const basin_conv_shape *shape) { return 0; }
size_t basin_conv_weights_count(const basin_conv_shape *shape) { return 0; }
size_t basin_conv_scratch_count(const basin_conv_shape *shape) { return 0; }
void basin_conv_pack_weights(const basin_conv_shape *shape, const float *weight, float *packed) {}
void basin_conv_forward(
    const basin_conv_shape *shape, const float *input, int count, const float *packed, const float *bias,
    const float *scale, const float *shift, int relu, float *output, float *scratch) {}

#endif
