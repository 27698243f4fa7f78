/* params.c — builds the tensor table described in params.h. */
#include "model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes: every tensor starts on a cache line / AVX-512 vector boundary */

static int add(moec_param_table *t, int cap, int64_t *cursor, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#include <stdarg.h>
static int add(moec_param_table *t, int cap, int64_t *cursor, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) {
    if (t->count >= cap) return -1;
    moec_param_info *p = &t->items[t->count++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim == 2 ? d1 : 1;
    p->numel = d0 * (ndim == 2 ? d1 : 1);
    p->offset = *cursor;
    *cursor += (p->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    return 0;
}

moec_status moec_param_table_build(moec_param_table *t, const moec_config *c) {
    memset(t, 0, sizeof *t);
    MOEC_TRY(moec_config_validate(c));
    int per_layer_max = 6 + 3 + 3 + 1 + 3 * (c->moe.n_experts > 0 ? c->moe.n_experts : 0);
    int cap = 3 + c->n_layers * per_layer_max;
    t->items = calloc((size_t)cap, sizeof *t->items);
    if (!t->items) return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate parameter table (%d entries)", cap);
    const int64_t D = c->hidden, V = c->vocab_size, Dh = c->head_dim;
    const int64_t HD = (int64_t)c->n_heads * Dh, GD = (int64_t)c->n_kv_heads * Dh;
    int64_t cur = 0;
    add(t, cap, &cur, 2, V, D, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        add(t, cap, &cur, 1, D, 0, "model.layers.%d.input_layernorm.weight", l);
        add(t, cap, &cur, 2, HD, D, "model.layers.%d.self_attn.q_proj.weight", l);
        if (c->qkv_bias) add(t, cap, &cur, 1, HD, 0, "model.layers.%d.self_attn.q_proj.bias", l);
        add(t, cap, &cur, 2, GD, D, "model.layers.%d.self_attn.k_proj.weight", l);
        if (c->qkv_bias) add(t, cap, &cur, 1, GD, 0, "model.layers.%d.self_attn.k_proj.bias", l);
        add(t, cap, &cur, 2, GD, D, "model.layers.%d.self_attn.v_proj.weight", l);
        if (c->qkv_bias) add(t, cap, &cur, 1, GD, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        add(t, cap, &cur, 2, D, HD, "model.layers.%d.self_attn.o_proj.weight", l);
        add(t, cap, &cur, 1, D, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        if (c->is_moe_layer[l]) {
            const int64_t F = c->moe.ffn_dim;
            add(t, cap, &cur, 2, c->moe.n_experts, D, "model.layers.%d.block_sparse_moe.gate.weight", l);
            for (int e = 0; e < c->moe.n_experts; e++) {
                add(t, cap, &cur, 2, F, D, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", l, e);
                add(t, cap, &cur, 2, F, D, "model.layers.%d.block_sparse_moe.experts.%d.w3.weight", l, e);
                add(t, cap, &cur, 2, D, F, "model.layers.%d.block_sparse_moe.experts.%d.w2.weight", l, e);
            }
        } else {
            const int64_t F = c->ffn_dim;
            add(t, cap, &cur, 2, F, D, "model.layers.%d.mlp.gate_proj.weight", l);
            add(t, cap, &cur, 2, F, D, "model.layers.%d.mlp.up_proj.weight", l);
            add(t, cap, &cur, 2, D, F, "model.layers.%d.mlp.down_proj.weight", l);
        }
    }
    add(t, cap, &cur, 1, D, 0, "model.norm.weight");
    if (!c->tie_embeddings) add(t, cap, &cur, 2, V, D, "lm_head.weight");
    t->total = cur;
    return MOEC_OK;
}

void moec_param_table_free(moec_param_table *t) {
    free(t->items);
    memset(t, 0, sizeof *t);
}

int moec_param_table_find(const moec_param_table *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->items[i].name, name) == 0) return i;
    return -1;
}

static int64_t padded(int64_t n);

/* The table's order is fixed by moec_param_table_build, so binding walks it in the same order. */
void moec_weights_bind(moec_weights *w, const moec_param_table *t, const moec_config *c, float *base) {
    memset(w, 0, sizeof *w);
    int i = 0;
#define NEXT() (base + t->items[i++].offset)
    w->tok_emb = NEXT();
    for (int l = 0; l < c->n_layers; l++) {
        moec_layer_view *L = &w->layers[l];
        L->attn_norm = NEXT();
        L->wq = NEXT();
        if (c->qkv_bias) L->bq = NEXT();
        L->wk = NEXT();
        if (c->qkv_bias) L->bk = NEXT();
        L->wv = NEXT();
        if (c->qkv_bias) L->bv = NEXT();
        L->wo = NEXT();
        L->ffn_norm = NEXT();
        if (c->is_moe_layer[l]) {
            L->router = NEXT();
            L->experts = NEXT();
            L->expert_stride = 3 * padded((int64_t)c->moe.ffn_dim * c->hidden);
            i += 3 * c->moe.n_experts - 1;
        } else {
            L->w1 = NEXT();
            L->w3 = NEXT();
            L->w2 = NEXT();
        }
    }
    w->final_norm = NEXT();
    w->lm_head = c->tie_embeddings ? w->tok_emb : NEXT();
#undef NEXT
}

static int64_t padded(int64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

float *moec_expert_w3(const moec_layer_view *l, const moec_config *c, int e) {
    return moec_expert_w1(l, e) + padded((int64_t)c->moe.ffn_dim * c->hidden);
}
float *moec_expert_w2(const moec_layer_view *l, const moec_config *c, int e) {
    return moec_expert_w1(l, e) + 2 * padded((int64_t)c->moe.ffn_dim * c->hidden);
}

float *moec_alloc_floats(int64_t n) {
    if (n < 0) return NULL;
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}
void moec_free(void *p) { free(p); }
