/* qmatmul_bf16p_avx512.c — the AVX-512 (F + BW) kernels for bf16p weights: qmatmul_bf16p.c's decoding, a block
 * of 128 weights per step — the block's 64 code bytes loaded once and split into low and high nibbles (3 operations),
 * then per group of 64: one 64-byte load of B bytes, one vpshufb through the row's table, two byte interleaves, two
 * shifts and two masks for 4 vectors of 16 consecutive columns. One input row (decode): row by row; more (batched
 * decoding): tiles of 4 weight rows × 2 input rows (tile_sums). */
#include "core/bf16p.h"
#include "io/safetensors.h"
#include "kernels/cpu/avx512.h"
#include "kernels/cpu/qmatmul_bf16p.h"

#define TARGET AVX512_TARGET
#define INLINE static inline __attribute__((always_inline))

/* One group of 64 columns: its 64 B bytes and codes (one per byte) -> w[v] = its columns 16v .. 16v + 15. */
TARGET INLINE void decode_group(const uint8_t *B, __m512i codes, __m512i lut, __m512i w[4]) {
    const __m512i b = _mm512_loadu_si512((const void *)B), hi = _mm512_shuffle_epi8(lut, codes);
    const __m512i lo16 = _mm512_unpacklo_epi8(b, hi), hi16 = _mm512_unpackhi_epi8(b, hi);
    const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
    w[0] = _mm512_slli_epi32(lo16, 16);
    w[1] = _mm512_and_si512(lo16, top);
    w[2] = _mm512_slli_epi32(hi16, 16);
    w[3] = _mm512_and_si512(hi16, top);
}

/* The codes of a block's two groups (low and high nibbles of its 64 code bytes). */
TARGET INLINE void block_codes(const uint8_t *blk, __m512i c[2]) {
    const __m512i n = _mm512_loadu_si512((const void *)(blk + 128)), low = _mm512_set1_epi8(0x0f);
    c[0] = _mm512_and_si512(n, low);
    c[1] = _mm512_and_si512(_mm512_srli_epi16(n, 4), low);
}

/* The NT (1, 2, 4 or 8) sums of one row, escapes not included. With NT <= 2 each input row has 4 accumulators (one
 * per vector of a group: enough chains to cover the FMA latency); with more, one each (NT chains already), so
 * that 8 input rows fit the registers and each group is decoded once for all of them. */
TARGET INLINE void row_sums(int NT, const uint8_t *row, int64_t cols, const float *X, int64_t ldx, float *sums) {
    const int nv = NT <= 2 ? 4 : 1;
    const uint8_t *blk = moec_bf16p_block(row, cols, 0);
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)row));
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[t][v] = _mm512_setzero_ps();
    for (int64_t c0 = 0; c0 < cols; c0 += MOEC_BF16P_BLOCK, blk += 192) {
#pragma GCC unroll 3
        for (int k = 0; k < 192; k += 64) __builtin_prefetch(blk + k + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
        __m512i c[2];
        block_codes(blk, c);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512i w[4];
            decode_group(blk + 64 * h, c[h], lut, w);
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++)
                    acc[t][v & (nv - 1)] = _mm512_fmadd_ps(_mm512_castsi512_ps(w[v]),
                                                           _mm512_loadu_ps(X + t * ldx + c0 + 64 * h + 16 * v),
                                                           acc[t][v & (nv - 1)]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        sums[t] = _mm512_reduce_add_ps(nv == 1 ? acc[t][0]
                                               : _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]),
                                                               _mm512_add_ps(acc[t][2], acc[t][3])));
}

/* The NT (1 or 2) sums of R (2..4) rows side by side: R sequential streams in flight instead of one (row by row,
 * 2 input rows streamed 14-26 GB/s of packed weights against bf16's 4-row tiles 30-34, bench_qmatmul), each X
 * vector loaded once for the R rows; one accumulator per (row, input row). */
TARGET INLINE void tile_sums(int R, int NT, const uint8_t *const *rows, int64_t cols, const float *X, int64_t ldx,
                             float sums[4][2]) {
    const uint8_t *blk[4];
    __m512i lut[4];
    __m512 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        blk[r] = moec_bf16p_block(rows[r], cols, 0);
        lut[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)rows[r]));
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
    }
    for (int64_t c0 = 0; c0 < cols; c0 += MOEC_BF16P_BLOCK) {
        __m512i c[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
#pragma GCC unroll 3
            for (int k = 0; k < 192; k += 64)
                __builtin_prefetch(blk[r] + k + QMAT_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
            block_codes(blk[r], c[r]);
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 x[2][4];
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) x[t][v] = _mm512_loadu_ps(X + t * ldx + c0 + 64 * h + 16 * v);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i w[4];
                decode_group(blk[r] + 64 * h, c[r][h], lut[r], w);
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
                    for (int v = 0; v < 4; v++)
                        acc[r][t] = _mm512_fmadd_ps(_mm512_castsi512_ps(w[v]), x[t][v], acc[r][t]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) blk[r] += 192;
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) sums[r][t] = _mm512_reduce_add_ps(acc[r][t]);
}

/* Rows o .. o + R - 1 (R <= 4) for input rows t0, t0 + 1 (NT = 2) or t0 alone, escapes added, into Y. */
TARGET static void tile(int R, int NT, const moec_qmat *W, int64_t o, const float *x, int64_t ldx, float *Y,
                        int64_t ldy) {
    const uint8_t *rows[4];
    float s[4][2];
    for (int r = 0; r < R; r++) rows[r] = moec_bf16p_row(W, o + r);
    if (NT == 2) {
        switch (R) {
        case 2: tile_sums(2, 2, rows, W->cols, x, ldx, s); break;
        case 3: tile_sums(3, 2, rows, W->cols, x, ldx, s); break;
        default: tile_sums(4, 2, rows, W->cols, x, ldx, s); break;
        }
    } else {
        switch (R) {
        case 2: tile_sums(2, 1, rows, W->cols, x, ldx, s); break;
        case 3: tile_sums(3, 1, rows, W->cols, x, ldx, s); break;
        default: tile_sums(4, 1, rows, W->cols, x, ldx, s); break;
        }
    }
    for (int r = 0; r < R; r++) {
        moec_bf16p_add_escapes(rows[r], x, ldx, NT, s[r]);
        for (int t = 0; t < NT; t++) Y[t * ldy + o + r] = s[r][t];
    }
}

TARGET void moec_bf16p_dot_avx512(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                                  float *Y, int64_t ldy) {
    if (T >= 2) { /* batched decoding: 4 weight rows side by side, 2 input rows at a time */
        for (int64_t o = o0; o < o1; o += 4) {
            const int R = o1 - o >= 4 ? 4 : (int)(o1 - o);
            if (R == 1) break; /* the last row alone: row by row below */
            for (int64_t t0 = 0; t0 < T; t0 += 2)
                tile(R, T - t0 >= 2 ? 2 : 1, W, o, X + t0 * ldx, ldx, Y + t0 * ldy, ldy);
            o0 = o + R;
        }
    }
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = moec_bf16p_row(W, o);
        for (int64_t t0 = 0; t0 < T;) {
            float s[8];
            const int nt = T - t0 >= 8 ? 8 : T - t0 >= 4 ? 4 : T - t0 >= 2 ? 2 : 1;
            const float *x = X + t0 * ldx;
            switch (nt) {
            case 1: row_sums(1, row, W->cols, x, ldx, s); break;
            case 2: row_sums(2, row, W->cols, x, ldx, s); break;
            case 4: row_sums(4, row, W->cols, x, ldx, s); break;
            default: row_sums(8, row, W->cols, x, ldx, s); break;
            }
            moec_bf16p_add_escapes(row, x, ldx, nt, s);
            for (int t = 0; t < nt; t++) Y[(t0 + t) * ldy + o] = s[t];
            t0 += nt;
        }
    }
}

TARGET void moec_bf16p_dequant_avx512(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    const int64_t cols = W->cols;
    for (int64_t r = 0; r < n; r++, out += cols) {
        const uint8_t *row = moec_bf16p_row(W, o0 + r), *blk = moec_bf16p_block(row, cols, 0);
        const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)row));
        for (int64_t c0 = 0; c0 < cols; c0 += MOEC_BF16P_BLOCK, blk += 192) {
            __m512i c[2];
            block_codes(blk, c);
            for (int h = 0; h < 2; h++) {
                __m512i w[4];
                decode_group(blk + 64 * h, c[h], lut, w);
                for (int v = 0; v < 4; v++) _mm512_storeu_ps(out + c0 + 64 * h + 16 * v, _mm512_castsi512_ps(w[v]));
            }
        }
        moec_bf16p_put_escapes(row, out);
    }
}
