// What the kernels share: the AVX2/FMA attribute and the GEMM micro-kernel. x86-64 only.
#ifndef BASIN_MICROKERNEL_H
#define BASIN_MICROKERNEL_H

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))

/// Lanes of the micro-kernel's right side: 3 AVX vectors.
enum { LANES = 24 };

/// m[i][lane] = sum over c < C of u[c][i] v[c][lane], for i < 4 and lane < 24: four output rows
/// (`row` floats apart in m) of a product whose left side is packed [C][4] and right side [C][24].
AVX2 static inline void gemm_block(const float *u, const float *v, int C, float *m, size_t row) {
    // Twelve accumulators (ymm4-15), three vectors of V (ymm0-2) and one broadcast (ymm3): all
    // sixteen registers, which compilers fill by spilling an accumulator; hence assembly.
    float *m3 = m + 3 * row;
    long bytes = (long)(row * sizeof(float)), n = C;
    __asm__ volatile(
        "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
        "vmovaps %%ymm4, %%ymm5\n\t vmovaps %%ymm4, %%ymm6\n\t vmovaps %%ymm4, %%ymm7\n\t"
        "vmovaps %%ymm4, %%ymm8\n\t vmovaps %%ymm4, %%ymm9\n\t vmovaps %%ymm4, %%ymm10\n\t"
        "vmovaps %%ymm4, %%ymm11\n\t vmovaps %%ymm4, %%ymm12\n\t vmovaps %%ymm4, %%ymm13\n\t"
        "vmovaps %%ymm4, %%ymm14\n\t vmovaps %%ymm4, %%ymm15\n\t"
        "test %[n], %[n]\n\t"
        "jle 2f\n\t"
        "1:\n\t"
        "vmovups (%[v]), %%ymm0\n\t vmovups 32(%[v]), %%ymm1\n\t vmovups 64(%[v]), %%ymm2\n\t"
        "vbroadcastss (%[u]), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm4\n\t vfmadd231ps %%ymm1, %%ymm3, %%ymm5\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm6\n\t"
        "vbroadcastss 4(%[u]), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm7\n\t vfmadd231ps %%ymm1, %%ymm3, %%ymm8\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm9\n\t"
        "vbroadcastss 8(%[u]), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm10\n\t vfmadd231ps %%ymm1, %%ymm3, %%ymm11\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm12\n\t"
        "vbroadcastss 12(%[u]), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm13\n\t vfmadd231ps %%ymm1, %%ymm3, %%ymm14\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm15\n\t"
        "add $16, %[u]\n\t"
        "add $96, %[v]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "vmovups %%ymm4, (%[m])\n\t vmovups %%ymm5, 32(%[m])\n\t vmovups %%ymm6, 64(%[m])\n\t"
        "vmovups %%ymm7, (%[m], %[r], 1)\n\t vmovups %%ymm8, 32(%[m], %[r], 1)\n\t"
        "vmovups %%ymm9, 64(%[m], %[r], 1)\n\t"
        "vmovups %%ymm10, (%[m], %[r], 2)\n\t vmovups %%ymm11, 32(%[m], %[r], 2)\n\t"
        "vmovups %%ymm12, 64(%[m], %[r], 2)\n\t"
        "vmovups %%ymm13, (%[m3])\n\t vmovups %%ymm14, 32(%[m3])\n\t vmovups %%ymm15, 64(%[m3])\n\t"
        : [u] "+r"(u), [v] "+r"(v), [n] "+r"(n)
        : [m] "r"(m), [m3] "r"(m3), [r] "r"(bytes)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

/// One image's channels with their zero padding, as the kernels read them: padded[c][y][x] =
/// image[c][y - pad_h][x - pad_w] inside the height x width image, else 0, for `rows` rows of
/// `columns` floats a channel.
AVX2 static inline void pad_planes(
    const float *image, int channels, int height, int width, int pad_h, int pad_w, int rows, int columns,
    float *padded) {
    const int lo = pad_w < columns ? pad_w : columns, hi = pad_w + width < columns ? pad_w + width : columns;
    for (int c = 0; c < channels; c++) {
        for (int y = 0; y < rows; y++) {
            float *line = padded + ((size_t)c * rows + y) * columns;
            int iy = y - pad_h;
            if (iy < 0 || iy >= height) {
                memset(line, 0, sizeof(float) * columns);
                continue;
            }
            const float *src = image + ((size_t)c * height + iy) * width - pad_w;
            int x = 0;
            for (; x < lo; x++) line[x] = 0;
            for (; x + 8 <= hi; x += 8) _mm256_storeu_ps(line + x, _mm256_loadu_ps(src + x));
            for (; x < hi; x++) line[x] = src[x];
            for (; x < columns; x++) line[x] = 0;
        }
    }
}

#endif
