/* qmatmul_bf16p.c — qmatmul's kernels for bf16p weights (lossless 12-bit bf16, core/bf16p.h): the portable and
 * AVX2 ones, and the table qmatmul.c uses for this type on every instruction set (AVX-512:
 * qmatmul_bf16p_avx512.c).
 *
 * Decoding a block of 128 weights: its 64 code bytes give 128 codes (AND 0x0F; shift right 4 and AND), then per
 * 64 (AVX2: 32) weights one vpshufb turns the codes into bf16 high bytes through the row's 16-byte table, punpcklbw /
 * punpckhbw interleave them with the B plane's low bytes into bf16 words, and each 32-bit lane's two bf16 become
 * two fp32 by a shift left 16 and a mask. The storage order (bf16p.h) makes each resulting vector 8 (AVX2) or 16
 * (AVX-512) consecutive columns, so X is used as it is. That is 6 (AVX2) or 3.5 (AVX-512) vector operations per
 * 32 weights besides the FMAs; bf16 needs 2. Each row's escapes (weights the codes cannot express, stored exactly
 * in its header) are added to its sums afterwards: the weights are exactly bf16's, only the order of the additions
 * differs from a bf16 dot product.
 */
#include <immintrin.h>

#include "core/bf16p.h"
#include "io/safetensors.h"
#include "kernels/cpu/qmatmul_bf16p.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

const uint8_t *moec_bf16p_row(const moec_qmat *W, int64_t o) {
    return (const uint8_t *)W->data + (size_t)o * (size_t)moec_bf16p_row_bytes(W->cols);
}

void moec_bf16p_add_escapes(const uint8_t *row, const float *X, int64_t ldx, int64_t T, float *sums) {
    const int n = row[16] | row[17] << 8;
    for (int k = 0; k < n; k++) {
        const uint8_t *e = row + 18 + 4 * k;
        const int64_t col = e[0] | e[1] << 8;
        const float w = moec_bf16_to_f32((uint16_t)(e[2] | e[3] << 8));
        for (int64_t t = 0; t < T; t++) sums[t] += X[t * ldx + col] * w;
    }
}

void moec_bf16p_put_escapes(const uint8_t *row, float *out) {
    const int n = row[16] | row[17] << 8;
    for (int k = 0; k < n; k++) {
        const uint8_t *e = row + 18 + 4 * k;
        out[e[0] | e[1] << 8] = moec_bf16_to_f32((uint16_t)(e[2] | e[3] << 8));
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Portable */

/* The weights of the group of 64 columns at g as fp32, in column order (escapes read as 0). */
static void group_f32(const uint8_t *row, int64_t cols, int64_t g, float *out) {
    for (int j = 0; j < MOEC_BF16P_GROUP; j++) out[j] = moec_bf16_to_f32(moec_bf16p_coded(row, cols, g + j));
}

/* The row's weights as fp32, in column order (escapes included). */
static void row_f32_scalar(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t g = 0; g < cols; g += MOEC_BF16P_GROUP) group_f32(row, cols, g, out + g);
    moec_bf16p_put_escapes(row, out);
}

static void dot_scalar(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                       int64_t ldy) {
    float w[MOEC_BF16P_GROUP];
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = moec_bf16p_row(W, o);
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * ldx;
            float s[4] = {0, 0, 0, 0}; /* four chains, as the other portable kernels */
            for (int64_t g = 0; g < W->cols; g += MOEC_BF16P_GROUP) {
                group_f32(row, W->cols, g, w);
                for (int j = 0; j < MOEC_BF16P_GROUP; j += 4)
                    for (int k = 0; k < 4; k++) s[k] += x[g + j + k] * w[j + k];
            }
            float sum = (s[0] + s[1]) + (s[2] + s[3]);
            moec_bf16p_add_escapes(row, x, ldx, 1, &sum);
            Y[t * ldy + o] = sum;
        }
    }
}

static void dequant_scalar(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    for (int64_t r = 0; r < n; r++) row_f32_scalar(moec_bf16p_row(W, o0 + r), W->cols, out + r * W->cols);
}

void moec_bf16p_qmat_row(float *out, const moec_qmat *W, int64_t r) {
    row_f32_scalar(moec_bf16p_row(W, r), W->cols, out);
}

/* ---------------------------------------------------------------------------------------------------------------
 * AVX2 */

/* 32 weights of a group: its B bytes at positions [32q, 32q + 32) and their codes (one per byte) -> w[v] = the
 * group's columns 8q + 16v .. + 7. */
TARGET INLINE void decode_half(const uint8_t *B, __m256i codes, __m256i lut, __m256 w[4]) {
    const __m256i b = _mm256_loadu_si256((const __m256i *)B), hi = _mm256_shuffle_epi8(lut, codes);
    const __m256i lo16 = _mm256_unpacklo_epi8(b, hi), hi16 = _mm256_unpackhi_epi8(b, hi);
    const __m256i top = _mm256_set1_epi32((int)0xffff0000u);
    w[0] = _mm256_castsi256_ps(_mm256_slli_epi32(lo16, 16));
    w[1] = _mm256_castsi256_ps(_mm256_and_si256(lo16, top));
    w[2] = _mm256_castsi256_ps(_mm256_slli_epi32(hi16, 16));
    w[3] = _mm256_castsi256_ps(_mm256_and_si256(hi16, top));
}

/* The codes of a block: c[2h + q] = group h's codes at positions [32q, 32q + 32). */
TARGET INLINE void block_codes(const uint8_t *blk, __m256i c[4]) {
    const __m256i low = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 2
    for (int q = 0; q < 2; q++) {
        const __m256i n = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * q));
        c[q] = _mm256_and_si256(n, low);
        c[2 + q] = _mm256_and_si256(_mm256_srli_epi16(n, 4), low);
    }
}

TARGET INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* The NT (1 or 2) sums of one row, escapes not included. */
TARGET INLINE void row_sums_avx2(int NT, const uint8_t *row, int64_t cols, const float *X, int64_t ldx, float *sums) {
    const uint8_t *blk = moec_bf16p_block(row, cols, 0);
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)row));
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[t][v] = _mm256_setzero_ps();
    for (int64_t c0 = 0; c0 < cols; c0 += MOEC_BF16P_BLOCK, blk += 192) {
#pragma GCC unroll 3
        for (int k = 0; k < 192; k += 64) __builtin_prefetch(blk + k + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
        __m256i c[4];
        block_codes(blk, c);
#pragma GCC unroll 4
        for (int hq = 0; hq < 4; hq++) {
            const int h = hq >> 1, q = hq & 1;
            __m256 w[4];
            decode_half(blk + 64 * h + 32 * q, c[hq], lut, w);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + c0 + 64 * h + 8 * q;
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) acc[t][v] = _mm256_fmadd_ps(w[v], _mm256_loadu_ps(x + 16 * v), acc[t][v]);
            }
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
        sums[t] = hsum8(_mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3])));
}

TARGET static void dot_avx2(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                            float *Y, int64_t ldy) {
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = moec_bf16p_row(W, o);
        for (int64_t t0 = 0; t0 < T; t0 += 2) {
            float s[2];
            const int nt = T - t0 >= 2 ? 2 : 1;
            if (nt == 2) row_sums_avx2(2, row, W->cols, X + t0 * ldx, ldx, s);
            else row_sums_avx2(1, row, W->cols, X + t0 * ldx, ldx, s);
            moec_bf16p_add_escapes(row, X + t0 * ldx, ldx, nt, s);
            for (int t = 0; t < nt; t++) Y[(t0 + t) * ldy + o] = s[t];
        }
    }
}

TARGET static void dequant_avx2(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    const int64_t cols = W->cols;
    for (int64_t r = 0; r < n; r++, out += cols) {
        const uint8_t *row = moec_bf16p_row(W, o0 + r), *blk = moec_bf16p_block(row, cols, 0);
        const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)row));
        for (int64_t c0 = 0; c0 < cols; c0 += MOEC_BF16P_BLOCK, blk += 192) {
            __m256i c[4];
            block_codes(blk, c);
            for (int hq = 0; hq < 4; hq++) {
                __m256 w[4];
                decode_half(blk + 64 * (hq >> 1) + 32 * (hq & 1), c[hq], lut, w);
                for (int v = 0; v < 4; v++) _mm256_storeu_ps(out + c0 + 64 * (hq >> 1) + 8 * (hq & 1) + 16 * v, w[v]);
            }
        }
        moec_bf16p_put_escapes(row, out);
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * The table: the active instruction set's kernels for this type */

static void dot_any(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                    int64_t ldy) {
    switch (moec_qmat_kernels_active()->isa) {
    case MOEC_GEMM_ISA_AVX512: moec_bf16p_dot_avx512(W, o0, o1, X, ldx, T, Y, ldy); break;
    case MOEC_GEMM_ISA_AVX2: dot_avx2(W, o0, o1, X, ldx, T, Y, ldy); break;
    default: dot_scalar(W, o0, o1, X, ldx, T, Y, ldy); break;
    }
}

static void dequant_any(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    switch (moec_qmat_kernels_active()->isa) {
    case MOEC_GEMM_ISA_AVX512: moec_bf16p_dequant_avx512(W, o0, n, out); break;
    case MOEC_GEMM_ISA_AVX2: dequant_avx2(W, o0, n, out); break;
    default: dequant_scalar(W, o0, n, out); break;
    }
}

const qmat_kernels moec_qmat_kernels_bf16p = {
    .isa = MOEC_GEMM_ISA_AUTO, .name = "bf16p", .dot = dot_any, .dequant = dequant_any,
};
