/* qmatmul_avx2.c — AVX2 + FMA (+ F16C) kernels of qmatmul (see qmatmul_kernels.h for their contracts).
 *
 * Weight decoding into ymm of fp32 (load16: 16 elements in column order, for prefill's dequantisation; the decode
 * kernels use cheaper orders, see load16_dot and e4m3x32, and permute X to match):
 *   f32   loads;
 *   bf16  a bf16 is the top half of an fp32: zero-extend and shift left 16 (load16), or, two bf16 per 32-bit lane,
 *         mask off the low half / shift left 16 (load16_dot);
 *   f16   vcvtph2ps (F16C), exact; one ymm per two cycles on Zen 3 is 16 weight bytes per two cycles per core,
 *         more than the memory delivers to each of two streaming cores, so no cheaper order is needed;
 *   Q8_0  per 32-value block: 8 int8 at a time sign-extended to int32 and converted (exact), the block's products
 *         summed, then one FMA by the block's scale d (vcvtph2ps of the f16, broadcast) into the row's sum;
 *   E4M3  no lookup table, and no vcvtph2ps either: on Zen 3 that instruction sustains one ymm per two cycles,
 *         which capped a first version (the half-precision trick that qmatmul_avx512.c uses) at 3.6 weight bytes
 *         per cycle per core, below memory bandwidth. Instead, integer work builds fp32 bits: byte b = s.eeee.mmm
 *         is shuffled into the top byte of a 32-bit lane (b << 24), shifted right arithmetically by 4 (s lands in
 *         bits 31..27, eeee in 26..23, mmm in 22..20) and masked to s.0000eeee.mmm0…0: an fp32 with exponent field
 *         eeee (bias 127 instead of 7) and the same mantissa, i.e. exactly e4m3(b) · 2^-120 — the subnormals
 *         included, which become fp32 subnormals 0.mmm · 2^-126. (The NaN codes S.1111.111 come out as ±480·2^-120:
 *         NaN weights are not supported, see qmatmul.h.) e4m3x32 does the same shift-and-mask on 16-bit lanes.
 *         The 2^120 is not multiplied back per weight (a multiplication shares the two FMA pipes: measured, it cost
 *         40% of the throughput); instead each X row is copied once per call, scaled by 2^sx with
 *         sx = 100 - ⌈log2 max|x|⌉ over that row (clamped to [0, 120]), and each sum is multiplied by
 *         2^(120 - sx) · scale[o] at the end. Both
 *         scalings are exact powers of two; a product x · w then stays a normal fp32 (rounded relative 2^-24, as in
 *         plain fp32) whenever |x · w| >= 2^-6-sx, i.e. everywhere except for products more than ~2^-100 below the
 *         largest |x|, whose absolute error (< 2^-149 · 2^(120-sx)) is far below the sum's own rounding.
 * Decode: f32, bf16 and f16 row by row (dot_row / dot_type), E4M3 in tiles of 4 rows (f8_tile); each weight vector is
 * decoded once and used for a small block of input rows from L1/L2, with enough accumulators to cover the FMA
 * latency. Columns past the last multiple of 16 (E4M3: 32) are summed in scalar code.
 */
#include <immintrin.h>
#include <math.h>

#include "io/safetensors.h"
#include "kernels/cpu/qmatmul_kernels.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/* One weight element for the column tails: f32 / bf16 / f16 exact, E4M3 as its value (NaN codes as ±480) — the vector
 * code's units times 2^120. */
static float elem_scalar(moec_qtype type, const void *row, int64_t i) {
    switch (type) {
    case MOEC_QT_F32: return ((const float *)row)[i];
    case MOEC_QT_BF16: return moec_bf16_to_f32(((const uint16_t *)row)[i]);
    case MOEC_QT_F16: return moec_f16_to_f32(((const uint16_t *)row)[i]);
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
    } else if (type == MOEC_QT_F16) {
        const __m128i *p = (const __m128i *)((const uint16_t *)row + i);
        *lo = _mm256_cvtph_ps(_mm_loadu_si128(p));
        *hi = _mm256_cvtph_ps(_mm_loadu_si128(p + 1));
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

/* The decode kernels' weight load: as load16, except that bf16 comes as (even columns, odd columns) — a 32-bit lane
 * holding two bf16 gives the odd one by masking off the low half and the even one by a shift, one instruction each
 * for 8 weights instead of a widening shuffle plus a shift (the shuffles and shifts share two of Zen 3's four vector
 * pipes; the mask runs on any). dot_avx2 gives X the same order. */
TARGET INLINE void load16_dot(moec_qtype type, const void *row, int64_t i, __m256 *lo, __m256 *hi) {
    if (type == MOEC_QT_BF16) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i));
        *lo = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        *hi = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
    } else {
        load16(type, row, i, lo, hi);
    }
}

TARGET INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The NT sums Σ_i x_t[i] · w[i] of one f32, bf16 or f16 weight row over its first `n` columns (n a multiple of 16). NT
 * and type are compile-time constants at every call, so the accumulators stay in registers. With NT <= 2 the loop
 * takes 32 columns per step (4·NT independent FMA chains); with NT = 3 or 4, 16 columns (2·NT chains) — enough
 * chains to cover the FMA latency either way. */
TARGET INLINE void dot_row(moec_qtype type, int NT, const void *row, int64_t n, const float *X, int64_t ldx,
                           float *sums) {
    const size_t es = moec_qtype_size(type);
    const char *w = (const char *)row;
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm256_setzero_ps();
    int64_t i = 0;
    if (NT <= 2) {
        for (; i + 32 <= n; i += 32) {
            /* one prefetch per 64 bytes consumed */
            if (QMAT_PREFETCH_BYTES && (i * (int64_t)es) % 64 == 0)
                __builtin_prefetch(w + (size_t)i * es + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
            if (QMAT_PREFETCH_BYTES && es == 4)
                __builtin_prefetch(w + (size_t)i * es + 64 + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
            __m256 a0, a1, b0, b1;
            load16_dot(type, row, i, &a0, &a1);
            load16_dot(type, row, i + 16, &b0, &b1);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + i;
                acc[t][0] = _mm256_fmadd_ps(a0, _mm256_loadu_ps(x), acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + 8), acc[t][1]);
                acc[t][2] = _mm256_fmadd_ps(b0, _mm256_loadu_ps(x + 16), acc[t][2]);
                acc[t][3] = _mm256_fmadd_ps(b1, _mm256_loadu_ps(x + 24), acc[t][3]);
            }
        }
    }
    for (; i + 16 <= n; i += 16) {
        if (QMAT_PREFETCH_BYTES && (i * (int64_t)es) % 64 == 0)
            __builtin_prefetch(w + (size_t)i * es + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
        __m256 a0, a1;
        load16_dot(type, row, i, &a0, &a1);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const float *x = X + t * ldx + i;
            acc[t][0] = _mm256_fmadd_ps(a0, _mm256_loadu_ps(x), acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + 8), acc[t][1]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        sums[t] = hsum(_mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3])));
}

/* Q8_0: the NT sums of one row (nb blocks) against X rows t < NT. Each block's 32 weights are converted once and
 * used for every input row; a block's products go into a fresh sum (two chains), which one FMA by d then adds to
 * the row's accumulator, so the long dependency is one FMA per block. */
TARGET INLINE void dot_row_q8(int NT, const uint8_t *row, int64_t nb, const float *X, int64_t ldx, float *sums) {
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * MOEC_Q8_0_BLOCK_BYTES;
        if (b % 2 == 0) __builtin_prefetch(blk + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss((unsigned short)(blk[0] | blk[1] << 8)));
        __m256 w[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            w[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * k))));
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const float *x = X + t * ldx + b * MOEC_Q8_0_BLOCK;
            __m256 s0 = _mm256_mul_ps(w[0], _mm256_loadu_ps(x)), s1 = _mm256_mul_ps(w[1], _mm256_loadu_ps(x + 8));
            s0 = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x + 16), s0);
            s1 = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), s1);
            acc[t] = _mm256_fmadd_ps(d, _mm256_add_ps(s0, s1), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = hsum(acc[t]);
}

/* The NT sums of one row's first n columns: dot_row, or dot_row_q8 over n / 32 blocks. */
TARGET INLINE void row_sums(moec_qtype type, int NT, const void *row, int64_t n, const float *X, int64_t ldx,
                            float *sums) {
    if (type == MOEC_QT_Q8_0) dot_row_q8(NT, (const uint8_t *)row, n / MOEC_Q8_0_BLOCK, X, ldx, sums);
    else dot_row(type, NT, row, n, X, ldx, sums);
}

/* With QMAT_WIDE_MIN_T or more input rows the row-by-row loop is bound by re-reading X: each weight row walks all T
 * rows of X (T = 4, 4096 columns: 64 KB, from L2) for 2·T FMAs per 16 columns, one X load per FMA. wide_tile reads R =
 * QMAT_DECODE_ROWS weight rows side by side against NT = 2 input rows: per 16 columns the 4 X vectors are loaded once
 * for 4 rows' 16 FMAs, and each row's weight vector serves 2 input rows (8 accumulators, 4 X, 2 W: 14 of the 16
 * registers). The next group's rows are prefetched (rows of a 4096-wide matrix are pages, where the hardware
 * prefetchers stop). Measured on bench_qmatmul's 16384 x 4096 (see the README). f32, bf16 (X in load16_dot's order) and
 * f16; the columns past the last multiple of 16 in scalar code. */
TARGET INLINE void wide_tile(moec_qtype type, int R, int NT, const moec_qmat *W, int64_t o0, const float *X,
                             int64_t ldx, float *Y, int64_t ldy) {
    const int64_t cols = W->cols, n16 = cols / 16 * 16;
    const size_t row_bytes = (size_t)moec_qtype_row_bytes(type, cols);
    const char *w = (const char *)W->data + (size_t)o0 * row_bytes;
    __m256 acc[QMAT_DECODE_ROWS][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n16; i += 16) {
        const size_t at = (size_t)i * moec_qtype_size(type);
        if (R == QMAT_DECODE_ROWS && at % 64 == 0) {
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                __builtin_prefetch(w + (size_t)(R + r) * row_bytes + at + 256, 0, QMAT_PREFETCH_LOCALITY);
        }
        __m256 x[2][2];
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) {
            x[t][0] = _mm256_loadu_ps(X + t * ldx + i);
            x[t][1] = _mm256_loadu_ps(X + t * ldx + i + 8);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 lo, hi;
            load16_dot(type, w + (size_t)r * row_bytes, i, &lo, &hi);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++)
                acc[r][t] = _mm256_fmadd_ps(hi, x[t][1], _mm256_fmadd_ps(lo, x[t][0], acc[r][t]));
        }
    }
    for (int r = 0; r < R; r++) {
        const void *row = w + (size_t)r * row_bytes;
        for (int t = 0; t < NT; t++) {
            float tail = 0;
            for (int64_t k = n16; k < cols; k++) tail += X[t * ldx + k] * elem_scalar(type, row, k);
            Y[t * ldy + r] = hsum(acc[r][t]) + tail;
        }
    }
}

/* All T input rows against R weight rows, two input rows at a time. */
TARGET INLINE void wide_tiles(moec_qtype type, int R, const moec_qmat *W, int64_t o0, const float *X, int64_t ldx,
                              int64_t T, float *Y, int64_t ldy) {
    int64_t t0 = 0;
    for (; t0 + 2 <= T; t0 += 2) wide_tile(type, R, 2, W, o0, X + t0 * ldx, ldx, Y + t0 * ldy, ldy);
    if (t0 < T) wide_tile(type, R, 1, W, o0, X + t0 * ldx, ldx, Y + t0 * ldy, ldy);
}

/* Y[t·ldy + o] for rows o0 <= o < o1 and the T input rows of X, in blocks of up to 4 input rows. Row by row: each
 * thread's share of W is read front to back as ONE sequential stream (measured: reading 4 rows side by side, as
 * four interleaved streams, halved the bandwidth the hardware prefetchers deliver). A row (<= 16 KB here) stays in
 * L1 while the next block of input rows uses it. f32, bf16, f16 and Q8_0 (E4M3: f8_tile); bf16 expects X in
 * load16_dot's order. */
TARGET INLINE void dot_type(moec_qtype type, const moec_qmat *W, int64_t o0, int64_t o1, const float *X,
                            int64_t ldx, int64_t T, float *Y, int64_t ldy, const float *post) {
    const int64_t cols = W->cols, n16 = type == MOEC_QT_Q8_0 ? cols : cols / 16 * 16; /* Q8_0: whole blocks */
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
            const int64_t left = T - t0;
            const int nt = left >= 4 ? 4 : (int)left;
            const float *x = X + t0 * ldx;
            float sums[4];
            switch (nt) {
            case 1: row_sums(type, 1, row, n16, x, ldx, sums); break;
            case 2: row_sums(type, 2, row, n16, x, ldx, sums); break;
            case 3: row_sums(type, 3, row, n16, x, ldx, sums); break;
            default: row_sums(type, 4, row, n16, x, ldx, sums); break;
            }
            for (int t = 0; t < nt; t++) {
                float s = sums[t], tail = 0;
                for (int64_t k = n16; k < cols; k++) tail += x[t * ldx + k] * elem_scalar(type, row, k);
                Y[(t0 + t) * ldy + o] = s + tail;
            }
            t0 += nt;
        }
    }
}

TARGET static void dot_f32(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                           float *Y, int64_t ldy, const float *post) {
    dot_type(MOEC_QT_F32, W, o0, o1, X, ldx, T, Y, ldy, post);
}
TARGET static void dot_bf16(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                            float *Y, int64_t ldy, const float *post) {
    dot_type(MOEC_QT_BF16, W, o0, o1, X, ldx, T, Y, ldy, post);
}
TARGET static void dot_f16(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                           float *Y, int64_t ldy, const float *post) {
    dot_type(MOEC_QT_F16, W, o0, o1, X, ldx, T, Y, ldy, post);
}
TARGET static void dot_q8(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                          float *Y, int64_t ldy, const float *post) {
    dot_type(MOEC_QT_Q8_0, W, o0, o1, X, ldx, T, Y, ldy, post);
}
/* 32 E4M3 bytes -> 4 vectors of 8 fp32 values e4m3 · 2^-120, for far fewer instructions than 8 bytes at a time: the
 * shift-and-mask of the top of the file runs on 16-bit lanes (16 weights per instruction), and the 32-bit lanes are
 * then taken apart by a shift and a mask. Vector k holds bytes 4j + k, j = 0..7 — a fixed permutation of the
 * columns, which scale_x applies to the X copy as well. Per 32 weights: 5 shifts (the instructions that share two
 * of Zen 3's four vector pipes with the shuffles) + 4 ANDs, against 8 shuffles/shifts + 4 ANDs + a broadcast the
 * byte-shuffle decoding needs. Exact, subnormals included, for the same reason as there. */
TARGET INLINE void e4m3x32(const uint8_t *p, __m256 w[4]) {
    const __m256i m = _mm256_set1_epi32((int)0x87f00000u);
    const __m256i v = _mm256_loadu_si256((const __m256i *)p);
    const __m256i odd = _mm256_srai_epi16(v, 4);                        /* bytes 4j+1, 4j+3 decoded in 16 bits */
    const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 4); /* bytes 4j, 4j+2 */
    w[0] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(even, 16), m));
    w[1] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(odd, 16), m));
    w[2] = _mm256_castsi256_ps(_mm256_and_si256(even, m));
    w[3] = _mm256_castsi256_ps(_mm256_and_si256(odd, m));
}

/* E4M3 decode tile: R = QMAT_DECODE_ROWS weight rows side by side (rows o0, o0 + rstep, ...: adjacent, or one of
 * each quarter of a range, qmat_f8_streams), NT <= 2 input rows, 32 columns per step. E4M3
 * costs more instructions per byte than bf16, so the out-of-order window reaches fewer bytes ahead in one row;
 * reading 4 rows at once, with the next group prefetched, keeps more misses in flight (measured faster than row by
 * row for E4M3; bf16 and f32 are faster row by row, dot_type). X is the permuted, scaled copy (scale_x); each sum
 * is multiplied by post[t] = 2^(120 - sx) and by the row's scale. Accumulators: 2 per (row, input) with NT = 1,
 * 1 with NT = 2 — 8 either way, enough chains to cover the FMA latency, and room in 16 registers. */
TARGET INLINE void f8_tile(int R, int NT, const moec_qmat *W, int64_t o0, int64_t rstep, const float *X, int64_t ldx,
                           float *Y, int64_t ldy, const float *post, size_t ahead) {
    const int64_t cols = W->cols, n32 = cols / 32 * 32;
    const size_t rb = (size_t)rstep * (size_t)cols; /* bytes from one of the tile's rows to the next */
    const uint8_t *w = (const uint8_t *)W->data + (size_t)o0 * (size_t)cols;
    __m256 acc[QMAT_DECODE_ROWS][2][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n32; i += 32) {
        /* Rows of a 4096-wide matrix are one 4 KB page each, and the hardware prefetchers stop at page
         * boundaries: fetch the rows `ahead` bytes on (whole groups, qmat_f8_prefetch_ahead; at this column, 4 lines
         * ahead), one line per row per 64 bytes consumed. (Past the last row this only prefetches addresses that are
         * never read; a prefetch does not fault.) */
        if (R == QMAT_DECODE_ROWS && i % 64 == 0 && rstep == 1) { /* (four streams: qmat_f8_streams) */
            const uint8_t *next = w + ahead + (size_t)i + 256;
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                __builtin_prefetch(next + (size_t)r * (size_t)cols, 0, QMAT_PREFETCH_LOCALITY);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 v[4];
            e4m3x32(w + (size_t)r * rb + i, v);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) {
                const float *x = X + t * ldx + i;
                if (NT == 1) {
                    acc[r][t][0] = _mm256_fmadd_ps(v[0], _mm256_loadu_ps(x), acc[r][t][0]);
                    acc[r][t][1] = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(x + 8), acc[r][t][1]);
                    acc[r][t][0] = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(x + 16), acc[r][t][0]);
                    acc[r][t][1] = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(x + 24), acc[r][t][1]);
                } else {
                    acc[r][t][0] = _mm256_fmadd_ps(v[0], _mm256_loadu_ps(x), acc[r][t][0]);
                    acc[r][t][0] = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(x + 8), acc[r][t][0]);
                    acc[r][t][0] = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(x + 16), acc[r][t][0]);
                    acc[r][t][0] = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(x + 24), acc[r][t][0]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const uint8_t *row = w + (size_t)r * rb;
        const float sc = W->scale[o0 + r * rstep];
        for (int t = 0; t < NT; t++) {
            float s = hsum(NT == 1 ? _mm256_add_ps(acc[r][t][0], acc[r][t][1]) : acc[r][t][0]), tail = 0;
            /* columns past the last multiple of 32 (scale_x leaves them in place) */
            /* (the weight in the vectors' units, e4m3 · 2^-120, exact, so that huge inputs do not overflow here) */
            for (int64_t k = n32; k < cols; k++)
                tail += X[t * ldx + k] * (elem_scalar(MOEC_QT_F8E4M3, row, k) * 0x1p-120f);
            /* One factor when it is finite (always, short of |x| near 2^100 with weights near 2^8). */
            const float f = post[t] * sc;
            s += tail;
            Y[t * ldy + r * rstep] = isinf(f) ? (s * sc) * post[t] : s * f;
        }
    }
}

#include "kernels/cpu/qmatmul_f8_rows.h" /* f8_tiles and dot_f8 around this file's f8_tile */

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
        /* each block of 32 columns in e4m3x32's order: y[i + 8k + j] = x[i + 4j + k] (a 4 × 8 transpose); the
         * columns past the last block stay in place */
        const __m256 vf = _mm256_set1_ps(f);
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (i = 0; i + 32 <= I; i += 32) {
            /* a 4 × 4 transpose in each 128-bit lane gives r[k] = x[k], x[8+k], x[16+k], x[24+k] | x[4+k], x[12+k],
             * x[20+k], x[28+k]; one lane-crossing permutation puts those in the order 4j + k */
            const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8), c = _mm256_loadu_ps(x + i + 16),
                         d = _mm256_loadu_ps(x + i + 24);
            const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b), t2 = _mm256_unpacklo_ps(c, d),
                         t3 = _mm256_unpackhi_ps(c, d);
            const __m256 r[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee),
                                 _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee)};
            for (int k = 0; k < 4; k++)
                _mm256_storeu_ps(y + i + 8 * k, _mm256_mul_ps(_mm256_permutevar8x32_ps(r[k], order), vf));
        }
        for (; i < I; i++) y[i] = x[i] * f;
        post[t] = ldexpf(1.0f, 120 - sx);
    }
}

/* bf16: xs[t·I + i] = X[t·ldx + i] in load16_dot's order, each block of 16 columns as its 8 even then its 8 odd
 * columns; the columns past the last block stay in place. */
static void permute_x_bf16(const float *X, int64_t ldx, int64_t T, int64_t I, float *xs) {
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * ldx;
        float *y = xs + t * I;
        int64_t i = 0;
        for (; i + 16 <= I; i += 16)
            for (int j = 0; j < 8; j++) y[i + j] = x[i + 2 * j], y[i + 8 + j] = x[i + 2 * j + 1];
        for (; i < I; i++) y[i] = x[i];
    }
}

static int64_t prep_floats_avx2(const moec_qmat *W, int64_t T) {
    return W->type == MOEC_QT_BF16 ? T * W->cols : W->type == MOEC_QT_F8E4M3 ? T * W->cols + T : 0;
}

/* X in the kernel's column order: bf16 permuted (load16_dot), E4M3 permuted and scaled (e4m3x32, scale_x), followed
 * by post[T]. */
static void prepare_avx2(const moec_qmat *W, const float *X, int64_t ldx, int64_t T, float *xs) {
    const int64_t I = W->cols;
    if (W->type == MOEC_QT_F8E4M3) scale_x(X, ldx, T, I, xs, xs + T * I);
    else if (W->type == MOEC_QT_BF16) permute_x_bf16(X, ldx, T, I, xs);
}

static void dot_prepared_avx2(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T, float *Y,
                              int64_t ldy) {
    const int64_t I = W->cols;
    if (W->type == MOEC_QT_F8E4M3) dot_f8(W, o0, o1, xs, I, T, Y, ldy, xs + T * I);
    else if (W->type == MOEC_QT_BF16) dot_bf16(W, o0, o1, xs, I, T, Y, ldy, NULL);
    else dot_f32(W, o0, o1, xs, I, T, Y, ldy, NULL);
}

/* Self-contained: prepares X in this thread's scratch, then runs the prepared kernel. */
static void dot_avx2(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                     int64_t ldy) {
    if (!prep_floats_avx2(W, T)) { /* f32, f16, Q8_0: X as it is */
        void (*f)(const moec_qmat *, int64_t, int64_t, const float *, int64_t, int64_t, float *, int64_t,
                  const float *) = W->type == MOEC_QT_F32 ? dot_f32 : W->type == MOEC_QT_F16 ? dot_f16 : dot_q8;
        f(W, o0, o1, X, ldx, T, Y, ldy, NULL);
        return;
    }
    float *xs = moec_qmat_scratch(1, (size_t)prep_floats_avx2(W, T));
    if (!xs) { /* out of memory: slower but correct */
        moec_qmat_kernels_scalar.dot(W, o0, o1, X, ldx, T, Y, ldy);
        return;
    }
    prepare_avx2(W, X, ldx, T, xs);
    dot_prepared_avx2(W, o0, o1, xs, T, Y, ldy);
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

TARGET static void dequant_q8(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    const int64_t row_bytes = moec_qtype_row_bytes(MOEC_QT_Q8_0, W->cols), nb = W->cols / MOEC_Q8_0_BLOCK;
    for (int64_t r = 0; r < n; r++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = (const uint8_t *)W->data + (size_t)(o0 + r) * (size_t)row_bytes +
                                 (size_t)b * MOEC_Q8_0_BLOCK_BYTES;
            const __m256 d = _mm256_set1_ps(_cvtsh_ss((unsigned short)(blk[0] | blk[1] << 8)));
            float *y = out + r * W->cols + b * MOEC_Q8_0_BLOCK;
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * k)));
                _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
            }
        }
}

TARGET static void dequant_avx2(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    switch (W->type) {
    case MOEC_QT_Q8_0: dequant_q8(W, o0, n, out); break;
    case MOEC_QT_F32: dequant_type(MOEC_QT_F32, W, o0, n, out); break;
    case MOEC_QT_BF16: dequant_type(MOEC_QT_BF16, W, o0, n, out); break;
    case MOEC_QT_F16: dequant_type(MOEC_QT_F16, W, o0, n, out); break;
    default: dequant_type(MOEC_QT_F8E4M3, W, o0, n, out); break;
    }
}

const qmat_kernels moec_qmat_kernels_avx2 = {
    .isa = MOEC_GEMM_ISA_AVX2, .name = "avx2", .dot = dot_avx2, .prep_floats = prep_floats_avx2,
    .prepare = prepare_avx2, .dot_prepared = dot_prepared_avx2, .dequant = dequant_avx2,
};
