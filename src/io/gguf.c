/* gguf.c — validating GGUF reader (mmap or caller's buffer), streaming atomic writer, F16/BF16/Q8_0 codecs.
 * Format notes in gguf.h. */
#include "io/gguf.h"

#include "io/ggml_quants.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fsutil.h"
#include "io/safetensors.h" /* moec_f16_to_f32, moec_bf16_to_f32 (exact) */

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF is read by reinterpreting little-endian bytes; port the loader first"
#endif

#define GGUF_MAX_STR_KEY MOEC_GGUF_MAX_KEY

static const struct { const char *name; int block; size_t bytes; } type_info[MOEC_GGML_TYPE_LIMIT] = {
    [MOEC_GGML_F32] = {"F32", 1, 4},         [MOEC_GGML_F16] = {"F16", 1, 2},
    [MOEC_GGML_Q4_0] = {"Q4_0", 32, 18},     [MOEC_GGML_Q4_1] = {"Q4_1", 32, 20},
    [MOEC_GGML_Q5_0] = {"Q5_0", 32, 22},     [MOEC_GGML_Q5_1] = {"Q5_1", 32, 24},
    [MOEC_GGML_Q8_0] = {"Q8_0", 32, 34},     [MOEC_GGML_Q8_1] = {"Q8_1", 32, 36},
    [MOEC_GGML_Q2_K] = {"Q2_K", 256, 84},    [MOEC_GGML_Q3_K] = {"Q3_K", 256, 110},
    [MOEC_GGML_Q4_K] = {"Q4_K", 256, 144},   [MOEC_GGML_Q5_K] = {"Q5_K", 256, 176},
    [MOEC_GGML_Q6_K] = {"Q6_K", 256, 210},   [MOEC_GGML_Q8_K] = {"Q8_K", 256, 292},
    [MOEC_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [MOEC_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [MOEC_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [MOEC_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [MOEC_GGML_IQ4_NL] = {"IQ4_NL", 32, 18}, [MOEC_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [MOEC_GGML_IQ2_S] = {"IQ2_S", 256, 82},  [MOEC_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [MOEC_GGML_I8] = {"I8", 1, 1},           [MOEC_GGML_I16] = {"I16", 1, 2},
    [MOEC_GGML_I32] = {"I32", 1, 4},         [MOEC_GGML_I64] = {"I64", 1, 8},
    [MOEC_GGML_F64] = {"F64", 1, 8},         [MOEC_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [MOEC_GGML_BF16] = {"BF16", 1, 2},       [MOEC_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [MOEC_GGML_TQ2_0] = {"TQ2_0", 256, 66},  [MOEC_GGML_MXFP4] = {"MXFP4", 32, 17},
};

static const struct { const char *name; size_t size; } kv_info[MOEC_GGUF_KV_TYPE_COUNT] = {
    [MOEC_GGUF_KV_U8] = {"u8", 1},   [MOEC_GGUF_KV_I8] = {"i8", 1},     [MOEC_GGUF_KV_U16] = {"u16", 2},
    [MOEC_GGUF_KV_I16] = {"i16", 2}, [MOEC_GGUF_KV_U32] = {"u32", 4},   [MOEC_GGUF_KV_I32] = {"i32", 4},
    [MOEC_GGUF_KV_F32] = {"f32", 4}, [MOEC_GGUF_KV_BOOL] = {"bool", 1}, [MOEC_GGUF_KV_STRING] = {"string", 0},
    [MOEC_GGUF_KV_ARRAY] = {"array", 0}, [MOEC_GGUF_KV_U64] = {"u64", 8}, [MOEC_GGUF_KV_I64] = {"i64", 8},
    [MOEC_GGUF_KV_F64] = {"f64", 8},
};

const char *moec_ggml_type_name(moec_ggml_type t) {
    return (unsigned)t < MOEC_GGML_TYPE_LIMIT ? type_info[t].name : NULL;
}
int moec_ggml_type_block(moec_ggml_type t, size_t *block_bytes) {
    int known = (unsigned)t < MOEC_GGML_TYPE_LIMIT && type_info[t].name;
    if (block_bytes) *block_bytes = known ? type_info[t].bytes : 0;
    return known ? type_info[t].block : 0;
}
size_t moec_gguf_kv_type_size(moec_gguf_kv_type t) {
    return (unsigned)t < MOEC_GGUF_KV_TYPE_COUNT ? kv_info[t].size : 0;
}
const char *moec_gguf_kv_type_name(moec_gguf_kv_type t) {
    return (unsigned)t < MOEC_GGUF_KV_TYPE_COUNT ? kv_info[t].name : "unknown";
}

/* ---- element codecs ---- */

static uint32_t f32_bits(float x) { uint32_t b; memcpy(&b, &x, 4); return b; }
static float bits_f32(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }

uint16_t moec_gguf_f32_to_f16(float x) {
    uint32_t b = f32_bits(x), sign = (b >> 16) & 0x8000, a = b & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff)); /* NaN stays (quiet) NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds (ties to even) past 65504 */
    if (a >= 0x38800000u) { /* normal in f16: rebias the exponent (127 -> 15) and round the 13 dropped bits */
        a += 0xc8000fffu + ((a >> 13) & 1);
        return (uint16_t)(sign | (a >> 13));
    }
    /* subnormal or zero: adding 0.5 puts the f16 subnormal step (2^-24) at the float's last mantissa bit, so the
     * hardware's round-to-nearest-even does the rounding; the difference from 0.5's bits is the f16 pattern. */
    float r = bits_f32(a) + 0.5f;
    return (uint16_t)(sign | (f32_bits(r) - 0x3f000000u));
}

uint16_t moec_gguf_f32_to_bf16(float x) {
    uint32_t b = f32_bits(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1)) >> 16);
}

void moec_q8_0_quantize(const float *x, int64_t n, void *out) {
    uint8_t *o = out;
    for (int64_t blk = 0; blk < n / MOEC_Q8_0_BLOCK; blk++, x += MOEC_Q8_0_BLOCK, o += MOEC_Q8_0_BLOCK_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < MOEC_Q8_0_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        /* ggml's reference: quantize with the fp32 reciprocal, store the scale rounded to fp16. */
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = moec_gguf_f32_to_f16(d);
        memcpy(o, &h, 2);
        for (int j = 0; j < MOEC_Q8_0_BLOCK; j++) o[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

void moec_q8_0_dequantize(const void *in, int64_t n, float *out) {
    const uint8_t *p = in;
    for (int64_t blk = 0; blk < n / MOEC_Q8_0_BLOCK; blk++, p += MOEC_Q8_0_BLOCK_BYTES, out += MOEC_Q8_0_BLOCK) {
        uint16_t h;
        memcpy(&h, p, 2);
        const float d = moec_f16_to_f32(h);
        for (int j = 0; j < MOEC_Q8_0_BLOCK; j++) out[j] = d * (float)(int8_t)p[2 + j];
    }
}

/* ---- reader ---- */

struct moec_gguf_file {
    char *origin;
    void *map;             /* our mapping (moec_gguf_open), else NULL */
    size_t map_size;
    const uint8_t *buf;    /* the file's bytes */
    size_t len;
    uint32_t version, alignment;
    int64_t n_kv, n_tensors;
    moec_gguf_kv *kvs;
    uint64_t **str_off;    /* per KV: offsets of a string array's elements (length prefixes), else NULL */
    moec_gguf_kv **kv_sorted;
    moec_gguf_tensor *tensors;
    moec_gguf_tensor **t_sorted;  /* by name */
};

uint32_t moec_gguf_version(const moec_gguf_file *f) { return f->version; }
uint32_t moec_gguf_alignment(const moec_gguf_file *f) { return f->alignment; }
int64_t moec_gguf_kv_count(const moec_gguf_file *f) { return f->n_kv; }
int64_t moec_gguf_tensor_count(const moec_gguf_file *f) { return f->n_tensors; }
const moec_gguf_kv *moec_gguf_kv_at(const moec_gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? &f->kvs[i] : NULL;
}
const moec_gguf_tensor *moec_gguf_tensor_at(const moec_gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}
int64_t moec_gguf_tensor_numel(const moec_gguf_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    return n;
}

void moec_gguf_close(moec_gguf_file *f) {
    if (!f) return;
    if (f->kvs)
        for (int64_t i = 0; i < f->n_kv; i++) {
            free((char *)f->kvs[i].key);
            if (f->str_off) free(f->str_off[i]);
        }
    if (f->tensors)
        for (int64_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->kvs);
    free(f->str_off);
    free(f->kv_sorted);
    free(f->tensors);
    free(f->t_sorted);
    if (f->map) munmap(f->map, f->map_size);
    free(f->origin);
    free(f);
}

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    const char *origin;
} cursor;

static moec_status need(cursor *c, uint64_t k, const char *what) {
    if (k > c->n - c->pos)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: truncated: %s at byte %zu needs %" PRIu64 " bytes, %zu remain",
                        c->origin, what, c->pos, k, c->n - c->pos);
    return MOEC_OK;
}
static moec_status rd(cursor *c, void *dst, size_t k, const char *what) {
    MOEC_TRY(need(c, k, what));
    memcpy(dst, c->p + c->pos, k);
    c->pos += k;
    return MOEC_OK;
}
static moec_status rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static moec_status rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }
/* A string: *off is the offset of its length prefix; the bytes follow. */
static moec_status rd_str(cursor *c, size_t *off, uint64_t *len, const char *what) {
    *off = c->pos;
    MOEC_TRY(rd_u64(c, len, what));
    MOEC_TRY(need(c, *len, what));
    c->pos += (size_t)*len;
    return MOEC_OK;
}
/* A key or a tensor name: non-empty, at most 65535 bytes, no NUL; returns a NUL-terminated copy. */
static moec_status rd_name(cursor *c, char **out, const char *what) {
    size_t off;
    uint64_t len;
    MOEC_TRY(rd_str(c, &off, &len, what));
    const char *s = (const char *)c->p + off + 8;
    if (len == 0 || len > GGUF_MAX_STR_KEY || memchr(s, 0, (size_t)len))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %s at byte %zu is empty, longer than %u bytes or contains NUL",
                        c->origin, what, off, GGUF_MAX_STR_KEY);
    if (!(*out = strndup(s, (size_t)len))) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", c->origin);
    return MOEC_OK;
}

static moec_status parse_kv(moec_gguf_file *f, cursor *c, int64_t i) {
    moec_gguf_kv *kv = &f->kvs[i];
    char *key = NULL;
    MOEC_TRY(rd_name(c, &key, "KV key"));
    kv->key = key;
    uint32_t type;
    MOEC_TRY(rd_u32(c, &type, "KV type"));
    if (type >= MOEC_GGUF_KV_TYPE_COUNT)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' has unknown value type %u", c->origin, key, type);
    kv->type = (moec_gguf_kv_type)type;
    kv->arr_type = kv->type;
    kv->n = 1;
    if (type == MOEC_GGUF_KV_ARRAY) {
        uint32_t et;
        MOEC_TRY(rd_u32(c, &et, "array element type"));
        if (et >= MOEC_GGUF_KV_TYPE_COUNT)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: array '%s' has unknown element type %u", c->origin, key, et);
        if (et == MOEC_GGUF_KV_ARRAY)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: array '%s' holds arrays; nested arrays are not supported",
                            c->origin, key);
        kv->arr_type = (moec_gguf_kv_type)et;
        MOEC_TRY(rd_u64(c, &kv->n, "array length"));
    }
    const size_t remain = c->n - c->pos;
    kv->data = c->p + c->pos;
    if (kv->arr_type == MOEC_GGUF_KV_STRING) {
        if (kv->n > remain / 8) /* every string takes at least its 8-byte length */
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: '%s' claims %" PRIu64 " strings but only %zu bytes remain",
                            c->origin, key, kv->n, remain);
        if (type == MOEC_GGUF_KV_ARRAY) {
            if (!(f->str_off[i] = malloc((size_t)(kv->n ? kv->n : 1) * sizeof(uint64_t))))
                return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory for '%s'", c->origin, key);
        }
        for (uint64_t j = 0; j < kv->n; j++) {
            size_t off;
            uint64_t len;
            MOEC_TRY(rd_str(c, &off, &len, "string value"));
            if (f->str_off[i]) f->str_off[i][j] = off;
        }
        return MOEC_OK;
    }
    const size_t es = kv_info[kv->arr_type].size;
    if (kv->n > remain / es)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: '%s' needs %" PRIu64 " values of %zu bytes but only %zu bytes remain",
                        c->origin, key, kv->n, es, remain);
    c->pos += (size_t)kv->n * es;
    return MOEC_OK;
}

static int cmp_kv_ptr(const void *a, const void *b) {
    return strcmp((*(moec_gguf_kv *const *)a)->key, (*(moec_gguf_kv *const *)b)->key);
}
static int cmp_t_name(const void *a, const void *b) {
    return strcmp((*(moec_gguf_tensor *const *)a)->name, (*(moec_gguf_tensor *const *)b)->name);
}
static int cmp_t_off(const void *a, const void *b) {
    uint64_t x = (*(moec_gguf_tensor *const *)a)->offset, y = (*(moec_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static moec_status parse_tensor(moec_gguf_file *f, cursor *c, int64_t i) {
    moec_gguf_tensor *t = &f->tensors[i];
    char *name = NULL;
    MOEC_TRY(rd_name(c, &name, "tensor name"));
    t->name = name;
    uint32_t nd;
    MOEC_TRY(rd_u32(c, &nd, "tensor n_dims"));
    if (nd < 1 || nd > MOEC_GGUF_MAX_DIMS)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' has %u dims (1..%d supported)", c->origin, name, nd,
                        MOEC_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t numel = 1;
    for (int d = 0; d < MOEC_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        MOEC_TRY(rd_u64(c, &ne, "tensor dim"));
        if (ne == 0 || ne > (uint64_t)INT64_MAX || (uint64_t)numel > (uint64_t)INT64_MAX / ne)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' dim %u is %" PRIu64 " (zero, or the size overflows)",
                            c->origin, name, d, ne);
        t->ne[d] = (int64_t)ne;
        numel *= (int64_t)ne;
    }
    uint32_t type;
    MOEC_TRY(rd_u32(c, &type, "tensor type"));
    size_t bb;
    int block = moec_ggml_type_block((moec_ggml_type)type, &bb);
    if (!block) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' has unknown type %u", c->origin, name, type);
    t->type = (moec_ggml_type)type;
    if (t->ne[0] % block != 0)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' of type %s has ne[0] = %" PRId64 ", not whole blocks of %d",
                        c->origin, name, type_info[type].name, t->ne[0], block);
    uint64_t blocks = (uint64_t)numel / (uint64_t)block;
    if (blocks > (uint64_t)(SIZE_MAX / 2) / bb)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' byte size overflows", c->origin, name);
    t->nbytes = (size_t)(blocks * bb);
    MOEC_TRY(rd_u64(c, &t->offset, "tensor offset"));
    return MOEC_OK;
}

static moec_status parse(moec_gguf_file *f) {
    cursor c = {f->buf, f->len, 0, f->origin};
    char magic[4];
    MOEC_TRY(rd(&c, magic, 4, "magic"));
    if (memcmp(magic, "GGUF", 4) != 0) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: not a GGUF file (bad magic)", f->origin);
    MOEC_TRY(rd_u32(&c, &f->version, "version"));
    if (f->version != 2 && f->version != 3)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: GGUF version %u is not supported (2 and 3 are%s)", f->origin,
                        f->version, f->version > 0xffff ? "; a big-endian file?" : "");
    uint64_t nt, nkv;
    MOEC_TRY(rd_u64(&c, &nt, "tensor count"));
    MOEC_TRY(rd_u64(&c, &nkv, "KV count"));
    /* Smallest possible sizes: a KV is key (8 + 1) + type (4) + a 1-byte value; a tensor info is name (8 + 1) +
     * n_dims (4) + one dim (8) + type (4) + offset (8). Larger counts cannot fit, whatever they claim. */
    const size_t remain = c.n - c.pos;
    if (nkv > remain / 14 || nt > remain / 33)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %" PRIu64 " KVs and %" PRIu64 " tensors cannot fit in %zu bytes",
                        f->origin, nkv, nt, remain);
    f->n_kv = (int64_t)nkv;
    f->kvs = calloc((size_t)nkv + 1, sizeof *f->kvs);
    f->str_off = calloc((size_t)nkv + 1, sizeof *f->str_off);
    f->kv_sorted = calloc((size_t)nkv + 1, sizeof *f->kv_sorted);
    if (!f->kvs || !f->str_off || !f->kv_sorted) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", f->origin);
    for (int64_t i = 0; i < f->n_kv; i++) {
        moec_status s = parse_kv(f, &c, i);
        if (s != MOEC_OK) {
            f->n_kv = i + 1; /* free what was allocated */
            return s;
        }
        f->kv_sorted[i] = &f->kvs[i];
    }
    qsort(f->kv_sorted, (size_t)f->n_kv, sizeof *f->kv_sorted, cmp_kv_ptr);
    for (int64_t i = 1; i < f->n_kv; i++)
        if (strcmp(f->kv_sorted[i - 1]->key, f->kv_sorted[i]->key) == 0)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' appears twice", f->origin, f->kv_sorted[i]->key);

    f->alignment = MOEC_GGUF_DEFAULT_ALIGNMENT;
    const moec_gguf_kv *al = moec_gguf_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != MOEC_GGUF_KV_U32)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: general.alignment is %s, not u32", f->origin,
                            moec_gguf_kv_type_name(al->type));
        memcpy(&f->alignment, al->data, 4);
        if (f->alignment == 0 || (f->alignment & (f->alignment - 1)) != 0)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: general.alignment %u is not a power of two", f->origin,
                            f->alignment);
    }

    f->n_tensors = (int64_t)nt;
    f->tensors = calloc((size_t)nt + 1, sizeof *f->tensors);
    f->t_sorted = calloc((size_t)nt + 1, sizeof *f->t_sorted);
    if (!f->tensors || !f->t_sorted) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", f->origin);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        moec_status s = parse_tensor(f, &c, i);
        if (s != MOEC_OK) {
            f->n_tensors = i + 1;
            return s;
        }
        f->t_sorted[i] = &f->tensors[i];
    }
    qsort(f->t_sorted, (size_t)f->n_tensors, sizeof *f->t_sorted, cmp_t_name);
    for (int64_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->t_sorted[i - 1]->name, f->t_sorted[i]->name) == 0)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' appears twice", f->origin, f->t_sorted[i]->name);
    if (f->n_tensors == 0) return MOEC_OK;

    /* The data region starts at the next multiple of the alignment after the tensor infos. */
    const size_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
    if (pad > c.n - c.pos)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: truncated: the data region (after byte %zu, aligned to %u) is missing",
                        f->origin, c.pos, f->alignment);
    const size_t data_start = c.pos + pad, data_size = c.n - data_start;
    moec_gguf_tensor **by_off = malloc((size_t)f->n_tensors * sizeof *by_off);
    if (!by_off) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", f->origin);
    moec_status s = MOEC_OK;
    for (int64_t i = 0; i < f->n_tensors && s == MOEC_OK; i++) {
        moec_gguf_tensor *t = &f->tensors[i];
        by_off[i] = t;
        if (t->offset % f->alignment != 0)
            s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %u",
                         f->origin, t->name, t->offset, f->alignment);
        else if (t->offset > data_size || t->nbytes > data_size - t->offset)
            s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' bytes [%" PRIu64 ", +%zu) lie outside the %zu-byte data "
                         "region (truncated file?)", f->origin, t->name, t->offset, t->nbytes, data_size);
        else
            t->data = f->buf + data_start + t->offset;
    }
    if (s == MOEC_OK) {
        qsort(by_off, (size_t)f->n_tensors, sizeof *by_off, cmp_t_off);
        for (int64_t i = 1; i < f->n_tensors && s == MOEC_OK; i++)
            if (by_off[i - 1]->offset + by_off[i - 1]->nbytes > by_off[i]->offset)
                s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", f->origin, by_off[i - 1]->name,
                             by_off[i]->name);
    }
    free(by_off);
    return s;
}

moec_status moec_gguf_open_memory(moec_gguf_file **out, const void *buf, size_t len, const char *origin) {
    *out = NULL;
    moec_gguf_file *f = calloc(1, sizeof *f);
    if (!f || !(f->origin = strdup(origin ? origin : "<memory>"))) {
        free(f);
        return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory opening %s", origin ? origin : "<memory>");
    }
    f->buf = buf;
    f->len = len;
    moec_status s = parse(f);
    if (s != MOEC_OK) {
        moec_gguf_close(f);
        return s;
    }
    *out = f;
    return MOEC_OK;
}

moec_status moec_gguf_open(moec_gguf_file **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MOEC_ERR(MOEC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return MOEC_ERR(MOEC_ERR_IO, "%s: not a readable regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %lld bytes, too short for a GGUF header", path, (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return MOEC_ERR(MOEC_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    (void)madvise(map, (size_t)st.st_size, MADV_HUGEPAGE); /* 2 MB pages for streamed weights: see moec_st_open */
    moec_status s = moec_gguf_open_memory(out, map, (size_t)st.st_size, path);
    if (s != MOEC_OK) {
        munmap(map, (size_t)st.st_size);
        return s;
    }
    (*out)->map = map;
    (*out)->map_size = (size_t)st.st_size;
    return MOEC_OK;
}

const moec_gguf_kv *moec_gguf_find_kv(const moec_gguf_file *f, const char *key) {
    moec_gguf_kv probe = {.key = key}, *pp = &probe;
    moec_gguf_kv **r = bsearch(&pp, f->kv_sorted, (size_t)f->n_kv, sizeof *f->kv_sorted, cmp_kv_ptr);
    return r ? *r : NULL;
}

const moec_gguf_tensor *moec_gguf_find_tensor(const moec_gguf_file *f, const char *name) {
    moec_gguf_tensor probe = {.name = name}, *pp = &probe;
    moec_gguf_tensor **r = bsearch(&pp, f->t_sorted, (size_t)f->n_tensors, sizeof *f->t_sorted, cmp_t_name);
    return r ? *r : NULL;
}

const char *moec_gguf_kv_str(const moec_gguf_file *f, const moec_gguf_kv *kv, size_t *len) {
    (void)f;
    if (kv->type != MOEC_GGUF_KV_STRING) return NULL;
    uint64_t n;
    memcpy(&n, kv->data, 8);
    *len = (size_t)n;
    return (const char *)kv->data + 8;
}

const char *moec_gguf_kv_arr_str(const moec_gguf_file *f, const moec_gguf_kv *kv, uint64_t i, size_t *len) {
    if (kv->type != MOEC_GGUF_KV_ARRAY || kv->arr_type != MOEC_GGUF_KV_STRING || i >= kv->n) return NULL;
    const uint64_t *offs = f->str_off[kv - f->kvs];
    uint64_t n;
    memcpy(&n, f->buf + offs[i], 8);
    *len = (size_t)n;
    return (const char *)f->buf + offs[i] + 8;
}

/* Element i of a numeric scalar/array as double; NAN when not numeric. */
static double num_at(moec_gguf_kv_type t, const void *data, uint64_t i) {
    const uint8_t *p = data;
    switch (t) {
#define NUM(T, k) case k: { T v; memcpy(&v, p + i * sizeof(T), sizeof(T)); return (double)v; }
    NUM(uint8_t, MOEC_GGUF_KV_U8) NUM(int8_t, MOEC_GGUF_KV_I8) NUM(uint16_t, MOEC_GGUF_KV_U16)
    NUM(int16_t, MOEC_GGUF_KV_I16) NUM(uint32_t, MOEC_GGUF_KV_U32) NUM(int32_t, MOEC_GGUF_KV_I32)
    NUM(float, MOEC_GGUF_KV_F32) NUM(uint8_t, MOEC_GGUF_KV_BOOL) NUM(uint64_t, MOEC_GGUF_KV_U64)
    NUM(int64_t, MOEC_GGUF_KV_I64) NUM(double, MOEC_GGUF_KV_F64)
#undef NUM
    default: return NAN;
    }
}

double moec_gguf_kv_arr_num(const moec_gguf_kv *kv, uint64_t i) {
    if (kv->type != MOEC_GGUF_KV_ARRAY || i >= kv->n) return NAN;
    return num_at(kv->arr_type, kv->data, i);
}

static moec_status find_typed(const moec_gguf_file *f, const char *key, const moec_gguf_kv **kv) {
    *kv = moec_gguf_find_kv(f, key);
    if (!*kv) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' is missing", f->origin, key);
    return MOEC_OK;
}

/* Integer KV (any integer type) whose value lies in [lo, hi]. */
static moec_status get_int(const moec_gguf_file *f, const char *key, int64_t lo, uint64_t hi, int64_t *sv,
                           uint64_t *uv) {
    const moec_gguf_kv *kv;
    MOEC_TRY(find_typed(f, key, &kv));
    uint64_t u = 0;
    int64_t s = 0;
    int neg = 0;
    switch (kv->type) {
    case MOEC_GGUF_KV_U8: case MOEC_GGUF_KV_U16: case MOEC_GGUF_KV_U32:
        u = (uint64_t)num_at(kv->type, kv->data, 0);
        break;
    case MOEC_GGUF_KV_U64: memcpy(&u, kv->data, 8); break;
    case MOEC_GGUF_KV_I8: case MOEC_GGUF_KV_I16: case MOEC_GGUF_KV_I32:
        s = (int64_t)num_at(kv->type, kv->data, 0);
        neg = s < 0;
        u = (uint64_t)s;
        break;
    case MOEC_GGUF_KV_I64:
        memcpy(&s, kv->data, 8);
        neg = s < 0;
        u = (uint64_t)s;
        break;
    default:
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' is %s, not an integer", f->origin, key,
                        moec_gguf_kv_type_name(kv->type));
    }
    if (neg ? (lo >= 0 || s < lo) : u > hi)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' value is out of range", f->origin, key);
    if (sv) *sv = neg ? s : (int64_t)u;
    if (uv) *uv = u;
    return MOEC_OK;
}

moec_status moec_gguf_get_u32(const moec_gguf_file *f, const char *key, uint32_t *v) {
    uint64_t u;
    MOEC_TRY(get_int(f, key, 0, UINT32_MAX, NULL, &u));
    *v = (uint32_t)u;
    return MOEC_OK;
}
moec_status moec_gguf_get_i32(const moec_gguf_file *f, const char *key, int32_t *v) {
    int64_t s;
    MOEC_TRY(get_int(f, key, INT32_MIN, INT32_MAX, &s, NULL));
    *v = (int32_t)s;
    return MOEC_OK;
}
moec_status moec_gguf_get_u64(const moec_gguf_file *f, const char *key, uint64_t *v) {
    return get_int(f, key, 0, UINT64_MAX, NULL, v);
}
moec_status moec_gguf_get_f32(const moec_gguf_file *f, const char *key, float *v) {
    const moec_gguf_kv *kv;
    MOEC_TRY(find_typed(f, key, &kv));
    if (kv->type != MOEC_GGUF_KV_F32 && kv->type != MOEC_GGUF_KV_F64)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' is %s, not a float", f->origin, key,
                        moec_gguf_kv_type_name(kv->type));
    *v = (float)num_at(kv->type, kv->data, 0);
    return MOEC_OK;
}
moec_status moec_gguf_get_bool(const moec_gguf_file *f, const char *key, int *v) {
    const moec_gguf_kv *kv;
    MOEC_TRY(find_typed(f, key, &kv));
    if (kv->type != MOEC_GGUF_KV_BOOL)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' is %s, not bool", f->origin, key,
                        moec_gguf_kv_type_name(kv->type));
    *v = *(const uint8_t *)kv->data != 0;
    return MOEC_OK;
}
moec_status moec_gguf_get_str(const moec_gguf_file *f, const char *key, const char **s, size_t *len) {
    const moec_gguf_kv *kv;
    MOEC_TRY(find_typed(f, key, &kv));
    if (!(*s = moec_gguf_kv_str(f, kv, len)))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' is %s, not a string", f->origin, key,
                        moec_gguf_kv_type_name(kv->type));
    return MOEC_OK;
}
moec_status moec_gguf_get_arr(const moec_gguf_file *f, const char *key, moec_gguf_kv_type elem,
                              const moec_gguf_kv **kv) {
    MOEC_TRY(find_typed(f, key, kv));
    if ((*kv)->type != MOEC_GGUF_KV_ARRAY || (*kv)->arr_type != elem)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' is not an array of %s", f->origin, key,
                        moec_gguf_kv_type_name(elem));
    return MOEC_OK;
}

moec_status moec_gguf_tensor_read_f32(const moec_gguf_tensor *t, float *out, int64_t n) {
    if (n != moec_gguf_tensor_numel(t))
        return MOEC_ERR(MOEC_ERR_ARG, "tensor '%s': %" PRId64 " values asked, it has %" PRId64, t->name, n,
                        moec_gguf_tensor_numel(t));
    if (!moec_ggml_can_dequantize(t->type))
        return MOEC_ERR(MOEC_ERR_FORMAT, "tensor '%s' has type %s; moec reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, "
                        "Q8_0 and Q2_K..Q6_K", t->name, moec_ggml_type_name(t->type));
    moec_ggml_dequantize(t->type, t->data, n, out); /* the reader checked that the data holds n values */
    return MOEC_OK;
}
