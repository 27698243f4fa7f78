/* qmatmul_q8.h — the int8-activation kernels for ggml's block types, compiled once per instruction set.
 *
 * Included exactly once by each of two files, which define before including it:
 *   Q8_TARGET  the target attribute of every function here (qmatmul_blocks.c: AVX2 + FMA + F16C;
 *              qmatmul_blocks_avx512.c: AVX-512 F/BW/VL + VNNI, or nothing in the emulated build);
 *   Q8_VNNI    1 where AVX-512 VL + VNNI may be used: vpdpbusd for the code × activation sums (one instruction where
 *              AVX2 takes vpmaddubsw + vpmaddwd; the same int32 sums, since AVX2's int16 pairs cannot saturate) and
 *              mask / ternary-logic instructions for the fifth bits of Q5_0/Q5_1/Q5_K; 0 for AVX2.
 * Both compile the same 256-bit kernels; the AVX-512 build also gets 32 vector registers instead of 16, which keeps
 * the accumulators and constants of the Q5_0 / Q4_K loops out of the stack. Each file gets its own static copies,
 * so the two instantiations never meet. The results are the same bits on both (same integer sums, same float
 * operations in the same order), and qmatmul_blocks.c picks one per call (q8_dot_any). The row shapes these serve
 * are short (ref-moe-small: 512 values, two K super-blocks), so per-row costs matter as much as per-block ones.
 */
#include <stdint.h>
#include <string.h>

#include "io/ggml_quants.h"
#include "kernels/cpu/qmatmul_kernels.h"

#if !defined(Q8_TARGET) || !defined(Q8_VNNI)
#error "define Q8_TARGET and Q8_VNNI before including qmatmul_q8.h"
#endif

Q8_TARGET static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The f16 at p, by F16C's one instruction (exact, as moec_f16_to_f32, which is a call: 8 % of the kernel's time). */
Q8_TARGET static inline __attribute__((always_inline)) float half_f16c(const uint8_t *p) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(p[0] | p[1] << 8)));
}

/* hsum8 of the four accumulators of one input row. */
Q8_TARGET static inline __attribute__((always_inline)) float sum4(const __m256 *acc) {
    return hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

/* The 8 sub-block scales a = d·scale and offsets c = −dmin·min of a Q4_K / Q5_K super-block, 8 lanes at a time
 * (ggml_unpack.h's moec_unpack_q45_k in vector form: a fifth of the instructions of the scalar loop, which had
 * become ~40 % of the kernel's). Bytes 0-3 hold scales 0-3 (low 6 bits) and the top bits of scales 4-7, bytes
 * 4-7 mins 0-3 and the top bits of mins 4-7, bytes 8-11 the low nibbles of scales 4-7 and (high) mins 4-7. */
Q8_TARGET static inline __attribute__((always_inline)) void k4_scales(const uint8_t *blk, float *a, float *c) {
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

/* ---------------------------------------------------------------------------------------------------------------
 * Int8 activations (MOEC_QACT_Q8, qmatmul.h): the input rows are rounded once per call to int8 in blocks of
 * 32 (x ≈ dx·y, dx = max|x| / 127, y = round(x / dx)), and each block of weight codes meets them in integer dot
 * products: vpmaddubsw (unsigned codes × signed y, pairs summed in int16: at most 2·63·127, no saturation) and
 * vpmaddwd (pairs summed in int32, Q6_K with its signed per-16 scales), then one conversion and one FMA by
 * (weight scale)·dx per 32 values. The weights' offsets (Q4_1/Q5_1/Q4_K/Q5_K mins, the −8/−16/−32 of Q4_0/Q5_0/
 * Q6_K) multiply dx·Σy, summed once in the rounding. About a third of the exact kernels' instructions per weight.
 * Q8_0's codes are signed: |q| meets y with q's sign (vpabsb, vpsignb; |q| ≤ 128, so 2·128·127 still fits an
 * int16), no offset; qmatmul.c sends it here only for rows of up to 1536 values (Q8_0_INT8_MAX_COLS).
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
Q8_TARGET static inline __attribute__((always_inline)) void prefetch_block(const uint8_t *blk, int64_t bytes) {
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

/* Σ over 32 values of code · y, 8 int32 lanes: q unsigned (< 64), y signed. */
Q8_TARGET static inline __attribute__((always_inline)) __m256 q8_dot32(__m256i q, const int8_t *y) {
#if Q8_VNNI
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)y)));
#else
    const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)y));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
}

/* The same for signed codes q (Q8_0, −128..127): |q| · (y with q's sign), as llama.cpp does, since the unsigned ×
 * signed instructions want one unsigned operand (|q| ≤ 128: 2·128·127 still fits an int16 pair). qa = |q|. */
Q8_TARGET static inline __attribute__((always_inline)) __m256 q8_dot32s(__m256i qa, __m256i q, const int8_t *y) {
    const __m256i ys = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y), q);
#if Q8_VNNI
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), qa, ys));
#else
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(qa, ys), _mm256_set1_epi16(1)));
#endif
}

/* 32 bytes of 4-bit codes: the low nibbles (lo) and the high ones (hi). */
Q8_TARGET static inline __attribute__((always_inline)) void nibbles32(const uint8_t *p, __m256i *lo, __m256i *hi) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)p), m = _mm256_set1_epi8(15);
    *lo = _mm256_and_si256(v, m);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
}

/* Bit s of each of 32 bytes, moved to bit `to` (shifts within 16-bit lanes; the mask drops what crossed a byte). */
Q8_TARGET static inline __attribute__((always_inline)) __m256i bit_to(__m256i v, int s, int to) {
    const __m256i one = _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8(1));
    return _mm256_slli_epi16(one, to);
}

/* codes | (bit s of each byte of v, as 16): the fifth bit of Q5_K's codes (s < 8). VNNI builds: one shift that
 * brings bit s to bit 4 of its byte (within 16-bit lanes; for s <= 7 no bit that lands on bit 4 of a byte comes
 * from the other byte) and one vpternlogd computing codes | (shifted & 16). */
Q8_TARGET static inline __attribute__((always_inline)) __m256i or_bit16(__m256i codes, __m256i v, int s) {
#if Q8_VNNI
    const __m256i at4 = s <= 4 ? _mm256_slli_epi16(v, 4 - s) : _mm256_srli_epi16(v, s - 4);
    return _mm256_ternarylogic_epi32(codes, at4, _mm256_set1_epi8(16), 0xF8); /* a | (b & c) */
#else
    return _mm256_or_si256(codes, bit_to(v, s, 4));
#endif
}

/* Rows up to this wide are decoded in pairs (R = 2 below); measured, VNNI build, bench_infer Q4_K_M decode:
 * ref-moe-small (rows of 512) 759 -> 836 and 673 -> 732 tok/s (medians of 5 and 4 alternating runs), but moe-1b
 * (rows of 2048) 96.7 -> 51.9 — not investigated; presumably two rows 1.1 KB apart read side by side look like two
 * streams to the prefetchers, as interleaved rows did for the bf16 kernels (qmatmul_avx512.c). */
#ifndef Q8_PAIR_MAX_COLS
#define Q8_PAIR_MAX_COLS 512
#endif

/* Q4_K / Q5_K (five): R weight rows (1, or 2 side by side with NT = 1: the VNNI build's 32 registers hold both
 * rows' accumulators) against NT input rows; sums[r · NT + t]. Per super-block: scales a = d·sc and offsets
 * c = −dmin·min (k4_scales), a·dx per 32 values into fa, the offsets against s32 in one FMA. Each (row, input)
 * sum has its own accumulators, fed in the same order whatever R is, so a row gives the same bits paired or not;
 * a pair shares the loads of y and runs two independent chains. */
Q8_TARGET static inline __attribute__((always_inline)) void q8_q45k_rows(int R, int NT, int five,
                                                                      const uint8_t *const *rows, int64_t nb,
                                                                      const q8_row *X, float *sums) {
    __m256 acc[2][4][4], off[2][4];
    const int alt = NT <= 2 ? 2 : 0;
    const int64_t bs = five ? 176 : 144;
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            acc[r][t][0] = acc[r][t][1] = acc[r][t][2] = acc[r][t][3] = off[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk[2];
        float fa[2][4][8];
        __m256i qh[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            blk[r] = rows[r] + b * bs;
            prefetch_block(blk[r], bs);
            float a[8], c[8];
            k4_scales(blk[r], a, c);
            const __m256 va = _mm256_loadu_ps(a), vc = _mm256_loadu_ps(c);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                _mm256_storeu_ps(fa[r][t], _mm256_mul_ps(va, _mm256_loadu_ps(X[t].dx + 8 * b)));
                off[r][t] = _mm256_fmadd_ps(vc, _mm256_loadu_ps(X[t].s32 + 8 * b), off[r][t]);
            }
            qh[r] = five ? _mm256_loadu_si256((const __m256i *)(blk[r] + 16)) : _mm256_setzero_si256();
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) { /* values 64k .. 64k + 31 (low nibbles), 64k + 32 .. 64k + 63 (high) */
            const int e = (k & 1) * alt;
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) {
                __m256i lo, hi;
                nibbles32(blk[r] + (five ? 48 : 16) + 32 * k, &lo, &hi);
                if (five) {
                    lo = or_bit16(lo, qh[r], 2 * k);
                    hi = or_bit16(hi, qh[r], 2 * k + 1);
                }
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const int8_t *y = X[t].y + 256 * b + 64 * k;
                    acc[r][t][e] = _mm256_fmadd_ps(q8_dot32(lo, y), _mm256_set1_ps(fa[r][t][2 * k]), acc[r][t][e]);
                    acc[r][t][e + 1] =
                        _mm256_fmadd_ps(q8_dot32(hi, y + 32), _mm256_set1_ps(fa[r][t][2 * k + 1]), acc[r][t][e + 1]);
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) sums[r * NT + t] = sum4(acc[r][t]) + hsum8(off[r][t]);
}

/* The int16 scales of 32-value chunk j for vpmaddwd, from the 16 int8 group scales held in both 128-bit lanes of
 * sc: group 2j's in the low lane (the chunk's first 16 values), 2j + 1's in the high one — each byte shuffled into
 * the top of an int16 and shifted down with its sign. */
Q8_TARGET static inline __attribute__((always_inline)) __m256i chunk_scales(__m256i sc, int j) {
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
Q8_TARGET static inline __attribute__((always_inline)) void q8_k16(int NT, moec_ggml_type g, const uint8_t *row,
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

/* One Q4_0 / Q4_1 (has_min) / Q5_0 / Q5_1 (five) / Q8_0 (eight) block: its 32 codes as bytes (Q8_0: signed), its
 * scale d and offset c (the min, or −8·d / −16·d; Q8_0: none). The fifth bits of the 32-bit qh spread to bytes
 * (byte j of the vector takes byte j / 8 of qh, masked by bit j % 8). */
Q8_TARGET static inline __attribute__((always_inline)) __m256i q32_codes(int has_min, int five, int eight,
                                                                      const uint8_t *blk, float *d, float *c) {
    const uint8_t *p = blk + (has_min ? 4 : 2);
    *d = half_f16c(blk);
    if (eight) {
        *c = 0;
        return _mm256_loadu_si256((const __m256i *)p);
    }
    *c = has_min ? half_f16c(blk + 2) : (five ? -16.0f : -8.0f) * *d;
    const __m128i v = _mm_loadu_si128((const __m128i *)(p + (five ? 4 : 0))), m = _mm_set1_epi8(15);
    __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
    if (five) {
        uint32_t qh;
        memcpy(&qh, p, 4);
#if Q8_VNNI /* qh is a byte mask as it stands: bytes of all ones where set (vpmovm2b), then q | (that & 16) */
        q = _mm256_ternarylogic_epi32(q, _mm256_movm_epi8(qh), _mm256_set1_epi8(16), 0xF8);
#else
        const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                                3, 3, 3, 3, 3, 3, 3, 3);
        const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        const __m256i set = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread), bits);
        q = _mm256_or_si256(q, _mm256_and_si256(_mm256_cmpeq_epi8(set, bits), _mm256_set1_epi8(16)));
#endif
    }
    return q;
}

/* Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0: one 32-value block per activation block, two blocks per iteration, each into its
 * own accumulators (with the accumulator picked by b & 1 at run time, GCC kept them on the stack: a store and a
 * reload in every block's dependency chain, 7 % of a ref-moe-small Q4_K_M decode profile on that one store). The
 * offsets c·s32 go to two scalar sums (Q8_0 has none). */
Q8_TARGET static inline __attribute__((always_inline)) __m256 q32_dot(int eight, __m256i q, const int8_t *y) {
    return eight ? q8_dot32s(_mm256_abs_epi8(q), q, y) : q8_dot32(q, y);
}

Q8_TARGET static inline __attribute__((always_inline)) void q8_q32(int NT, int has_min, int five, int eight,
                                                                const uint8_t *row, int64_t nb, const q8_row *X,
                                                                float *sums) {
    __m256 acc[4][2];
    float off[4][2];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps(), off[t][0] = off[t][1] = 0;
    const int64_t bb = eight ? 34 : 18 + 2 * has_min + 4 * five;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t *blk = row + b * bb;
        if (eight) {
#ifndef Q8_0_PREFETCH_BYTES
#define Q8_0_PREFETCH_BYTES 512
#endif
            __builtin_prefetch(blk + Q8_0_PREFETCH_BYTES, 0, QMAT_PREFETCH_LOCALITY);
        } else {
            prefetch_block(blk, 2 * bb);
        }
        float d[2], c[2];
        __m256i q[2];
        q[0] = q32_codes(has_min, five, eight, blk, &d[0], &c[0]);
        q[1] = q32_codes(has_min, five, eight, blk + bb, &d[1], &c[1]);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++)
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                acc[t][e] = _mm256_fmadd_ps(q32_dot(eight, q[e], X[t].y + 32 * (b + e)),
                                            _mm256_set1_ps(d[e] * X[t].dx[b + e]), acc[t][e]);
                if (!eight) off[t][e] += c[e] * X[t].s32[b + e];
            }
    }
    if (b < nb) {
        float d, c;
        const __m256i q = q32_codes(has_min, five, eight, row + b * bb, &d, &c);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            acc[t][0] = _mm256_fmadd_ps(q32_dot(eight, q, X[t].y + 32 * b), _mm256_set1_ps(d * X[t].dx[b]), acc[t][0]);
            if (!eight) off[t][0] += c * X[t].s32[b];
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) sums[t] = hsum8(_mm256_add_ps(acc[t][0], acc[t][1])) + (off[t][0] + off[t][1]);
}

Q8_TARGET static inline __attribute__((always_inline)) void q8_rows(moec_ggml_type g, int NT, const uint8_t *row,
                                                                 int64_t cols, const q8_row *X, float *sums) {
    switch (g) {
    case MOEC_GGML_Q4_0: q8_q32(NT, 0, 0, 0, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q4_1: q8_q32(NT, 1, 0, 0, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q5_0: q8_q32(NT, 0, 1, 0, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q5_1: q8_q32(NT, 1, 1, 0, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q8_0: q8_q32(NT, 0, 0, 1, row, cols / 32, X, sums); break;
    case MOEC_GGML_Q4_K: q8_q45k_rows(1, NT, 0, &row, cols / 256, X, sums); break;
    case MOEC_GGML_Q5_K: q8_q45k_rows(1, NT, 1, &row, cols / 256, X, sums); break;
    /* the type a constant in each instantiation, as NT is */
    case MOEC_GGML_Q2_K: q8_k16(NT, MOEC_GGML_Q2_K, row, cols / 256, X, sums); break;
    case MOEC_GGML_Q3_K: q8_k16(NT, MOEC_GGML_Q3_K, row, cols / 256, X, sums); break;
    default: q8_k16(NT, MOEC_GGML_Q6_K, row, cols / 256, X, sums); break;
    }
}

Q8_TARGET static void q8_dot(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T, float *Y,
                          int64_t ldy) {
    const moec_ggml_type g = (moec_ggml_type)moec_qtype_ggml(W->type);
    const size_t row_bytes = (size_t)moec_qtype_row_bytes(W->type, W->cols); /* a call: once, not per row */
    q8_row X4[4];
    for (int t = 0; t < 4 && t < T; t++) X4[t] = q8_row_at(xs, W->cols, t);
    int64_t o = o0;
#if Q8_VNNI && !defined(Q8_NO_PAIRS)
    if (T == 1 && (g == MOEC_GGML_Q4_K || g == MOEC_GGML_Q5_K) && W->cols <= Q8_PAIR_MAX_COLS)
        for (; o + 2 <= o1; o += 2) {
            const uint8_t *row = (const uint8_t *)W->data + (size_t)o * row_bytes, *const rows[2] = {row, row + row_bytes};
            float sums[2];
            if (g == MOEC_GGML_Q5_K) q8_q45k_rows(2, 1, 1, rows, W->cols / 256, X4, sums);
            else q8_q45k_rows(2, 1, 0, rows, W->cols / 256, X4, sums);
            Y[o] = sums[0] * X4[0].post;
            Y[o + 1] = sums[1] * X4[0].post;
        }
#endif
    for (; o < o1; o++) {
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
