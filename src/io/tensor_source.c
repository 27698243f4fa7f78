/* tensor_source.c — locate a model directory's tensors across its safetensors files (see tensor_source.h). */
#include "io/tensor_source.h"

#include "core/bf16p.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"

#define INDEX_MAX_BYTES ((size_t)64 << 20)

/* The safetensors files a model's tensors come from: one file, or the shards of an index. */
struct moec_tensor_source {
    int n;
    moec_st_file **files;
    char **shard_names;   /* as written in the index (NULL entries for a single file) */
    cJSON *index;         /* parsed index JSON, or NULL */
    const cJSON *weight_map;
};
typedef struct moec_tensor_source tensor_source;

static void source_close(tensor_source *s) {
    for (int i = 0; i < s->n; i++) {
        moec_st_close(s->files[i]);
        free(s->shard_names[i]);
    }
    free(s->files);
    free(s->shard_names);
    cJSON_Delete(s->index);
    memset(s, 0, sizeof *s);
}

static moec_status source_reserve(tensor_source *s, int n) {
    s->files = calloc((size_t)n + 1, sizeof *s->files);
    s->shard_names = calloc((size_t)n + 1, sizeof *s->shard_names);
    if (!s->files || !s->shard_names) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory opening %d weight files", n);
    return MOEC_OK;
}

static moec_status source_open_single(tensor_source *s, const char *path) {
    memset(s, 0, sizeof *s);
    moec_status st = source_reserve(s, 1);
    if (st == MOEC_OK) st = moec_st_open(&s->files[0], path);
    if (st != MOEC_OK) {
        source_close(s);
        return st;
    }
    s->n = 1;
    return MOEC_OK;
}

/* A shard name from an index must be a plain file in DIR: refusing '/' keeps a hostile index from making us
 * read files elsewhere. */
static int shard_name_ok(const char *name) {
    return name[0] && strchr(name, '/') == NULL && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static moec_status source_open_index(tensor_source *s, const char *dir, const char *index_path) {
    memset(s, 0, sizeof *s);
    char *text;
    size_t len;
    MOEC_TRY(moec_read_file(index_path, &text, &len, INDEX_MAX_BYTES));
    s->index = cJSON_Parse(text);
    free(text);
    moec_status st = MOEC_OK;
    if (!s->index) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: not valid JSON", index_path);
    s->weight_map = cJSON_GetObjectItemCaseSensitive(s->index, "weight_map");
    if (!cJSON_IsObject(s->weight_map)) {
        st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: missing \"weight_map\" object", index_path);
        goto fail;
    }
    int n_entries = cJSON_GetArraySize(s->weight_map);
    if ((st = source_reserve(s, n_entries)) != MOEC_OK) goto fail;
    const cJSON *e;
    cJSON_ArrayForEach(e, s->weight_map) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: weight_map entry for '%s' is not a plain file name", index_path,
                          e->string);
            goto fail;
        }
        int known = 0;
        for (int i = 0; i < s->n && !known; i++) known = strcmp(s->shard_names[i], e->valuestring) == 0;
        if (known) continue;
        char *path = moec_path_join(dir, e->valuestring);
        if (!path || !(s->shard_names[s->n] = strdup(e->valuestring))) {
            free(path);
            st = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory opening shards of %s", index_path);
            goto fail;
        }
        if (!moec_path_exists(path)) {
            st = MOEC_ERR(MOEC_ERR_IO, "%s: shard %s listed in %s does not exist", dir, e->valuestring, index_path);
            free(s->shard_names[s->n]);
            s->shard_names[s->n] = NULL;
            free(path);
            goto fail;
        }
        st = moec_st_open(&s->files[s->n], path);
        free(path);
        if (st != MOEC_OK) {
            free(s->shard_names[s->n]);
            s->shard_names[s->n] = NULL;
            goto fail;
        }
        s->n++;
    }
    return MOEC_OK;
fail:
    source_close(s);
    return st;
}

/* DIR/model.safetensors if present, else DIR/model.safetensors.index.json. */
static moec_status source_open_dir(tensor_source *s, const char *dir) {
    char *single = moec_path_join(dir, "model.safetensors");
    char *index = moec_path_join(dir, "model.safetensors.index.json");
    moec_status st;
    if (!single || !index) st = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    else if (moec_path_exists(single) || !moec_path_exists(index)) st = source_open_single(s, single);
    else st = source_open_index(s, dir, index);
    free(single);
    free(index);
    return st;
}


static moec_status open_with(moec_tensor_source **out, moec_status (*fn)(tensor_source *, const char *), const char *arg) {
    *out = NULL;
    tensor_source *s = calloc(1, sizeof *s);
    if (!s) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    moec_status st = fn(s, arg);
    if (st != MOEC_OK) {
        free(s);
        return st;
    }
    *out = s;
    return MOEC_OK;
}

moec_status moec_tensor_source_open_dir(moec_tensor_source **s, const char *dir) { return open_with(s, source_open_dir, dir); }
moec_status moec_tensor_source_open_file(moec_tensor_source **s, const char *path) {
    return open_with(s, source_open_single, path);
}

void moec_tensor_source_close(moec_tensor_source *s) {
    if (!s) return;
    source_close(s);
    free(s);
}

int moec_tensor_source_file_count(const moec_tensor_source *s) { return s->n; }
const moec_st_file *moec_tensor_source_file(const moec_tensor_source *s, int i) { return s->files[i]; }

moec_status moec_tensor_source_find(const moec_tensor_source *s, const char *origin, const char *name,
                                    const moec_st_tensor **t, const char **file) {
    *t = NULL;
    int shard = -1;
    for (int f = 0; f < s->n; f++) {
        const moec_st_tensor *x = moec_st_find(s->files[f], name);
        if (!x) continue;
        if (*t)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' appears in both %s and %s", origin, name,
                            moec_st_path(s->files[shard]), moec_st_path(s->files[f]));
        *t = x;
        shard = f;
    }
    if (!*t) return MOEC_OK;
    if (file) *file = moec_st_path(s->files[shard]);
    if (s->weight_map) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(s->weight_map, name);
        if (!cJSON_IsString(w) || strcmp(w->valuestring, s->shard_names[shard]) != 0)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' is in %s but the index says otherwise", origin, name,
                            s->shard_names[shard]);
    }
    return MOEC_OK;
}

void moec_fp8_scale_name(char *buf, size_t cap, const char *weight_name) { snprintf(buf, cap, "%s_scale", weight_name); }

moec_status moec_fp8_scale_find(const moec_tensor_source *s, const char *origin, const char *weight_name, int64_t rows,
                                const moec_st_tensor **scale) {
    char sname[1024];
    moec_fp8_scale_name(sname, sizeof sname, weight_name);
    MOEC_TRY(moec_tensor_source_find(s, origin, sname, scale, NULL));
    const moec_st_tensor *sc = *scale;
    if (!sc) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: FP8 tensor '%s' has no scale tensor '%s'", origin, weight_name, sname);
    if (moec_st_numel(sc) != rows || !(sc->ndim == 1 || (sc->ndim == 2 && sc->shape[1] == 1)))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: scale '%s' must have shape [%lld, 1] (one per output row)", origin, sname,
                        (long long)rows);
    return MOEC_OK;
}

moec_status moec_fp8_scale_check(const char *origin, const moec_st_tensor *scale_tensor, const float *scale,
                                 int64_t rows) {
    for (int64_t r = 0; r < rows; r++)
        if (!isfinite(scale[r]) || scale[r] < 0)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: scale '%s' row %lld is %g", origin, scale_tensor->name, (long long)r,
                            scale[r]);
    return MOEC_OK;
}

int moec_bf16p_tensor_is(const moec_st_tensor *t, int64_t rows, int64_t cols) {
    return t->dtype == MOEC_ST_U8 && t->ndim == 2 && moec_bf16p_cols_ok(cols) && t->shape[0] == rows &&
           t->shape[1] == moec_bf16p_row_bytes(cols);
}

moec_status moec_bf16p_tensor_check(const char *origin, const moec_st_tensor *t, int64_t rows, int64_t cols) {
    const size_t row_bytes = (size_t)moec_bf16p_row_bytes(cols);
    for (int64_t r = 0; r < rows; r++)
        if (moec_bf16p_check_row((const uint8_t *)t->data + (size_t)r * row_bytes, cols) != 0)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: bf16p tensor '%s' row %lld has an unsound header (escape count, "
                            "column or value, or code table)", origin, t->name, (long long)r);
    return MOEC_OK;
}

moec_status moec_bf16p_tensor_read_f32(const char *origin, const moec_st_tensor *t, int64_t rows, int64_t cols,
                                       float *out) {
    MOEC_TRY(moec_bf16p_tensor_check(origin, t, rows, cols));
    uint16_t *h = malloc(sizeof *h * (size_t)cols);
    if (!h) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    const size_t row_bytes = (size_t)moec_bf16p_row_bytes(cols);
    for (int64_t r = 0; r < rows; r++) {
        moec_bf16p_unpack_row((const uint8_t *)t->data + (size_t)r * row_bytes, cols, h);
        for (int64_t c = 0; c < cols; c++) out[r * cols + c] = moec_bf16_to_f32(h[c]);
    }
    free(h);
    return MOEC_OK;
}
