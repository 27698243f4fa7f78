/* gemm_kernels.h — micro-kernels of gemm.c that live in files of their own (internal to moec). */
#ifndef MOEC_KERNELS_CPU_GEMM_KERNELS_H
#define MOEC_KERNELS_CPU_GEMM_KERNELS_H

#include <stdint.h>

/* AVX-512 (gemm_avx512.c): one 14 × 32 tile of C = alpha · Σ_k a[k][0..14)ᵀ b[k][0..32) + beta · C, from packed A
 * ([kc][14]) and packed B ([kc][32], 64-byte aligned); beta == 0 stores without reading C. */
#define AVX512_MR 14
#define AVX512_NR 32
void moec_gemm_kernel_avx512_14x32(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                   float beta);

#endif
