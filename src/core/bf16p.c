/* bf16p.c — packing and unpacking of bf16p rows (the format: bf16p.h). */
#include "core/bf16p.h"

#include <string.h>

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

int moec_bf16p_pack_row(const uint16_t *w, int64_t cols, uint8_t *out) {
    const int64_t cap = moec_bf16p_escape_cap(cols);
    int emax = -1;
    for (int64_t i = 0; i < cols; i++) {
        const int e = (w[i] >> 7) & 0xff;
        if (e == 0xff) return -1; /* inf or NaN */
        if ((w[i] & 0x7fff) && e > emax) emax = e;
    }
    if (emax >= 254) return -1; /* |w| >= 2^127: lut's top entry would be 0x7f, which check_row refuses */
    /* exponents [base, base + 15], base even, covering the largest */
    int base = emax - 15 < 0 ? 0 : emax - 15;
    base += base & 1;
    memset(out, 0, (size_t)moec_bf16p_row_bytes(cols));
    for (int c = 1; c < 16; c++) out[c] = (uint8_t)((c >> 3) << 7 | (base / 2 + (c & 7)));
    uint8_t *esc = out + 18;
    int n_esc = 0;
    for (int64_t g = 0; g < cols; g += MOEC_BF16P_GROUP) {
        uint8_t *blk = (uint8_t *)moec_bf16p_block(out, cols, g & ~(int64_t)127);
        const int h = (g & 64) ? 1 : 0;
        for (int j = 0; j < MOEC_BF16P_GROUP; j++) {
            const uint16_t v = w[g + j];
            const int e = (v >> 7) & 0xff, s = v >> 15, p = moec_bf16p_position(j);
            int code = 0;
            uint8_t low = 0;
            if (v & 0x7fff) {
                code = e >= base && e <= base + 15 ? s * 8 + (e - base) / 2 : 0;
                if (code == 0) { /* outside the row's exponents, or positive in the lowest two: an escape */
                    if (n_esc == cap) return -2;
                    put16(esc + 4 * n_esc, (unsigned)(g + j));
                    put16(esc + 4 * n_esc + 2, v);
                    n_esc++;
                } else {
                    low = (uint8_t)v;
                }
            }
            blk[64 * h + p] = low;
            blk[128 + p] |= (uint8_t)(code << 4 * h);
        }
    }
    put16(out + 16, (unsigned)n_esc);
    return n_esc;
}

void moec_bf16p_unpack_row(const uint8_t *row, int64_t cols, uint16_t *w) {
    for (int64_t c = 0; c < cols; c++) w[c] = moec_bf16p_coded(row, cols, c);
    const int n_esc = get16(row + 16);
    for (int k = 0; k < n_esc; k++) w[get16(row + 18 + 4 * k)] = get16(row + 20 + 4 * k);
}

int moec_bf16p_check_row(const uint8_t *row, int64_t cols) {
    if (row[0] != 0) return -1;
    for (int c = 1; c < 16; c++)
        if ((row[c] & 0x7f) == 0x7f) return -1; /* exponent 254 or 255 with e0: could decode to inf or NaN */
    const int n_esc = get16(row + 16);
    if (n_esc > moec_bf16p_escape_cap(cols)) return -1;
    for (int k = 0; k < n_esc; k++) {
        const uint16_t v = get16(row + 20 + 4 * k);
        if (get16(row + 18 + 4 * k) >= cols || ((v >> 7) & 0xff) == 0xff) return -1;
    }
    return 0;
}
