/* quantize.c — `moec quantize` (see quantize.h). */
#include "infer/quantize.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bf16p.h"
#include "core/dtype.h"
#include "io/fsutil.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"
#include "model/params.h"

#define TOKENIZER_MAX_BYTES ((size_t)256 << 20)

static int is_router(const char *name) { return strstr(name, "block_sparse_moe.gate.weight") != NULL; }
static int narrowed(const moec_param_info *p) { return p->ndim == 2 && !is_router(p->name); }

/* bf16p: whether every row of tensor p packs (cols a multiple of 128, escapes within each row's header); pack,
 * when not NULL, receives the packed rows. A weight that does not pack stays BF16 (exactly the same values). */
static int bf16p_pack(const moec_param_info *p, const float *x, uint16_t *h, uint8_t *pack) {
    const int64_t rows = p->shape[0], cols = p->shape[1];
    if (!moec_bf16p_cols_ok(cols)) return 0;
    uint8_t *one = pack ? NULL : malloc((size_t)moec_bf16p_row_bytes(cols));
    if (!pack && !one) return 0;
    int ok = 1;
    for (int64_t r = 0; r < rows && ok; r++) {
        for (int64_t c = 0; c < cols; c++) h[c] = moec_f32_to_bf16(x[r * cols + c]);
        ok = moec_bf16p_pack_row(h, cols, pack ? pack + r * moec_bf16p_row_bytes(cols) : one) >= 0;
    }
    free(one);
    return ok;
}

/* The entries of the output file: the table's tensors in order, each fp8 weight followed by its scale; bf16p
 * weights as U8 [rows, row bytes] (those that do not pack: BF16). */
static moec_status build_entries(const moec_param_table *t, const float *params, moec_qtype to,
                                 moec_st_write_entry **out, int *n_out,
                                 char (**scale_names)[MOEC_PARAM_NAME_MAX + 16]) {
    moec_st_write_entry *e = calloc((size_t)(2 * t->count), sizeof *e);
    char(*names)[MOEC_PARAM_NAME_MAX + 16] = calloc((size_t)t->count, sizeof *names);
    if (!e || !names) {
        free(e);
        free(names);
        return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    }
    int n = 0;
    for (int i = 0; i < t->count; i++) {
        const moec_param_info *p = &t->items[i];
        moec_st_write_entry *w = &e[n++];
        w->name = p->name;
        w->ndim = p->ndim;
        w->shape[0] = p->shape[0];
        w->shape[1] = p->shape[1];
        w->dtype = !narrowed(p)                                  ? MOEC_ST_F32
                   : to == MOEC_QT_BF16 || to == MOEC_QT_BF16P ? MOEC_ST_BF16
                   : to == MOEC_QT_F16                         ? MOEC_ST_F16
                                                               : MOEC_ST_F8_E4M3;
        if (narrowed(p) && to == MOEC_QT_BF16P) { /* packed once here to learn whether it packs, again to write
                                                  * it (holding every packed tensor would double peak memory) */
            uint16_t *h = malloc(sizeof *h * (size_t)p->shape[1]);
            if (h && bf16p_pack(p, params + p->offset, h, NULL)) {
                w->dtype = MOEC_ST_U8;
                w->shape[1] = moec_bf16p_row_bytes(p->shape[1]);
            }
            free(h);
        }
        if (w->dtype == MOEC_ST_F8_E4M3) {
            moec_fp8_scale_name(names[i], sizeof names[i], p->name);
            moec_st_write_entry *s = &e[n++];
            s->name = names[i];
            s->dtype = MOEC_ST_F32;
            s->ndim = 2;
            s->shape[0] = p->shape[0];
            s->shape[1] = 1;
        }
    }
    *out = e;
    *n_out = n;
    *scale_names = names;
    return MOEC_OK;
}

static moec_status write_weights(const char *path, const moec_param_table *t, const float *params, moec_qtype to) {
    moec_st_write_entry *e = NULL;
    int n = 0;
    char(*names)[MOEC_PARAM_NAME_MAX + 16] = NULL;
    MOEC_TRY(build_entries(t, params, to, &e, &n, &names));
    int64_t max_numel = 0, max_rows = 0;
    for (int i = 0; i < t->count; i++) {
        if (t->items[i].numel > max_numel) max_numel = t->items[i].numel;
        if (t->items[i].shape[0] > max_rows) max_rows = t->items[i].shape[0];
    }
    const char *meta[] = {"format", "pt", "quantized_by", "moec"};
    uint8_t *buf = malloc((size_t)max_numel * 2); /* >= a bf16p tensor: 1.5 bytes per weight + 64 per 4096 */
    float *scale = malloc((size_t)max_rows * sizeof *scale);
    moec_st_writer *w = NULL;
    moec_status st = buf && scale ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    if (st == MOEC_OK) st = moec_st_writer_begin(&w, path, n, e, meta, 2);
    int at = 0; /* the entry of table tensor i */
    for (int i = 0; st == MOEC_OK && i < t->count; i++) {
        const moec_param_info *p = &t->items[i];
        const float *x = params + p->offset;
        for (int64_t j = 0; j < p->numel; j++)
            if (!isfinite(x[j])) {
                st = MOEC_ERR(MOEC_ERR_NUMERIC, "tensor '%s' element %lld is %g; refusing to quantise it", p->name,
                              (long long)j, x[j]);
                break;
            }
        if (st != MOEC_OK) break;
        const moec_st_write_entry *entry = &e[at];
        at += entry->dtype == MOEC_ST_F8_E4M3 ? 2 : 1; /* (an fp8 weight's scale is the entry after it) */
        if (!narrowed(p)) {
            st = moec_st_writer_put(w, x, (size_t)p->numel * 4);
        } else if (entry->dtype == MOEC_ST_U8) { /* bf16p */
            uint16_t *h = malloc(sizeof *h * (size_t)p->shape[1]);
            if (!h || !bf16p_pack(p, x, h, buf)) st = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
            else st = moec_st_writer_put(w, buf, (size_t)(p->shape[0] * moec_bf16p_row_bytes(p->shape[1])));
            free(h);
        } else if (entry->dtype == MOEC_ST_BF16) {
            uint16_t *b = (uint16_t *)buf;
            for (int64_t j = 0; j < p->numel; j++) b[j] = moec_f32_to_bf16(x[j]);
            st = moec_st_writer_put(w, b, (size_t)p->numel * 2);
        } else if (to == MOEC_QT_F16) {
            uint16_t *h = (uint16_t *)buf;
            for (int64_t j = 0; j < p->numel && st == MOEC_OK; j++) {
                h[j] = moec_f32_to_f16(x[j]);
                if ((h[j] & 0x7c00) == 0x7c00)
                    st = MOEC_ERR(MOEC_ERR_NUMERIC, "tensor '%s' element %lld is %g, beyond f16's largest value "
                                  "(65504); use bf16 or fp8", p->name, (long long)j, x[j]);
            }
            if (st == MOEC_OK) st = moec_st_writer_put(w, h, (size_t)p->numel * 2);
        } else {
            const int64_t rows = p->shape[0], cols = p->shape[1];
            for (int64_t r = 0; r < rows; r++) moec_quantize_row_e4m3(x + r * cols, cols, buf + r * cols, &scale[r]);
            st = moec_st_writer_put(w, buf, (size_t)p->numel);
            if (st == MOEC_OK) st = moec_st_writer_put(w, scale, (size_t)rows * 4);
        }
    }
    if (w) {
        if (st == MOEC_OK) st = moec_st_writer_finish(w);
        else moec_st_writer_abort(w);
    }
    free(buf);
    free(scale);
    free(e);
    free(names);
    return st;
}

/* config.json as moec writes it, plus the quantization_config of a channel-wise FP8 checkpoint. */
static moec_status write_config(const char *path, const moec_config *c, moec_qtype to) {
    static const char fp8_config[] =
        "{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\","
        " \"quantization_status\": \"compressed\","
        " \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"input_activations\": null,"
        " \"weights\": {\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"channel\","
        " \"symmetric\": true, \"dynamic\": false}}},"
        " \"ignore\": [\"re:.*block_sparse_moe.gate$\"],"
        " \"moec_scale_tensor\": \"<weight name>_scale, F32 [rows, 1]\"}";
    const char *dtype = to == MOEC_QT_BF16 || to == MOEC_QT_BF16P ? "\"bfloat16\""
                        : to == MOEC_QT_F16                        ? "\"float16\""
                                                                   : "\"float32\"";
    const char *extra[] = {"torch_dtype", dtype, to == MOEC_QT_BF16P ? "moec_weight_format" : "quantization_config",
                           to == MOEC_QT_BF16P ? "\"bf16p\"" : fp8_config};
    return moec_config_save_json_with(c, path, extra, to == MOEC_QT_F8E4M3 || to == MOEC_QT_BF16P ? 2 : 1);
}

moec_status moec_quantize_model(const char *in_dir, const char *out_dir, moec_qtype to) {
    if (to != MOEC_QT_F8E4M3 && to != MOEC_QT_BF16 && to != MOEC_QT_F16 && to != MOEC_QT_BF16P)
        return MOEC_ERR(MOEC_ERR_ARG, "quantize supports fp8, bf16, bf16p and f16, not %s", moec_qtype_name(to));
    if (moec_path_exists(out_dir)) return MOEC_ERR(MOEC_ERR_IO, "%s already exists; not overwriting it", out_dir);
    moec_config cfg;
    moec_param_table table;
    float *params;
    MOEC_TRY(moec_model_dir_load(in_dir, &cfg, &table, &params));
    char tmp[4096], weights[4200], config[4200], tok_in[4200], tok_out[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out_dir, (long)getpid());
    snprintf(weights, sizeof weights, "%s/model.safetensors", tmp);
    snprintf(config, sizeof config, "%s/config.json", tmp);
    snprintf(tok_in, sizeof tok_in, "%s/tokenizer.json", in_dir);
    snprintf(tok_out, sizeof tok_out, "%s/tokenizer.json", tmp);
    moec_status st = MOEC_OK;
    if (mkdir(tmp, 0777) != 0) st = MOEC_ERR(MOEC_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    const int made = st == MOEC_OK;
    if (st == MOEC_OK) st = write_weights(weights, &table, params, to);
    if (st == MOEC_OK) st = write_config(config, &cfg, to);
    if (st == MOEC_OK && moec_path_exists(tok_in)) st = moec_copy_file(tok_in, tok_out, TOKENIZER_MAX_BYTES);
    if (st == MOEC_OK && moec_path_exists(out_dir))
        st = MOEC_ERR(MOEC_ERR_IO, "%s appeared while quantising; not overwriting it", out_dir);
    if (st == MOEC_OK && rename(tmp, out_dir) != 0)
        st = MOEC_ERR(MOEC_ERR_IO, "cannot rename %s to %s: %s", tmp, out_dir, strerror(errno));
    if (st == MOEC_OK) moec_sync_parent_dir(out_dir);
    else if (made) moec_remove_staging_dir(tmp);
    moec_free(params);
    moec_param_table_free(&table);
    return st;
}
