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
 *     takes the int8-activation kernels of qmatmul_q8.h instead (every block type), compiled here for AVX2 and in
 *     qmatmul_blocks_avx512.c for AVX-512 VL + VNNI. Measured (bench_infer, moe-1b quantised to Q4_K_M by
 *     llama.cpp, 2 threads, alternating with llama-bench, Zen 3): decode 30-35 tok/s exact, 55-70 with int8
 *     activations, against llama.cpp's 56-69 on the same file.
 *   Scalar: each row decoded into fp32 in this thread's scratch (io/ggml_quants.c), then the scalar fp32 dot.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
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

/* The int8-activation kernels (q8_dot) for AVX2, and the helpers shared with the exact path below (hsum8, sum4,
 * half_f16c, k4_scales); qmatmul_blocks_avx512.c compiles the same kernels for AVX-512 VL + VNNI. */
#define Q8_TARGET TARGET
#define Q8_VNNI 0
#include "kernels/cpu/qmatmul_q8.h"

/* 8 weights a·q + c from 8 codes q (int32 lanes), exactly as decoded. */
TARGET static inline __attribute__((always_inline)) __m256 weights8(__m256i q, float a, float c) {
    return _mm256_fmadd_ps(_mm256_set1_ps(a), _mm256_cvtepi32_ps(q), _mm256_set1_ps(c));
}

TARGET static inline __attribute__((always_inline)) __m256i bytes8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
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
 * The int8 rounding of the input rows (qmatmul_q8.h describes the layout), once per call, for both instantiations
 * of the kernels. */

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

/* ---------------------------------------------------------------------------------------------------------------
 * Dispatch: the fused AVX2 kernels whenever the active instruction set is AVX2 or AVX-512 (which includes it); the
 * int8-activation ones compiled for AVX-512 VL + VNNI when the AVX-512 kernels are active and the CPU has VNNI. */

static int use_avx2(void) { return moec_qmat_kernels_active()->isa != MOEC_GEMM_ISA_SCALAR; }

/* The int8-activation kernels apply: asked for (moec_qmat_set_activations) and an AVX2 CPU. */
static int use_q8(const moec_qmat *W) { return moec_qmat_activations() == MOEC_QACT_Q8 && use_avx2(); }

static int64_t prep_floats_blocks(const moec_qmat *W, int64_t T) {
    return use_q8(W) ? T * q8_row_floats(W->cols) : 0;
}

static void q8_dot_any(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T, float *Y,
                       int64_t ldy) {
    if (moec_qmat_kernels_active()->isa == MOEC_GEMM_ISA_AVX512 && moec_cpu_has_avx512_vnni())
        moec_q8_dot_avx512_vnni(W, o0, o1, xs, T, Y, ldy);
    else
        q8_dot(W, o0, o1, xs, T, Y, ldy);
}

static void prepare_blocks(const moec_qmat *W, const float *X, int64_t ldx, int64_t T, float *xs) {
    q8_quantize(X, ldx, T, W->cols, xs);
}

static void dot_blocks(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                       int64_t ldy) {
    float *xs = use_q8(W) ? moec_qmat_scratch(1, (size_t)(T * q8_row_floats(W->cols))) : NULL;
    if (xs) {
        q8_quantize(X, ldx, T, W->cols, xs);
        q8_dot_any(W, o0, o1, xs, T, Y, ldy);
    } else if (W->type == MOEC_QT_Q8_0) { /* exact: the instruction set's own Q8_0 kernel */
        moec_qmat_kernels_active()->dot(W, o0, o1, X, ldx, T, Y, ldy);
    } else if (use_avx2()) { /* exact (or out of memory for the int8 copy) */
        dot_avx2(W, o0, o1, X, ldx, T, Y, ldy);
    } else {
        dot_decoded(W, o0, o1, X, ldx, T, Y, ldy);
    }
}

static void dequant_blocks(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    if (W->type == MOEC_QT_Q8_0) { /* (here only with int8 activations on: qmatmul.c's kernels_for) */
        moec_qmat_kernels_active()->dequant(W, o0, n, out);
        return;
    }
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
    .dot_prepared = q8_dot_any,
    .dequant = dequant_blocks,
};
