/* safetensors.c — validating reader (mmap) and atomic writer for .safetensors; format spec in safetensors.h. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
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

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "moec's file formats are little-endian and are read by reinterpreting bytes; port the loaders first"
#endif

/* The reference implementation refuses headers above 100 MB; a larger one is corruption, not a model. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* JSON numbers are doubles: integers above 2^53 cannot be represented exactly, so they are refused. */
#define ST_MAX_JSON_INT 9007199254740992.0

static const struct { const char *name; size_t size; } dtype_info[MOEC_ST_DTYPE_COUNT] = {
    [MOEC_ST_BOOL] = {"BOOL", 1},       [MOEC_ST_U8] = {"U8", 1},   [MOEC_ST_I8] = {"I8", 1},
    [MOEC_ST_F8_E4M3] = {"F8_E4M3", 1}, [MOEC_ST_F8_E5M2] = {"F8_E5M2", 1},
    [MOEC_ST_U16] = {"U16", 2},         [MOEC_ST_I16] = {"I16", 2}, [MOEC_ST_F16] = {"F16", 2},
    [MOEC_ST_BF16] = {"BF16", 2},       [MOEC_ST_U32] = {"U32", 4}, [MOEC_ST_I32] = {"I32", 4},
    [MOEC_ST_F32] = {"F32", 4},         [MOEC_ST_U64] = {"U64", 8}, [MOEC_ST_I64] = {"I64", 8},
    [MOEC_ST_F64] = {"F64", 8},
};

const char *moec_st_dtype_name(moec_st_dtype d) {
    return (unsigned)d < MOEC_ST_DTYPE_COUNT ? dtype_info[d].name : NULL;
}
size_t moec_st_dtype_size(moec_st_dtype d) { return (unsigned)d < MOEC_ST_DTYPE_COUNT ? dtype_info[d].size : 0; }

int moec_st_dtype_parse(const char *name, moec_st_dtype *d) {
    for (int i = 0; i < MOEC_ST_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *d = (moec_st_dtype)i;
            return 0;
        }
    return -1;
}

int64_t moec_st_numel(const moec_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ---- reader ---- */

typedef struct {
    const char *name;
    int index;
} st_name_ix;

struct moec_st_file {
    char *path;
    void *map;               /* NULL when opened with moec_st_open_unmapped */
    int borrowed;            /* map is the caller's buffer (moec_st_open_memory): not unmapped on close */
    size_t map_size;         /* the file's size, mapped or not */
    int fd;                  /* unmapped files: kept open for moec_st_pread_f32; -1 otherwise */
    uint64_t *file_off;      /* per tensor (same order as tensors): its first byte's offset in the file */
    int count;
    moec_st_tensor *tensors; /* sorted by data offset */
    st_name_ix *by_name;     /* (name, index into tensors), sorted by name, for moec_st_find */
    int n_meta;
    char **meta;             /* key0, value0, key1, value1, ... */
};

const char *moec_st_path(const moec_st_file *f) { return f->path; }
int moec_st_count(const moec_st_file *f) { return f->count; }
const moec_st_tensor *moec_st_get(const moec_st_file *f, int i) {
    return i >= 0 && i < f->count ? &f->tensors[i] : NULL;
}

void moec_st_close(moec_st_file *f) {
    if (!f) return;
    if (f->map && !f->borrowed) munmap(f->map, f->map_size);
    if (f->fd >= 0) close(f->fd);
    free(f->file_off);
    for (int i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

/* A JSON number that must be a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0 || v != floor(v) || v > ST_MAX_JSON_INT) return -1;
    *out = (uint64_t)v;
    return 0;
}

typedef struct {
    uint64_t begin, end;
} st_range;

/* qsort comparators need the ranges next to the tensors; they are sorted together through this index. */
typedef struct {
    moec_st_tensor t;
    st_range r;
} st_entry;

static int cmp_entry_offset(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->r.begin != y->r.begin) return x->r.begin < y->r.begin ? -1 : 1;
    if (x->r.end != y->r.end) return x->r.end < y->r.end ? -1 : 1;
    return 0;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const st_name_ix *)a)->name, ((const st_name_ix *)b)->name);
}

/* Parse one tensor entry; errors name the file and tensor. */
static moec_status parse_entry(const char *path, const cJSON *e, uint64_t data_size, st_entry *out) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (moec_st_dtype_parse(dt->valuestring, &out->t.dtype) != 0)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", path, name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > MOEC_ST_MAX_DIMS)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d supported", path, name, ndim,
                        MOEC_ST_MAX_DIMS);
    out->t.ndim = ndim;
    uint64_t numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (json_uint(d, &v) != 0) {
            if (cJSON_IsNumber(d) && d->valuedouble < 0)
                return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': negative dimension %g", path, name, d->valuedouble);
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': dimension %d is not a non-negative integer below 2^53",
                            path, name, i);
        }
        if (__builtin_mul_overflow(numel, v, &numel) || numel > ((uint64_t)1 << 62))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': shape's element count overflows", path, name);
        out->t.shape[i++] = (int64_t)v;
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)moec_st_dtype_size(out->t.dtype), &nbytes))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || json_uint(cJSON_GetArrayItem(off, 0), &out->r.begin) != 0 ||
        json_uint(cJSON_GetArrayItem(off, 1), &out->r.end) != 0)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end] non-negative integers",
                        path, name);
    if (out->r.begin > out->r.end)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                        path, name, out->r.begin, out->r.end);
    if (out->r.end > data_size)
        return MOEC_ERR(MOEC_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets end %" PRIu64 " beyond the data region (%" PRIu64 " bytes); "
                        "file truncated?", path, name, out->r.end, data_size);
    if (out->r.end - out->r.begin != nbytes)
        return MOEC_ERR(MOEC_ERR_FORMAT,
                        "%s: tensor '%s': shape and dtype %s need %" PRIu64 " bytes but data_offsets span %" PRIu64,
                        path, name, dt->valuestring, nbytes, out->r.end - out->r.begin);
    if (nbytes > SIZE_MAX) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' too large for this machine", path, name);
    out->t.nbytes = (size_t)nbytes;
    return MOEC_OK;
}

static moec_status parse_metadata(moec_st_file *f, const cJSON *m) {
    if (!cJSON_IsObject(m)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta = calloc((size_t)(2 * n + 1), sizeof *f->meta);
    if (!f->meta) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory for metadata", f->path);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, m) {
        if (!cJSON_IsString(kv))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: metadata value of \"%s\" is not a string", f->path, kv->string);
        int i = f->n_meta++;
        f->meta[2 * i] = strdup(kv->string);
        f->meta[2 * i + 1] = strdup(kv->valuestring);
        if (!f->meta[2 * i] || !f->meta[2 * i + 1]) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory for metadata", f->path);
    }
    return MOEC_OK;
}

/* Everything after the file is mapped: parse and validate the header, fill f. */
static moec_status parse_header(moec_st_file *f, const char *hdr, uint64_t data_size) {
    const char *path = f->path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(hdr, &end, 0);
    if (!root) {
        size_t at = cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - hdr) : 0;
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of the header)", path, at);
    }
    moec_status s = MOEC_OK;
    for (const char *p = end; *p; p++) /* only padding may follow the JSON object */
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: unexpected bytes after the header's JSON object", path);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header JSON is not an object", path);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    st_entry *ent = calloc((size_t)n + 1, sizeof *ent);
    if (!ent) {
        s = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory for %d header entries", path, n);
        goto done;
    }
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (f->meta) s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: \"__metadata__\" appears twice", path);
            else s = parse_metadata(f, e);
        } else {
            s = parse_entry(path, e, data_size, &ent[count]);
            if (s == MOEC_OK) {
                ent[count].t.name = strdup(e->string);
                if (!ent[count].t.name) s = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
                else count++;
            }
        }
        if (s != MOEC_OK) break;
    }
    if (s == MOEC_OK) {
        qsort(ent, (size_t)count, sizeof *ent, cmp_entry_offset);
        for (int i = 1; i < count && s == MOEC_OK; i++)
            if (ent[i].r.begin < ent[i - 1].r.end)
                s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data region", path,
                             ent[i - 1].t.name, ent[i].t.name);
    }
    f->tensors = calloc((size_t)count + 1, sizeof *f->tensors);
    f->by_name = calloc((size_t)count + 1, sizeof *f->by_name);
    f->file_off = calloc((size_t)count + 1, sizeof *f->file_off);
    if (s == MOEC_OK && (!f->tensors || !f->by_name || !f->file_off)) s = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
    if (s != MOEC_OK) {
        for (int i = 0; i < count; i++) free((char *)ent[i].t.name);
        free(ent);
        goto done;
    }
    const uint64_t data_start = 8 + ((uint64_t)f->map_size - 8 - data_size);
    for (int i = 0; i < count; i++) {
        f->tensors[i] = ent[i].t;
        f->tensors[i].data = f->map ? (const char *)f->map + data_start + ent[i].r.begin : NULL;
        f->file_off[i] = data_start + ent[i].r.begin;
        f->by_name[i].name = f->tensors[i].name;
        f->by_name[i].index = i;
    }
    f->count = count;
    free(ent);
    qsort(f->by_name, (size_t)count, sizeof *f->by_name, cmp_by_name);
    /* cJSON keeps duplicate keys; the reference reader rejects them, and so do we (which copy would be meant?) */
    for (int i = 1; i < count; i++)
        if (strcmp(f->by_name[i].name, f->by_name[i - 1].name) == 0) {
            s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, f->by_name[i].name);
            break;
        }
done:
    cJSON_Delete(root);
    return s;
}

/* pread exactly n bytes at off, retrying short reads and EINTR. */
static moec_status pread_full(int fd, const char *path, void *buf, size_t n, uint64_t off) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return MOEC_ERR(MOEC_ERR_IO, "cannot read %s at byte %" PRIu64 ": %s", path, off, strerror(errno));
        if (r == 0) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: file ends at byte %" PRIu64 " (truncated while open?)", path, off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return MOEC_OK;
}

/* mapped: mmap the whole file (moec_st_open); else keep the descriptor and read only the header. */
static moec_status st_open(moec_st_file **out, const char *path, int mapped) {
    *out = NULL;
    moec_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory opening %s", path);
    }
    f->fd = -1;
    moec_status s = MOEC_OK;
    char *hdr = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s = MOEC_ERR(MOEC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = MOEC_ERR(MOEC_ERR_IO, "%s: not a readable regular file", path);
        goto fail;
    }
    if (st.st_size < 8) {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: %lld bytes, too short for a safetensors header length", path,
                     (long long)st.st_size);
        goto fail;
    }
    f->map_size = (size_t)st.st_size;
    uint64_t n;
    if (mapped) {
        f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            s = MOEC_ERR(MOEC_ERR_IO, "cannot map %s (%zu bytes): %s", path, f->map_size, strerror(errno));
            goto fail;
        }
        /* Ask for 2 MB pages: decoding streams every weight once per token, and with 4 KB pages each 4 KB costs a
         * TLB miss (a two-level page walk under virtualisation) — measured 28 -> 32 tokens/s on a 1B bf16 MoE
         * (bench_infer --copy 1: weights copied to 2 MB pages). The kernel honours the advice for a file whose page
         * cache it fills from now on (large folios, ext4/xfs on Linux 6.x); pages already cached as 4 KB stay 4 KB
         * (moec_atomic_commit drops what moec writes, for that reason). Advice only: failure changes nothing. */
        (void)madvise(f->map, f->map_size, MADV_HUGEPAGE);
        close(fd);
        fd = -1;
        memcpy(&n, f->map, 8);
    } else {
        f->fd = fd;
        fd = -1;
        if ((s = pread_full(f->fd, path, &n, 8, 0)) != MOEC_OK) goto fail;
    }
    const uint64_t avail = (uint64_t)f->map_size - 8;
    if (n > avail) {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %" PRIu64 " bytes after it; "
                     "truncated or not a safetensors file", path, n, avail);
        goto fail;
    }
    if (n < 2 || n > ST_MAX_HEADER) {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: implausible header length %" PRIu64, path, n);
        goto fail;
    }
    /* A NUL-terminated private copy: cJSON then never reads past the header, whatever it contains. */
    hdr = malloc((size_t)n + 1);
    if (!hdr) {
        s = MOEC_ERR(MOEC_ERR_NOMEM, "%s: cannot allocate %" PRIu64 " bytes for the header", path, n);
        goto fail;
    }
    if (f->map) memcpy(hdr, (const char *)f->map + 8, (size_t)n);
    else if ((s = pread_full(f->fd, path, hdr, (size_t)n, 8)) != MOEC_OK) goto fail;
    hdr[n] = '\0';
    if (strlen(hdr) != n) {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header contains a NUL byte", path);
        goto fail;
    }
    if (hdr[0] != '{') {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header does not start with '{'; not a safetensors file", path);
        goto fail;
    }
    s = parse_header(f, hdr, avail - n);
    if (s != MOEC_OK) goto fail;
    free(hdr);
    *out = f;
    return MOEC_OK;
fail:
    if (fd >= 0) close(fd);
    free(hdr);
    moec_st_close(f);
    return s;
}

moec_status moec_st_open(moec_st_file **out, const char *path) { return st_open(out, path, 1); }

/* The same checks as st_open, over a caller's buffer that stands in for the mapping. */
moec_status moec_st_open_memory(moec_st_file **out, const void *buf, size_t len, const char *origin) {
    *out = NULL;
    if (!origin) origin = "<memory>";
    moec_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(origin))) {
        free(f);
        return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory opening %s", origin);
    }
    f->fd = -1;
    f->map = (void *)buf;
    f->borrowed = 1;
    f->map_size = len;
    moec_status s = MOEC_OK;
    char *hdr = NULL;
    uint64_t n = 0;
    if (len < 8) {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header length", origin, len);
        goto done;
    }
    memcpy(&n, buf, 8);
    if (n > (uint64_t)len - 8 || n < 2 || n > ST_MAX_HEADER) {
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header length %" PRIu64 " is implausible or exceeds the %zu bytes after it",
                     origin, n, len - 8);
        goto done;
    }
    if (!(hdr = malloc((size_t)n + 1))) {
        s = MOEC_ERR(MOEC_ERR_NOMEM, "%s: cannot allocate %" PRIu64 " bytes for the header", origin, n);
        goto done;
    }
    memcpy(hdr, (const char *)buf + 8, (size_t)n);
    hdr[n] = '\0';
    if (strlen(hdr) != n) s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header contains a NUL byte", origin);
    else if (hdr[0] != '{') s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header does not start with '{'", origin);
    else s = parse_header(f, hdr, (uint64_t)len - 8 - n);
done:
    free(hdr);
    if (s != MOEC_OK) {
        moec_st_close(f);
        return s;
    }
    *out = f;
    return MOEC_OK;
}
moec_status moec_st_open_unmapped(moec_st_file **out, const char *path) { return st_open(out, path, 0); }

moec_status moec_st_pread_f32(const moec_st_file *f, const moec_st_tensor *t, float *out, int64_t n) {
    if (t < f->tensors || t >= f->tensors + f->count)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s' does not belong to this file", f->path, t->name);
    if (f->map) return moec_st_read_f32(t, out, n);
    const size_t es = moec_st_dtype_size(t->dtype);
    if (n < 0 || n != moec_st_numel(t) || (uint64_t)n * es != t->nbytes)
        return MOEC_ERR(MOEC_ERR_ARG, "tensor '%s': asked for %lld floats but it holds %lld", t->name, (long long)n,
                        (long long)moec_st_numel(t));
    uint64_t off = f->file_off[t - f->tensors];
    if (t->dtype == MOEC_ST_F32) return pread_full(f->fd, f->path, out, t->nbytes, off); /* straight into out */
    /* Other dtypes: read a chunk of raw elements, convert it as a one-dimensional tensor of its own. */
    enum { CHUNK = 1 << 16 };
    unsigned char *raw = malloc((size_t)CHUNK * es);
    if (!raw) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory reading '%s'", f->path, t->name);
    moec_status s = MOEC_OK;
    for (int64_t done = 0; done < n && s == MOEC_OK;) {
        int64_t k = n - done < CHUNK ? n - done : CHUNK;
        s = pread_full(f->fd, f->path, raw, (size_t)k * es, off + (uint64_t)done * es);
        moec_st_tensor piece = *t;
        piece.ndim = 1;
        piece.shape[0] = k;
        piece.data = raw;
        piece.nbytes = (size_t)k * es;
        if (s == MOEC_OK) s = moec_st_read_f32(&piece, out + done, k);
        done += k;
    }
    free(raw);
    return s;
}

const moec_st_tensor *moec_st_find(const moec_st_file *f, const char *name) {
    int lo = 0, hi = f->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid].name);
        if (c == 0) return &f->tensors[f->by_name[mid].index];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *moec_st_metadata(const moec_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

/* ---- element conversions (exact: every value of these formats is representable in fp32) ---- */

static float bits_to_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

float moec_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13)); /* inf, NaN with its payload */
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in fp32 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13)); /* rebias 15 -> 127 */
}

float moec_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

float moec_f8e4m3_to_f32(uint8_t v) {
    /* E4M3 "fn" (PyTorch float8_e4m3fn): bias 7, no infinities, S.1111.111 is NaN. */
    int sign = v & 0x80, exp = (v >> 3) & 0xf, mant = v & 7;
    float r;
    if (exp == 0xf && mant == 7) r = NAN;
    else if (exp == 0) r = ldexpf((float)mant, -9);
    else r = ldexpf((float)(8 + mant), exp - 10);
    return sign ? -r : r;
}

float moec_f8e5m2_to_f32(uint8_t v) { return moec_f16_to_f32((uint16_t)(v << 8)); } /* top byte of an f16 */

moec_status moec_st_read_f32(const moec_st_tensor *t, float *out, int64_t n) {
    const size_t es = moec_st_dtype_size(t->dtype);
    if (n < 0 || n != moec_st_numel(t) || (uint64_t)n * es != t->nbytes)
        return MOEC_ERR(MOEC_ERR_ARG, "tensor '%s': asked for %lld floats but it holds %lld", t->name, (long long)n,
                        (long long)moec_st_numel(t));
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case MOEC_ST_F32: memcpy(out, p, (size_t)n * 4); break;
    case MOEC_ST_F64:
        for (int64_t i = 0; i < n; i++) { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; }
        break;
    case MOEC_ST_F16:
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = moec_f16_to_f32(h); }
        break;
    case MOEC_ST_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = moec_bf16_to_f32(h); }
        break;
    case MOEC_ST_F8_E4M3: for (int64_t i = 0; i < n; i++) out[i] = moec_f8e4m3_to_f32(p[i]); break;
    case MOEC_ST_F8_E5M2: for (int64_t i = 0; i < n; i++) out[i] = moec_f8e5m2_to_f32(p[i]); break;
    default:
        return MOEC_ERR(MOEC_ERR_FORMAT, "tensor '%s' has dtype %s, expected a floating-point dtype", t->name,
                        moec_st_dtype_name(t->dtype));
    }
    return MOEC_OK;
}

/* ---- writer ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; sb_put(b, esc, 2); }
        else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); sb_put(b, esc, 6); }
        else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

struct moec_st_writer {
    moec_atomic_file *f;
    uint64_t expected, written;
    char *path;
};

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Check a list of names for NULL/empty/duplicates; what names the kind ("tensor", "metadata key"). */
static moec_status check_unique(const char *path, const char **names, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (!names[i] || !names[i][0]) return MOEC_ERR(MOEC_ERR_ARG, "%s: %s %d has an empty name", path, what, i);
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i], names[i - 1]) == 0)
            return MOEC_ERR(MOEC_ERR_ARG, "%s: %s '%s' given twice", path, what, names[i]);
    return MOEC_OK;
}

/* Build the header (length prefix included, padded so the data starts 8-byte aligned). */
static moec_status build_header(sbuf *b, uint64_t *total, const char *path, int n, const moec_st_write_entry *e,
                                const char *const *meta_kv, int n_meta) {
    if (n < 0 || n_meta < 0 || (n > 0 && !e) || (n_meta > 0 && !meta_kv))
        return MOEC_ERR(MOEC_ERR_ARG, "%s: invalid tensor or metadata count", path);
    int nn = n > n_meta ? n : n_meta;
    const char **names = malloc(((size_t)nn + 1) * sizeof *names);
    if (!names) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = e[i].name;
    moec_status s = check_unique(path, names, n, "tensor");
    for (int i = 0; s == MOEC_OK && i < n_meta; i++) {
        names[i] = meta_kv[2 * i];
        if (!meta_kv[2 * i + 1]) s = MOEC_ERR(MOEC_ERR_ARG, "%s: metadata key '%s' has no value", path, names[i]);
    }
    if (s == MOEC_OK) s = check_unique(path, names, n_meta, "metadata key");
    free(names);
    MOEC_TRY(s);

    sb_put(b, "\0\0\0\0\0\0\0\0{", 9);
    if (n_meta > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(b, ",");
            sb_json_string(b, meta_kv[2 * i]);
            sb_str(b, ":");
            sb_json_string(b, meta_kv[2 * i + 1]);
        }
        sb_str(b, "}");
    }
    uint64_t off = 0;
    char num[64];
    for (int i = 0; i < n; i++) {
        const char *dn = moec_st_dtype_name(e[i].dtype);
        if (!dn) return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s' has an invalid dtype %d", path, e[i].name, (int)e[i].dtype);
        if (strcmp(e[i].name, "__metadata__") == 0)
            return MOEC_ERR(MOEC_ERR_ARG, "%s: \"__metadata__\" is reserved and cannot name a tensor", path);
        if (e[i].ndim < 0 || e[i].ndim > MOEC_ST_MAX_DIMS)
            return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s' has %d dimensions", path, e[i].name, e[i].ndim);
        if (n_meta > 0 || i > 0) sb_str(b, ",");
        sb_json_string(b, e[i].name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, dn);
        sb_str(b, "\",\"shape\":[");
        uint64_t bytes = moec_st_dtype_size(e[i].dtype);
        for (int d = 0; d < e[i].ndim; d++) {
            if (e[i].shape[d] < 0)
                return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s' has negative dimension %lld", path, e[i].name,
                                (long long)e[i].shape[d]);
            if (__builtin_mul_overflow(bytes, (uint64_t)e[i].shape[d], &bytes))
                return MOEC_ERR(MOEC_ERR_ARG, "%s: tensor '%s' byte size overflows", path, e[i].name);
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
            sb_str(b, num);
        }
        if (off + bytes < off || off + bytes > (uint64_t)ST_MAX_JSON_INT)
            return MOEC_ERR(MOEC_ERR_ARG, "%s: total data size overflows", path);
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + bytes);
        sb_str(b, num);
        off += bytes;
    }
    sb_str(b, "}");
    while (b->n % 8 != 0) sb_str(b, " ");
    if (b->oom) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building the header", path);
    uint64_t hlen = b->n - 8;
    memcpy(b->p, &hlen, 8);
    *total = off;
    return MOEC_OK;
}

moec_status moec_st_writer_begin(moec_st_writer **out, const char *path, int n, const moec_st_write_entry *entries,
                                 const char *const *meta_kv, int n_meta) {
    *out = NULL;
    sbuf b = {0};
    uint64_t total = 0;
    moec_status s = build_header(&b, &total, path, n, entries, meta_kv, n_meta);
    if (s != MOEC_OK) {
        free(b.p);
        return s;
    }
    moec_st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        free(b.p);
        return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
    }
    w->expected = total;
    s = moec_atomic_open(&w->f, path);
    if (s == MOEC_OK) s = moec_atomic_write(w->f, b.p, b.n);
    free(b.p);
    if (s != MOEC_OK) {
        moec_st_writer_abort(w);
        return s;
    }
    *out = w;
    return MOEC_OK;
}

moec_status moec_st_writer_put(moec_st_writer *w, const void *data, size_t nbytes) {
    if (nbytes > w->expected - w->written)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: %zu more data bytes than the header promised (%" PRIu64 ")", w->path,
                        nbytes - (size_t)(w->expected - w->written), w->expected);
    if (nbytes > 0 && !data) return MOEC_ERR(MOEC_ERR_ARG, "%s: NULL data for %zu bytes", w->path, nbytes);
    MOEC_TRY(moec_atomic_write(w->f, data, nbytes));
    w->written += nbytes;
    return MOEC_OK;
}

void moec_st_writer_abort(moec_st_writer *w) {
    if (!w) return;
    moec_atomic_abort(w->f);
    free(w->path);
    free(w);
}

moec_status moec_st_writer_finish(moec_st_writer *w) {
    if (w->written != w->expected) {
        moec_status s = MOEC_ERR(MOEC_ERR_ARG, "%s: only %" PRIu64 " of %" PRIu64 " data bytes were written", w->path,
                                 w->written, w->expected);
        moec_st_writer_abort(w);
        return s;
    }
    moec_status s = moec_atomic_commit(w->f);
    free(w->path);
    free(w);
    return s;
}

moec_status moec_st_write(const char *path, int n, const moec_st_write_entry *entries, const char *const *meta_kv,
                          int n_meta) {
    moec_st_writer *w;
    MOEC_TRY(moec_st_writer_begin(&w, path, n, entries, meta_kv, n_meta));
    for (int i = 0; i < n; i++) {
        size_t bytes = moec_st_dtype_size(entries[i].dtype);
        for (int d = 0; d < entries[i].ndim; d++) bytes *= (size_t)entries[i].shape[d]; /* checked in begin */
        moec_status s = moec_st_writer_put(w, entries[i].data, bytes);
        if (s != MOEC_OK) {
            moec_st_writer_abort(w);
            return s;
        }
    }
    return moec_st_writer_finish(w);
}
