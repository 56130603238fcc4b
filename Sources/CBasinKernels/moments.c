// Per-channel batch statistics for BatchNorm in train mode: the mean and the biased variance
// (around the mean, a second pass) of a channel's planes, summed in double with AVX2.
#include "CBasinKernels.h"

#if defined(__x86_64__)

#include "microkernel.h"

/// Sum over the planes of p[i] (center NULL) or (p[i] - center)^2, in 16 double lanes.
AVX2 static double plane_sums(const float *x, int planes, size_t stride, size_t count, const double *center) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    double tail = 0;
    const __m256d c = _mm256_set1_pd(center ? *center : 0);
    for (int b = 0; b < planes; b++) {
        const float *p = x + b * stride;
        size_t i = 0;
        for (; i + 16 <= count; i += 16) {
            __m256 lo = _mm256_loadu_ps(p + i), hi = _mm256_loadu_ps(p + i + 8);
            __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(lo)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1));
            __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(hi)), d3 = _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1));
            if (center) {
                d0 = _mm256_sub_pd(d0, c), d1 = _mm256_sub_pd(d1, c), d2 = _mm256_sub_pd(d2, c), d3 = _mm256_sub_pd(d3, c);
                a0 = _mm256_fmadd_pd(d0, d0, a0), a1 = _mm256_fmadd_pd(d1, d1, a1);
                a2 = _mm256_fmadd_pd(d2, d2, a2), a3 = _mm256_fmadd_pd(d3, d3, a3);
            } else {
                a0 = _mm256_add_pd(a0, d0), a1 = _mm256_add_pd(a1, d1), a2 = _mm256_add_pd(a2, d2), a3 = _mm256_add_pd(a3, d3);
            }
        }
        for (; i < count; i++) {
            double d = (double)p[i] - (center ? *center : 0);
            tail += center ? d * d : d;
        }
    }
    __m256d s = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
    double lanes[4];
    _mm256_storeu_pd(lanes, s);
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + tail;
}

AVX2 void basin_channel_moments(
    const float *x, int planes, size_t stride, size_t count, double *mean, double *variance) {
    double n = (double)planes * (double)count;
    *mean = plane_sums(x, planes, stride, count, NULL) / n;
    *variance = plane_sums(x, planes, stride, count, mean) / n;
}

#else

void basin_channel_moments(
    const float *x, int planes, size_t stride, size_t count, double *mean, double *variance) {}

#endif
