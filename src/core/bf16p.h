/* bf16p.h — "packed bf16": bf16 weight rows stored losslessly in 12 bits per weight plus a small row header.
 *
 * Why: a decode step streams every active weight once, so its speed is the weight bytes over the memory bandwidth.
 * A bf16 row rarely uses more than 16 of its 256 exponents with any frequency: its values lie within 2^15 of its
 * largest one, apart from the odd weight very close to zero. bf16p stores each weight as its low byte (the lowest
 * exponent bit and the 7 mantissa bits, as in bf16) plus a 4-bit code (the sign and 3 more exponent bits) that a
 * 16-entry table in the row's header turns back into bf16's high byte; the few weights the codes cannot express
 * are kept exactly in the header ("escapes"). Every weight decodes to its bf16 value — the model is the bf16
 * model — at 1.5 bytes per weight and one table lookup (vpshufb) per 32 or 64 weights.
 *
 * Row layout (cols a multiple of 128, 128 <= cols <= 65536; every row moec_bf16p_row_bytes(cols) bytes):
 *   [0, 16)          lut[c], c = s·8 + h: bf16's high byte (sign, exponent bits 7..1) for code c; lut[0] = 0
 *   [16, 18)         n_esc, little-endian uint16 (<= moec_bf16p_escape_cap(cols))
 *   [18, H)          n_esc escapes of 4 bytes: column (uint16 LE), bf16 bits (uint16 LE); the rest zero
 *   [H, ...)         cols / 128 blocks of 192 bytes, one per 128 columns: the B bytes of its two groups of 64
 *                    columns (bf16's low byte of each weight: exponent bit 0, mantissa; 64 + 64 bytes), then
 *                    64 bytes of 4-bit codes, the first group's in the low nibbles, the second's in the high
 * with H = moec_bf16p_header_bytes(cols) = 64 · ceil(cols / 4096). A row is one sequential stream of whole cache
 * lines: with the B and code bytes in two planes per row, the kernels' prefetch 1 KB ahead missed half of the
 * codes, and decode ran at 9-10 GB/s (one thread) where it now runs at 13-17.
 * The row's exponents [base, base + 15] (base even) are coded as exponent = base + 2h + e0 (e0: the B byte's top
 * bit), which is why lut[s·8 + h] = s << 7 | (base / 2 + h) reproduces bf16's high byte. Code 0 is zero: a zero
 * weight is code 0 with B byte 0 (−0 is stored as +0). A nonzero weight outside the row's exponents, or one that
 * would need code 0 (positive, exponent base or base + 1), is an escape: code 0 and B byte 0 in the row's blocks
 * (which thus decode it as 0) and its exact value in the header.
 *
 * Weight order: within each group of 64 columns, logical column j = 16v + 4l + m (v, l, m < 4) sits at position
 * p = 16l + 2m + (v & 1) + 8(v >> 1) (moec_bf16p_position) of the group's 64 B bytes and of its 64 codes. This is
 * the order in which a
 * 128-bit-lane byte interleave (punpcklbw / punpckhbw of B with the looked-up high bytes) followed by a split of each 32-bit lane
 * into its two bf16 halves leaves the weights as fp32 vectors of 16 (AVX-512) or 8 (AVX2) CONSECUTIVE columns,
 * so the kernels read X in its natural order (kernels/cpu/qmatmul_bf16p*.c).
 *
 * A row cannot be packed when it holds a NaN or an infinity, or more escapes than the header holds (rare: a
 * Gaussian row has about 2 weights in 10^4 within 2^-13 of its largest); callers then keep plain bf16.
 */
#ifndef MOEC_CORE_BF16P_H
#define MOEC_CORE_BF16P_H

#include <stdint.h>

#define MOEC_BF16P_GROUP 64       /* columns per group of the weight order */
#define MOEC_BF16P_BLOCK 128      /* columns per block of the layout (192 bytes) */
#define MOEC_BF16P_MAX_COLS 65536 /* escapes store the column in 16 bits */

/* Whether rows of cols columns can be stored as bf16p (cols a multiple of 128, 128..65536). */
static inline int moec_bf16p_cols_ok(int64_t cols) {
    return cols >= MOEC_BF16P_BLOCK && cols <= MOEC_BF16P_MAX_COLS && cols % MOEC_BF16P_BLOCK == 0;
}
static inline int64_t moec_bf16p_header_bytes(int64_t cols) { return 64 * ((cols + 4095) / 4096); }
static inline int64_t moec_bf16p_escape_cap(int64_t cols) { return (moec_bf16p_header_bytes(cols) - 18) / 4; }
static inline int64_t moec_bf16p_row_bytes(int64_t cols) { return moec_bf16p_header_bytes(cols) + cols + cols / 2; }
/* The 192 bytes of the block of 128 columns that starts at column c0 (a multiple of 128) of a row. Column
 * c0 + 64h + j (h < 2, j < 64) has its B byte at blk[64h + p] and its code in blk[128 + p] >> 4h (low nibble for the
 * first group of 64, high nibble for the second), p = moec_bf16p_position(j). */
static inline const uint8_t *moec_bf16p_block(const uint8_t *row, int64_t cols, int64_t c0) {
    return row + moec_bf16p_header_bytes(cols) + 192 * (c0 >> 7);
}
/* Position (within its group of 64) of logical column j (< 64) of the group. */
static inline int moec_bf16p_position(int j) {
    const int v = j >> 4, l = (j >> 2) & 3, m = j & 3;
    return 16 * l + 2 * m + (v & 1) + 8 * (v >> 1);
}
/* The bf16 bits that column col's code and low byte give (an escaped column reads as 0: its value is in the
 * header). The scalar decoders are built on this. */
static inline uint16_t moec_bf16p_coded(const uint8_t *row, int64_t cols, int64_t col) {
    const uint8_t *blk = moec_bf16p_block(row, cols, col & ~(int64_t)127);
    const int h = (col & 64) ? 1 : 0, p = moec_bf16p_position((int)(col & 63));
    return (uint16_t)(row[(blk[128 + p] >> 4 * h) & 15] << 8 | blk[64 * h + p]);
}

/* Packs one row of cols bf16 values (cols: moec_bf16p_cols_ok) into out[moec_bf16p_row_bytes(cols)]. Returns the
 * number of escapes (>= 0), or -1 when the row cannot be packed (a NaN or an infinity: -1; too many escapes: -2);
 * out is then unspecified. */
int moec_bf16p_pack_row(const uint16_t *w, int64_t cols, uint8_t *out);

/* Unpacks one packed row back to bf16 bits (exactly the packed values; −0 comes back as +0). */
void moec_bf16p_unpack_row(const uint8_t *row, int64_t cols, uint16_t *w);

/* Checks a packed row read from a file before the kernels trust it: n_esc within the cap, every escape's column
 * < cols and its value finite, lut[0] == 0, no lut entry 0x7f / 0xff. Returns 0 if sound, else -1. (Any B and
 * code bytes are then valid: they decode to finite values.) */
int moec_bf16p_check_row(const uint8_t *row, int64_t cols);

#endif
