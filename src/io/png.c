/* png.c — PNG encoder: filter, fixed-Huffman deflate, zlib wrapper, chunks, atomic write. See png.h. */
#include "io/png.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------- checksums ---------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t moec_crc32(uint32_t crc, const uint8_t *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint32_t *table = crc_table;
    crc ^= 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static uint32_t adler32(const uint8_t *data, size_t n) {
    uint32_t a = 1, b = 0;
    while (n > 0) {
        size_t chunk = n < 5552 ? n : 5552; /* largest run before b can overflow 32 bits */
        for (size_t i = 0; i < chunk; i++) { a += data[i]; b += a; }
        a %= 65521u; b %= 65521u;
        data += chunk; n -= chunk;
    }
    return (b << 16) | a;
}

/* ---------- growable byte buffer + LSB-first bit writer ---------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    uint32_t bits; /* pending bits, LSB first */
    int nbits;
    int failed;
} bytebuf;

static void bb_reserve(bytebuf *b, size_t extra) {
    if (b->failed || b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) { b->failed = 1; return; }
    b->data = p; b->cap = cap;
}
static void bb_put(bytebuf *b, const void *src, size_t n) {
    bb_reserve(b, n);
    if (b->failed) return;
    memcpy(b->data + b->len, src, n);
    b->len += n;
}
static void bb_u32be(bytebuf *b, uint32_t v) {
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    bb_put(b, t, 4);
}
/* Append the low n bits of v (n <= 16), least significant first: deflate's order for everything except Huffman
 * codes. */
static void bits_put(bytebuf *b, uint32_t v, int n) {
    b->bits |= (v & ((1u << n) - 1)) << b->nbits;
    b->nbits += n;
    while (b->nbits >= 8) {
        uint8_t byte = (uint8_t)b->bits;
        bb_put(b, &byte, 1);
        b->bits >>= 8; b->nbits -= 8;
    }
}
/* Huffman codes are defined MSB first, so reverse before packing. */
static void huff_put(bytebuf *b, uint32_t code, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; i++) r |= ((code >> i) & 1u) << (n - 1 - i);
    bits_put(b, r, n);
}
static void bits_flush(bytebuf *b) {
    if (b->nbits > 0) bits_put(b, 0, 8 - b->nbits);
}

/* ---------- deflate, fixed Huffman code ---------- */

static void put_litlen(bytebuf *b, int sym) {
    if (sym < 144) huff_put(b, 0x30u + (uint32_t)sym, 8);
    else if (sym < 256) huff_put(b, 0x190u + (uint32_t)(sym - 144), 9);
    else if (sym < 280) huff_put(b, (uint32_t)(sym - 256), 7);
    else huff_put(b, 0xC0u + (uint32_t)(sym - 280), 8);
}

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                      35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                      3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513,
                                       769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                                       7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void put_match(bytebuf *b, int len, int dist) {
    int li = 28;
    while (len_base[li] > len) li--;
    put_litlen(b, 257 + li);
    if (len_extra[li]) bits_put(b, (uint32_t)(len - len_base[li]), len_extra[li]);
    int di = 29;
    while (dist_base[di] > dist) di--;
    huff_put(b, (uint32_t)di, 5);
    if (dist_extra[di]) bits_put(b, (uint32_t)(dist - dist_base[di]), dist_extra[di]);
}

#define WIN_SIZE 32768
#define WIN_MASK (WIN_SIZE - 1)
#define HASH_BITS 15
#define MAX_CHAIN 32
#define MIN_MATCH 3
#define MAX_MATCH 258

static uint32_t hash3(const uint8_t *p) {
    return ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) * 2654435761u >> (32 - HASH_BITS);
}

/* One final fixed-Huffman block covering all of src, with greedy LZ77 matching. */
static moec_status deflate_fixed(bytebuf *b, const uint8_t *src, size_t n) {
    int32_t *head = malloc(sizeof(int32_t) << HASH_BITS);
    int32_t *prev = malloc(sizeof(int32_t) * WIN_SIZE);
    if (!head || !prev) {
        free(head); free(prev);
        return MOEC_ERR(MOEC_ERR_NOMEM, "png: cannot allocate deflate tables");
    }
    for (size_t i = 0; i < ((size_t)1 << HASH_BITS); i++) head[i] = -1;
    bits_put(b, 1, 1); /* BFINAL */
    bits_put(b, 1, 2); /* BTYPE = 01, fixed Huffman */
    size_t i = 0;
    while (i < n) {
        int best_len = 0, best_dist = 0;
        if (i + MIN_MATCH <= n) {
            uint32_t h = hash3(src + i);
            int32_t cand = head[h];
            size_t max_len = n - i < MAX_MATCH ? n - i : MAX_MATCH;
            for (int chain = 0; cand >= 0 && chain < MAX_CHAIN; chain++) {
                size_t dist = i - (size_t)cand;
                if (dist > WIN_SIZE - 1) break; /* stale: older than the window */
                size_t l = 0;
                while (l < max_len && src[(size_t)cand + l] == src[i + l]) l++;
                if ((int)l > best_len) {
                    best_len = (int)l; best_dist = (int)dist;
                    if (l == max_len) break;
                }
                int32_t next = prev[cand & WIN_MASK];
                if (next >= cand) break; /* slot reused by a newer position */
                cand = next;
            }
        }
        size_t advance = best_len >= MIN_MATCH ? (size_t)best_len : 1;
        if (best_len >= MIN_MATCH) put_match(b, best_len, best_dist);
        else put_litlen(b, src[i]);
        for (size_t k = 0; k < advance; k++, i++) { /* insert every position we pass into the hash chains */
            if (i + MIN_MATCH <= n) {
                uint32_t h = hash3(src + i);
                prev[i & WIN_MASK] = head[h];
                head[h] = (int32_t)i;
            }
        }
    }
    put_litlen(b, 256); /* end of block */
    bits_flush(b);
    free(head); free(prev);
    return b->failed ? MOEC_ERR(MOEC_ERR_NOMEM, "png: out of memory while compressing") : MOEC_OK;
}

/* ---------- scanline filters ---------- */

static uint8_t paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return (uint8_t)a;
    return pb <= pc ? (uint8_t)b : (uint8_t)c;
}

/* Filtered image: per row one filter-type byte then stride bytes. Chooses the filter with the smallest sum of
 * |residual| (as signed bytes), the heuristic the PNG spec recommends. */
static void filter_rows(uint8_t *dst, const uint8_t *rgb, size_t stride, int height) {
    for (int y = 0; y < height; y++) {
        const uint8_t *row = rgb + (size_t)y * stride;
        const uint8_t *up = y > 0 ? row - stride : NULL;
        uint64_t best_cost = UINT64_MAX;
        int best = 0;
        for (int f = 0; f < 4; f++) {
            uint64_t cost = 0;
            for (size_t x = 0; x < stride; x++) {
                int a = x >= 3 ? row[x - 3] : 0, b = up ? up[x] : 0, c = (up && x >= 3) ? up[x - 3] : 0;
                uint8_t r = f == 0 ? row[x] : f == 1 ? (uint8_t)(row[x] - a) : f == 2 ? (uint8_t)(row[x] - b)
                                                                          : (uint8_t)(row[x] - paeth(a, b, c));
                cost += (uint64_t)(r < 128 ? r : 256 - r);
            }
            if (cost < best_cost) { best_cost = cost; best = f; }
        }
        uint8_t *out = dst + (size_t)y * (stride + 1);
        /* Filter type 3 (Average) is skipped; type numbers: 0 None, 1 Sub, 2 Up, 4 Paeth. */
        out[0] = (uint8_t)(best == 3 ? 4 : best);
        for (size_t x = 0; x < stride; x++) {
            int a = x >= 3 ? row[x - 3] : 0, b = up ? up[x] : 0, c = (up && x >= 3) ? up[x - 3] : 0;
            out[1 + x] = best == 0 ? row[x] : best == 1 ? (uint8_t)(row[x] - a) : best == 2 ? (uint8_t)(row[x] - b)
                                                                              : (uint8_t)(row[x] - paeth(a, b, c));
        }
    }
}

/* ---------- PNG container ---------- */

static void put_chunk(bytebuf *b, const char type[4], const uint8_t *data, size_t n) {
    bb_u32be(b, (uint32_t)n);
    size_t at = b->len;
    bb_put(b, type, 4);
    if (n) bb_put(b, data, n);
    if (b->failed) return;
    bb_u32be(b, moec_crc32(0, b->data + at, n + 4));
}

moec_status moec_png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *out_len) {
    if (!rgb || !out || !out_len) return MOEC_ERR(MOEC_ERR_ARG, "png: NULL argument");
    if (width <= 0 || height <= 0 || width > (1 << 20) || height > (1 << 20))
        return MOEC_ERR(MOEC_ERR_ARG, "png: image size %dx%d out of range (1..1048576 per side)", width, height);
    *out = NULL; *out_len = 0;
    size_t stride = (size_t)width * 3, raw_len = (size_t)height * (stride + 1);
    uint8_t *raw = malloc(raw_len);
    if (!raw) return MOEC_ERR(MOEC_ERR_NOMEM, "png: cannot allocate %zu bytes for scanlines", raw_len);
    filter_rows(raw, rgb, stride, height);

    bytebuf z = {0};
    const uint8_t zhdr[2] = {0x78, 0x01}; /* deflate, 32 KiB window, no dictionary; (0x78*256+0x01) % 31 == 0 */
    bb_put(&z, zhdr, 2);
    moec_status s = deflate_fixed(&z, raw, raw_len);
    if (s == MOEC_OK) bb_u32be(&z, adler32(raw, raw_len));
    free(raw);
    if (s != MOEC_OK || z.failed) {
        free(z.data);
        return s != MOEC_OK ? s : MOEC_ERR(MOEC_ERR_NOMEM, "png: out of memory");
    }

    bytebuf f = {0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    bb_put(&f, sig, 8);
    uint8_t ihdr[13] = {(uint8_t)(width >> 24), (uint8_t)(width >> 16), (uint8_t)(width >> 8), (uint8_t)width,
                        (uint8_t)(height >> 24), (uint8_t)(height >> 16), (uint8_t)(height >> 8), (uint8_t)height,
                        8 /* bit depth */, 2 /* truecolour */, 0, 0, 0 /* deflate, adaptive filter, no interlace */};
    put_chunk(&f, "IHDR", ihdr, sizeof ihdr);
    put_chunk(&f, "IDAT", z.data, z.len);
    put_chunk(&f, "IEND", NULL, 0);
    free(z.data);
    if (f.failed) {
        free(f.data);
        return MOEC_ERR(MOEC_ERR_NOMEM, "png: out of memory assembling file");
    }
    *out = f.data;
    *out_len = f.len;
    return MOEC_OK;
}

moec_status moec_png_write(const char *path, const uint8_t *rgb, int width, int height) {
    if (!path) return MOEC_ERR(MOEC_ERR_ARG, "png: NULL path");
    uint8_t *png;
    size_t len;
    MOEC_TRY(moec_png_encode(rgb, width, height, &png, &len));
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) { free(png); return MOEC_ERR(MOEC_ERR_NOMEM, "png: out of memory"); }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    moec_status s = MOEC_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = MOEC_ERR(MOEC_ERR_IO, "png: open(%s) failed: %s", tmp, strerror(errno));
        goto done;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, png + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            s = MOEC_ERR(MOEC_ERR_IO, "png: write(%s) failed: %s", tmp, w < 0 ? strerror(errno) : "wrote 0 bytes");
            break;
        }
        off += (size_t)w;
    }
    if (s == MOEC_OK && fsync(fd) != 0) s = MOEC_ERR(MOEC_ERR_IO, "png: fsync(%s) failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == MOEC_OK) s = MOEC_ERR(MOEC_ERR_IO, "png: close(%s) failed: %s", tmp, strerror(errno));
    if (s == MOEC_OK && rename(tmp, path) != 0)
        s = MOEC_ERR(MOEC_ERR_IO, "png: rename(%s -> %s) failed: %s", tmp, path, strerror(errno));
    if (s != MOEC_OK) unlink(tmp);
done:
    free(tmp);
    free(png);
    return s;
}
