#ifndef CBASINKERNELS_H
#define CBASINKERNELS_H

#include <stddef.h>

/// Shapes of a stride-1 3x3 convolution over NCHW images, for the Winograd F(2x2, 3x3) kernels.
typedef struct {
    int channels;      ///< input channels C
    int height;        ///< input rows H
    int width;         ///< input columns W
    int out_channels;  ///< output channels K, a multiple of 4
    int pad_h;         ///< zero rows above and below
    int pad_w;         ///< zero columns left and right
    int out_height;    ///< H + 2 pad_h - 2
    int out_width;     ///< W + 2 pad_w - 2; (out_width + 1) / 2 must be a multiple of 4
} basin_winograd_shape;

/// Whether this processor runs the kernels (AVX2 and FMA); where it does not, callers use their own path.
int basin_winograd_supported(void);

/// Whether the kernels take this shape (K a multiple of 4, tile columns a multiple of 4).
int basin_winograd_accepts(const basin_winograd_shape *shape);

/// Floats of the transformed weights, 16 C K.
size_t basin_winograd_weights_count(const basin_winograd_shape *shape);

/// Floats of scratch that basin_winograd_forward needs (independent of the image count).
size_t basin_winograd_scratch_count(const basin_winograd_shape *shape);

/// U = G g G^T of every filter of weight [K][C][3][3], packed for the forward pass.
void basin_winograd_transform_weights(
    const basin_winograd_shape *shape, const float *weight, float *transformed);

/// The convolution of `count` NCHW images: output[n][k] = epilogue(conv + bias[k]), where the
/// epilogue is y * scale[k] + shift[k] (when scale is not NULL, multiply then add, unfused) and
/// then y < 0 ? 0 : y (when relu is not 0, which passes NaN on). bias may be NULL. output must
/// not alias input or scratch.
void basin_winograd_forward(
    const basin_winograd_shape *shape, const float *input, int count, const float *transformed,
    const float *bias, const float *scale, const float *shift, int relu, float *output, float *scratch);

/// Winograd F(4x4, 3x3) on the same shapes, 8 images to the vector (any image size; K a multiple of 4).
int basin_winograd4_accepts(const basin_winograd_shape *shape);
size_t basin_winograd4_weights_count(const basin_winograd_shape *shape);
size_t basin_winograd4_scratch_count(const basin_winograd_shape *shape);
void basin_winograd4_transform_weights(const basin_winograd_shape *shape, const float *weight, float *transformed);
/// As basin_winograd_forward; each output within a few 1e-7 of the direct sum relative to its terms.
void basin_winograd4_forward(
    const basin_winograd_shape *shape, const float *input, int count, const float *transformed,
    const float *bias, const float *scale, const float *shift, int relu, float *output, float *scratch);

/// The mean and biased variance (around the mean, a second pass) of `planes` planes of `count`
/// floats each, `stride` floats apart: one channel of a batch. Summed in double. AVX2/FMA
/// (call only where basin_winograd_supported).
void basin_channel_moments(const float *x, int planes, size_t stride, size_t count, double *mean, double *variance);

/// Shapes of a convolution over NCHW images (groups 1, dilation 1, zero padding) for the direct kernel.
typedef struct {
    int channels, height, width;         ///< input C, H, W
    int out_channels;                    ///< K, a multiple of 4
    int kernel_h, kernel_w;
    int stride_h, stride_w;              ///< stride_w 1 or 2
    int pad_h, pad_w;
    int out_height, out_width;           ///< out_width a multiple of 8
} basin_conv_shape;

/// Whether the direct kernel takes this shape (and the processor runs it: basin_winograd_supported).
int basin_conv_accepts(const basin_conv_shape *shape);

/// Floats of the packed weights, K C kh kw.
size_t basin_conv_weights_count(const basin_conv_shape *shape);

/// Floats of scratch that basin_conv_forward needs (independent of the image count).
size_t basin_conv_scratch_count(const basin_conv_shape *shape);

/// weight [K][C][kh][kw] packed for basin_conv_forward.
void basin_conv_pack_weights(const basin_conv_shape *shape, const float *weight, float *packed);

/// The convolution of `count` NCHW images as unfolded columns times the weights, each output
/// the sum over (c, i, j) in that order by FMA, then + bias[k] and the epilogue of
/// basin_winograd_forward. output must not alias input or scratch.
void basin_conv_forward(
    const basin_conv_shape *shape, const float *input, int count, const float *packed, const float *bias,
    const float *scale, const float *shift, int relu, float *output, float *scratch);

#endif
