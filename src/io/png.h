/* png.h — a self-contained PNG writer for moec's training plots (no zlib, no libpng).
 *
 * Output: 8-bit truecolour (colour type 2), no interlace, one IHDR, one IDAT, one IEND. Each scanline gets the
 * PNG filter (None/Sub/Up/Paeth) with the smallest sum of absolute residuals; the filtered bytes are compressed
 * as one zlib stream holding a single deflate block with the fixed Huffman code (RFC 1951 §3.2.6) and a
 * greedy LZ77 matcher (32 KiB window, hash chains), which shrinks flat-colour plots ~50x. CRC32 (ISO-HDLC,
 * the one PNG chunks use) and Adler32 are computed here too.
 *
 * Not a goal: reading PNGs, palettes, alpha, 16-bit samples, best-possible compression.
 */
#ifndef MOEC_IO_PNG_H
#define MOEC_IO_PNG_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

/* Encode rgb ([height][width][3] bytes, row-major, top row first) as a complete PNG file in memory.
 * On success *out is a malloc'd buffer of *out_len bytes that the caller frees. */
moec_status moec_png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *out_len);

/* Encode and write to path atomically: the bytes go to "<path>.tmp", are fsync'd, then renamed over path, so a
 * reader (a browser refreshing the plot mid-training) never sees a half-written file. */
moec_status moec_png_write(const char *path, const uint8_t *rgb, int width, int height);

/* CRC-32 as used by PNG chunks (poly 0xEDB88320, init/final xor 0xFFFFFFFF). crc = 0 starts a new sum; pass the
 * previous result to continue one. */
uint32_t moec_crc32(uint32_t crc, const uint8_t *data, size_t n);

#endif
