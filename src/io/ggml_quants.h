/* ggml_quants.h — decoding ggml's block-quantised weight types (the formats of llama.cpp's GGUF files) to fp32.
 *
 * Every type stores a row in blocks of B values; a block is a few scales and the packed integers. Per block, the
 * layouts (little-endian; "f16" an IEEE half; values y[0..B) in order):
 *   Q4_0 (B 32, 18 bytes)  f16 d, u8 qs[16]: y[j] = d·(lo4(qs[j]) − 8), y[j+16] = d·(hi4(qs[j]) − 8), j < 16.
 *   Q4_1 (B 32, 20 bytes)  f16 d, f16 m, u8 qs[16]: y[j] = d·lo4(qs[j]) + m, y[j+16] = d·hi4(qs[j]) + m.
 *   Q5_0 (B 32, 22 bytes)  f16 d, u32 qh, u8 qs[16]: the fifth bit of y[j] is bit j of qh;
 *                          y[j] = d·((lo4(qs[j]) | bit_j·16) − 16), y[j+16] = d·((hi4(qs[j]) | bit_{j+16}·16) − 16).
 *   Q5_1 (B 32, 24 bytes)  f16 d, f16 m, u32 qh, u8 qs[16]: as Q5_0 without the −16, times d plus m.
 *   Q8_0 (B 32, 34 bytes)  f16 d, i8 qs[32]: y[j] = d·qs[j] (gguf.h's codec).
 * The "K" types use super-blocks of 256 values made of 16 or 8 sub-blocks, each with its own 4- to 8-bit scale:
 *   Q2_K (84 bytes)   u8 scales[16] (lo4 = scale, hi4 = min of sub-block i of 16), u8 qs[64], f16 d, f16 dmin.
 *                     Values in two halves of 128; in half h, 2-bit field s (bits 2s..2s+1) of qs[32h + l]
 *                     (l < 32) is value 128h + 32s + l, of sub-block 8h + 2s + l/16:
 *                     y = (d·scale)·q − (dmin·min).
 *   Q3_K (110 bytes)  u8 hmask[32], u8 qs[64], u8 scales[12] (16 six-bit scales, biased by 32), f16 d. As Q2_K
 *                     for the low 2 bits; the third bit of value 128h + 32s + l is bit (4h + s) of hmask[l], and
 *                     a clear bit subtracts 4: y = (d·(scale − 32))·(q2 − (bit ? 0 : 4)).
 *   Q4_K (144 bytes)  f16 d, f16 dmin, u8 scales[12] (8 six-bit scales and 8 six-bit mins), u8 qs[128].
 *                     Value 64c + l (l < 32) is lo4(qs[32c + l]) of sub-block 2c, value 64c + 32 + l its hi4,
 *                     sub-block 2c + 1: y = (d·scale)·q − (dmin·min).
 *   Q5_K (176 bytes)  f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]: Q4_K plus a fifth bit, bit (2c) of
 *                     qh[l] for value 64c + l and bit (2c + 1) for value 64c + 32 + l.
 *   Q6_K (210 bytes)  u8 ql[128], u8 qh[64], i8 scales[16], f16 d. In half h (128 values), for l < 32: the four
 *                     values 128h + 32k + l (k = 0..3) take their low 4 bits from ql[64h + l] (k = 0: lo4,
 *                     k = 2: hi4) or ql[64h + 32 + l] (k = 1: lo4, k = 3: hi4), and bits 2k..2k+1 of qh[32h + l]
 *                     as their top 2; y = (d·scale[8h + 2k + l/16])·(q − 32).
 *   The 12 scale bytes of Q4_K / Q5_K: for sub-block i < 4, scale = low 6 bits of byte i and min = low 6 bits of
 *   byte i + 4; for i >= 4, scale = lo4(byte i + 4) | (top 2 bits of byte i − 4) << 4 and min = hi4(byte i + 4) |
 *   (top 2 bits of byte i) << 4. Q3_K's 16 scales: the low 4 bits of
 *   scale i are the low nibble of byte i for i < 8 and the high nibble of byte i − 8 for i >= 8; the top 2 bits of
 *   scale 4g + k (g, k < 4) are bits 2g..2g+1 of byte 8 + k.
 * The arithmetic is ggml's, in fp32 and in the same order (a product of the two scales first, then times q, then
 * the min subtracted), so the values are bit-identical to llama.cpp's dequantisation (tests: test_gguf_py.sh
 * against the gguf package's independent numpy decoders).
 */
#ifndef MOEC_IO_GGML_QUANTS_H
#define MOEC_IO_GGML_QUANTS_H

#include <stdint.h>

#include "io/gguf.h"

/* 1 if moec_ggml_dequantize decodes type t (the plain F32 / F16 / BF16 and the block types above). */
int moec_ggml_can_dequantize(moec_ggml_type t);

/* out[0..n) = the n values at `in` (n a multiple of the type's block size; the caller has checked that `in` holds
 * n / block whole blocks). Does nothing for a type moec_ggml_can_dequantize refuses. */
void moec_ggml_dequantize(moec_ggml_type t, const void *in, int64_t n, float *out);

#endif
