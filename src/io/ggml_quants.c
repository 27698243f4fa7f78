/* ggml_quants.c — see ggml_quants.h for the block layouts. Plain C, one block at a time; the inference kernels
 * that read these types in place (kernels/cpu/qmatmul*.c) call the same block decoders for their tails and
 * prefill, so every path gives the same values. */
#include "io/ggml_quants.h"

#include <string.h>

#include "io/safetensors.h" /* moec_f16_to_f32, moec_bf16_to_f32 */

static float half_at(const uint8_t *p) { return moec_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- 32-value blocks */

/* Q4_0 and Q4_1: 16 bytes of nibbles, low nibbles first. has_min: Q4_1 (d, m, y = d·q + m), else Q4_0 (d, y =
 * d·(q − 8)). */
static void block_q4(const uint8_t *b, int has_min, float *y) {
    const float d = half_at(b), m = has_min ? half_at(b + 2) : 0.0f;
    const uint8_t *qs = b + (has_min ? 4 : 2);
    for (int j = 0; j < 16; j++) {
        if (has_min) {
            y[j] = (float)(qs[j] & 15) * d + m;
            y[j + 16] = (float)(qs[j] >> 4) * d + m;
        } else {
            y[j] = (float)((qs[j] & 15) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

/* Q5_0 and Q5_1: Q4's nibbles plus a fifth bit per value from the 32-bit word qh. */
static void block_q5(const uint8_t *b, int has_min, float *y) {
    const float d = half_at(b), m = has_min ? half_at(b + 2) : 0.0f;
    const uint32_t qh = u32_at(b + (has_min ? 4 : 2));
    const uint8_t *qs = b + (has_min ? 8 : 6);
    for (int j = 0; j < 16; j++) {
        const int lo = (qs[j] & 15) | (int)((qh >> j) & 1) << 4, hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        if (has_min) {
            y[j] = (float)lo * d + m;
            y[j + 16] = (float)hi * d + m;
        } else {
            y[j] = (float)(lo - 16) * d;
            y[j + 16] = (float)(hi - 16) * d;
        }
    }
}

/* ---------------------------------------------------------------- 256-value super-blocks */

static void block_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *qs = b + 16;
    const float d = half_at(b + 80), dmin = half_at(b + 82);
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int half16 = 0; half16 < 2; half16++) {
                const uint8_t sc = scales[8 * h + 2 * s + half16];
                const float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
                for (int l = 16 * half16; l < 16 * half16 + 16; l++)
                    y[128 * h + 32 * s + l] = dl * (float)((qs[32 * h + l] >> (2 * s)) & 3) - ml;
            }
}

/* Q3_K's 16 six-bit scales (still biased by 32). */
static void q3_k_scales(const uint8_t *p, int sc[16]) {
    for (int i = 0; i < 16; i++) {
        const int lo = i < 8 ? p[i] & 15 : p[i - 8] >> 4;
        const int g = i / 4, k = i % 4;
        sc[i] = lo | ((p[8 + k] >> (2 * g)) & 3) << 4;
    }
}

static void block_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *qs = b + 32;
    int sc[16];
    q3_k_scales(b + 96, sc);
    const float d = half_at(b + 108);
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int half16 = 0; half16 < 2; half16++) {
                const float dl = d * (float)(sc[8 * h + 2 * s + half16] - 32);
                for (int l = 16 * half16; l < 16 * half16 + 16; l++) {
                    const int q2 = (qs[32 * h + l] >> (2 * s)) & 3, high = (hmask[l] >> (4 * h + s)) & 1;
                    y[128 * h + 32 * s + l] = dl * (float)(q2 - (high ? 0 : 4));
                }
            }
}

/* Scale and min of sub-block i (< 8) of Q4_K / Q5_K from their 12 packed bytes. */
static void k4_scale_min(const uint8_t *p, int i, int *sc, int *mn) {
    if (i < 4) {
        *sc = p[i] & 63;
        *mn = p[i + 4] & 63;
    } else {
        *sc = (p[i + 4] & 15) | (p[i - 4] >> 6) << 4;
        *mn = (p[i + 4] >> 4) | (p[i] >> 6) << 4;
    }
}

/* Q4_K, and Q5_K when qh is not NULL (its fifth bits). */
static void block_q45_k(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y) {
    const float d = half_at(b), dmin = half_at(b + 2);
    for (int c = 0; c < 4; c++)
        for (int part = 0; part < 2; part++) { /* part 0: low nibbles, sub-block 2c; part 1: high, 2c + 1 */
            int sc, mn;
            k4_scale_min(b + 4, 2 * c + part, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            for (int l = 0; l < 32; l++) {
                int q = part ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
                if (qh) q |= ((qh[l] >> (2 * c + part)) & 1) << 4;
                y[64 * c + 32 * part + l] = dl * (float)q - ml;
            }
        }
}

static void block_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *scales = (const int8_t *)(b + 192);
    const float d = half_at(b + 208);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                const uint8_t lowb = ql[64 * h + 32 * (k & 1) + l];
                const int lo = k < 2 ? lowb & 15 : lowb >> 4, top = (qh[32 * h + l] >> (2 * k)) & 3;
                const float dl = d * (float)scales[8 * h + 2 * k + l / 16];
                y[128 * h + 32 * k + l] = dl * (float)((lo | top << 4) - 32);
            }
}

/* ---------------------------------------------------------------- dispatch */

int moec_ggml_can_dequantize(moec_ggml_type t) {
    switch (t) {
    case MOEC_GGML_F32:
    case MOEC_GGML_F16:
    case MOEC_GGML_BF16:
    case MOEC_GGML_Q4_0:
    case MOEC_GGML_Q4_1:
    case MOEC_GGML_Q5_0:
    case MOEC_GGML_Q5_1:
    case MOEC_GGML_Q8_0:
    case MOEC_GGML_Q2_K:
    case MOEC_GGML_Q3_K:
    case MOEC_GGML_Q4_K:
    case MOEC_GGML_Q5_K:
    case MOEC_GGML_Q6_K: return 1;
    default: return 0;
    }
}

void moec_ggml_dequantize(moec_ggml_type t, const void *in, int64_t n, float *out) {
    const uint8_t *p = in;
    size_t bb = 0;
    const int block = moec_ggml_type_block(t, &bb);
    if (!moec_ggml_can_dequantize(t) || block <= 0) return;
    if (t == MOEC_GGML_F32) {
        memcpy(out, p, (size_t)n * 4);
        return;
    }
    if (t == MOEC_GGML_F16 || t == MOEC_GGML_BF16) {
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = t == MOEC_GGML_F16 ? moec_f16_to_f32(h) : moec_bf16_to_f32(h);
        }
        return;
    }
    if (t == MOEC_GGML_Q8_0) {
        moec_q8_0_dequantize(p, n, out);
        return;
    }
    for (int64_t i = 0; i < n / block; i++, p += bb, out += block) {
        switch (t) {
        case MOEC_GGML_Q4_0: block_q4(p, 0, out); break;
        case MOEC_GGML_Q4_1: block_q4(p, 1, out); break;
        case MOEC_GGML_Q5_0: block_q5(p, 0, out); break;
        case MOEC_GGML_Q5_1: block_q5(p, 1, out); break;
        case MOEC_GGML_Q2_K: block_q2_k(p, out); break;
        case MOEC_GGML_Q3_K: block_q3_k(p, out); break;
        case MOEC_GGML_Q4_K: block_q45_k(p, NULL, p + 16, out); break;
        case MOEC_GGML_Q5_K: block_q45_k(p, p + 16, p + 48, out); break;
        case MOEC_GGML_Q6_K: block_q6_k(p, out); break;
        default: return;
        }
    }
}
