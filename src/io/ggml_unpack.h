/* ggml_unpack.h — one block of a ggml block type (io/ggml_quants.h) as small integer codes and per-16-value
 * scale and offset, the form the SIMD kernels compute with:
 *
 *     value i  =  fmaf(a[i / 16], q[i], c[i / 16])          q[i] in 0..63, one fp32 rounding
 *
 * This equals ggml's own decoding (and so moec_ggml_dequantize's) bit for bit, except that where ggml computes
 * (q − 8)·d = −0 for a negative d this gives +0 (the same number in every sum): in every type a[g]·q[i] is exact in
 * fp32 — a is an f16 times a scale of at most 8 bits (≤ 19 significant bits) and q has at most 6 — so ggml's
 * "product, then add the offset" rounds once, as the fused form does; Q6_K's d·scale·(q − 32) and Q3_K's
 * d·scale·(q − 4) are one product of exact factors, rounded once, and a·q + (−32·a) is that same exact value.
 * Static inline: compiled inside each kernel, with that kernel's instruction set. */
#ifndef MOEC_IO_GGML_UNPACK_H
#define MOEC_IO_GGML_UNPACK_H

#include <stdint.h>

#include "io/gguf.h"
#include "io/safetensors.h" /* moec_f16_to_f32 */

static inline float moec_unpack_half(const uint8_t *p) { return moec_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* Q4_0 / Q4_1 (has_min) / Q5_0 / Q5_1 (five): 32 values, groups 0 and 1 share d. */
static inline __attribute__((always_inline)) void moec_unpack_32(const uint8_t *b, int has_min, int five, uint8_t *q,
                                                                 float *a, float *c) {
    const float d = moec_unpack_half(b), m = has_min ? moec_unpack_half(b + 2) : 0.0f;
    const uint8_t *p = b + (has_min ? 4 : 2);
    uint32_t qh = 0;
    if (five) {
        qh = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        p += 4;
    }
    for (int j = 0; j < 16; j++) {
        q[j] = (uint8_t)((p[j] & 15) | (five ? ((qh >> j) & 1) << 4 : 0));
        q[j + 16] = (uint8_t)((p[j] >> 4) | (five ? ((qh >> (j + 16)) & 1) << 4 : 0));
    }
    a[0] = a[1] = d;
    c[0] = c[1] = has_min ? m : (five ? -16.0f : -8.0f) * d;
}

static inline __attribute__((always_inline)) void moec_unpack_q2_k(const uint8_t *b, uint8_t *q, float *a, float *c) {
    const float d = moec_unpack_half(b + 80), dmin = moec_unpack_half(b + 82);
    for (int g = 0; g < 16; g++) {
        a[g] = d * (float)(b[g] & 15);
        c[g] = -(dmin * (float)(b[g] >> 4));
    }
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * s + l] = (uint8_t)((b[16 + 32 * h + l] >> (2 * s)) & 3);
}

static inline __attribute__((always_inline)) void moec_unpack_q3_k(const uint8_t *b, uint8_t *q, float *a, float *c) {
    const uint8_t *hmask = b, *qs = b + 32, *sp = b + 96;
    const float d = moec_unpack_half(b + 108);
    for (int g = 0; g < 16; g++) {
        const int lo = g < 8 ? sp[g] & 15 : sp[g - 8] >> 4, sc = lo | ((sp[8 + g % 4] >> (2 * (g / 4))) & 3) << 4;
        a[g] = d * (float)(sc - 32);
        c[g] = -4.0f * a[g];
    }
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * s + l] =
                    (uint8_t)(((qs[32 * h + l] >> (2 * s)) & 3) | ((hmask[l] >> (4 * h + s)) & 1) << 2);
}

/* Q4_K, and Q5_K when qh is not NULL. */
static inline __attribute__((always_inline)) void moec_unpack_q45_k(const uint8_t *b, const uint8_t *qh,
                                                                    const uint8_t *qs, uint8_t *q, float *a, float *c) {
    const float d = moec_unpack_half(b), dmin = moec_unpack_half(b + 2);
    const uint8_t *sp = b + 4;
    for (int i = 0; i < 8; i++) { /* sub-block i is groups 2i and 2i + 1 */
        const int sc = i < 4 ? sp[i] & 63 : (sp[i + 4] & 15) | (sp[i - 4] >> 6) << 4;
        const int mn = i < 4 ? sp[i + 4] & 63 : (sp[i + 4] >> 4) | (sp[i] >> 6) << 4;
        a[2 * i] = a[2 * i + 1] = d * (float)sc;
        c[2 * i] = c[2 * i + 1] = -(dmin * (float)mn);
    }
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            const int h0 = qh ? ((qh[l] >> (2 * k)) & 1) << 4 : 0, h1 = qh ? ((qh[l] >> (2 * k + 1)) & 1) << 4 : 0;
            q[64 * k + l] = (uint8_t)((qs[32 * k + l] & 15) | h0);
            q[64 * k + 32 + l] = (uint8_t)((qs[32 * k + l] >> 4) | h1);
        }
}

static inline __attribute__((always_inline)) void moec_unpack_q6_k(const uint8_t *b, uint8_t *q, float *a, float *c) {
    const uint8_t *ql = b, *qh = b + 128;
    const float d = moec_unpack_half(b + 208);
    for (int g = 0; g < 16; g++) {
        a[g] = d * (float)(int8_t)b[192 + g];
        c[g] = -32.0f * a[g];
    }
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                const uint8_t lowb = ql[64 * h + 32 * (k & 1) + l];
                q[128 * h + 32 * k + l] =
                    (uint8_t)((k < 2 ? lowb & 15 : lowb >> 4) | ((qh[32 * h + l] >> (2 * k)) & 3) << 4);
            }
}

/* Block `b` of type t (Q4_0 .. Q6_K, not Q8_0): its values' codes q[0..B), and a, c for its B / 16 groups. */
static inline __attribute__((always_inline)) void moec_ggml_unpack(moec_ggml_type t, const uint8_t *b, uint8_t *q,
                                                                   float *a, float *c) {
    switch (t) {
    case MOEC_GGML_Q4_0: moec_unpack_32(b, 0, 0, q, a, c); break;
    case MOEC_GGML_Q4_1: moec_unpack_32(b, 1, 0, q, a, c); break;
    case MOEC_GGML_Q5_0: moec_unpack_32(b, 0, 1, q, a, c); break;
    case MOEC_GGML_Q5_1: moec_unpack_32(b, 1, 1, q, a, c); break;
    case MOEC_GGML_Q2_K: moec_unpack_q2_k(b, q, a, c); break;
    case MOEC_GGML_Q3_K: moec_unpack_q3_k(b, q, a, c); break;
    case MOEC_GGML_Q4_K: moec_unpack_q45_k(b, NULL, b + 16, q, a, c); break;
    case MOEC_GGML_Q5_K: moec_unpack_q45_k(b, b + 16, b + 48, q, a, c); break;
    case MOEC_GGML_Q6_K: moec_unpack_q6_k(b, q, a, c); break;
    default: break;
    }
}

#endif
