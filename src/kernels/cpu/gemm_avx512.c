/* gemm_avx512.c — gemm.c's AVX-512 micro-kernel (see gemm.c for the packed layouts and the tile contract). In a
 * file of its own so that the avx512-emulated test build can compile it against portable intrinsics (avx512.h). */
#include "kernels/cpu/avx512.h"
#include "kernels/cpu/gemm_kernels.h"

/* AVX-512: 14 rows × 2 zmm. 28 accumulators + 2 B vectors + 1 broadcast = 31 of the 32 registers; per k step,
 * 28 FMAs against 2 loads + 14 broadcasts, enough to keep both FMA pipes busy. */
AVX512_TARGET void moec_gemm_kernel_avx512_14x32(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                                float alpha, float beta) {
    __m512 acc[AVX512_MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < AVX512_MR; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        __builtin_prefetch(c + i * ldc, 1, 3); /* C is not in cache at large M·N; its rows arrive during the k loop */
        __builtin_prefetch(c + i * ldc + AVX512_NR - 1, 1, 3);
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
        for (int i = 0; i < AVX512_MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += AVX512_MR;
        b += AVX512_NR;
    }
    __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0) {
#pragma GCC unroll 14
        for (int i = 0; i < AVX512_MR; i++) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
        }
    } else {
        __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
        for (int i = 0; i < AVX512_MR; i++) {
            float *ci = c + i * ldc;
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), _mm512_mul_ps(va, acc[i][0])));
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), _mm512_mul_ps(va, acc[i][1])));
        }
    }
}
