/* gguf_write.c — the streaming, atomic GGUF writer (format and contract in gguf.h; the reader is gguf.c). */
#include "io/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"

/* ---- writer ---- */

typedef struct {
    char *name;
    moec_ggml_type type;
    int n_dims;
    int64_t ne[MOEC_GGUF_MAX_DIMS];
    size_t nbytes;
} wtensor;

struct moec_gguf_writer {
    char *path;
    moec_atomic_file *f;
    uint8_t *kv;            /* serialized KVs */
    size_t kv_n, kv_cap;
    int oom;
    char **keys;
    int64_t n_keys, keys_cap;
    wtensor *t;
    int64_t n_t, t_cap;
    uint32_t alignment;
    int header_done;
    int64_t cur;            /* tensor receiving data */
    size_t done;            /* its bytes received */
};

static void kv_put(moec_gguf_writer *w, const void *p, size_t n) {
    if (w->oom || n == 0) return; /* an empty array may come with a NULL pointer */
    if (w->kv_n + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_n + n) cap *= 2;
        uint8_t *q = realloc(w->kv, cap);
        if (!q) { w->oom = 1; return; }
        w->kv = q;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_n, p, n);
    w->kv_n += n;
}
static void kv_put_str(moec_gguf_writer *w, const char *s, size_t n) {
    uint64_t len = n;
    kv_put(w, &len, 8);
    kv_put(w, s, n);
}

moec_status moec_gguf_writer_begin(moec_gguf_writer **out, const char *path) {
    *out = NULL;
    moec_gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
    }
    w->alignment = MOEC_GGUF_DEFAULT_ALIGNMENT;
    moec_status s = moec_atomic_open(&w->f, path);
    if (s != MOEC_OK) {
        free(w->path);
        free(w);
        return s;
    }
    *out = w;
    return MOEC_OK;
}

void moec_gguf_writer_abort(moec_gguf_writer *w) {
    if (!w) return;
    moec_atomic_abort(w->f);
    for (int64_t i = 0; i < w->n_keys; i++) free(w->keys[i]);
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->keys);
    free(w->t);
    free(w->kv);
    free(w->path);
    free(w);
}

/* Checks that KVs may still be declared and that key is new, and records it. */
static moec_status new_key(moec_gguf_writer *w, const char *key) {
    if (w->header_done) return MOEC_ERR(MOEC_ERR_ARG, "%s: KV '%s' declared after tensor data", w->path, key);
    if (!key || !*key || strlen(key) > MOEC_GGUF_MAX_KEY) return MOEC_ERR(MOEC_ERR_ARG, "%s: invalid key", w->path);
    for (int64_t i = 0; i < w->n_keys; i++)
        if (strcmp(w->keys[i], key) == 0) return MOEC_ERR(MOEC_ERR_ARG, "%s: key '%s' declared twice", w->path, key);
    if (w->n_keys == w->keys_cap) {
        int64_t cap = w->keys_cap ? 2 * w->keys_cap : 32;
        char **k = realloc(w->keys, (size_t)cap * sizeof *k);
        if (!k) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", w->path);
        w->keys = k;
        w->keys_cap = cap;
    }
    if (!(w->keys[w->n_keys] = strdup(key))) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", w->path);
    w->n_keys++;
    kv_put_str(w, key, strlen(key));
    return MOEC_OK;
}

static moec_status kv_done(moec_gguf_writer *w) {
    return w->oom ? MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building the header", w->path) : MOEC_OK;
}

moec_status moec_gguf_writer_kv(moec_gguf_writer *w, const char *key, moec_gguf_kv_type type, const void *value) {
    if ((unsigned)type >= MOEC_GGUF_KV_TYPE_COUNT || type == MOEC_GGUF_KV_STRING || type == MOEC_GGUF_KV_ARRAY)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: KV '%s': type %d is not a fixed-size scalar", w->path, key, (int)type);
    MOEC_TRY(new_key(w, key));
    uint32_t t = type;
    kv_put(w, &t, 4);
    kv_put(w, value, moec_gguf_kv_type_size(type));
    return kv_done(w);
}
moec_status moec_gguf_writer_kv_u32(moec_gguf_writer *w, const char *key, uint32_t v) {
    return moec_gguf_writer_kv(w, key, MOEC_GGUF_KV_U32, &v);
}
moec_status moec_gguf_writer_kv_i32(moec_gguf_writer *w, const char *key, int32_t v) {
    return moec_gguf_writer_kv(w, key, MOEC_GGUF_KV_I32, &v);
}
moec_status moec_gguf_writer_kv_f32(moec_gguf_writer *w, const char *key, float v) {
    return moec_gguf_writer_kv(w, key, MOEC_GGUF_KV_F32, &v);
}
moec_status moec_gguf_writer_kv_bool(moec_gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return moec_gguf_writer_kv(w, key, MOEC_GGUF_KV_BOOL, &b);
}
moec_status moec_gguf_writer_kv_strn(moec_gguf_writer *w, const char *key, const char *s, size_t len) {
    MOEC_TRY(new_key(w, key));
    uint32_t t = MOEC_GGUF_KV_STRING;
    kv_put(w, &t, 4);
    kv_put_str(w, s, len);
    return kv_done(w);
}
moec_status moec_gguf_writer_kv_str(moec_gguf_writer *w, const char *key, const char *s) {
    return moec_gguf_writer_kv_strn(w, key, s, strlen(s));
}
moec_status moec_gguf_writer_set_alignment(moec_gguf_writer *w, uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: alignment %u is not a power of two", w->path, alignment);
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "general.alignment", alignment));
    w->alignment = alignment;
    return MOEC_OK;
}
moec_status moec_gguf_writer_kv_arr(moec_gguf_writer *w, const char *key, moec_gguf_kv_type elem, const void *data,
                                    uint64_t n) {
    if ((unsigned)elem >= MOEC_GGUF_KV_TYPE_COUNT || elem == MOEC_GGUF_KV_STRING || elem == MOEC_GGUF_KV_ARRAY)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: array '%s': element type %d is not fixed-size", w->path, key, (int)elem);
    MOEC_TRY(new_key(w, key));
    uint32_t t = MOEC_GGUF_KV_ARRAY, e = elem;
    kv_put(w, &t, 4);
    kv_put(w, &e, 4);
    kv_put(w, &n, 8);
    kv_put(w, data, (size_t)n * moec_gguf_kv_type_size(elem));
    return kv_done(w);
}
moec_status moec_gguf_writer_kv_arr_str(moec_gguf_writer *w, const char *key, const char *const *strs,
                                        const size_t *lens, uint64_t n) {
    MOEC_TRY(new_key(w, key));
    uint32_t t = MOEC_GGUF_KV_ARRAY, e = MOEC_GGUF_KV_STRING;
    kv_put(w, &t, 4);
    kv_put(w, &e, 4);
    kv_put(w, &n, 8);
    for (uint64_t i = 0; i < n; i++) kv_put_str(w, strs[i], lens ? lens[i] : strlen(strs[i]));
    return kv_done(w);
}

moec_status moec_gguf_writer_add_tensor(moec_gguf_writer *w, const char *name, moec_ggml_type type, int n_dims,
                                        const int64_t *ne) {
    if (w->header_done) return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s' declared after tensor data", w->path, name);
    if (!name || !*name || strlen(name) > MOEC_GGUF_MAX_NAME)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor name '%s' is empty or longer than %d bytes (ggml's limit)",
                        w->path, name ? name : "", MOEC_GGUF_MAX_NAME);
    size_t bb;
    int block = moec_ggml_type_block(type, &bb);
    if (!block) return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s': unknown type %d", w->path, name, (int)type);
    if (n_dims < 1 || n_dims > MOEC_GGUF_MAX_DIMS)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s': %d dims", w->path, name, n_dims);
    for (int64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s' declared twice", w->path, name);
    wtensor t = {.type = type, .n_dims = n_dims};
    int64_t numel = 1;
    for (int d = 0; d < MOEC_GGUF_MAX_DIMS; d++) t.ne[d] = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || numel > INT64_MAX / ne[d])
            return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s': bad dim %" PRId64, w->path, name, ne[d]);
        t.ne[d] = ne[d];
        numel *= ne[d];
    }
    if (t.ne[0] % block != 0)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s': %s needs ne[0] (%" PRId64 ") to be a multiple of %d", w->path,
                        name, moec_ggml_type_name(type), t.ne[0], block);
    t.nbytes = (size_t)(numel / block) * bb;
    if (w->n_t == w->t_cap) {
        int64_t cap = w->t_cap ? 2 * w->t_cap : 64;
        wtensor *q = realloc(w->t, (size_t)cap * sizeof *q);
        if (!q) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", w->path);
        w->t = q;
        w->t_cap = cap;
    }
    if (!(t.name = strdup(name))) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", w->path);
    w->t[w->n_t++] = t;
    return MOEC_OK;
}

static size_t pad_to(size_t n, uint32_t a) { return (a - n % a) % a; }
static const uint8_t zeros[256];

static moec_status put_zeros(moec_gguf_writer *w, size_t n) {
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        MOEC_TRY(moec_atomic_write(w->f, zeros, k));
        n -= k;
    }
    return MOEC_OK;
}

/* Header: magic, version, counts, the KVs as declared, tensor infos with offsets laid out in declaration order. */
static moec_status write_header(moec_gguf_writer *w) {
    if (w->header_done) return MOEC_OK;
    w->header_done = 1;
    const uint32_t version = 3;
    uint64_t nt = (uint64_t)w->n_t, nkv = (uint64_t)w->n_keys;
    uint8_t head[24];
    memcpy(head, "GGUF", 4);
    memcpy(head + 4, &version, 4);
    memcpy(head + 8, &nt, 8);
    memcpy(head + 16, &nkv, 8);
    MOEC_TRY(moec_atomic_write(w->f, head, sizeof head));
    if (w->kv_n) MOEC_TRY(moec_atomic_write(w->f, w->kv, w->kv_n));
    size_t pos = sizeof head + w->kv_n;
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t len = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, type = t->type;
        uint8_t buf[8 + MOEC_GGUF_MAX_NAME + 4 + 8 * MOEC_GGUF_MAX_DIMS + 4 + 8];
        size_t k = 0;
        memcpy(buf + k, &len, 8), k += 8;
        memcpy(buf + k, t->name, len), k += len;
        memcpy(buf + k, &nd, 4), k += 4;
        for (int d = 0; d < t->n_dims; d++) memcpy(buf + k, &t->ne[d], 8), k += 8;
        memcpy(buf + k, &type, 4), k += 4;
        memcpy(buf + k, &off, 8), k += 8;
        MOEC_TRY(moec_atomic_write(w->f, buf, k));
        pos += k;
        off += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    if (w->n_t) MOEC_TRY(put_zeros(w, pad_to(pos, w->alignment)));
    return MOEC_OK;
}

moec_status moec_gguf_writer_put(moec_gguf_writer *w, const void *data, size_t nbytes) {
    MOEC_TRY(write_header(w));
    const uint8_t *p = data;
    while (nbytes > 0) {
        if (w->cur >= w->n_t)
            return MOEC_ERR(MOEC_ERR_ARG, "%s: %zu data bytes past the last tensor", w->path, nbytes);
        const wtensor *t = &w->t[w->cur];
        size_t take = t->nbytes - w->done < nbytes ? t->nbytes - w->done : nbytes;
        MOEC_TRY(moec_atomic_write(w->f, p, take));
        p += take;
        nbytes -= take;
        w->done += take;
        if (w->done == t->nbytes) {
            MOEC_TRY(put_zeros(w, pad_to(t->nbytes, w->alignment)));
            w->cur++;
            w->done = 0;
        }
    }
    return MOEC_OK;
}

moec_status moec_gguf_writer_put_f32(moec_gguf_writer *w, const float *x, int64_t n) {
    if (w->cur >= w->n_t) return MOEC_ERR(MOEC_ERR_ARG, "%s: values past the last tensor", w->path);
    const wtensor *t = &w->t[w->cur];
    size_t bb;
    int block = moec_ggml_type_block(t->type, &bb);
    if (t->type != MOEC_GGML_F32 && t->type != MOEC_GGML_F16 && t->type != MOEC_GGML_BF16 && t->type != MOEC_GGML_Q8_0)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s': cannot encode fp32 as %s", w->path, t->name,
                        moec_ggml_type_name(t->type));
    if (n < 0 || n % block != 0 || (uint64_t)n / (uint64_t)block > (t->nbytes - w->done) / bb)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s': %" PRId64 " values do not fit its remaining bytes in whole "
                        "blocks", w->path, t->name, n);
    enum { CHUNK = 4096 }; /* values per conversion, a multiple of the Q8_0 block */
    uint8_t buf[CHUNK * 4];
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t k = n - i < CHUNK ? n - i : CHUNK;
        size_t nb;
        switch (t->type) {
        case MOEC_GGML_F32: memcpy(buf, x + i, (size_t)k * 4), nb = (size_t)k * 4; break;
        case MOEC_GGML_Q8_0: moec_q8_0_quantize(x + i, k, buf), nb = (size_t)(k / 32) * 34; break;
        default:
            for (int64_t j = 0; j < k; j++) {
                uint16_t h = t->type == MOEC_GGML_F16 ? moec_gguf_f32_to_f16(x[i + j]) : moec_gguf_f32_to_bf16(x[i + j]);
                memcpy(buf + 2 * j, &h, 2);
            }
            nb = (size_t)k * 2;
        }
        /* The last chunk of this tensor may advance w->cur; that is the caller's promise (no crossing). */
        MOEC_TRY(moec_gguf_writer_put(w, buf, nb));
    }
    return MOEC_OK;
}

moec_status moec_gguf_writer_finish(moec_gguf_writer *w) {
    moec_status s = write_header(w);
    if (s == MOEC_OK && w->cur != w->n_t)
        s = MOEC_ERR(MOEC_ERR_ARG, "%s: data of tensor '%s' and after it was not written", w->path,
                     w->t[w->cur].name);
    if (s != MOEC_OK) {
        moec_gguf_writer_abort(w);
        return s;
    }
    s = moec_atomic_commit(w->f);
    w->f = NULL;
    moec_gguf_writer_abort(w); /* frees the rest; the committed file stays */
    return s;
}
