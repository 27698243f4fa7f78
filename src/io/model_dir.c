/* model_dir.c — load/save a model directory (config.json + safetensors); layout and rules in model_dir.h. */
#include "io/model_dir.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"


static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *dims) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* Tensors a checkpoint may carry that the table does not describe, and that are safe to skip. */
static int harmless_extra(const char *name, int tied) {
    static const char suffix[] = ".rotary_emb.inv_freq"; /* recomputed from rope_theta; old exporters saved it */
    size_t n = strlen(name), k = sizeof suffix - 1;
    if (n >= k && strcmp(name + n - k, suffix) == 0) return 1;
    return tied && strcmp(name, "lm_head.weight") == 0;
}

/* An FP8 weight's fp32 values: e4m3 codes times the per-row scale of its "X.weight_scale" tensor. */
static moec_status read_fp8_dequantized(const moec_tensor_source *s, const char *origin, const moec_param_info *p,
                                        const moec_st_tensor *t, float *out) {
    const int64_t rows = p->shape[0], cols = p->ndim == 2 ? p->shape[1] : 1;
    const moec_st_tensor *sc;
    MOEC_TRY(moec_fp8_scale_find(s, origin, p->name, rows, &sc));
    float *scale = malloc((size_t)rows * sizeof *scale);
    if (!scale) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    moec_status st = moec_st_read_f32(sc, scale, rows);
    if (st == MOEC_OK) st = moec_fp8_scale_check(origin, sc, scale, rows);
    if (st == MOEC_OK) st = moec_st_read_f32(t, out, p->numel);
    for (int64_t r = 0; st == MOEC_OK && r < rows; r++)
        for (int64_t c = 0; c < cols; c++) out[r * cols + c] *= scale[r];
    free(scale);
    return st;
}

/* Is name the scale of an FP8 table tensor ("X.weight_scale" with "X.weight" F8_E4M3 in the table)? */
static int is_fp8_scale_of_table(const moec_tensor_source *s, const moec_param_table *table, const char *name) {
    static const char suffix[] = "_scale";
    size_t n = strlen(name), k = sizeof suffix - 1;
    if (n <= k || n - k >= MOEC_PARAM_NAME_MAX || strcmp(name + n - k, suffix) != 0) return 0;
    char base[MOEC_PARAM_NAME_MAX];
    memcpy(base, name, n - k);
    base[n - k] = 0;
    const moec_st_tensor *t = NULL;
    if (moec_param_table_find(table, base) < 0 || moec_tensor_source_find(s, "", base, &t, NULL) != MOEC_OK) return 0;
    return t && t->dtype == MOEC_ST_F8_E4M3;
}

/* Copy every table tensor from src into buf, converting to fp32 (F32, F16, BF16, F64, and F8_E4M3 with its
 * per-row scale tensor; any other dtype is an error naming the tensor). lenient: allow harmless_extra tensors.
 * Names are the table's (params.h). transformers 5 holds Mixtral's experts fused in memory
 * (mlp.experts.gate_up_proj / down_proj) but save_pretrained converts them back to the per-expert
 * block_sparse_moe.experts.E.w1/w3/w2 names (checked by tests/test_hf_models.sh), so no fused layout is read
 * here; a file carrying fused tensors is refused as "unexpected tensor". */
static moec_status source_fill(const moec_tensor_source *s, const char *origin, const moec_param_table *table,
                               float *buf, int lenient, int tied) {
    int64_t matched = 0;
    for (int i = 0; i < table->count; i++) {
        const moec_param_info *p = &table->items[i];
        const moec_st_tensor *t;
        const char *file = NULL;
        MOEC_TRY(moec_tensor_source_find(s, origin, p->name, &t, &file));
        char want[96], got[160];
        fmt_shape(want, sizeof want, p->ndim, p->shape);
        if (!t) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' (shape %s) is missing", origin, p->name, want);
        const int packed = p->ndim == 2 && moec_bf16p_tensor_is(t, p->shape[0], p->shape[1]);
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same && !packed) {
            fmt_shape(got, sizeof got, t->ndim, t->shape);
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config needs %s", origin, p->name, got,
                            want);
        }
        moec_status st = packed ? moec_bf16p_tensor_read_f32(origin, t, p->shape[0], p->shape[1], buf + p->offset)
                         : t->dtype == MOEC_ST_F8_E4M3 ? read_fp8_dequantized(s, origin, p, t, buf + p->offset)
                                                       : moec_st_read_f32(t, buf + p->offset, p->numel);
        if (st != MOEC_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", moec_error_message());
            return MOEC_ERR(st, "%s: %s", file, msg);
        }
        matched++;
    }
    int64_t total = 0;
    const int n_files = moec_tensor_source_file_count(s);
    for (int f = 0; f < n_files; f++) total += moec_st_count(moec_tensor_source_file(s, f));
    if (total == matched) return MOEC_OK;
    /* Some tensor in the files is not in the table: find it (only now, the search is quadratic). */
    for (int f = 0; f < n_files; f++) {
        const moec_st_file *file = moec_tensor_source_file(s, f);
        for (int i = 0; i < moec_st_count(file); i++) {
            const char *name = moec_st_get(file, i)->name;
            if (moec_param_table_find(table, name) >= 0) continue;
            if (lenient && harmless_extra(name, tied)) continue;
            if (is_fp8_scale_of_table(s, table, name)) continue;
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: unexpected tensor '%s' in %s: the config does not describe it",
                            origin, name, moec_st_path(file));
        }
    }
    return MOEC_OK;
}

moec_status moec_model_dir_load(const char *dir, moec_config *cfg, moec_param_table *table, float **params) {
    *params = NULL;
    memset(table, 0, sizeof *table);
    char *cfg_path = moec_path_join(dir, "config.json");
    if (!cfg_path) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    moec_status st = moec_config_load_json(cfg, cfg_path);
    free(cfg_path);
    MOEC_TRY(st);
    MOEC_TRY(moec_param_table_build(table, cfg));
    float *buf = moec_alloc_floats(table->total);
    if (!buf) {
        st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: cannot allocate %lld floats for the parameters", dir, (long long)table->total);
        moec_param_table_free(table);
        return st;
    }
    moec_tensor_source *src;
    st = moec_tensor_source_open_dir(&src, dir);
    if (st == MOEC_OK) {
        st = source_fill(src, dir, table, buf, 1, cfg->tie_embeddings);
        moec_tensor_source_close(src);
    }
    if (st != MOEC_OK) {
        moec_free(buf);
        moec_param_table_free(table);
        return st;
    }
    *params = buf;
    return MOEC_OK;
}

moec_status moec_model_dir_load_tensors(const char *path, const moec_param_table *table, float *buf) {
    moec_tensor_source *src;
    MOEC_TRY(moec_tensor_source_open_file(&src, path));
    moec_status st = source_fill(src, path, table, buf, 0, 0);
    moec_tensor_source_close(src);
    return st;
}

/* Save with the caller's metadata plus defaults (key, value) the caller did not set. */
static moec_status save_tensors_meta(const char *path, const moec_param_table *table, const float *buf,
                                     const char *const *meta_kv, int n_meta, const char *def_key, const char *def_val) {
    if (n_meta < 0 || (n_meta > 0 && !meta_kv)) return MOEC_ERR(MOEC_ERR_ARG, "%s: invalid metadata list", path);
    int add_default = def_key != NULL;
    for (int i = 0; i < n_meta && add_default; i++)
        if (meta_kv[2 * i] && strcmp(meta_kv[2 * i], def_key) == 0) add_default = 0;
    const char **kv = malloc(sizeof *kv * (size_t)(2 * n_meta + 2));
    moec_st_write_entry *e = calloc((size_t)table->count + 1, sizeof *e);
    if (!kv || !e) {
        free(kv);
        free(e);
        return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
    }
    int nkv = 0;
    if (add_default) {
        kv[0] = def_key;
        kv[1] = def_val;
        nkv = 1;
    }
    for (int i = 0; i < n_meta; i++, nkv++) {
        kv[2 * nkv] = meta_kv[2 * i];
        kv[2 * nkv + 1] = meta_kv[2 * i + 1];
    }
    for (int i = 0; i < table->count; i++) {
        const moec_param_info *p = &table->items[i];
        e[i].name = p->name;
        e[i].dtype = MOEC_ST_F32;
        e[i].ndim = p->ndim;
        e[i].shape[0] = p->shape[0];
        e[i].shape[1] = p->shape[1];
        e[i].data = buf + p->offset;
    }
    moec_status st = moec_st_write(path, table->count, e, kv, nkv);
    free(kv);
    free(e);
    return st;
}

moec_status moec_model_dir_save_tensors(const char *path, const moec_param_table *table, const float *buf,
                                        const char *const *meta_kv, int n_meta) {
    return save_tensors_meta(path, table, buf, meta_kv, n_meta, NULL, NULL);
}

/* The table must be exactly the one cfg builds: the buffer's layout is defined by it. */
static moec_status check_table(const moec_config *cfg, const moec_param_table *table) {
    moec_param_table want;
    MOEC_TRY(moec_param_table_build(&want, cfg));
    moec_status st = MOEC_OK;
    if (want.count != table->count || want.total != table->total)
        st = MOEC_ERR(MOEC_ERR_ARG, "parameter table has %d tensors / %lld floats, the config needs %d / %lld",
                      table->count, (long long)table->total, want.count, (long long)want.total);
    for (int i = 0; st == MOEC_OK && i < want.count; i++) {
        const moec_param_info *a = &want.items[i], *b = &table->items[i];
        if (strcmp(a->name, b->name) != 0 || a->ndim != b->ndim || a->shape[0] != b->shape[0] ||
            a->shape[1] != b->shape[1] || a->offset != b->offset || a->numel != b->numel)
            st = MOEC_ERR(MOEC_ERR_ARG, "parameter table entry %d ('%s') does not match the config's ('%s')", i,
                          b->name, a->name);
    }
    moec_param_table_free(&want);
    return st;
}

moec_status moec_model_dir_save(const char *dir, const moec_config *cfg, const moec_param_table *table,
                                const float *params, const char *const *meta_kv, int n_meta) {
    MOEC_TRY(moec_config_validate(cfg));
    MOEC_TRY(check_table(cfg, table));
    if (!params) return MOEC_ERR(MOEC_ERR_ARG, "%s: no parameter buffer to save", dir);
    MOEC_TRY(moec_mkdir_p(dir));
    char *model = moec_path_join(dir, "model.safetensors");
    char *config = moec_path_join(dir, "config.json");
    moec_status st = MOEC_OK;
    if (!model || !config) st = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    /* Weights first, config last: the large write is the one likely to fail (disk full, quota), and when it
     * does nothing in DIR has changed. A new directory only gets its config.json once its weights are complete. */
    if (st == MOEC_OK) st = save_tensors_meta(model, table, params, meta_kv, n_meta, "format", "pt");
    if (st == MOEC_OK) st = moec_config_save_json(cfg, config);
    free(model);
    free(config);
    return st;
}
