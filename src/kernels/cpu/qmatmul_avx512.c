/* qmatmul_avx512.c — AVX-512 (F + BW + VL) kernels of qmatmul: the AVX2 kernels' design (qmatmul_avx2.c explains
 * the weight decodings, the prepared X copy and the tiling) with 16-wide vectors.
 *
 * Decode (dot): f32, bf16, f16 and Q8_0 row by row, one sequential stream per thread with a software prefetch 1 KB
 * ahead (f16 with one input row: the AVX2 kernel, measured faster, see dot_avx512); bf16 as (even, odd) columns
 * from one 64-byte load (a shift and a mask), against an X copy permuted to match; E4M3 in tiles of 4 rows, 64
 * bytes per row and step decoded by integer shifts and masks into fp32 bit patterns (e4m3 · 2^-120, exact,
 * subnormals included), against an X copy permuted and scaled by 2^sx, the sums multiplied by 2^(120 - sx) · scale
 * at the end — all exactly as in qmatmul_avx2.c, twice as wide.
 * Prefill (dequant): columns in order; E4M3 through vcvtph2ps (the half-precision trick below).
 *
 * The test suite runs these kernels natively where the CPU has AVX-512 (measured and tested natively on Zen 4), and
 * everywhere in its avx512-emulated pass (portable intrinsics, see avx512.h).
 */
#include <math.h>

#include "io/safetensors.h"
#include "kernels/cpu/avx512.h"
#include "kernels/cpu/qmatmul_kernels.h"

#define TARGET AVX512_TARGET
#define INLINE static inline __attribute__((always_inline))

/* One weight element for prefill's column tails: f32 / bf16 / f16 exact, E4M3 / 256 (as load32's vectors). */
static float elem_scalar(moec_qtype type, const void *row, int64_t i) {
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

/* An E4M3 weight as the decode vectors see it, times 2^120: its value, the NaN codes as ±480. */
static float e4m3_value(uint8_t b) {
    return (b & 0x7f) == 0x7f ? ((b & 0x80) ? -480.0f : 480.0f) : moec_f8e4m3_to_f32(b);
}

/* 16 E4M3 bytes -> 16 fp32 values / 256: b << 7 in 16 bits is a half-precision number with E4M3's sign, exponent
 * (bias 15 instead of 7) and mantissa, i.e. e4m3 · 2^-8, subnormals included; vcvtph2ps widens it exactly. */
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

/* ---------------------------------------------------------------------------------------------------------------
 * Decode: f32, bf16, f16, Q8_0 */

/* The decode loads: as load32, except that bf16 comes as (even columns, odd columns) of the 32 — one 64-byte load,
 * the even bf16 of each 32-bit lane shifted up, the odd one masked (X in permute_x_bf16's order). */
TARGET INLINE void load32_dot(moec_qtype type, const void *row, int64_t i, __m512 *lo, __m512 *hi) {
    if (type == MOEC_QT_BF16) {
        const __m512i v = _mm512_loadu_si512((const void *)((const uint16_t *)row + i));
        *lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        *hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
    } else {
        load32(type, row, i, lo, hi);
    }
}

/* The NT sums of one f32 / bf16 / f16 row over its first n columns (a multiple of 32): with NT <= 2, 64 columns per
 * step (4·NT FMA chains), else 32 (2·NT) — enough chains to cover the FMA latency. */
TARGET INLINE void dot_row(moec_qtype type, int NT, const void *row, int64_t n, const float *X, int64_t ldx,
                           float *sums) {
    const size_t es = moec_qtype_size(type);
    const char *w = (const char *)row;
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm512_setzero_ps();
    int64_t i = 0;
    if (NT <= 2)
        for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 4
            for (size_t b = 0; b < 64 * es; b += 64)
                __builtin_prefetch(w + (size_t)i * es + b + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
            __m512 a0, a1, b0, b1;
            load32_dot(type, row, i, &a0, &a1);
            load32_dot(type, row, i + 32, &b0, &b1);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + i;
                acc[t][0] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(x), acc[t][0]);
                acc[t][1] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(x + 16), acc[t][1]);
                acc[t][2] = _mm512_fmadd_ps(b0, _mm512_loadu_ps(x + 32), acc[t][2]);
                acc[t][3] = _mm512_fmadd_ps(b1, _mm512_loadu_ps(x + 48), acc[t][3]);
            }
        }
    for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 2
        for (size_t b = 0; b < 32 * es; b += 64)
            __builtin_prefetch(w + (size_t)i * es + b + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
        __m512 a0, a1;
        load32_dot(type, row, i, &a0, &a1);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const float *x = X + t * ldx + i;
            acc[t][0] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(x), acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(x + 16), acc[t][1]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        sums[t] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]), _mm512_add_ps(acc[t][2], acc[t][3])));
}

/* Q8_0 (qmatmul_avx2.c's dot_row_q8 with 16-wide vectors): per block, two vectors of 16 weights converted once, a
 * fresh sum per input row, one FMA by the block's scale into the row's accumulator. */
TARGET INLINE void dot_row_q8(int NT, const uint8_t *row, int64_t nb, const float *X, int64_t ldx, float *sums) {
    __m512 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * MOEC_Q8_0_BLOCK_BYTES;
        if (b % 2 == 0) __builtin_prefetch(blk + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
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

TARGET INLINE void row_sums(moec_qtype type, int NT, const void *row, int64_t n, const float *X, int64_t ldx,
                            float *sums) {
    if (type == MOEC_QT_Q8_0) dot_row_q8(NT, (const uint8_t *)row, n / MOEC_Q8_0_BLOCK, X, ldx, sums);
    else dot_row(type, NT, row, n, X, ldx, sums);
}

/* QMAT_WIDE_MIN_T or more input rows: R = QMAT_DECODE_ROWS weight rows side by side against NT <= 2 input rows,
 * so that each X vector is loaded once for R rows (qmatmul_avx2.c's wide_tile; 32 columns per step). */
TARGET INLINE void wide_tile(moec_qtype type, int R, int NT, const moec_qmat *W, int64_t o0, const float *X,
                             int64_t ldx, float *Y, int64_t ldy) {
    const int64_t cols = W->cols, n32 = cols / 32 * 32;
    const size_t row_bytes = (size_t)moec_qtype_row_bytes(type, cols);
    const char *w = (const char *)W->data + (size_t)o0 * row_bytes;
    __m512 acc[QMAT_DECODE_ROWS][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n32; i += 32) {
        const size_t at = (size_t)i * moec_qtype_size(type);
        if (R == QMAT_DECODE_ROWS) {
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                __builtin_prefetch(w + (size_t)(R + r) * row_bytes + at + 256, 0, QMAT_PREFETCH_LOCALITY);
        }
        __m512 x[2][2];
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) {
            x[t][0] = _mm512_loadu_ps(X + t * ldx + i);
            x[t][1] = _mm512_loadu_ps(X + t * ldx + i + 16);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 lo, hi;
            load32_dot(type, w + (size_t)r * row_bytes, i, &lo, &hi);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++)
                acc[r][t] = _mm512_fmadd_ps(hi, x[t][1], _mm512_fmadd_ps(lo, x[t][0], acc[r][t]));
        }
    }
    for (int r = 0; r < R; r++) {
        const void *row = w + (size_t)r * row_bytes;
        for (int t = 0; t < NT; t++) {
            float tail = 0;
            for (int64_t k = n32; k < cols; k++) tail += X[t * ldx + k] * elem_scalar(type, row, k);
            Y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]) + tail;
        }
    }
}

TARGET INLINE void wide_tiles(moec_qtype type, int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx,
                              int64_t T, float *Y, int64_t ldy) {
    int64_t t0 = 0;
    for (; t0 + 2 <= T; t0 += 2) wide_tile(type, R, 2, W, o0, X + t0 * ldx, ldx, Y + t0 * ldy, ldy);
    if (t0 < T) wide_tile(type, R, 1, W, o0, X + t0 * ldx, ldx, Y + t0 * ldy, ldy);
}

/* Y[t·ldy + o] for rows o0 <= o < o1 and the T input rows, row by row (one sequential stream per thread), in blocks of
 * up to 4 input rows, or with T >= QMAT_WIDE_MIN_T (f32 / bf16 / f16) in wide tiles; bf16 expects X in load32_dot's
 * order. */
TARGET INLINE void dot_type(moec_qtype type, const moec_qmat *W, int64_t o0, int64_t o1, const float *X,
                            int64_t ldx, int64_t T, float *Y, int64_t ldy) {
    const int64_t cols = W->cols, n32 = type == MOEC_QT_Q8_0 ? cols : cols / 32 * 32; /* Q8_0: whole blocks */
    const size_t row_bytes = (size_t)moec_qtype_row_bytes(type, cols);
    if (type != MOEC_QT_Q8_0 && T >= QMAT_WIDE_MIN_T) {
        int64_t o = o0;
        for (; o + QMAT_DECODE_ROWS <= o1; o += QMAT_DECODE_ROWS)
            wide_tiles(type, QMAT_DECODE_ROWS, W, o, X, ldx, T, Y + o, ldy);
        for (; o < o1; o++) wide_tiles(type, 1, W, o, X, ldx, T, Y + o, ldy);
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        const void *row = (const char *)W->data + (size_t)o * row_bytes;
        for (int64_t t0 = 0; t0 < T;) {
            const int nt = T - t0 >= 4 ? 4 : (int)(T - t0);
            const float *x = X + t0 * ldx;
            float sums[4];
            switch (nt) {
            case 1: row_sums(type, 1, row, n32, x, ldx, sums); break;
            case 2: row_sums(type, 2, row, n32, x, ldx, sums); break;
            case 3: row_sums(type, 3, row, n32, x, ldx, sums); break;
            default: row_sums(type, 4, row, n32, x, ldx, sums); break;
            }
            for (int t = 0; t < nt; t++) {
                float tail = 0;
                for (int64_t k = n32; k < cols; k++) tail += x[t * ldx + k] * elem_scalar(type, row, k);
                Y[(t0 + t) * ldy + o] = sums[t] + tail;
            }
            t0 += nt;
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Decode: E4M3 */

/* 64 E4M3 bytes -> 4 vectors of 16 fp32 values e4m3 · 2^-120 (qmatmul_avx2.c's e4m3x32, twice as wide): vector k
 * holds bytes 4j + k, j = 0..15. */
TARGET INLINE void e4m3x64(const uint8_t *p, __m512 w[4]) {
    const __m512i m = _mm512_set1_epi32((int)0x87f00000u);
    const __m512i v = _mm512_loadu_si512((const void *)p);
    const __m512i odd = _mm512_srai_epi16(v, 4);                        /* bytes 4j+1, 4j+3 decoded in 16 bits */
    const __m512i even = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 4); /* bytes 4j, 4j+2 */
    w[0] = _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(even, 16), m));
    w[1] = _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(odd, 16), m));
    w[2] = _mm512_castsi512_ps(_mm512_and_si512(even, m));
    w[3] = _mm512_castsi512_ps(_mm512_and_si512(odd, m));
}

/* R = QMAT_DECODE_ROWS (or 1) weight rows side by side against NT <= 2 input rows, 64 columns per step: rows o0,
 * o0 + rstep, ... — adjacent (rstep 1), the rows `ahead` bytes on prefetched (qmat_f8_prefetch_ahead; a 4096-byte
 * row is a page, where the hardware prefetchers stop), or one of each quarter of a range (qmat_f8_streams), left
 * to the hardware prefetchers. X is the permuted, scaled copy (scale_x); each sum is multiplied by post[t] and the row's scale.
 * 2 accumulators per (row, input). */
TARGET INLINE void f8_tile(int R, int NT, const moec_qmat *W, int64_t o0, int64_t rstep, const float *X, int64_t ldx,
                           float *Y, int64_t ldy, const float *post, size_t ahead) {
    const int64_t cols = W->cols, n64 = cols / 64 * 64;
    const size_t rb = (size_t)rstep * (size_t)cols; /* bytes from one of the tile's rows to the next */
    const uint8_t *w = (const uint8_t *)W->data + (size_t)o0 * (size_t)cols;
    __m512 acc[QMAT_DECODE_ROWS][2][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) acc[r][t][0] = acc[r][t][1] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n64; i += 64) {
        if (rstep > 1) {
            /* four separate streams: the hardware prefetchers follow them (qmat_f8_streams) */
        } else if (R == QMAT_DECODE_ROWS) {
            const uint8_t *next = w + ahead + (size_t)i + 256;
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                __builtin_prefetch(next + (size_t)r * (size_t)cols, 0, QMAT_PREFETCH_LOCALITY);
        } else {
            __builtin_prefetch(w + (size_t)i + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 v[4];
            e4m3x64(w + (size_t)r * rb + i, v);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + i;
                acc[r][t][0] = _mm512_fmadd_ps(v[0], _mm512_loadu_ps(x), acc[r][t][0]);
                acc[r][t][1] = _mm512_fmadd_ps(v[1], _mm512_loadu_ps(x + 16), acc[r][t][1]);
                acc[r][t][0] = _mm512_fmadd_ps(v[2], _mm512_loadu_ps(x + 32), acc[r][t][0]);
                acc[r][t][1] = _mm512_fmadd_ps(v[3], _mm512_loadu_ps(x + 48), acc[r][t][1]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const uint8_t *row = w + (size_t)r * rb;
        const float sc = W->scale[o0 + r * rstep];
        for (int t = 0; t < NT; t++) {
            float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][t][0], acc[r][t][1])), tail = 0;
            /* the weight in the vectors' units, e4m3 · 2^-120 (exact), so that huge inputs do not overflow here */
            for (int64_t k = n64; k < cols; k++) tail += X[t * ldx + k] * (e4m3_value(row[k]) * 0x1p-120f);
            const float f = post[t] * sc;
            s += tail;
            Y[t * ldy + r * rstep] = isinf(f) ? (s * sc) * post[t] : s * f;
        }
    }
}

#include "kernels/cpu/qmatmul_f8_rows.h" /* f8_tiles and dot_f8 around this file's f8_tile */

/* ---------------------------------------------------------------------------------------------------------------
 * The prepared X (see qmatmul_kernels.h) */

/* E4M3: xs[t·I + i] = X[t·ldx + i] · 2^sx[t] in e4m3x64's column order (each block of 64: y[16k + j] = x[4j + k]),
 * post[t] = 2^(120 - sx[t]); sx as in qmatmul_avx2.c's scale_x. Columns past the last block stay in place. */
TARGET static void scale_x(const float *X, int64_t ldx, int64_t T, int64_t n, float *xs, float *post) {
    /* lane j of the permutation that gathers x[4j + k] (j < 8) out of two vectors a | b */
    const __m512i idx[4] = {
        _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28),
        _mm512_setr_epi32(1, 5, 9, 13, 17, 21, 25, 29, 1, 5, 9, 13, 17, 21, 25, 29),
        _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 2, 6, 10, 14, 18, 22, 26, 30),
        _mm512_setr_epi32(3, 7, 11, 15, 19, 23, 27, 31, 3, 7, 11, 15, 19, 23, 27, 31)};
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * ldx;
        float *y = xs + t * n;
        __m512 vmax = _mm512_setzero_ps();
        float amax = 0;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), vmax);
        for (; i < n; i++) amax = fmaxf(amax, fabsf(x[i])); /* (max_ps and fmaxf both skip a NaN x) */
        float lanes[16];
        _mm512_storeu_ps(lanes, vmax);
        for (int k = 0; k < 16; k++) amax = fmaxf(amax, lanes[k]);
        int e = 0;
        if (isfinite(amax)) (void)frexpf(amax, &e); /* amax < 2^e */
        int sx = 100 - e;
        sx = sx < 0 ? 0 : sx > 120 ? 120 : sx;
        const float f = ldexpf(1.0f, sx);
        const __m512 vf = _mm512_set1_ps(f);
        for (i = 0; i + 64 <= n; i += 64) {
            const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16), c = _mm512_loadu_ps(x + i + 32),
                         d = _mm512_loadu_ps(x + i + 48);
            for (int k = 0; k < 4; k++) {
                const __m512 lo = _mm512_permutex2var_ps(a, idx[k], b), hi = _mm512_permutex2var_ps(c, idx[k], d);
                _mm512_storeu_ps(y + i + 16 * k, _mm512_mul_ps(_mm512_mask_blend_ps(0xff00, lo, hi), vf));
            }
        }
        for (; i < n; i++) y[i] = x[i] * f;
        post[t] = ldexpf(1.0f, 120 - sx);
    }
}

/* bf16: each block of 32 columns as its 16 even then its 16 odd columns (load32_dot); the rest in place. */
TARGET static void permute_x_bf16(const float *X, int64_t ldx, int64_t T, int64_t n, float *xs) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
                  odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * ldx;
        float *y = xs + t * n;
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
            _mm512_storeu_ps(y + i, _mm512_permutex2var_ps(a, even, b));
            _mm512_storeu_ps(y + i + 16, _mm512_permutex2var_ps(a, odd, b));
        }
        for (; i < n; i++) y[i] = x[i];
    }
}

static int64_t prep_floats_avx512(const moec_qmat *W, int64_t T) {
    return W->type == MOEC_QT_BF16 ? T * W->cols : W->type == MOEC_QT_F8E4M3 ? T * W->cols + T : 0;
}

static void prepare_avx512(const moec_qmat *W, const float *X, int64_t ldx, int64_t T, float *xs) {
    const int64_t n = W->cols;
    if (W->type == MOEC_QT_F8E4M3) scale_x(X, ldx, T, n, xs, xs + T * n);
    else if (W->type == MOEC_QT_BF16) permute_x_bf16(X, ldx, T, n, xs);
}

TARGET static void dot_prepared_avx512(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T,
                                       float *Y, int64_t ldy) {
    const int64_t n = W->cols;
    if (W->type == MOEC_QT_F8E4M3) dot_f8(W, o0, o1, xs, n, T, Y, ldy, xs + T * n);
    else if (W->type == MOEC_QT_BF16) dot_type(MOEC_QT_BF16, W, o0, o1, xs, n, T, Y, ldy);
    else dot_type(MOEC_QT_F32, W, o0, o1, xs, n, T, Y, ldy);
}

/* Self-contained: prepares X in this thread's scratch when the type needs it, then runs the prepared kernel. */
TARGET static void dot_avx512(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                              float *Y, int64_t ldy) {
    switch (W->type) {
    case MOEC_QT_F32: dot_type(MOEC_QT_F32, W, o0, o1, X, ldx, T, Y, ldy); return;
    case MOEC_QT_F16:
        /* One input row: the AVX2 kernel, measured faster on Zen 4 (moe-1b's F16 GGUF decode, bench_infer,
         * alternating builds: 42-44 / 56-59 tok/s in the machine's slow / fast memory state against 38-39 / 51-52
         * with 16-wide vcvtph2ps); more rows take this file's wide tiles. */
        if (T < QMAT_WIDE_MIN_T) moec_qmat_kernels_avx2.dot(W, o0, o1, X, ldx, T, Y, ldy);
        else dot_type(MOEC_QT_F16, W, o0, o1, X, ldx, T, Y, ldy);
        return;
    case MOEC_QT_Q8_0: dot_type(MOEC_QT_Q8_0, W, o0, o1, X, ldx, T, Y, ldy); return;
    default: break;
    }
    float *xs = moec_qmat_scratch(1, (size_t)prep_floats_avx512(W, T));
    if (!xs) { /* out of memory: slower but correct */
        moec_qmat_kernels_scalar.dot(W, o0, o1, X, ldx, T, Y, ldy);
        return;
    }
    prepare_avx512(W, X, ldx, T, xs);
    dot_prepared_avx512(W, o0, o1, xs, T, Y, ldy);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Prefill: rows dequantised to fp32 */

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
    .isa = MOEC_GEMM_ISA_AVX512, .name = "avx512", .dot = dot_avx512, .prep_floats = prep_floats_avx512,
    .prepare = prepare_avx512, .dot_prepared = dot_prepared_avx512, .dequant = dequant_avx512,
};
