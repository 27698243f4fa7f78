/* qmatmul_avx512.c — AVX-512 (F + BW + VL) kernels of qmatmul: the AVX2 kernels (qmatmul_avx2.c, which explains
 * the decoding and the tiling) with 16-wide vectors and 32 columns per step.
 *
 * The development machine (Zen 3) has no AVX-512: the kernels are a line-by-line widening of the AVX2 code, run by
 * the whole test suite in its avx512-emulated pass (portable intrinsics, see avx512.h) and natively wherever the
 * CPU has AVX-512. Untuned; a bf16 path through vdpbf16ps
 * (AVX512_BF16) would halve the decoding work but is left for a machine that can test it.
 */
#include "io/safetensors.h"
#include "kernels/cpu/avx512.h"
#include "kernels/cpu/qmatmul_kernels.h"

#define TARGET AVX512_TARGET
#define INLINE static inline __attribute__((always_inline))

static float elem_scalar(moec_qtype type, const void *row, int64_t i) { /* E4M3 / 256, as the vectors */
    switch (type) {
    case MOEC_QT_F32: return ((const float *)row)[i];
    case MOEC_QT_BF16: return moec_bf16_to_f32(((const uint16_t *)row)[i]);
    case MOEC_QT_F16: return moec_f16_to_f32(((const uint16_t *)row)[i]);
    default: {
        uint8_t b = ((const uint8_t *)row)[i];
        return moec_f16_to_f32((uint16_t)(((b & 0x80) << 8) | ((b & 0x7f) << 7)));
    }
    }
}

/* 16 E4M3 bytes -> 16 fp32 values / 256 (the half-precision trick of qmatmul_avx2.c). */
TARGET INLINE __m512 e4m3x16_to_ps_div256(const uint8_t *p) {
    __m256i h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p)), 8);
    return _mm512_cvtph_ps(_mm256_and_si256(_mm256_srai_epi16(h, 1), _mm256_set1_epi16((short)0xbfff)));
}

/* Elements [i, i + 32) of a weight row as two fp32 vectors (E4M3 divided by 256). */
TARGET INLINE void load32(moec_qtype type, const void *row, int64_t i, __m512 *lo, __m512 *hi) {
    if (type == MOEC_QT_F32) {
        const float *p = (const float *)row + i;
        *lo = _mm512_loadu_ps(p);
        *hi = _mm512_loadu_ps(p + 16);
    } else if (type == MOEC_QT_BF16) {
        const __m256i *p = (const __m256i *)((const uint16_t *)row + i);
        *lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p)), 16));
        *hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p + 1)), 16));
    } else if (type == MOEC_QT_F16) {
        const __m256i *p = (const __m256i *)((const uint16_t *)row + i);
        *lo = _mm512_cvtph_ps(_mm256_loadu_si256(p));
        *hi = _mm512_cvtph_ps(_mm256_loadu_si256(p + 1));
    } else {
        const uint8_t *p = (const uint8_t *)row + i;
        *lo = e4m3x16_to_ps_div256(p);
        *hi = e4m3x16_to_ps_div256(p + 16);
    }
}

static float row_factor(const moec_qmat *W, int64_t o) {
    return W->type == MOEC_QT_F8E4M3 ? W->scale[o] * 256.0f : 1.0f;
}

TARGET INLINE void dot_tile(moec_qtype type, int R, int NT, const moec_qmat *W, int64_t o0, const float *X,
                            int64_t ldx, float *Y, int64_t ldy) {
    const int64_t cols = W->cols;
    const size_t es = moec_qtype_size(type);
    const char *w = (const char *)W->data + (size_t)o0 * (size_t)cols * es;
    __m512 acc[QMAT_DECODE_ROWS][3][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < NT; t++) acc[r][t][0] = acc[r][t][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= cols; i += 32) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 lo, hi;
            load32(type, w + (size_t)r * (size_t)cols * es, i, &lo, &hi);
#pragma GCC unroll 3
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + i;
                if (NT == 1) {
                    acc[r][t][0] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(x), acc[r][t][0]);
                    acc[r][t][1] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), acc[r][t][1]);
                } else {
                    acc[r][t][0] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(x), acc[r][t][0]);
                    acc[r][t][0] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), acc[r][t][0]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const void *row = w + (size_t)r * (size_t)cols * es;
        float f = row_factor(W, o0 + r);
        for (int t = 0; t < NT; t++) {
            float s = _mm512_reduce_add_ps(NT == 1 ? _mm512_add_ps(acc[r][t][0], acc[r][t][1]) : acc[r][t][0]);
            for (int64_t k = i; k < cols; k++) s += X[t * ldx + k] * elem_scalar(type, row, k);
            Y[t * ldy + r] = s * f;
        }
    }
}

TARGET INLINE void dot_type(moec_qtype type, int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx,
                            int64_t T, float *Y, int64_t ldy) {
    for (int64_t t0 = 0; t0 < T;) {
        int64_t left = T - t0;
        int nt = left == 4 ? 2 : left >= 3 ? 3 : (int)left;
        const float *x = X + t0 * ldx;
        float *y = Y + t0 * ldy;
        if (nt == 1) dot_tile(type, R, 1, W, o0, x, ldx, y, ldy);
        else if (nt == 2) dot_tile(type, R, 2, W, o0, x, ldx, y, ldy);
        else dot_tile(type, R, 3, W, o0, x, ldx, y, ldy);
        t0 += nt;
    }
}

TARGET static void dot_f32(int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx, int64_t T, float *Y,
                           int64_t ldy) {
    if (R == QMAT_DECODE_ROWS) dot_type(MOEC_QT_F32, QMAT_DECODE_ROWS, W, o0, X, ldx, T, Y, ldy);
    else dot_type(MOEC_QT_F32, 1, W, o0, X, ldx, T, Y, ldy);
}
TARGET static void dot_bf16(int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx, int64_t T, float *Y,
                            int64_t ldy) {
    if (R == QMAT_DECODE_ROWS) dot_type(MOEC_QT_BF16, QMAT_DECODE_ROWS, W, o0, X, ldx, T, Y, ldy);
    else dot_type(MOEC_QT_BF16, 1, W, o0, X, ldx, T, Y, ldy);
}
TARGET static void dot_f16(int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx, int64_t T, float *Y,
                           int64_t ldy) {
    if (R == QMAT_DECODE_ROWS) dot_type(MOEC_QT_F16, QMAT_DECODE_ROWS, W, o0, X, ldx, T, Y, ldy);
    else dot_type(MOEC_QT_F16, 1, W, o0, X, ldx, T, Y, ldy);
}
TARGET static void dot_f8(int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx, int64_t T, float *Y,
                          int64_t ldy) {
    if (R == QMAT_DECODE_ROWS) dot_type(MOEC_QT_F8E4M3, QMAT_DECODE_ROWS, W, o0, X, ldx, T, Y, ldy);
    else dot_type(MOEC_QT_F8E4M3, 1, W, o0, X, ldx, T, Y, ldy);
}

/* Q8_0 (qmatmul_avx2.c's dot_row_q8 with 16-wide vectors): per block, two vectors of 16 weights converted once, a
 * fresh sum per input row, one FMA by the block's scale into the row's accumulator. */
TARGET INLINE void dot_row_q8(int NT, const uint8_t *row, int64_t nb, const float *X, int64_t ldx, float *sums) {
    __m512 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * MOEC_Q8_0_BLOCK_BYTES;
        const __m512 d = _mm512_set1_ps(_cvtsh_ss((unsigned short)(blk[0] | blk[1] << 8)));
        const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
        const __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const float *x = X + t * ldx + b * MOEC_Q8_0_BLOCK;
            const __m512 s = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(x)));
            acc[t] = _mm512_fmadd_ps(d, s, acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = _mm512_reduce_add_ps(acc[t]);
}

TARGET static void dot_q8(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                          float *Y, int64_t ldy) {
    const int64_t row_bytes = moec_qtype_row_bytes(MOEC_QT_Q8_0, W->cols), nb = W->cols / MOEC_Q8_0_BLOCK;
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)o * (size_t)row_bytes;
        for (int64_t t0 = 0; t0 < T;) {
            const int nt = T - t0 >= 4 ? 4 : (int)(T - t0);
            float sums[4];
            switch (nt) {
            case 1: dot_row_q8(1, row, nb, X + t0 * ldx, ldx, sums); break;
            case 2: dot_row_q8(2, row, nb, X + t0 * ldx, ldx, sums); break;
            case 3: dot_row_q8(3, row, nb, X + t0 * ldx, ldx, sums); break;
            default: dot_row_q8(4, row, nb, X + t0 * ldx, ldx, sums); break;
            }
            for (int t = 0; t < nt; t++) Y[(t0 + t) * ldy + o] = sums[t];
            t0 += nt;
        }
    }
}

TARGET static void dequant_q8(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    const int64_t row_bytes = moec_qtype_row_bytes(MOEC_QT_Q8_0, W->cols), nb = W->cols / MOEC_Q8_0_BLOCK;
    for (int64_t r = 0; r < n; r++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = (const uint8_t *)W->data + (size_t)(o0 + r) * (size_t)row_bytes +
                                 (size_t)b * MOEC_Q8_0_BLOCK_BYTES;
            const __m512 d = _mm512_set1_ps(_cvtsh_ss((unsigned short)(blk[0] | blk[1] << 8)));
            float *y = out + r * W->cols + b * MOEC_Q8_0_BLOCK;
            for (int k = 0; k < 2; k++) {
                const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2 + 16 * k)));
                _mm512_storeu_ps(y + 16 * k, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q)));
            }
        }
}

static void dot_avx512(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                       int64_t ldy) {
    if (W->type == MOEC_QT_Q8_0) {
        dot_q8(W, o0, o1, X, ldx, T, Y, ldy);
        return;
    }
    void (*fn)(int, const moec_qmat *, int64_t, const float *, int64_t, int64_t, float *, int64_t) =
        W->type == MOEC_QT_F32 ? dot_f32 : W->type == MOEC_QT_BF16 ? dot_bf16 : W->type == MOEC_QT_F16 ? dot_f16 : dot_f8;
    int64_t o = o0;
    for (; o + QMAT_DECODE_ROWS <= o1; o += QMAT_DECODE_ROWS) fn(QMAT_DECODE_ROWS, W, o, X, ldx, T, Y + o, ldy);
    for (; o < o1; o++) fn(1, W, o, X, ldx, T, Y + o, ldy);
}

TARGET INLINE void dequant_type(moec_qtype type, const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    const int64_t cols = W->cols;
    const size_t es = moec_qtype_size(type);
    for (int64_t r = 0; r < n; r++, out += cols) {
        const void *row = (const char *)W->data + (size_t)(o0 + r) * (size_t)cols * es;
        float f = row_factor(W, o0 + r);
        __m512 vf = _mm512_set1_ps(f);
        int64_t i = 0;
        for (; i + 32 <= cols; i += 32) {
            __m512 lo, hi;
            load32(type, row, i, &lo, &hi);
            if (type == MOEC_QT_F8E4M3) {
                lo = _mm512_mul_ps(lo, vf);
                hi = _mm512_mul_ps(hi, vf);
            }
            _mm512_storeu_ps(out + i, lo);
            _mm512_storeu_ps(out + i + 16, hi);
        }
        for (; i < cols; i++) out[i] = elem_scalar(type, row, i) * f;
    }
}

TARGET static void dequant_avx512(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    switch (W->type) {
    case MOEC_QT_Q8_0: dequant_q8(W, o0, n, out); break;
    case MOEC_QT_F32: dequant_type(MOEC_QT_F32, W, o0, n, out); break;
    case MOEC_QT_BF16: dequant_type(MOEC_QT_BF16, W, o0, n, out); break;
    case MOEC_QT_F16: dequant_type(MOEC_QT_F16, W, o0, n, out); break;
    default: dequant_type(MOEC_QT_F8E4M3, W, o0, n, out); break;
    }
}

const qmat_kernels moec_qmat_kernels_avx512 = {
    .isa = MOEC_GEMM_ISA_AVX512, .name = "avx512", .dot = dot_avx512, .dequant = dequant_avx512,
};
