/* qmatmul_bf16p.h — qmatmul's kernels for bf16p weights (core/bf16p.h; internal to moec).
 *
 * A bf16p matrix is rows of moec_bf16p_row_bytes(cols) bytes at W->data; qmatmul.c routes the type to
 * moec_qmat_kernels_bf16p, whose dot and dequant call the active instruction set's kernels below (the portable
 * and AVX2 ones in qmatmul_bf16p.c, the AVX-512 ones in qmatmul_bf16p_avx512.c).
 */
#ifndef MOEC_KERNELS_CPU_QMATMUL_BF16P_H
#define MOEC_KERNELS_CPU_QMATMUL_BF16P_H

#include "kernels/cpu/qmatmul_kernels.h"

extern const qmat_kernels moec_qmat_kernels_bf16p;

/* Row o of W (its header first). */
const uint8_t *moec_bf16p_row(const moec_qmat *W, int64_t o);
/* sums[t] += Σ over the row's escapes of X[t·ldx + col] · value, for t < T. */
void moec_bf16p_add_escapes(const uint8_t *row, const float *X, int64_t ldx, int64_t T, float *sums);
/* out[col] = value for each of the row's escapes. */
void moec_bf16p_put_escapes(const uint8_t *row, float *out);
/* moec_qmat_row for this type. */
void moec_bf16p_qmat_row(float *out, const moec_qmat *W, int64_t r);

void moec_bf16p_dot_avx512(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                           float *Y, int64_t ldy);
void moec_bf16p_dequant_avx512(const moec_qmat *W, int64_t o0, int64_t n, float *out);

#endif
