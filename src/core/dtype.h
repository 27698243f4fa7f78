/* dtype.h — exact float -> narrow-float encoders: bf16, IEEE half, and OCP FP8 E4M3.
 *
 * The decoding side is in io/safetensors.h (moec_bf16_to_f32, moec_f16_to_f32, moec_f8e4m3_to_f32); together they
 * are the one definition of these formats in moec. Every encoder rounds to nearest, ties to even, on the exact value
 * of the float (no double rounding through an intermediate format), subnormal results included.
 *
 * Formats (bits: sign | exponent | mantissa, bias):
 *   bf16  1|8|7,  bias 127   the top half of an fp32; inf and NaN as in fp32
 *   f16   1|5|10, bias 15    IEEE binary16: max 65504, smallest subnormal 2^-24, inf and NaN
 *   e4m3  1|4|3,  bias 7     OCP FP8 E4M3 ("e4m3fn" in PyTorch): no infinities, S.1111.111 (0x7F/0xFF) is NaN,
 *                            max 448 (0x7E), smallest normal 2^-6, smallest subnormal 2^-9
 */
#ifndef MOEC_CORE_DTYPE_H
#define MOEC_CORE_DTYPE_H

#include <stdint.h>

/* Round to nearest even. ±inf stays ±inf, finite values that round past the largest bf16 become ±inf (as IEEE
 * rounding says), a NaN stays a NaN with its sign, made quiet (a signalling NaN's payload would otherwise truncate
 * to the bit pattern of an infinity). */
uint16_t moec_f32_to_bf16(float x);

/* IEEE binary16, round to nearest even, subnormals included; |x| >= 65520 (the midpoint above 65504) -> ±inf,
 * NaN -> quiet NaN with its sign. */
uint16_t moec_f32_to_f16(float x);

/* E4M3, round to nearest even, subnormals included (|x| <= 2^-10 -> ±0, since 2^-10 ties to the even zero);
 * SATURATING: every finite |x| > 448 and ±inf become ±448 (0x7E / 0xFE), the convention of FP8 inference
 * (an overflow clips instead of poisoning the row with NaN). NaN -> 0x7F (0xFF if its sign bit is set);
 * -0 -> 0x80. */
uint8_t moec_f32_to_e4m3(float x);

/* Per-output-channel quantisation of one weight row w[n]:
 *   *scale = max|w| / 448   (1 when the row is all zeros),   q[i] = e4m3(w[i] / *scale),
 * so the dequantised value is *scale * e4m3_to_f32(q[i]) and the row's largest element maps to ±448 exactly.
 * The row must be finite: the caller checks that (a NaN or inf would make every element of the row NaN or 0);
 * this function does not report errors. A row so small that max|w| / 448 underflows to 0 in fp32
 * (max|w| < ~6e-43) gets the smallest positive scale, 2^-149, instead: its codes are then below 448 and coarse. */
void moec_quantize_row_e4m3(const float *w, int64_t n, uint8_t *q, float *scale);

#endif
