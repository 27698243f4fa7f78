/* moe_layer.c — MoE FFN layer: route → dispatch → experts → combine (see moe_layer.h). */
#include "moe/moe_layer.h"

#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "kernels/cpu/gemm.h"
#include "model/ffn.h"

moec_status moec_moe_state_init(moec_moe_state *s, int64_t T_max, const moec_config *c) {
    memset(s, 0, sizeof *s);
    const int64_t E = c->moe.n_experts, K = c->moe.top_k, D = c->hidden, F = c->moe.ffn_dim, TK = T_max * K;
    s->T_max = T_max;
    MOEC_TRY(moec_router_state_init(&s->router, T_max, (int)E, (int)K));
    s->logits = moec_alloc_floats(T_max * E);
    s->offsets = calloc((size_t)E + 1, sizeof *s->offsets);
    s->row_token = calloc((size_t)TK, sizeof *s->row_token);
    s->slot_row = calloc((size_t)TK, sizeof *s->slot_row);
    s->xd = moec_alloc_floats(TK * D);
    s->yd = moec_alloc_floats(TK * D);
    s->h1 = moec_alloc_floats(TK * F);
    s->h3 = moec_alloc_floats(TK * F);
    s->act = moec_alloc_floats(TK * F);
    if (!s->logits || !s->offsets || !s->row_token || !s->slot_row || !s->xd || !s->yd || !s->h1 || !s->h3 ||
        !s->act) {
        moec_moe_state_free(s);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate MoE activations for %lld tokens", (long long)T_max);
    }
    return MOEC_OK;
}

void moec_moe_state_free(moec_moe_state *s) {
    moec_router_state_free(&s->router);
    moec_free(s->logits);
    free(s->offsets);
    free(s->row_token);
    free(s->slot_row);
    moec_free(s->xd);
    moec_free(s->yd);
    moec_free(s->h1);
    moec_free(s->h3);
    moec_free(s->act);
    memset(s, 0, sizeof *s);
}

moec_status moec_moe_workspace_init(moec_moe_workspace *ws, int64_t T_max, const moec_config *c) {
    memset(ws, 0, sizeof *ws);
    const int64_t E = c->moe.n_experts, K = c->moe.top_k, D = c->hidden, F = c->moe.ffn_dim, TK = T_max * K;
    ws->dyd = moec_alloc_floats(TK * D);
    ws->dxd = moec_alloc_floats(TK * D);
    ws->ffn_scratch = moec_alloc_floats(3 * TK * F);
    ws->dtopk_w = moec_alloc_floats(TK);
    ws->dlogits = moec_alloc_floats(T_max * E);
    if (!ws->dyd || !ws->dxd || !ws->ffn_scratch || !ws->dtopk_w || !ws->dlogits) {
        moec_moe_workspace_free(ws);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate MoE backward workspace for %lld tokens", (long long)T_max);
    }
    return MOEC_OK;
}

void moec_moe_workspace_free(moec_moe_workspace *ws) {
    moec_free(ws->dyd);
    moec_free(ws->dxd);
    moec_free(ws->ffn_scratch);
    moec_free(ws->dtopk_w);
    moec_free(ws->dlogits);
    memset(ws, 0, sizeof *ws);
}

/* Dispatch: kept (token, slot) pairs grouped by expert, token order inside each group. */
static void dispatch_plan(moec_moe_state *s, int64_t T, int E, int K) {
    const moec_router_state *r = &s->router;
    int64_t *off = s->offsets;
    memset(off, 0, (size_t)(E + 1) * sizeof *off);
    for (int64_t i = 0; i < T * K; i++)
        if (r->kept[i]) off[r->topk_idx[i] + 1]++;
    for (int e = 0; e < E; e++) off[e + 1] += off[e];
    s->n_rows = off[E];
    int64_t fill[MOEC_MAX_EXPERTS];
    memcpy(fill, off, (size_t)E * sizeof *fill);
    for (int64_t t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            const int64_t i = t * K + k;
            if (!r->kept[i]) {
                s->slot_row[i] = -1;
                continue;
            }
            const int64_t row = fill[r->topk_idx[i]]++;
            s->slot_row[i] = (int32_t)row;
            s->row_token[row] = (int32_t)t;
        }
}

typedef struct {
    float *dst;
    const float *src;
    const int32_t *index;
    int64_t D;
} gather_args;

static void gather_rows(void *p, int64_t r0, int64_t r1, int thread) {
    const gather_args *a = p;
    for (int64_t r = r0; r < r1; r++)
        memcpy(a->dst + r * a->D, a->src + (int64_t)a->index[r] * a->D, (size_t)a->D * sizeof(float));
}

/* Combine: out[t] = Σ_k w[t,k] · rows[slot_row[t,k]] over kept slots (parallel over tokens: no races). */
typedef struct {
    float *out;
    const float *rows, *w;
    const int32_t *slot_row;
    int64_t D;
    int K;
} combine_args;

static void combine_tokens(void *p, int64_t t0, int64_t t1, int thread) {
    const combine_args *a = p;
    for (int64_t t = t0; t < t1; t++) {
        float *o = a->out + t * a->D;
        memset(o, 0, (size_t)a->D * sizeof(float));
        for (int k = 0; k < a->K; k++) {
            const int32_t row = a->slot_row[t * a->K + k];
            if (row < 0) continue;
            const float wk = a->w ? a->w[t * a->K + k] : 1.0f;
            const float *y = a->rows + (int64_t)row * a->D;
            for (int64_t i = 0; i < a->D; i++) o[i] += wk * y[i];
        }
    }
}

void moec_moe_forward(float *out, moec_moe_state *s, const float *x, const moec_layer_view *w, int64_t T,
                      const moec_config *c) {
    const int E = c->moe.n_experts, K = c->moe.top_k;
    const int64_t D = c->hidden, F = c->moe.ffn_dim;
    /* route: z = x·Wgᵀ, then Skywork's normalised gate, top-k and capacity */
    moec_gemm(0, 1, T, E, D, 1.0f, x, D, w->router, D, 0.0f, s->logits, E);
    moec_router_forward(&s->router, s->logits, T, &c->moe);
    /* dispatch */
    dispatch_plan(s, T, E, K);
    gather_args g = {.dst = s->xd, .src = x, .index = s->row_token, .D = D};
    moec_parallel_for(s->n_rows, 64, gather_rows, &g);
    /* expert compute, one contiguous block per expert */
    for (int e = 0; e < E; e++) {
        const int64_t r0 = s->offsets[e], n = s->offsets[e + 1] - r0;
        moec_ffn_forward(s->yd + r0 * D, s->h1 + r0 * F, s->h3 + r0 * F, s->act + r0 * F, s->xd + r0 * D,
                         moec_expert_w1(w, e), moec_expert_w3(w, c, e), moec_expert_w2(w, c, e), n, D, F);
    }
    /* combine */
    combine_args cb = {.out = out, .rows = s->yd, .w = s->router.topk_w, .slot_row = s->slot_row, .D = D, .K = K};
    moec_parallel_for(T, 16, combine_tokens, &cb);
}

/* Backward of the combine y_t = Σ_k w_tk·yd[row]:  dw_tk = dy_t·yd[row],  dyd[row] = w_tk·dy_t. */
typedef struct {
    float *dyd, *dtopk_w;
    const float *dout, *yd, *w;
    const int32_t *slot_row;
    int64_t D;
    int K;
} combine_bwd_args;

static void combine_bwd_tokens(void *p, int64_t t0, int64_t t1, int thread) {
    const combine_bwd_args *a = p;
    for (int64_t t = t0; t < t1; t++) {
        const float *dy = a->dout + t * a->D;
        for (int k = 0; k < a->K; k++) {
            const int64_t i = t * a->K + k;
            const int32_t row = a->slot_row[i];
            if (row < 0) {
                a->dtopk_w[i] = 0.0f;
                continue;
            }
            const float *y = a->yd + (int64_t)row * a->D;
            float *dyd = a->dyd + (int64_t)row * a->D;
            float acc = 0.0f;
            for (int64_t j = 0; j < a->D; j++) {
                acc += dy[j] * y[j];
                dyd[j] = a->w[i] * dy[j];
            }
            a->dtopk_w[i] = acc;
        }
    }
}

void moec_moe_backward(float *dx, const moec_layer_view *dw, moec_moe_workspace *ws, const float *dout,
                       const moec_moe_state *s, const float *x, const moec_layer_view *w, float aux_coef, int64_t T,
                       const moec_config *c) {
    const int E = c->moe.n_experts, K = c->moe.top_k;
    const int64_t D = c->hidden, F = c->moe.ffn_dim;
    combine_bwd_args cb = {.dyd = ws->dyd, .dtopk_w = ws->dtopk_w, .dout = dout, .yd = s->yd,
                           .w = s->router.topk_w, .slot_row = s->slot_row, .D = D, .K = K};
    moec_parallel_for(T, 16, combine_bwd_tokens, &cb);
    for (int e = 0; e < E; e++) {
        const int64_t r0 = s->offsets[e], n = s->offsets[e + 1] - r0;
        moec_ffn_backward(ws->dxd + r0 * D, moec_expert_w1(dw, e), moec_expert_w3(dw, c, e), moec_expert_w2(dw, c, e),
                          ws->ffn_scratch, ws->dyd + r0 * D, s->xd + r0 * D, s->h1 + r0 * F, s->h3 + r0 * F,
                          s->act + r0 * F, moec_expert_w1(w, e), moec_expert_w3(w, c, e), moec_expert_w2(w, c, e), n,
                          D, F);
    }
    /* un-dispatch: dx_t = Σ_k dxd[row(t,k)] — the combine with unit weights */
    combine_args un = {.out = dx, .rows = ws->dxd, .w = NULL, .slot_row = s->slot_row, .D = D, .K = K};
    moec_parallel_for(T, 16, combine_tokens, &un);
    /* router: z = x·Wgᵀ */
    moec_router_backward(ws->dlogits, &s->router, s->logits, ws->dtopk_w, aux_coef, &c->moe);
    moec_gemm(1, 0, E, D, T, 1.0f, ws->dlogits, E, x, D, 1.0f, dw->router, D); /* dWg += dzᵀ·x */
    moec_gemm(0, 0, T, D, E, 1.0f, ws->dlogits, E, w->router, D, 1.0f, dx, D); /* dx += dz·Wg */
}
