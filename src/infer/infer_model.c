/* infer_model.c — weights for inference, in place in the mapped safetensors files where possible
 * (see infer_model.h). */
#include "infer/infer_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"

moec_status moec_infer_model_keep(moec_infer_model *m, void *p) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(p);
            return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return MOEC_OK;
}

/* A converted fp32 copy of t (n elements), owned by m. */
static moec_status to_f32(moec_infer_model *m, const moec_st_tensor *t, int64_t n, const float **out) {
    float *buf = moec_alloc_floats(n);
    if (!buf) return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate %lld floats for '%s'", (long long)n, t->name);
    moec_status st = moec_st_read_f32(t, buf, n);
    if (st != MOEC_OK) {
        moec_free(buf);
        return st;
    }
    *out = buf;
    return moec_infer_model_keep(m, buf);
}

static int aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

/* The tensor for table entry p as a moec_qmat (matrices) or an fp32 vector (1-D: q->data, type F32). */
static moec_status load_one(moec_infer_model *m, const char *dir, const moec_param_info *p, moec_qmat *q) {
    const moec_st_tensor *t;
    const char *file = NULL;
    MOEC_TRY(moec_tensor_source_find(m->source, dir, p->name, &t, &file));
    if (!t) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' is missing", dir, p->name);
    const int packed = p->ndim == 2 && moec_bf16p_tensor_is(t, p->shape[0], p->shape[1]);
    int same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (!same && !packed)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' has %d dims / a shape other than the config's [%lld, %lld]",
                        dir, p->name, t->ndim, (long long)p->shape[0], (long long)(p->ndim == 2 ? p->shape[1] : 1));
    memset(q, 0, sizeof *q);
    q->rows = p->shape[0];
    q->cols = p->ndim == 2 ? p->shape[1] : 1;
    q->type = MOEC_QT_F32;
    const int64_t n = p->numel;
    if (packed) { /* bf16p: used in place once every row's header is checked */
        MOEC_TRY(moec_bf16p_tensor_check(dir, t, q->rows, q->cols));
        q->type = MOEC_QT_BF16P;
        q->data = t->data;
        m->mapped_bytes += (int64_t)t->nbytes;
        m->weight_bytes += (int64_t)t->nbytes;
        return moec_qmat_check(q);
    } else if (t->dtype == MOEC_ST_F32 && aligned(t->data, 4)) {
        q->data = t->data;
        m->mapped_bytes += n * 4;
    } else if (p->ndim == 2 && (t->dtype == MOEC_ST_BF16 || t->dtype == MOEC_ST_F16) && aligned(t->data, 2)) {
        q->type = t->dtype == MOEC_ST_BF16 ? MOEC_QT_BF16 : MOEC_QT_F16;
        q->data = t->data;
        m->mapped_bytes += n * 2;
    } else if (p->ndim == 2 && t->dtype == MOEC_ST_F8_E4M3) {
        const moec_st_tensor *sc;
        MOEC_TRY(moec_fp8_scale_find(m->source, dir, p->name, q->rows, &sc));
        const float *scale;
        if (sc->dtype == MOEC_ST_F32 && aligned(sc->data, 4)) scale = sc->data;
        else MOEC_TRY(to_f32(m, sc, q->rows, &scale));
        MOEC_TRY(moec_fp8_scale_check(dir, sc, scale, q->rows));
        q->type = MOEC_QT_F8E4M3;
        q->data = t->data;
        q->scale = scale;
        m->mapped_bytes += n;
    } else {
        /* F64, E5M2, misaligned data, or a 1-D tensor in a 16-bit type: one fp32 copy */
        const float *f;
        moec_status st = to_f32(m, t, n, &f);
        if (st != MOEC_OK) return MOEC_ERR(st, "%s: %s", file, moec_error_message());
        q->data = f;
    }
    m->weight_bytes += n * (int64_t)moec_qtype_size(q->type);
    return moec_qmat_check(q);
}

static void set_streamed(moec_qmat *q, int n, int on) {
    for (int i = 0; i < n; i++) q[i].streamed = on;
}

void moec_infer_model_set_streamed(moec_infer_model *m, int on) {
    const moec_config *c = &m->cfg;
    on = on != 0;
    for (int l = 0; l < c->n_layers; l++) {
        moec_infer_layer *L = &m->layers[l];
        moec_qmat *one[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2, &L->router};
        for (size_t k = 0; k < sizeof one / sizeof *one; k++) one[k]->streamed = on;
        if (c->is_moe_layer[l] && L->experts) set_streamed(L->experts, 3 * c->moe.n_experts, on);
    }
    m->lm_head.streamed = m->tok_emb.streamed = on;
}

/* A decode step reads every active weight once; when they are several times the last-level cache, nothing of them
 * is still cached at the next step, and the kernels read them as streams from memory (moec_qmat.streamed). */
static void mark_streamed(moec_infer_model *m) {
    const long long llc = moec_cpu_llc_bytes(32ll << 20); /* unknown: a desktop CPU's L3 */
    moec_infer_model_set_streamed(m, moec_infer_active_weight_bytes(m) >= 4 * llc);
}

/* Assign the per-tensor matrices to the model's named slots, walking the table in the order params.c builds it. */
moec_status moec_infer_model_bind(moec_infer_model *m, const moec_param_table *table, const moec_qmat *all) {
    for (int k = 0; k < table->count; k++) {
        const moec_param_info *p = &table->items[k];
        if (all[k].rows != p->shape[0] || all[k].cols != (p->ndim == 2 ? p->shape[1] : 1))
            return MOEC_ERR(MOEC_ERR_ARG, "internal: %s bound as [%lld, %lld]", p->name, (long long)all[k].rows,
                            (long long)all[k].cols);
    }
    const moec_config *c = &m->cfg;
    const int E = c->moe.n_experts;
    if (E > 0) {
        m->expert_mats = calloc((size_t)moec_config_n_moe_layers(c) * 3 * E, sizeof *m->expert_mats);
        if (!m->expert_mats) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    }
    int i = 0, moe_i = 0;
#define NEXT() (all[i++])
#define NEXT_VEC() ((const float *)all[i++].data)
    m->tok_emb = NEXT();
    for (int l = 0; l < c->n_layers; l++) {
        moec_infer_layer *L = &m->layers[l];
        L->attn_norm = NEXT_VEC();
        L->wq = NEXT();
        if (c->qkv_bias) L->bq = NEXT_VEC();
        L->wk = NEXT();
        if (c->qkv_bias) L->bk = NEXT_VEC();
        L->wv = NEXT();
        if (c->qkv_bias) L->bv = NEXT_VEC();
        L->wo = NEXT();
        L->ffn_norm = NEXT_VEC();
        if (c->is_moe_layer[l]) {
            L->router = NEXT();
            L->experts = m->expert_mats + (int64_t)moe_i++ * 3 * E;
            for (int e = 0; e < 3 * E; e++) L->experts[e] = NEXT();
        } else {
            L->w1 = NEXT();
            L->w3 = NEXT();
            L->w2 = NEXT();
        }
    }
    m->final_norm = NEXT_VEC();
    m->lm_head = c->tie_embeddings ? m->tok_emb : NEXT();
#undef NEXT
#undef NEXT_VEC
    if (i != table->count) return MOEC_ERR(MOEC_ERR_ARG, "internal: bound %d of %d tensors", i, table->count);
    mark_streamed(m);
    return MOEC_OK;
}

moec_status moec_infer_model_load(moec_infer_model *m, const char *dir) {
    memset(m, 0, sizeof *m);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    MOEC_TRY(moec_config_load_json(&m->cfg, path));
    moec_param_table table;
    MOEC_TRY(moec_param_table_build(&table, &m->cfg));
    moec_qmat *all = calloc((size_t)table.count, sizeof *all);
    moec_status st = all ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    if (st == MOEC_OK) st = moec_tensor_source_open_dir(&m->source, dir);
    for (int i = 0; st == MOEC_OK && i < table.count; i++) st = load_one(m, dir, &table.items[i], &all[i]);
    if (st == MOEC_OK) st = moec_infer_model_bind(m, &table, all);
    free(all);
    moec_param_table_free(&table);
    if (st != MOEC_OK) moec_infer_model_free(m);
    return st;
}

moec_status moec_infer_model_from_params(moec_infer_model *m, const moec_config *c, const moec_param_table *table,
                                         const float *params) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    moec_qmat *all = calloc((size_t)table->count, sizeof *all);
    if (!all) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < table->count; i++) {
        const moec_param_info *p = &table->items[i];
        all[i] = (moec_qmat){.type = MOEC_QT_F32, .rows = p->shape[0], .cols = p->ndim == 2 ? p->shape[1] : 1,
                             .data = params + p->offset};
        m->weight_bytes += p->numel * 4;
    }
    moec_status st = moec_infer_model_bind(m, table, all);
    free(all);
    if (st != MOEC_OK) moec_infer_model_free(m);
    return st;
}

void moec_infer_model_free(moec_infer_model *m) {
    for (int i = 0; i < m->n_owned; i++) moec_free(m->owned[i]);
    free(m->owned);
    free(m->expert_mats);
    moec_tensor_source_close(m->source);
    moec_gguf_close(m->gguf);
    memset(m, 0, sizeof *m);
}

static int64_t qbytes(const moec_qmat *q) { return q->rows * moec_qtype_row_bytes(q->type, q->cols); }

int64_t moec_infer_active_weight_bytes(const moec_infer_model *m) {
    const moec_config *c = &m->cfg;
    int64_t b = qbytes(&m->lm_head) + moec_qtype_row_bytes(m->tok_emb.type, m->tok_emb.cols);
    for (int l = 0; l < c->n_layers; l++) {
        const moec_infer_layer *L = &m->layers[l];
        b += qbytes(&L->wq) + qbytes(&L->wk) + qbytes(&L->wv) + qbytes(&L->wo);
        if (c->is_moe_layer[l])
            b += qbytes(&L->router) + (int64_t)c->moe.top_k * (qbytes(&L->experts[0]) + qbytes(&L->experts[1]) +
                                                                 qbytes(&L->experts[2]));
        else
            b += qbytes(&L->w1) + qbytes(&L->w3) + qbytes(&L->w2);
    }
    return b;
}
