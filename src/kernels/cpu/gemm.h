/* gemm.h — fp32 matrix multiply, the one dense kernel behind every linear layer of moec (forward and backward).
 *
 * Row-major, BLAS semantics:  C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C
 *   op(A) = A stored [M,K] (lda >= K),   or with trans_a: A stored [K,M] (lda >= M)
 *   op(B) = B stored [K,N] (ldb >= N),   or with trans_b: B stored [N,K] (ldb >= K)
 * beta == 0 never reads C (it may hold NaN); alpha == 0 or K == 0 never reads A or B.
 *
 * The three uses of a linear layer y = x · Wᵀ (X [T,I], W [O,I]):
 *   forward      Y[T,O]  = X · Wᵀ           moec_gemm(0, 1, T, O, I, 1, X, I, W, I, 0, Y, O)
 *   input grad   dX[T,I] = dY · W           moec_gemm(0, 0, T, I, O, 1, dY, O, W, I, 0, dX, I)
 *   weight grad  dW[O,I] += dYᵀ · X         moec_gemm(1, 0, O, I, T, 1, dY, O, X, I, 1, dW, I)
 *
 * Multithreaded through moec_parallel_for (core/threads.h); single-threaded when the pool is not initialised.
 * The instruction set (AVX-512, AVX2+FMA, or portable C) is chosen at run time from the CPU. Results are
 * deterministic for a given shape, thread count and instruction set (each element of C is summed in a fixed
 * order), but differ in the last bits between instruction sets.
 */
#ifndef MOEC_KERNELS_CPU_GEMM_H
#define MOEC_KERNELS_CPU_GEMM_H

#include <stdint.h>
#include "core/error.h"

void moec_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The same contract in plain loops (accumulating in double): the test oracle and the reference for new kernels. */
void moec_gemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* For many products that share A (inference prefill: X times each block of a weight matrix, Y = X · W_blockᵀ):
 * A [M,K] (row-major, lda >= K) packed once into the micro-kernels' layout, moec_gemm_packed_a_floats(M, K)
 * floats at dst (multithreaded); then each moec_gemm_nt_packed_a computes C[M,N] = A · Bᵀ (B stored [N,K], ldb >= K;
 * alpha 1, beta 0) from it on the calling thread, without packing A again. Returns 0, or -1 if its scratch for B
 * could not be allocated (C untouched: use moec_gemm). The instruction set must not change in between. */
int64_t moec_gemm_packed_a_floats(int64_t M, int64_t K);
void moec_gemm_pack_a(int64_t M, int64_t K, const float *A, int64_t lda, float *dst);
int moec_gemm_nt_packed_a(int64_t M, int64_t N, int64_t K, const float *a_packed, const float *B, int64_t ldb,
                          float *C, int64_t ldc);

/* Which micro-kernel moec_gemm uses. AUTO picks the best the CPU supports; tests and benchmarks force the others
 * to cover every path on one machine. */
typedef enum {
    MOEC_GEMM_ISA_AUTO = 0,
    MOEC_GEMM_ISA_SCALAR,
    MOEC_GEMM_ISA_AVX2,
    MOEC_GEMM_ISA_AVX512,
} moec_gemm_isa;

/* Selects the micro-kernel for later calls (not while a moec_gemm is running). MOEC_ERR_ARG if the CPU lacks it. */
moec_status moec_gemm_set_isa(moec_gemm_isa isa);
/* The micro-kernel now in use: "avx512", "avx2" or "scalar". */
const char *moec_gemm_isa_name(void);

#endif
