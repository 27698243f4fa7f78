/* dtype.c — the exact encoders of dtype.h.
 *
 * All three work on the fp32 bit pattern with integer arithmetic, so the result never depends on the FPU's rounding
 * mode, on flush-to-zero, or on whether the compiler keeps intermediates in wider registers. Rounding is done once,
 * by shift_rne below, on the full 24-bit significand.
 */
#include "core/dtype.h"

#include <math.h>
#include <string.h>

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* m >> shift, rounded to nearest with ties to even (shift in [1, 63]). */
static uint32_t shift_rne(uint32_t m, int shift) {
    if (shift >= 32) return 0; /* every caller has m < 2^24, so m / 2^shift < 1/2 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return q;
}

uint16_t moec_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040); /* NaN: keep sign, set quiet bit */
    /* Rounding the low 16 bits may carry into the exponent: that is exactly the next binade, or inf past the max. */
    return (uint16_t)(shift_rne(u, 16));
}

/* Encodes |x| (bit pattern a, finite, below the format's overflow threshold) into a minifloat with `mant` mantissa
 * bits and exponent bias `bias`: the shared core of the f16 and e4m3 encoders. A significand that rounds up to the
 * next power of two carries into the exponent field by itself, which also turns the largest subnormal into the
 * smallest normal. */
static uint32_t encode_abs(uint32_t a, int mant, int bias) {
    int e = (int)(a >> 23) - 127;                        /* unbiased fp32 exponent; -127 for zero / subnormal */
    uint32_t sig = (a & 0x7fffffu) | (a >> 23 ? 0x800000u : 0); /* 24-bit significand */
    if (a >> 23 == 0) e = -126;                          /* fp32 subnormal: sig * 2^-149, far below any result */
    int emin = 1 - bias;                                 /* exponent of the smallest normal */
    if (e >= emin) {                                     /* normal result: keep `mant` bits of the fraction */
        uint32_t r = shift_rne(sig, 23 - mant);          /* 1.f scaled to [2^mant, 2^(mant+1)] */
        return ((uint32_t)(e + bias) << mant) + (r - (1u << mant));
    }
    /* Subnormal result: the value in units of the smallest subnormal 2^(emin - mant), i.e. sig * 2^(e - 23) /
     * 2^(emin - mant); the integer that comes out is the whole code (a result of 2^mant is the smallest normal). */
    return shift_rne(sig, 23 - mant + (emin - e));
}

uint16_t moec_f32_to_f16(float x) {
    uint32_t u = f32_bits(x), sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff)); /* NaN, quiet, payload's top */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520: rounds past 65504 (ties to even = up) */
    return (uint16_t)(sign | encode_abs(a, 10, 15));
}

uint8_t moec_f32_to_e4m3(float x) {
    uint32_t u = f32_bits(x), sign = (u >> 24) & 0x80, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint8_t)(sign | 0x7f);
    /* Saturate: everything above 448 (the largest finite value, code 0x7E) clips to it. Without saturation 464
     * would tie to 448 (even mantissa) and anything above 464 would round to the NaN code. */
    if (a >= 0x43e00000u) return (uint8_t)(sign | 0x7e); /* 448.0f */
    return (uint8_t)(sign | encode_abs(a, 3, 7));
}

void moec_quantize_row_e4m3(const float *w, int64_t n, uint8_t *q, float *scale) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[i]));
    float s = amax == 0 ? 1.0f : amax / 448.0f;
    if (s == 0) s = 0x1p-149f;
    /* Divide rather than multiply by 448 / amax: w / s is then the correctly rounded quotient, and the largest
     * element lands on 448 (or within an ulp of it, which rounds or saturates to 448). */
    for (int64_t i = 0; i < n; i++) q[i] = moec_f32_to_e4m3(w[i] / s);
    *scale = s;
}
