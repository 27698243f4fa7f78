/* model.c — decoder forward and backward (see model.h). Each step of forward() is mirrored, in reverse, by
 * backward(); comments in backward quote the forward line being differentiated. */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"
#include "model/ffn.h"

static void activations_free(moec_activations *a, const moec_config *c) {
    float **bufs[] = {&a->x, &a->xn1, &a->xn2, &a->rstd1, &a->rstd2, &a->q, &a->k, &a->v, &a->probs, &a->att,
                      &a->xmid, &a->h1, &a->h3, &a->act, &a->xf, &a->rstdf, &a->logits, &a->losses, &a->dx,
                      &a->dxn, &a->dmid, &a->datt, &a->dq, &a->dk, &a->dv, &a->ffn_scratch, &a->rope_cos,
                      &a->rope_sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) moec_free(*bufs[i]);
    free(a->inputs);
    free(a->targets);
    if (a->moe) {
        for (int l = 0; l < c->n_layers; l++) moec_moe_state_free(&a->moe[l]);
        free(a->moe);
    }
    moec_moe_workspace_free(&a->moe_ws);
    memset(a, 0, sizeof *a);
}

moec_status moec_model_reserve(moec_model *m, int64_t B, int64_t S) {
    const moec_config *c = &m->cfg;
    moec_activations *a = &m->acts;
    if (B <= 0 || S <= 0) return MOEC_ERR(MOEC_ERR_ARG, "batch shape %lldx%lld must be positive", (long long)B, (long long)S);
    if (S > c->max_seq)
        return MOEC_ERR(MOEC_ERR_ARG, "sequence of %lld tokens exceeds the model's max_seq %d", (long long)S, c->max_seq);
    if (a->B == B && a->S == S) return MOEC_OK;
    activations_free(a, c);
    const int64_t T = B * S, L = c->n_layers, D = c->hidden, V = c->vocab_size;
    const int64_t HD = (int64_t)c->n_heads * c->head_dim, GD = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t F = c->ffn_dim, n_dense = L - moec_config_n_moe_layers(c);
    if (c->moe.n_experts > 0 && c->moe.ffn_dim > F) F = c->moe.ffn_dim; /* scratch shared by both kinds */
    a->B = B, a->S = S, a->T = T;
    int ok = 1;
#define ALLOC(ptr, n) ok &= ((ptr) = moec_alloc_floats(n)) != NULL
    ALLOC(a->x, (L + 1) * T * D);
    ALLOC(a->xn1, L * T * D);
    ALLOC(a->xn2, L * T * D);
    ALLOC(a->rstd1, L * T);
    ALLOC(a->rstd2, L * T);
    ALLOC(a->q, L * T * HD);
    ALLOC(a->k, L * T * GD);
    ALLOC(a->v, L * T * GD);
    ALLOC(a->probs, L * B * c->n_heads * S * S);
    ALLOC(a->att, L * T * HD);
    ALLOC(a->xmid, L * T * D);
    ALLOC(a->h1, n_dense * T * c->ffn_dim);
    ALLOC(a->h3, n_dense * T * c->ffn_dim);
    ALLOC(a->act, n_dense * T * c->ffn_dim);
    ALLOC(a->xf, T * D);
    ALLOC(a->rstdf, T);
    ALLOC(a->logits, T * V);
    ALLOC(a->losses, T);
    ALLOC(a->dx, T * D);
    ALLOC(a->dxn, T * D);
    ALLOC(a->dmid, T * D);
    ALLOC(a->datt, T * HD);
    ALLOC(a->dq, T * HD);
    ALLOC(a->dk, T * GD);
    ALLOC(a->dv, T * GD);
    ALLOC(a->ffn_scratch, 3 * T * F);
    ALLOC(a->rope_cos, S * (c->head_dim / 2));
    ALLOC(a->rope_sin, S * (c->head_dim / 2));
#undef ALLOC
    a->inputs = calloc((size_t)T, sizeof(int32_t));
    a->targets = calloc((size_t)T, sizeof(int32_t));
    ok &= a->inputs != NULL && a->targets != NULL;
    if (!ok) {
        activations_free(a, c);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate activations for batch %lldx%lld", (long long)B, (long long)S);
    }
    if (c->moe.n_experts > 0) {
        a->moe = calloc((size_t)L, sizeof *a->moe);
        moec_status st = a->moe ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate MoE states");
        for (int l = 0; l < L && st == MOEC_OK; l++)
            if (c->is_moe_layer[l]) st = moec_moe_state_init(&a->moe[l], T, c);
        if (st == MOEC_OK) st = moec_moe_workspace_init(&a->moe_ws, T, c);
        if (st != MOEC_OK) {
            activations_free(a, c);
            return st;
        }
    }
    moec_rope_tables(a->rope_cos, a->rope_sin, S, c->head_dim, c->rope_theta);
    return MOEC_OK;
}

moec_status moec_model_adopt(moec_model *m, const moec_config *c, moec_param_table *table, float *params) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->table = *table;
    memset(table, 0, sizeof *table);
    m->params = params;
    moec_weights_bind(&m->w, &m->table, &m->cfg, m->params);
    return MOEC_OK;
}

moec_status moec_model_init(moec_model *m, const moec_config *c) {
    moec_param_table t;
    MOEC_TRY(moec_param_table_build(&t, c));
    float *p = moec_alloc_floats(t.total);
    if (!p) {
        moec_param_table_free(&t);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate %lld parameters", (long long)t.total);
    }
    return moec_model_adopt(m, c, &t, p);
}

moec_status moec_model_alloc_grads(moec_model *m) {
    if (m->grads) return MOEC_OK;
    m->grads = moec_alloc_floats(m->table.total);
    if (!m->grads) return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate gradients (%lld floats)", (long long)m->table.total);
    moec_weights_bind(&m->dw, &m->table, &m->cfg, m->grads);
    return MOEC_OK;
}

void moec_model_zero_grads(moec_model *m) {
    if (m->grads) memset(m->grads, 0, (size_t)m->table.total * sizeof(float));
}

void moec_model_free(moec_model *m) {
    activations_free(&m->acts, &m->cfg);
    moec_free(m->params);
    moec_free(m->grads);
    moec_param_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void moec_model_init_random(moec_model *m, uint64_t seed) {
    const moec_config *c = &m->cfg;
    const float out_scale = 1.0f / sqrtf(2.0f * (float)c->n_layers);
    for (int i = 0; i < m->table.count; i++) {
        const moec_param_info *p = &m->table.items[i];
        float *dst = m->params + p->offset;
        size_t nlen = strlen(p->name);
        if (nlen >= 5 && strcmp(p->name + nlen - 5, ".bias") == 0) { /* projection biases start at 0 */
            memset(dst, 0, (size_t)p->numel * sizeof(float));
            continue;
        }
        if (p->ndim == 1) { /* RMSNorm weights */
            for (int64_t j = 0; j < p->numel; j++) dst[j] = 1.0f;
            continue;
        }
        /* each tensor gets its own stream so the init does not depend on table order */
        uint64_t st = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
        float std = 0.02f;
        if (strstr(p->name, "o_proj") || strstr(p->name, "down_proj") || strstr(p->name, ".w2.")) std *= out_scale;
        for (int64_t j = 0; j < p->numel; j++) dst[j] = (float)(std * moec_rand_normal(&st));
    }
}

/* y[t, :] += b for every row t: y [T, N], b [N]. A NULL b (the config has no such bias) is a no-op. */
static void bias_forward(float *y, const float *b, int64_t T, int64_t N) {
    if (!b) return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < N; j++) y[t * N + j] += b[j];
}

/* Backward of bias_forward: db[j] += Σ_t dy[t, j] (accumulated, like every gradient). */
static void bias_backward(float *db, const float *dy, int64_t T, int64_t N) {
    if (!db) return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < N; j++) db[j] += dy[t * N + j];
}

static float layer_alpha(const moec_config *c, const float *aux_coef, int l) {
    return aux_coef ? aux_coef[l] : c->moe.alpha_fixed;
}

moec_status moec_model_forward(moec_model *m, const int32_t *inputs, const int32_t *targets, int64_t B, int64_t S,
                               const float *aux_coef, moec_forward_stats *st) {
    const moec_config *c = &m->cfg;
    MOEC_TRY(moec_model_reserve(m, B, S));
    moec_activations *a = &m->acts;
    const int64_t T = B * S, D = c->hidden, V = c->vocab_size, H = c->n_heads, G = c->n_kv_heads,
                  Dh = c->head_dim, HD = H * Dh, GD = G * Dh, F = c->ffn_dim;
    for (int64_t t = 0; t < T; t++) {
        if (inputs[t] < 0 || inputs[t] >= V)
            return MOEC_ERR(MOEC_ERR_ARG, "token id %d at position %lld is outside the vocabulary [0, %lld)",
                            inputs[t], (long long)t, (long long)V);
        if (targets && targets[t] >= V)
            return MOEC_ERR(MOEC_ERR_ARG, "target id %d at position %lld is outside the vocabulary [0, %lld)",
                            targets[t], (long long)t, (long long)V);
    }
    memcpy(a->inputs, inputs, (size_t)T * sizeof(int32_t));
    for (int64_t t = 0; t < T; t++) a->targets[t] = targets ? targets[t] : -1;
    memset(st, 0, sizeof *st);

    moec_embedding_forward(a->x, inputs, m->w.tok_emb, T, D);
    int64_t dense_i = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const moec_layer_view *w = &m->w.layers[l];
        float *x = a->x + l * T * D, *xnext = a->x + (l + 1) * T * D;
        float *xn1 = a->xn1 + l * T * D, *xn2 = a->xn2 + l * T * D, *xmid = a->xmid + l * T * D;
        float *q = a->q + l * T * HD, *k = a->k + l * T * GD, *v = a->v + l * T * GD, *att = a->att + l * T * HD;
        /* attention block: xmid = x + Attn(RMSNorm(x)) */
        moec_rmsnorm_forward(xn1, a->rstd1 + l * T, x, w->attn_norm, T, D, c->norm_eps);
        moec_gemm(0, 1, T, HD, D, 1.0f, xn1, D, w->wq, D, 0.0f, q, HD);
        moec_gemm(0, 1, T, GD, D, 1.0f, xn1, D, w->wk, D, 0.0f, k, GD);
        moec_gemm(0, 1, T, GD, D, 1.0f, xn1, D, w->wv, D, 0.0f, v, GD);
        bias_forward(q, w->bq, T, HD); /* Qwen2: biases before RoPE */
        bias_forward(k, w->bk, T, GD);
        bias_forward(v, w->bv, T, GD);
        moec_rope_apply(q, a->rope_cos, a->rope_sin, B, S, H, Dh, 0);
        moec_rope_apply(k, a->rope_cos, a->rope_sin, B, S, G, Dh, 0);
        moec_attention_forward(att, a->probs + l * B * H * S * S, q, k, v, B, S, H, G, Dh);
        memcpy(xmid, x, (size_t)(T * D) * sizeof(float));
        moec_gemm(0, 1, T, D, HD, 1.0f, att, HD, w->wo, HD, 1.0f, xmid, D);
        /* FFN block: xnext = xmid + FFN(RMSNorm(xmid)) */
        moec_rmsnorm_forward(xn2, a->rstd2 + l * T, xmid, w->ffn_norm, T, D, c->norm_eps);
        if (c->is_moe_layer[l]) {
            moec_moe_state *ms = &a->moe[l];
            moec_moe_forward(xnext, ms, xn2, w, T, c);
            st->drop_rate[l] = ms->router.drop_rate;
            st->dropped[l] = ms->router.dropped;
            st->aux_loss[l] = ms->router.aux_loss;
            st->z_loss[l] = ms->router.z_loss;
            st->max1_over_max2[l] = ms->router.max1_over_max2;
            st->total_loss += (double)layer_alpha(c, aux_coef, l) * ms->router.aux_loss +
                              (double)c->moe.z_loss_coef * ms->router.z_loss;
        } else {
            const int64_t o = dense_i++ * T * F;
            moec_ffn_forward(xnext, a->h1 + o, a->h3 + o, a->act + o, xn2, w->w1, w->w3, w->w2, T, D, F);
        }
        moec_add_inplace(xnext, xmid, T * D);
    }
    moec_rmsnorm_forward(a->xf, a->rstdf, a->x + c->n_layers * T * D, m->w.final_norm, T, D, c->norm_eps);
    moec_gemm(0, 1, T, V, D, 1.0f, a->xf, D, m->w.lm_head, D, 0.0f, a->logits, V);
    st->ce_loss = moec_cross_entropy(NULL, a->losses, &st->n_targets, a->logits, a->targets, T, V, 1.0f);
    st->total_loss += st->ce_loss;
    if (!isfinite(st->total_loss)) return MOEC_ERR(MOEC_ERR_NUMERIC, "loss is not finite (%g)", st->total_loss);
    return MOEC_OK;
}

moec_status moec_model_backward(moec_model *m, const float *aux_coef, float loss_scale) {
    const moec_config *c = &m->cfg;
    moec_activations *a = &m->acts;
    if (!m->grads) return MOEC_ERR(MOEC_ERR_ARG, "backward called before moec_model_alloc_grads");
    if (a->T == 0) return MOEC_ERR(MOEC_ERR_ARG, "backward called before forward");
    const int64_t B = a->B, S = a->S, T = a->T, D = c->hidden, V = c->vocab_size, H = c->n_heads,
                  G = c->n_kv_heads, Dh = c->head_dim, HD = H * Dh, GD = G * Dh, F = c->ffn_dim, L = c->n_layers;
    moec_moe_config mc_scaled = c->moe; /* the router's own loss terms get the same scale as the CE */
    mc_scaled.z_loss_coef *= loss_scale;
    moec_config c_scaled = *c;
    c_scaled.moe = mc_scaled;

    /* loss = CE(logits, targets): dlogits in place */
    moec_cross_entropy(a->logits, a->losses, NULL, a->logits, a->targets, T, V, loss_scale);
    /* logits = xf·lm_headᵀ */
    moec_gemm(1, 0, V, D, T, 1.0f, a->logits, V, a->xf, D, 1.0f, m->dw.lm_head, D);
    moec_gemm(0, 0, T, D, V, 1.0f, a->logits, V, m->w.lm_head, D, 0.0f, a->dxn, D);
    /* xf = RMSNorm(x[L]) */
    moec_rmsnorm_backward(a->dx, m->dw.final_norm, a->dxn, a->x + L * T * D, a->rstdf, m->w.final_norm, T, D, 0);

    int64_t dense_i = L - moec_config_n_moe_layers(c);
    for (int l = (int)L - 1; l >= 0; l--) {
        const moec_layer_view *w = &m->w.layers[l], *dw = &m->dw.layers[l];
        const float *x = a->x + l * T * D, *xn1 = a->xn1 + l * T * D, *xn2 = a->xn2 + l * T * D,
                    *xmid = a->xmid + l * T * D, *q = a->q + l * T * HD, *k = a->k + l * T * GD,
                    *v = a->v + l * T * GD, *att = a->att + l * T * HD;
        /* xnext = xmid + FFN(xn2): a->dx holds d xnext */
        if (c->is_moe_layer[l]) {
            moec_moe_backward(a->dxn, dw, &a->moe_ws, a->dx, &a->moe[l], xn2, w,
                              layer_alpha(c, aux_coef, l) * loss_scale, T, &c_scaled);
        } else {
            const int64_t o = --dense_i * T * F;
            moec_ffn_backward(a->dxn, dw->w1, dw->w3, dw->w2, a->ffn_scratch, a->dx, xn2, a->h1 + o, a->h3 + o,
                              a->act + o, w->w1, w->w3, w->w2, T, D, F);
        }
        /* xn2 = RMSNorm(xmid); dmid = dxnext + norm backward */
        memcpy(a->dmid, a->dx, (size_t)(T * D) * sizeof(float));
        moec_rmsnorm_backward(a->dmid, dw->ffn_norm, a->dxn, xmid, a->rstd2 + l * T, w->ffn_norm, T, D, 1);
        /* xmid = x + att·Woᵀ */
        moec_gemm(1, 0, D, HD, T, 1.0f, a->dmid, D, att, HD, 1.0f, dw->wo, HD);
        moec_gemm(0, 0, T, HD, D, 1.0f, a->dmid, D, w->wo, HD, 0.0f, a->datt, HD);
        /* att = Attention(q, k, v) */
        moec_attention_backward(a->dq, a->dk, a->dv, a->datt, a->probs + l * B * H * S * S, q, k, v, B, S, H, G, Dh);
        /* q, k = RoPE(q, k): the transpose rotation */
        moec_rope_apply(a->dq, a->rope_cos, a->rope_sin, B, S, H, Dh, 1);
        moec_rope_apply(a->dk, a->rope_cos, a->rope_sin, B, S, G, Dh, 1);
        /* q = xn1·Wqᵀ + bq, k = xn1·Wkᵀ + bk, v = xn1·Wvᵀ + bv (dq, dk are now w.r.t. the pre-RoPE values) */
        bias_backward(dw->bq, a->dq, T, HD);
        bias_backward(dw->bk, a->dk, T, GD);
        bias_backward(dw->bv, a->dv, T, GD);
        moec_gemm(1, 0, HD, D, T, 1.0f, a->dq, HD, xn1, D, 1.0f, dw->wq, D);
        moec_gemm(1, 0, GD, D, T, 1.0f, a->dk, GD, xn1, D, 1.0f, dw->wk, D);
        moec_gemm(1, 0, GD, D, T, 1.0f, a->dv, GD, xn1, D, 1.0f, dw->wv, D);
        moec_gemm(0, 0, T, D, HD, 1.0f, a->dq, HD, w->wq, D, 0.0f, a->dxn, D);
        moec_gemm(0, 0, T, D, GD, 1.0f, a->dk, GD, w->wk, D, 1.0f, a->dxn, D);
        moec_gemm(0, 0, T, D, GD, 1.0f, a->dv, GD, w->wv, D, 1.0f, a->dxn, D);
        /* xn1 = RMSNorm(x); dx = dmid + norm backward */
        memcpy(a->dx, a->dmid, (size_t)(T * D) * sizeof(float));
        moec_rmsnorm_backward(a->dx, dw->attn_norm, a->dxn, x, a->rstd1 + l * T, w->attn_norm, T, D, 1);
    }
    /* x[0] = embedding(inputs) */
    moec_embedding_backward(m->dw.tok_emb, a->dx, a->inputs, T, D);
    return MOEC_OK;
}
