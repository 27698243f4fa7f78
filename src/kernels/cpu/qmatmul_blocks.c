/* qmatmul_blocks.c — kernels for ggml's block types Q4_0 .. Q6_K (qmatmul.h), on every instruction set.
 *
 * These are the quantisations of the GGUF files users download (Q4_K_M is Q4_K with some Q6_K and Q5_K, ...),
 * read in place from the file's mapping: 2.6-6.6 bits per weight instead of fp32's 32. Every kernel computes
 * with exactly the weights ggml decodes (io/ggml_unpack.h: w = a·q + c, one rounding).
 *   AVX2 (also under AVX-512): per block, the codes are unpacked and each 8 weights are one widening, one
 *     conversion and one FMA away (row_sums_avx2, used for Q2_K and Q3_K); Q4_0/Q4_1/Q5_0/Q5_1 and Q4_K/Q5_K/
 *     Q6_K, the common ones, take their codes straight from the packed bytes with shifts and masks, without the
 *     intermediate code array, and their sub-block scales 8 at a time. The weights
 *     serve up to 4 input rows at once. This is the exact path (MOEC_QACT_F32); by default (MOEC_QACT_Q8) decode
 *     takes the int8-activation kernels further down instead (every block type). Measured (bench_infer, moe-1b
 *     quantised to Q4_K_M by llama.cpp, 2 threads, alternating with llama-bench): decode 30-35 tok/s exact, 55-70
 *     with int8 activations, against llama.cpp's 56-69 on the same file.
 *   Scalar: each row decoded into fp32 in this thread's scratch (io/ggml_quants.c), then the scalar fp32 dot.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/ggml_quants.h"
#include "io/ggml_unpack.h"
#include "kernels/cpu/qmatmul_kernels.h"

static const uint8_t *row_at(const moec_qmat *W, int64_t o) {
    return (const uint8_t *)W->data + (size_t)o * (size_t)moec_qtype_row_bytes(W->type, W->cols);
}

/* Out of memory for a row of scratch: block by block on the stack, the sum in plain C (slower, still correct). */
static void dot_by_block(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                         int64_t ldy) {
    const moec_ggml_type g = (moec_ggml_type)moec_qtype_ggml(W->type);
    const int64_t B = moec_qtype_block(W->type), bb = moec_qtype_row_bytes(W->type, B);
    float vals[256];
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < T; t++) {
            float sum = 0;
            for (int64_t b = 0; b < W->cols / B; b++) {
                moec_ggml_dequantize(g, row_at(W, o) + b * bb, B, vals);
                for (int64_t i = 0; i < B; i++) sum += X[t * ldx + b * B + i] * vals[i];
            }
            Y[t * ldy + o] = sum;
        }
}

/* Any instruction set: each row decoded into fp32 in scratch, then the active kernels' fp32 dot from L1. */
static void dot_decoded(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                        int64_t ldy) {
    const moec_ggml_type g = (moec_ggml_type)moec_qtype_ggml(W->type);
    float *row = moec_qmat_scratch(1, (size_t)W->cols);
    if (!row) {
        dot_by_block(W, o0, o1, X, ldx, T, Y, ldy);
        return;
    }
    const qmat_kernels *f32 = moec_qmat_kernels_active(); /* its f32 dot needs no scratch (qmatmul_kernels.h) */
    for (int64_t o = o0; o < o1; o++) {
        moec_ggml_dequantize(g, row_at(W, o), W->cols, row);
        const moec_qmat one = {.type = MOEC_QT_F32, .rows = 1, .cols = W->cols, .data = row};
        f32->dot(&one, 0, 1, X, ldx, T, Y + o, ldy);
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * AVX2 + FMA: each block unpacked (io/ggml_unpack.h: codes q, per-16 a and c; the unpacking loops are compiled
 * here, with AVX2), then per 8 values one widening of the codes, one conversion and one FMA give the weights
 * w = a·q + c exactly as decoded, which up to 4 input rows then use. No fp32 copy of the row is written. */

#define TARGET __attribute__((target("avx2,fma,f16c")))

TARGET static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The f16 at p, by F16C's one instruction (exact, as moec_f16_to_f32, which is a call: 8 % of the kernel's time). */
TARGET static inline __attribute__((always_inline)) float half_f16c(const uint8_t *p) {
    return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8));
}

/* 8 weights a·q + c from 8 codes q (int32 lanes), exactly as decoded. */
TARGET static inline __attribute__((always_inline)) __m256 weights8(__m256i q, float a, float c) {
    return _mm256_fmadd_ps(_mm256_set1_ps(a), _mm256_cvtepi32_ps(q), _mm256_set1_ps(c));
}

TARGET static inline __attribute__((always_inline)) __m256i bytes8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* hsum8 of the four accumulators of one input row. */
TARGET static inline __attribute__((always_inline)) float sum4(const __m256 *acc) {
    return hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

/* The NT (<= 4) sums of row `row` (nb blocks of B values) against X rows t < NT. */
TARGET static inline __attribute__((always_inline)) void row_sums_avx2(moec_ggml_type g, int NT, const uint8_t *row,
                                                                       int64_t nb, int64_t B, int64_t bb,
                                                                       const float *X, int64_t ldx, float *sums) {
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    uint8_t q[256] __attribute__((aligned(32)));
    float a[16], c[16];
    for (int64_t b = 0; b < nb; b++) {
        moec_ggml_unpack(g, row + b * bb, q, a, c);
        for (int64_t k = 0; k < B / 16; k++) {
            const __m256 w0 = weights8(bytes8(q + 16 * k), a[k], c[k]),
                         w1 = weights8(bytes8(q + 16 * k + 8), a[k], c[k]);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + b * B + 16 * k;
                acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc[t][1]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = hsum8(_mm256_add_ps(acc[t][0], acc[t][1]));
}

/* The 8 sub-block scales a = d·scale and offsets c = −dmin·min of a Q4_K / Q5_K super-block, 8 lanes at a time
 * (ggml_unpack.h's moec_unpack_q45_k in vector form: a fifth of the instructions of the scalar loop, which had
 * become ~40 % of the kernel's). Bytes 0-3 hold scales 0-3 (low 6 bits) and the top bits of scales 4-7, bytes
 * 4-7 mins 0-3 and the top bits of mins 4-7, bytes 8-11 the low nibbles of scales 4-7 and (high) mins 4-7. */
TARGET static inline __attribute__((always_inline)) void k4_scales(const uint8_t *blk, float *a, float *c) {
    const uint8_t *sp = blk + 4;
    uint32_t w[3];
    memcpy(w, sp, 12);
    const __m128i b0 = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)w[0])),
                  b1 = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)w[1])),
                  b2 = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)w[2]));
    const __m128i m63 = _mm_set1_epi32(63), m15 = _mm_set1_epi32(15);
    const __m128i sc_hi = _mm_or_si128(_mm_and_si128(b2, m15), _mm_slli_epi32(_mm_srli_epi32(b0, 6), 4));
    const __m128i mn_hi = _mm_or_si128(_mm_srli_epi32(b2, 4), _mm_slli_epi32(_mm_srli_epi32(b1, 6), 4));
    const __m256i sc = _mm256_set_m128i(sc_hi, _mm_and_si128(b0, m63)),
                  mn = _mm256_set_m128i(mn_hi, _mm_and_si128(b1, m63));
    const __m256 d = _mm256_set1_ps(half_f16c(blk)), dmin = _mm256_set1_ps(half_f16c(blk + 2));
    _mm256_storeu_ps(a, _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc)));
    _mm256_storeu_ps(c, _mm256_xor_ps(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(mn)), _mm256_set1_ps(-0.0f)));
}

/* Q4_K and Q5_K (qh_at >= 0: the fifth bits at that offset) without the code array: per 8 values one load and
 * widening of 8 bytes, a mask or shift for the nibble (and two more for the fifth bit), then weights8. */
TARGET static inline __attribute__((always_inline)) void row_sums_q45k(int NT, int five, const uint8_t *row, int64_t nb,
                                                                       const float *X, int64_t ldx, float *sums) {
    __m256 acc[4][4]; /* per input row 4 chains (2 with NT > 2: registers), enough to cover the FMA latency */
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm256_setzero_ps();
    const int alt = NT <= 2 ? 2 : 0;
    const __m256i low4 = _mm256_set1_epi32(15);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * (five ? 176 : 144), *qs = blk + (five ? 48 : 16), *qh = blk + 16;
        float a[8], c[8];
        k4_scales(blk, a, c);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i v = bytes8(qs + 32 * k + 8 * j);
                __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_srli_epi32(v, 4);
                if (five) {
                    const __m256i h = bytes8(qh + 8 * j);
                    lo = _mm256_or_si256(
                        lo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * k), _mm256_set1_epi32(1)), 4));
                    hi = _mm256_or_si256(
                        hi,
                        _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * k + 1), _mm256_set1_epi32(1)), 4));
                }
                const __m256 w0 = weights8(lo, a[2 * k], c[2 * k]), w1 = weights8(hi, a[2 * k + 1], c[2 * k + 1]);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const float *x = X + t * ldx + b * 256 + 64 * k + 8 * j;
                    const int e = (j & 1) * alt;
                    acc[t][e] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[t][e]);
                    acc[t][e + 1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 32), acc[t][e + 1]);
                }
            }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = sum4(acc[t]);
}

/* Q6_K without the code array: per 8 values the low 4 bits from ql (one of its nibbles), the top 2 from qh. */
TARGET static inline __attribute__((always_inline)) void row_sums_q6k(int NT, const uint8_t *row, int64_t nb,
                                                                      const float *X, int64_t ldx, float *sums) {
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm256_setzero_ps();
    const int wide = NT <= 2; /* 4 chains per input row, else 2 */
    const __m256i low4 = _mm256_set1_epi32(15), low2 = _mm256_set1_epi32(3);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * 210;
        float a6[16]; /* d · scale of the 16 groups of 16 values, as ggml computes them (exact) */
        const __m256 d = _mm256_set1_ps(half_f16c(blk + 208));
        _mm256_storeu_ps(
            a6,
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 192))))));
        _mm256_storeu_ps(
            a6 + 8,
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 200))))));
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++) { /* values 128h + 32k + 8j + (0..7), k = 0..3 */
                const __m256i l0 = bytes8(blk + 64 * h + 8 * j), l1 = bytes8(blk + 64 * h + 32 + 8 * j);
                const __m256i top = bytes8(blk + 128 + 32 * h + 8 * j);
                const __m256i q[4] = {
                    _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi32(_mm256_and_si256(top, low2), 4)),
                    _mm256_or_si256(_mm256_and_si256(l1, low4),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(top, 2), low2), 4)),
                    _mm256_or_si256(_mm256_srli_epi32(l0, 4),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(top, 4), low2), 4)),
                    _mm256_or_si256(_mm256_srli_epi32(l1, 4), _mm256_slli_epi32(_mm256_srli_epi32(top, 6), 4))};
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const float a = a6[8 * h + 2 * k + j / 2];
                    const __m256 w = weights8(q[k], a, -32.0f * a);
#pragma GCC unroll 4
                    for (int t = 0; t < NT; t++) {
                        const float *x = X + t * ldx + b * 256 + 128 * h + 32 * k + 8 * j;
                        const int e = wide ? k : k & 1;
                        acc[t][e] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x), acc[t][e]);
                    }
                }
            }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = sum4(acc[t]);
}

/* Q4_0 / Q4_1 (has_min) / Q5_0 / Q5_1 (five) without the code array: nibbles by mask and shift, the fifth bits
 * by a per-lane variable shift of the 32-bit word qh. */
TARGET static inline __attribute__((always_inline)) void
row_sums_q32(int NT, int has_min, int five, const uint8_t *row, int64_t nb, const float *X, int64_t ldx, float *sums) {
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm256_setzero_ps();
    const int alt = NT <= 2 ? 2 : 0;
    const int64_t bb = 18 + 2 * has_min + 4 * five;
    const __m256i low4 = _mm256_set1_epi32(15), one = _mm256_set1_epi32(1),
                  lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bb, *p = blk + (has_min ? 4 : 2);
        const float d = half_f16c(blk);
        const float c = has_min ? half_f16c(blk + 2) : (five ? -16.0f : -8.0f) * d;
        const __m256i qh = five ? _mm256_set1_epi32((int)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                                          (uint32_t)p[3] << 24))
                                : _mm256_setzero_si256();
        const uint8_t *qs = p + (five ? 4 : 0);
#pragma GCC unroll 2
        for (int j = 0; j < 2; j++) { /* values 8j.. (low nibbles) and 16 + 8j.. (high nibbles) */
            const __m256i v = bytes8(qs + 8 * j);
            __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_srli_epi32(v, 4);
            if (five) {
                const __m256i at = _mm256_add_epi32(lane, _mm256_set1_epi32(8 * j));
                lo = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(qh, at), one), 4));
                hi = _mm256_or_si256(
                    hi,
                    _mm256_slli_epi32(
                        _mm256_and_si256(_mm256_srlv_epi32(qh, _mm256_add_epi32(at, _mm256_set1_epi32(16))), one), 4));
            }
            const __m256 w0 = weights8(lo, d, c), w1 = weights8(hi, d, c);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + b * 32 + 8 * j;
                const int e = (int)(b & 1) * alt;
                acc[t][e] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[t][e]);
                acc[t][e + 1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 16), acc[t][e + 1]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = sum4(acc[t]);
}

/* The NT sums of one row: the code-array-free kernels for Q4_x/Q5_x and Q4_K/Q5_K/Q6_K, row_sums_avx2 (through
 * the code array) for Q2_K and Q3_K. */
TARGET static inline __attribute__((always_inline)) void row_sums_any(moec_ggml_type g, int NT, const uint8_t *row,
                                                                      int64_t nb, int64_t B, int64_t bb, const float *X,
                                                                      int64_t ldx, float *sums) {
    if (g == MOEC_GGML_Q4_0)
        row_sums_q32(NT, 0, 0, row, nb, X, ldx, sums);
    else if (g == MOEC_GGML_Q4_1)
        row_sums_q32(NT, 1, 0, row, nb, X, ldx, sums);
    else if (g == MOEC_GGML_Q5_0)
        row_sums_q32(NT, 0, 1, row, nb, X, ldx, sums);
    else if (g == MOEC_GGML_Q5_1)
        row_sums_q32(NT, 1, 1, row, nb, X, ldx, sums);
    else if (g == MOEC_GGML_Q4_K)
        row_sums_q45k(NT, 0, row, nb, X, ldx, sums);
    else if (g == MOEC_GGML_Q5_K)
        row_sums_q45k(NT, 1, row, nb, X, ldx, sums);
    else if (g == MOEC_GGML_Q6_K)
        row_sums_q6k(NT, row, nb, X, ldx, sums);
    else
        row_sums_avx2(g, NT, row, nb, B, bb, X, ldx, sums);
}

TARGET static void dot_avx2(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                            float *Y, int64_t ldy) {
    const moec_ggml_type g = (moec_ggml_type)moec_qtype_ggml(W->type);
    const int64_t B = moec_qtype_block(W->type), bb = moec_qtype_row_bytes(W->type, B), nb = W->cols / B;
    const size_t row_bytes = (size_t)moec_qtype_row_bytes(W->type, W->cols);
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)o * row_bytes;
        for (int64_t t0 = 0; t0 < T; t0 += 4) {
            const int nt = T - t0 >= 4 ? 4 : (int)(T - t0);
            float sums[4];
            switch (nt) { /* NT a constant in each: the accumulators stay in registers */
            case 1: row_sums_any(g, 1, row, nb, B, bb, X + t0 * ldx, ldx, sums); break;
            case 2: row_sums_any(g, 2, row, nb, B, bb, X + t0 * ldx, ldx, sums); break;
            case 3: row_sums_any(g, 3, row, nb, B, bb, X + t0 * ldx, ldx, sums); break;
            default: row_sums_any(g, 4, row, nb, B, bb, X + t0 * ldx, ldx, sums); break;
            }
            for (int t = 0; t < nt; t++) Y[(t0 + t) * ldy + o] = sums[t];
        }
    }
}

TARGET static void dequant_avx2(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    const moec_ggml_type g = (moec_ggml_type)moec_qtype_ggml(W->type);
    const int64_t B = moec_qtype_block(W->type), bb = moec_qtype_row_bytes(W->type, B), nb = W->cols / B;
    uint8_t q[256] __attribute__((aligned(32)));
    float a[16], c[16];
    for (int64_t r = 0; r < n; r++)
        for (int64_t b = 0; b < nb; b++) {
            moec_ggml_unpack(g, row_at(W, o0 + r) + b * bb, q, a, c);
            float *y = out + r * W->cols + b * B;
            for (int64_t k = 0; k < B / 8; k++)
                _mm256_storeu_ps(y + 8 * k, weights8(bytes8(q + 8 * k), a[k / 2], c[k / 2]));
        }
}

/* ---------------------------------------------------------------------------------------------------------------
 * AVX2, int8 activations (MOEC_QACT_Q8, qmatmul.h): the input rows are rounded once per call to int8 in blocks of
 * 32 (x ≈ dx·y, dx = max|x| / 127, y = round(x / dx)), and each block of weight codes meets them in integer dot
 * products: vpmaddubsw (unsigned codes × signed y, pairs summed in int16: at most 2·63·127, no saturation) and
 * vpmaddwd (pairs summed in int32, Q6_K with its signed per-16 scales), then one conversion and one FMA by
 * (weight scale)·dx per 32 values. The weights' offsets (Q4_1/Q5_1/Q4_K/Q5_K mins, the −8/−16/−32 of Q4_0/Q5_0/
 * Q6_K) multiply dx·Σy, summed once in the rounding. About a third of the exact kernels' instructions per weight.
 *
 * Prepared row layout (q8_row_floats floats per input row, 64-byte aligned): int8 y[cols], then fp32 dx[cols/32],
 * s32[cols/32] = dx·Σy per 32, s16[cols/16] = dx·Σy per 16, and the row's post factor (row_shift). A block whose
 * inputs hold an inf or NaN gets dx = s = NaN and y = 0, so that the products it feeds are NaN, as the exact path's
 * would be. */

/* Software prefetch this far ahead of the block being read: the hardware prefetchers stop at each 4 KB page and
 * restart only after a few misses (as in qmatmul_avx2.c, where removing it cost 25 % of the decode rate). One
 * prefetch per 64 bytes of the block (a block of fewer bytes: one per block). 512 bytes since the prefetches go to
 * L2 (qmatmul_kernels.h): on Zen 4, 6 alternating runs each (bench_infer, 2 threads), 1 KB -> 512 B took Q4_K_M
 * decode 601 -> 684 tok/s on ref-moe-small and 88.4 -> 91.5 on moe-1b, Q8_0 610 -> 622 and 78.5 -> 79.6 (on Zen 3,
 * with prefetches into L1, 1 KB had been measured; 512 B there is unmeasured). */
#ifndef Q8_PREFETCH_BYTES
#define Q8_PREFETCH_BYTES 512
#endif
TARGET static inline __attribute__((always_inline)) void prefetch_block(const uint8_t *blk, int64_t bytes) {
    for (int64_t off = 0; Q8_PREFETCH_BYTES && off < bytes; off += 64)
        __builtin_prefetch(blk + Q8_PREFETCH_BYTES + off, 0, QMAT_PREFETCH_LOCALITY);
}

static int64_t q8_row_floats(int64_t cols) { return (cols / 4 + cols / 16 + cols / 16 + 1 + 15) / 16 * 16; }

typedef struct {
    const int8_t *y;
    const float *dx, *s32, *s16;
    float post; /* the row's sums times this: 2^-sx undoes a power-of-two scaling of a tiny row (else 1) */
} q8_row;

static q8_row q8_row_at(const float *xs, int64_t cols, int64_t t) {
    const float *p = xs + t * q8_row_floats(cols);
    const float *dx = p + cols / 4;
    return (q8_row){(const int8_t *)p, dx, dx + cols / 32, dx + cols / 16, dx[cols / 16 + cols / 16]};
}

/* A row whose largest |x| is below 2^-60 is scaled by 2^sx (max|x| into [0.5, 1)) before rounding, so that neither
 * 127 / max|x| nor the products of scales underflow or overflow; the sums are multiplied by 2^-sx at the end. Both
 * scalings are exact powers of two (applied as two factors: 2^sx may exceed FLT_MAX). */
TARGET static int row_shift(const float *x, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
    float lanes[8], amax = 0;
    _mm256_storeu_ps(lanes, m);
    for (int k = 0; k < 8; k++) amax = fmaxf(amax, lanes[k]);
    if (!(amax > 0) || amax >= 0x1p-60f) return 0; /* (a NaN lane: fmaxf skips it; its block turns NaN anyway) */
    int e;
    (void)frexpf(amax, &e); /* amax in [2^(e-1), 2^e) */
    return -e;
}

TARGET static void q8_quantize(const float *X, int64_t ldx, int64_t T, int64_t cols, float *xs) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), zero = _mm256_setzero_ps();
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * ldx;
        float *p = xs + t * q8_row_floats(cols);
        int8_t *y = (int8_t *)p;
        float *dx = p + cols / 4, *s32 = dx + cols / 32, *s16 = dx + cols / 16;
        const int sx = row_shift(x, cols);
        const __m256 f1 = _mm256_set1_ps(ldexpf(1.0f, sx > 64 ? 64 : sx)),
                     f2 = _mm256_set1_ps(ldexpf(1.0f, sx > 64 ? sx - 64 : 0));
        dx[cols / 16 + cols / 16] = ldexpf(1.0f, -sx);
        for (int64_t b = 0; b < cols / 32; b++) {
            __m256 v[4], m = zero, bad = zero;
            for (int k = 0; k < 4; k++) {
                v[k] = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * b + 8 * k), f1), f2);
                m = _mm256_max_ps(m, _mm256_and_ps(v[k], abs_mask));
                const __m256 z = _mm256_mul_ps(v[k], zero); /* NaN exactly where x is inf or NaN */
                bad = _mm256_or_ps(bad, _mm256_cmp_ps(z, z, _CMP_UNORD_Q));
            }
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            const float amax = _mm_cvtss_f32(h);
            if (_mm256_movemask_ps(bad)) {
                memset(y + 32 * b, 0, 32);
                dx[b] = s32[b] = s16[2 * b] = s16[2 * b + 1] = NAN;
                continue;
            }
            const float d = amax / 127.0f;
            /* Below 2^-60, 127 / max|x| could overflow: x and max|x| are scaled by 2^64 first (exact, and the same
             * rounding as the unscaled product wherever that is representable). */
            const float up = amax < 0x1p-60f ? 0x1p64f : 1.0f;
            const __m256 inv = _mm256_set1_ps(amax > 0 ? 127.0f / (amax * up) : 0.0f);
            __m256i q[4];
            for (int k = 0; k < 4; k++) /* nearest, even ties */
                q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(up)), inv));
            const __m256i s_lo = _mm256_add_epi32(q[0], q[1]), s_hi = _mm256_add_epi32(q[2], q[3]);
            int32_t lanes[16];
            _mm256_storeu_si256((__m256i *)lanes, s_lo);
            _mm256_storeu_si256((__m256i *)(lanes + 8), s_hi);
            int32_t sum_lo = 0, sum_hi = 0;
            for (int k = 0; k < 8; k++) sum_lo += lanes[k], sum_hi += lanes[8 + k];
            const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(y + 32 * b), _mm256_permutevar8x32_epi32(packed, order));
            dx[b] = d;
            s32[b] = d * (float)(sum_lo + sum_hi);
            s16[2 * b] = d * (float)sum_lo;
            s16[2 * b + 1] = d * (float)sum_hi;
        }
    }
}

/* Σ over 32 values of code · y, 8 int32 lanes: q unsigned (< 64), y signed. */
TARGET static inline __attribute__((always_inline)) __m256 q8_dot32(__m256i q, const int8_t *y) {
    const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)y));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* 32 bytes of 4-bit codes: the low nibbles (lo) and the high ones (hi). */
TARGET static inline __attribute__((always_inline)) void nibbles32(const uint8_t *p, __m256i *lo, __m256i *hi) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)p), m = _mm256_set1_epi8(15);
    *lo = _mm256_and_si256(v, m);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
}

/* Bit s of each of 32 bytes, moved to bit `to` (shifts within 16-bit lanes; the mask drops what crossed a byte). */
TARGET static inline __attribute__((always_inline)) __m256i bit_to(__m256i v, int s, int to) {
    const __m256i one = _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8(1));
    return _mm256_slli_epi16(one, to);
}

/* Q4_K / Q5_K (five): NT sums of one row. Per super-block: scales a = d·sc and offsets c = −dmin·min (k4_scales),
 * a·dx per 32 values into fa, the offsets against s32 in one FMA. */
TARGET static inline __attribute__((always_inline)) void q8_q45k(int NT, int five, const uint8_t *row, int64_t nb,
                                                                 const q8_row *X, float *sums) {
    __m256 acc[4][4], off[4];
    const int alt = NT <= 2 ? 2 : 0;
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = off[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * (five ? 176 : 144), *qs = blk + (five ? 48 : 16);
        prefetch_block(blk, five ? 176 : 144);
        float a[8], c[8], fa[4][8];
        k4_scales(blk, a, c);
        const __m256 va = _mm256_loadu_ps(a), vc = _mm256_loadu_ps(c);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            _mm256_storeu_ps(fa[t], _mm256_mul_ps(va, _mm256_loadu_ps(X[t].dx + 8 * b)));
            off[t] = _mm256_fmadd_ps(vc, _mm256_loadu_ps(X[t].s32 + 8 * b), off[t]);
        }
        const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) { /* values 64k .. 64k + 31 (low nibbles), 64k + 32 .. 64k + 63 (high) */
            __m256i lo, hi;
            nibbles32(qs + 32 * k, &lo, &hi);
            if (five) {
                lo = _mm256_or_si256(lo, bit_to(qh, 2 * k, 4));
                hi = _mm256_or_si256(hi, bit_to(qh, 2 * k + 1, 4));
            }
            const int e = (k & 1) * alt;
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *y = X[t].y + 256 * b + 64 * k;
                acc[t][e] = _mm256_fmadd_ps(q8_dot32(lo, y), _mm256_set1_ps(fa[t][2 * k]), acc[t][e]);
                acc[t][e + 1] = _mm256_fmadd_ps(q8_dot32(hi, y + 32), _mm256_set1_ps(fa[t][2 * k + 1]), acc[t][e + 1]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = sum4(acc[t]) + hsum8(off[t]);
}

/* The int16 scales of 32-value chunk j for vpmaddwd, from the 16 int8 group scales held in both 128-bit lanes of
 * sc: group 2j's in the low lane (the chunk's first 16 values), 2j + 1's in the high one — each byte shuffled into
 * the top of an int16 and shifted down with its sign. */
TARGET static inline __attribute__((always_inline)) __m256i chunk_scales(__m256i sc, int j) {
    const char a = (char)(2 * j), b = (char)(2 * j + 1);
    const __m256i pick = _mm256_setr_epi8(-1, a, -1, a, -1, a, -1, a, -1, a, -1, a, -1, a, -1, a, -1, b, -1, b, -1, b,
                                          -1, b, -1, b, -1, b, -1, b, -1, b);
    return _mm256_srai_epi16(_mm256_shuffle_epi8(sc, pick), 8);
}

/* Q2_K, Q3_K and Q6_K: 16 groups of 16 values, each with a small integer scale. Per 32 values (one activation
 * block, chunk j = 4h + k) the codes are
 *   Q6_K  a nibble of ql (bytes 64h + 32(k & 1) .., low nibbles for k < 2) | bits 2k, 2k + 1 of qh[32h ..] << 4;
 *   Q2_K  bits 2k, 2k + 1 of qs[32h ..];            Q3_K  the same | bit j of hmask << 2;
 * the chunk's two group scales (Q6_K: int8; Q2_K: the low nibbles; Q3_K: the 6-bit scales − 32) apply by vpmaddwd,
 * then d·dx. The offsets, c = offd·ob per group (Q6_K −32·d·scale, Q3_K −4·d·scale, Q2_K −dmin·min), against s16. */
TARGET static inline __attribute__((always_inline)) void q8_k16(int NT, moec_ggml_type g, const uint8_t *row,
                                                                int64_t nb, const q8_row *X, float *sums) {
    const int six = g == MOEC_GGML_Q6_K, three = g == MOEC_GGML_Q3_K;
    const int64_t bb = six ? 210 : three ? 110 : 84;
    __m256 acc[4][4], off[4];
    const int wide = NT <= 2;
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = off[t] = _mm256_setzero_ps();
    const __m128i m15 = _mm_set1_epi8(15);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bb;
        prefetch_block(blk, bb);
        /* the 16 group scales as int8 (sc) and the offsets' integer factors (ob), 16 lanes at once (a scalar loop
         * was most of the Q3_K kernel's time) */
        __m128i sc, ob;
        float d, offd;
        if (six) {
            sc = ob = _mm_loadu_si128((const __m128i *)(blk + 192));
            d = half_f16c(blk + 208);
            offd = -32.0f * d;
        } else if (three) { /* low 4 bits: sp[0..7] low nibbles, then high nibbles; top 2: bits 2(g/4) of sp[8 + g % 4] */
            const uint8_t *sp = blk + 96;
            uint32_t top;
            memcpy(&top, sp + 8, 4);
            const __m128i lo8 = _mm_loadl_epi64((const __m128i *)sp);
            const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(lo8, m15), _mm_and_si128(_mm_srli_epi16(lo8, 4), m15));
            const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)top), _mm_setr_epi32(0, 2, 4, 6)),
                                             _mm_set1_epi8(3));
            sc = ob = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
            d = half_f16c(blk + 108);
            offd = -4.0f * d;
        } else { /* low nibbles scales, high nibbles mins */
            const __m128i v = _mm_loadu_si128((const __m128i *)blk);
            sc = _mm_and_si128(v, m15);
            ob = _mm_and_si128(_mm_srli_epi16(v, 4), m15);
            d = half_f16c(blk + 80);
            offd = -half_f16c(blk + 82);
        }
        const __m256 od = _mm256_set1_ps(offd);
        const __m256 c_lo = _mm256_mul_ps(od, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(ob))),
                     c_hi = _mm256_mul_ps(od, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(ob, 8))));
        const __m256i scb = _mm256_broadcastsi128_si256(sc);
        float fa[4][8];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            _mm256_storeu_ps(fa[t], _mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps(X[t].dx + 8 * b)));
            off[t] = _mm256_fmadd_ps(c_lo, _mm256_loadu_ps(X[t].s16 + 16 * b), off[t]);
            off[t] = _mm256_fmadd_ps(c_hi, _mm256_loadu_ps(X[t].s16 + 16 * b + 8), off[t]);
        }
        const __m256i hm = three ? _mm256_loadu_si256((const __m256i *)blk) : _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* Q6_K: qh bytes and the four nibble vectors of ql; Q2_K / Q3_K: qs bytes */
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(blk + (six ? 128 : three ? 32 : 16) + 32 * h));
            __m256i nib[4];
            if (six) {
                nibbles32(blk + 64 * h, &nib[0], &nib[2]);
                nibbles32(blk + 64 * h + 32, &nib[1], &nib[3]);
            }
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const int j = 4 * h + k;
                const __m256i two = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), _mm256_set1_epi8(3));
                __m256i q = six ? _mm256_or_si256(nib[k], _mm256_slli_epi16(two, 4)) : two;
                if (three) q = _mm256_or_si256(q, bit_to(hm, j, 2));
                const __m256i scv = chunk_scales(scb, j);
                const int e = wide ? k : k & 1;
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const __m256i p = _mm256_maddubs_epi16(
                        q, _mm256_loadu_si256((const __m256i *)(X[t].y + 256 * b + 32 * j)));
                    acc[t][e] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, scv)),
                                                _mm256_set1_ps(fa[t][j]), acc[t][e]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = sum4(acc[t]) + hsum8(off[t]);
}

/* Q4_0 / Q4_1 (has_min) / Q5_0 / Q5_1 (five): one 32-value block per activation block; the fifth bits of the
 * 32-bit qh spread to bytes (byte j of the vector takes byte j / 8 of qh, masked by bit j % 8). The offsets,
 * one per block (the min, or −8·d / −16·d), against s32 in a scalar sum. */
TARGET static inline __attribute__((always_inline)) void q8_q32(int NT, int has_min, int five, const uint8_t *row,
                                                                int64_t nb, const q8_row *X, float *sums) {
    __m256 acc[4][2];
    float off[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    const int64_t bb = 18 + 2 * has_min + 4 * five;
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bb, *p = blk + (has_min ? 4 : 2);
        prefetch_block(blk, 1);
        const float d = half_f16c(blk);
        const float c = has_min ? half_f16c(blk + 2) : (five ? -16.0f : -8.0f) * d;
        const __m128i v = _mm_loadu_si128((const __m128i *)(p + (five ? 4 : 0))), m = _mm_set1_epi8(15);
        __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
        if (five) {
            uint32_t qh;
            memcpy(&qh, p, 4);
            const __m256i set = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread), bits);
            q = _mm256_or_si256(q, _mm256_and_si256(_mm256_cmpeq_epi8(set, bits), _mm256_set1_epi8(16)));
        }
        const int e = (int)(b & 1);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            acc[t][e] = _mm256_fmadd_ps(q8_dot32(q, X[t].y + 32 * b), _mm256_set1_ps(d * X[t].dx[b]), acc[t][e]);
            off[t] += c * X[t].s32[b];
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = hsum8(_mm256_add_ps(acc[t][0], acc[t][1])) + off[t];
}

TARGET static inline __attribute__((always_inline)) void q8_rows(moec_ggml_type g, int NT, const uint8_t *row,
                                                                 int64_t cols, const q8_row *X, float *sums) {
    switch (g) {
    case MOEC_GGML_Q4_0: q8_q32(NT, 0, 0, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q4_1: q8_q32(NT, 1, 0, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q5_0: q8_q32(NT, 0, 1, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q5_1: q8_q32(NT, 1, 1, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q4_K: q8_q45k(NT, 0, row, cols / 256, X, sums); break;
    case MOEC_GGML_Q5_K: q8_q45k(NT, 1, row, cols / 256, X, sums); break;
    /* the type a constant in each instantiation, as NT is */
    case MOEC_GGML_Q2_K: q8_k16(NT, MOEC_GGML_Q2_K, row, cols / 256, X, sums); break;
    case MOEC_GGML_Q3_K: q8_k16(NT, MOEC_GGML_Q3_K, row, cols / 256, X, sums); break;
    default: q8_k16(NT, MOEC_GGML_Q6_K, row, cols / 256, X, sums); break;
    }
}

TARGET static void q8_dot(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T, float *Y,
                          int64_t ldy) {
    const moec_ggml_type g = (moec_ggml_type)moec_qtype_ggml(W->type);
    const size_t row_bytes = (size_t)moec_qtype_row_bytes(W->type, W->cols); /* a call: once, not per row */
    q8_row X4[4];
    for (int t = 0; t < 4 && t < T; t++) X4[t] = q8_row_at(xs, W->cols, t);
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)o * row_bytes;
        for (int64_t t0 = 0; t0 < T; t0 += 4) {
            const int nt = T - t0 >= 4 ? 4 : (int)(T - t0);
            q8_row Xn[4];
            const q8_row *X = X4;
            if (t0 > 0) {
                for (int t = 0; t < nt; t++) Xn[t] = q8_row_at(xs, W->cols, t0 + t);
                X = Xn;
            }
            float sums[4];
            switch (nt) { /* NT a constant in each: the accumulators stay in registers */
            case 1: q8_rows(g, 1, row, W->cols, X, sums); break;
            case 2: q8_rows(g, 2, row, W->cols, X, sums); break;
            case 3: q8_rows(g, 3, row, W->cols, X, sums); break;
            default: q8_rows(g, 4, row, W->cols, X, sums); break;
            }
            for (int t = 0; t < nt; t++) Y[(t0 + t) * ldy + o] = sums[t] * X[t].post;
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Dispatch: the fused AVX2 kernels whenever the active instruction set is AVX2 or AVX-512 (which includes it). */

static int use_avx2(void) { return moec_qmat_kernels_active()->isa != MOEC_GEMM_ISA_SCALAR; }

/* The int8-activation kernels apply: asked for (moec_qmat_set_activations) and an AVX2 CPU. */
static int use_q8(const moec_qmat *W) { return moec_qmat_activations() == MOEC_QACT_Q8 && use_avx2(); }

static int64_t prep_floats_blocks(const moec_qmat *W, int64_t T) {
    return use_q8(W) ? T * q8_row_floats(W->cols) : 0;
}

static void prepare_blocks(const moec_qmat *W, const float *X, int64_t ldx, int64_t T, float *xs) {
    q8_quantize(X, ldx, T, W->cols, xs);
}

static void dot_blocks(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                       int64_t ldy) {
    float *xs = use_q8(W) ? moec_qmat_scratch(1, (size_t)(T * q8_row_floats(W->cols))) : NULL;
    if (xs) {
        q8_quantize(X, ldx, T, W->cols, xs);
        q8_dot(W, o0, o1, xs, T, Y, ldy);
    } else if (use_avx2()) { /* exact (or out of memory for the int8 copy) */
        dot_avx2(W, o0, o1, X, ldx, T, Y, ldy);
    } else {
        dot_decoded(W, o0, o1, X, ldx, T, Y, ldy);
    }
}

static void dequant_blocks(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    if (use_avx2()) {
        dequant_avx2(W, o0, n, out);
        return;
    }
    const moec_ggml_type g = (moec_ggml_type)moec_qtype_ggml(W->type);
    for (int64_t r = 0; r < n; r++) moec_ggml_dequantize(g, row_at(W, o0 + r), W->cols, out + r * W->cols);
}

const qmat_kernels moec_qmat_kernels_blocks = {
    .isa = MOEC_GEMM_ISA_AUTO,
    .name = "blocks",
    .dot = dot_blocks,
    .prep_floats = prep_floats_blocks,
    .prepare = prepare_blocks,
    .dot_prepared = q8_dot,
    .dequant = dequant_blocks,
};
