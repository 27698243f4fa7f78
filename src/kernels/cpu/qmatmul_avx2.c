/* qmatmul_avx2.c — AVX2 + FMA (+ F16C) kernels of qmatmul (see qmatmul_kernels.h for their contracts).
 *
 * Weight decoding, 16 elements at a time into two ymm of fp32:
 *   f32   two loads;
 *   bf16  zero-extend each 16-bit value to 32 bits and shift it left 16: a bf16 is the top half of an fp32;
 *   E4M3  no lookup table, and no vcvtph2ps either: on Zen 3 that instruction sustains one ymm per two cycles,
 *         which capped a first version (the half-precision trick that qmatmul_avx512.c uses) at 3.6 weight bytes
 *         per cycle per core, below memory bandwidth. Instead, integer work builds fp32 bits: byte b = s.eeee.mmm
 *         is shuffled into the top byte of a 32-bit lane (b << 24), shifted right arithmetically by 4 (s lands in
 *         bits 31..27, eeee in 26..23, mmm in 22..20) and masked to s.0000eeee.mmm0…0: an fp32 with exponent field
 *         eeee (bias 127 instead of 7) and the same mantissa, i.e. exactly e4m3(b) · 2^-120 — the subnormals
 *         included, which become fp32 subnormals 0.mmm · 2^-126. (The NaN codes S.1111.111 come out as ±480·2^-120:
 *         NaN weights are not supported, see qmatmul.h.)
 *         The 2^120 is not multiplied back per weight (a multiplication shares the two FMA pipes: measured, it cost
 *         40% of the throughput); instead each X row is copied once per call, scaled by 2^sx with
 *         sx = 100 - ⌈log2 max|x|⌉ over that row (clamped to [0, 120]), and each sum is multiplied by
 *         2^(120 - sx) · scale[o] at the end. Both
 *         scalings are exact powers of two; a product x · w then stays a normal fp32 (rounded relative 2^-24, as in
 *         plain fp32) whenever |x · w| >= 2^-6-sx, i.e. everywhere except for products more than ~2^-100 below the
 *         largest |x|, whose absolute error (< 2^-149 · 2^(120-sx)) is far below the sum's own rounding.
 * Decode tile: R weight rows × NT input rows, 16 columns per step. With NT == 1 each (row, input) pair keeps two
 * accumulators (one per 8-column half) so that 8 independent FMA chains cover the FMA latency; with NT = 2 or 3
 * the 8 or 12 (row, input) pairs are enough on their own. Each weight vector is decoded once per step and used for
 * NT input rows; the X rows come from L1/L2. Columns past the last multiple of 16 are summed in scalar code.
 */
#include <immintrin.h>
#include <math.h>

#include "io/safetensors.h"
#include "kernels/cpu/qmatmul_kernels.h"

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/* One weight element for the column tails: f32 / bf16 exact, E4M3 as its value (NaN codes as ±480) — the vector
 * code's units times 2^120. */
static float elem_scalar(moec_qtype type, const void *row, int64_t i) {
    switch (type) {
    case MOEC_QT_F32: return ((const float *)row)[i];
    case MOEC_QT_BF16: return moec_bf16_to_f32(((const uint16_t *)row)[i]);
    default: {
        uint8_t b = ((const uint8_t *)row)[i];
        return (b & 0x7f) == 0x7f ? ((b & 0x80) ? -480.0f : 480.0f) : moec_f8e4m3_to_f32(b);
    }
    }
}

/* The 8 E4M3 bytes that a byte shuffle has placed in the top byte of each 32-bit lane -> 8 fp32 e4m3 · 2^-120. */
TARGET INLINE __m256 e4m3_top_bytes_to_ps(__m256i b24) {
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_srai_epi32(b24, 4), _mm256_set1_epi32((int)0x87f00000u)));
}

/* Elements [i, i + 16) of a weight row as two fp32 vectors (E4M3: times 2^-120). */
TARGET INLINE void load16(moec_qtype type, const void *row, int64_t i, __m256 *lo, __m256 *hi) {
    if (type == MOEC_QT_F32) {
        const float *p = (const float *)row + i;
        *lo = _mm256_loadu_ps(p);
        *hi = _mm256_loadu_ps(p + 8);
    } else if (type == MOEC_QT_BF16) {
        const __m128i *p = (const __m128i *)((const uint16_t *)row + i);
        *lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p)), 16));
        *hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p + 1)), 16));
    } else {
        /* Both 128-bit lanes hold all 16 bytes; the shuffles (which stay within a lane) pick bytes 0-3 | 4-7 for
         * the low vector and 8-11 | 12-15 for the high one, each into the top byte of a 32-bit lane. */
        __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((const uint8_t *)row + i)));
        const __m256i pick_lo = _mm256_setr_epi8(-1, -1, -1, 0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, 3,
                                                 -1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, 6, -1, -1, -1, 7);
        const __m256i pick_hi = _mm256_setr_epi8(-1, -1, -1, 8, -1, -1, -1, 9, -1, -1, -1, 10, -1, -1, -1, 11,
                                                 -1, -1, -1, 12, -1, -1, -1, 13, -1, -1, -1, 14, -1, -1, -1, 15);
        *lo = e4m3_top_bytes_to_ps(_mm256_shuffle_epi8(b, pick_lo));
        *hi = e4m3_top_bytes_to_ps(_mm256_shuffle_epi8(b, pick_hi));
    }
}

TARGET INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Y[t·ldy + r] for the R rows from o0 and the NT input rows of X. R, NT and type are compile-time constants at
 * every call, so each instance keeps its accumulators in registers. E4M3: X is the scaled copy, and each row sum is
 * multiplied by post = 2^(120 - sx) and then by the row's scale. */
TARGET INLINE void dot_tile(moec_qtype type, int R, int NT, const moec_qmat *W, int64_t o0, const float *X,
                            int64_t ldx, float *Y, int64_t ldy, const float *post) {
    const int64_t cols = W->cols;
    const size_t es = moec_qtype_size(type);
    const char *w = (const char *)W->data + (size_t)o0 * (size_t)cols * es;
    __m256 acc[QMAT_DECODE_ROWS][3][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < NT; t++) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) {
        /* Rows of a 4096-wide E4M3 matrix are one 4 KB page each, and the hardware prefetchers stop at page
         * boundaries: fetch the next group's rows (at this column, 4 lines ahead), one line per row per 64 bytes
         * consumed. Measured +40% for E4M3 and bf16 at T = 1 from DRAM. (Past the last row this only prefetches
         * addresses that are never read; a prefetch does not fault.) */
        if (R == QMAT_DECODE_ROWS && (i * (int64_t)es) % 64 == 0) {
            const char *next = w + (size_t)R * (size_t)cols * es + (size_t)i * es + 256;
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                for (size_t k = 0; k < (es + 3) / 4; k++)
                    __builtin_prefetch(next + (size_t)r * (size_t)cols * es + 64 * k, 0, 3);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 lo, hi;
            load16(type, w + (size_t)r * (size_t)cols * es, i, &lo, &hi);
#pragma GCC unroll 3
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + i;
                if (NT == 1) {
                    acc[r][t][0] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x), acc[r][t][0]);
                    acc[r][t][1] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + 8), acc[r][t][1]);
                } else {
                    acc[r][t][0] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x), acc[r][t][0]);
                    acc[r][t][0] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + 8), acc[r][t][0]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const void *row = w + (size_t)r * (size_t)cols * es;
        for (int t = 0; t < NT; t++) {
            float s = hsum(NT == 1 ? _mm256_add_ps(acc[r][t][0], acc[r][t][1]) : acc[r][t][0]), tail = 0;
            for (int64_t k = i; k < cols; k++) tail += X[t * ldx + k] * elem_scalar(type, row, k);
            if (type == MOEC_QT_F8E4M3) {
                /* One factor when it is finite (always, short of |x| near 2^100 with weights near 2^8). */
                float f = post[t] * W->scale[o0 + r];
                s += tail * 0x1p-120f;
                Y[t * ldy + r] = isinf(f) ? (s * W->scale[o0 + r]) * post[t] : s * f;
            }
            else Y[t * ldy + r] = s + tail;
        }
    }
}

/* All T input rows against R weight rows, in blocks of up to 3 input rows (T = 4 as 2 + 2, not 3 + 1). */
TARGET INLINE void dot_type(moec_qtype type, int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx,
                            int64_t T, float *Y, int64_t ldy, const float *post) {
    for (int64_t t0 = 0; t0 < T;) {
        int64_t left = T - t0;
        int nt = left == 4 ? 2 : left >= 3 ? 3 : (int)left;
        const float *x = X + t0 * ldx;
        float *y = Y + t0 * ldy;
        const float *p = post + t0;
        if (nt == 1) dot_tile(type, R, 1, W, o0, x, ldx, y, ldy, p);
        else if (nt == 2) dot_tile(type, R, 2, W, o0, x, ldx, y, ldy, p);
        else dot_tile(type, R, 3, W, o0, x, ldx, y, ldy, p);
        t0 += nt;
    }
}

/* One instance per type, each with a 4-row and a 1-row body (for the last rows of a range). */
TARGET static void dot_f32(int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx, int64_t T, float *Y,
                           int64_t ldy, const float *post) {
    if (R == QMAT_DECODE_ROWS) dot_type(MOEC_QT_F32, QMAT_DECODE_ROWS, W, o0, X, ldx, T, Y, ldy, post);
    else dot_type(MOEC_QT_F32, 1, W, o0, X, ldx, T, Y, ldy, post);
}
TARGET static void dot_bf16(int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx, int64_t T, float *Y,
                            int64_t ldy, const float *post) {
    if (R == QMAT_DECODE_ROWS) dot_type(MOEC_QT_BF16, QMAT_DECODE_ROWS, W, o0, X, ldx, T, Y, ldy, post);
    else dot_type(MOEC_QT_BF16, 1, W, o0, X, ldx, T, Y, ldy, post);
}
TARGET static void dot_f8(int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx, int64_t T, float *Y,
                          int64_t ldy, const float *post) {
    if (R == QMAT_DECODE_ROWS) dot_type(MOEC_QT_F8E4M3, QMAT_DECODE_ROWS, W, o0, X, ldx, T, Y, ldy, post);
    else dot_type(MOEC_QT_F8E4M3, 1, W, o0, X, ldx, T, Y, ldy, post);
}

/* E4M3: xs[t·I + i] = X[t·ldx + i] · 2^sx[t] with sx[t] from row t's largest magnitude (see the top of the file),
 * post[t] = 2^(120 - sx[t]). Per row, so that a row of tiny inputs keeps its precision next to a row of huge ones. */
TARGET static void scale_x(const float *X, int64_t ldx, int64_t T, int64_t I, float *xs, float *post) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * ldx;
        float *y = xs + t * I;
        __m256 vmax = _mm256_setzero_ps();
        float amax = 0;
        int64_t i = 0;
        for (; i + 8 <= I; i += 8) vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), vmax);
        for (; i < I; i++) amax = fmaxf(amax, fabsf(x[i])); /* (max_ps and fmaxf both skip a NaN x) */
        float lanes[8];
        _mm256_storeu_ps(lanes, vmax);
        for (int k = 0; k < 8; k++) amax = fmaxf(amax, lanes[k]);
        int e = 0;
        if (isfinite(amax)) (void)frexpf(amax, &e); /* amax < 2^e */
        int sx = 100 - e;
        sx = sx < 0 ? 0 : sx > 120 ? 120 : sx;
        const float f = ldexpf(1.0f, sx);
        const __m256 vf = _mm256_set1_ps(f);
        for (i = 0; i + 8 <= I; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vf));
        for (; i < I; i++) y[i] = x[i] * f;
        post[t] = ldexpf(1.0f, 120 - sx);
    }
}

static void dot_avx2(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                     int64_t ldy) {
    void (*fn)(int, const moec_qmat *, int64_t, const float *, int64_t, int64_t, float *, int64_t, const float *) =
        W->type == MOEC_QT_F32 ? dot_f32 : W->type == MOEC_QT_BF16 ? dot_bf16 : dot_f8;
    const float *post = NULL; /* read by the E4M3 instances only */
    if (W->type == MOEC_QT_F8E4M3) {
        float *xs = moec_qmat_scratch(1, (size_t)(T * W->cols + T)); /* the scaled X, then post[T] */
        if (!xs) { /* out of memory: slower but correct */
            moec_qmat_kernels_scalar.dot(W, o0, o1, X, ldx, T, Y, ldy);
            return;
        }
        scale_x(X, ldx, T, W->cols, xs, xs + T * W->cols);
        post = xs + T * W->cols;
        X = xs;
        ldx = W->cols;
    }
    int64_t o = o0;
    for (; o + QMAT_DECODE_ROWS <= o1; o += QMAT_DECODE_ROWS) fn(QMAT_DECODE_ROWS, W, o, X, ldx, T, Y + o, ldy, post);
    for (; o < o1; o++) fn(1, W, o, X, ldx, T, Y + o, ldy, post);
}

TARGET INLINE void dequant_type(moec_qtype type, const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    const int64_t cols = W->cols;
    const size_t es = moec_qtype_size(type);
    for (int64_t r = 0; r < n; r++, out += cols) {
        const void *row = (const char *)W->data + (size_t)(o0 + r) * (size_t)cols * es;
        const float f = type == MOEC_QT_F8E4M3 ? W->scale[o0 + r] : 1.0f;
        /* E4M3: (e4m3 · 2^-120) · 2^120 is exact, then one rounding by the scale, as in moec_qmat_row. */
        const __m256 up = _mm256_set1_ps(0x1p120f), vf = _mm256_set1_ps(f);
        int64_t i = 0;
        for (; i + 16 <= cols; i += 16) {
            __m256 lo, hi;
            load16(type, row, i, &lo, &hi);
            if (type == MOEC_QT_F8E4M3) {
                lo = _mm256_mul_ps(_mm256_mul_ps(lo, up), vf);
                hi = _mm256_mul_ps(_mm256_mul_ps(hi, up), vf);
            }
            _mm256_storeu_ps(out + i, lo);
            _mm256_storeu_ps(out + i + 8, hi);
        }
        for (; i < cols; i++) out[i] = elem_scalar(type, row, i) * f;
    }
}

TARGET static void dequant_avx2(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    switch (W->type) {
    case MOEC_QT_F32: dequant_type(MOEC_QT_F32, W, o0, n, out); break;
    case MOEC_QT_BF16: dequant_type(MOEC_QT_BF16, W, o0, n, out); break;
    default: dequant_type(MOEC_QT_F8E4M3, W, o0, n, out); break;
    }
}

const qmat_kernels moec_qmat_kernels_avx2 = {
    .isa = MOEC_GEMM_ISA_AVX2, .name = "avx2", .dot = dot_avx2, .dequant = dequant_avx2,
};
