/* engine.c — inference forward over a KV cache (see engine.h). */
#include "infer/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/threads.h"
#include "kernels/cpu/attn_decode.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"

/* Per-thread attention scratch, in floats: a block's scores (prefill) or a decode block's (decode), then, with a
 * half cache, one KV head's keys and values widened to fp32 for prefill's GEMMs. */
static int64_t scores_stride(const moec_session *s) {
    const int64_t widened = s->kv == MOEC_KV_F16 ? 2 * (int64_t)s->ctx * s->model->cfg.head_dim : 0;
    return (int64_t)MOEC_ATTN_QBLOCK * s->ctx + (int64_t)s->model->cfg.n_heads * MOEC_ATTN_DECODE_KEYS + widened;
}

/* The KV cache, zeroed, in 2 MB pages where the kernel gives them (transparent huge pages on request,
 * madvise mode): decode reads every cached position of every layer each step, tens of MB as one sequential stream
 * per KV head, and in 4 KB pages each 4 KB of it is another TLB entry (moe-1b fp8 at 512 positions: attention
 * 2.96 -> 2.67 ms per step, kernels/cpu/attn_decode.c). Freed with moec_free (free). */
static void *alloc_cache(int64_t n, moec_kv_dtype kv) {
    const size_t huge = (size_t)2 << 20;
    size_t bytes = (size_t)(n > 0 ? n : 1) * (size_t)moec_kv_bytes(kv);
    bytes = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, bytes);
    if (!p) return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* before the first touch, so that the faults map 2 MB pages */
    memset(p, 0, bytes);
    return p;
}

static void session_zero(moec_session *s) { memset(s, 0, sizeof *s); }

void moec_session_free(moec_session *s) {
    void *f[] = {s->k_cache, s->v_cache, s->x, s->xn, s->q, s->k, s->v, s->att, s->tmp, s->h1, s->h3,
                  s->router_logits, s->xd, s->yd, s->scores, s->rope_cos, s->rope_sin, s->final_x, s->rstd};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) moec_free(f[i]);
    free(s->len);
    free(s->pos);
    free(s->attn_tasks);
    free(s->by_expert);
    free(s->grouped_at);
    free(s->expert_start);
    free(s->slot_fill);
    if (s->router.E) moec_router_state_free(&s->router);
    session_zero(s);
}

moec_status moec_session_init(moec_session *s, const moec_infer_model *m, int n_slots, int ctx, int64_t max_rows,
                              moec_kv_dtype kv) {
    session_zero(s);
    const moec_config *c = &m->cfg;
    if (n_slots <= 0 || ctx <= 0 || max_rows <= 0)
        return MOEC_ERR(MOEC_ERR_ARG, "session needs positive slots (%d), context (%d) and rows (%lld)", n_slots, ctx,
                        (long long)max_rows);
    if (kv != MOEC_KV_F32 && kv != MOEC_KV_F16) return MOEC_ERR(MOEC_ERR_ARG, "unknown KV-cache type %d", (int)kv);
    if (ctx > c->max_seq)
        return MOEC_ERR(MOEC_ERR_ARG, "context of %d tokens exceeds the model's max_seq %d", ctx, c->max_seq);
    s->model = m;
    s->n_slots = n_slots;
    s->ctx = ctx;
    s->max_rows = max_rows;
    s->kv = kv;
    const int64_t L = c->n_layers, D = c->hidden, HD = (int64_t)c->n_heads * c->head_dim,
                  GD = (int64_t)c->n_kv_heads * c->head_dim, E = c->moe.n_experts, K = E > 0 ? c->moe.top_k : 1;
    int64_t F = c->ffn_dim;
    if (E > 0 && c->moe.ffn_dim * K > F) F = c->moe.ffn_dim * K; /* h1/h3 hold rows·K expert rows of width F_e */
    const int64_t R = max_rows, cache = L * n_slots * (int64_t)ctx * GD;
    s->n_score_threads = moec_threads_count();
    int ok = 1;
#define ALLOC(p, n) ok &= ((p) = moec_alloc_floats(n)) != NULL
    ok &= (s->k_cache = alloc_cache(cache, kv)) != NULL;
    ok &= (s->v_cache = alloc_cache(cache, kv)) != NULL;
    ALLOC(s->x, R * D);
    ALLOC(s->xn, R * D);
    ALLOC(s->q, R * HD);
    ALLOC(s->k, R * GD);
    ALLOC(s->v, R * GD);
    ALLOC(s->att, R * HD);
    ALLOC(s->tmp, R * (D > HD ? D : HD));
    ALLOC(s->h1, R * F);
    ALLOC(s->h3, R * F);
    ALLOC(s->scores, (int64_t)s->n_score_threads * scores_stride(s));
    ALLOC(s->rope_cos, (int64_t)ctx * (c->head_dim / 2));
    ALLOC(s->rope_sin, (int64_t)ctx * (c->head_dim / 2));
    ALLOC(s->final_x, R * D);
    ALLOC(s->rstd, R);
    if (E > 0) {
        ALLOC(s->router_logits, R * E);
        ALLOC(s->xd, R * K * D);
        ALLOC(s->yd, R * K * D);
    }
#undef ALLOC
    s->len = calloc((size_t)n_slots, sizeof *s->len);
    s->slot_fill = calloc((size_t)n_slots, sizeof *s->slot_fill);
    s->pos = calloc((size_t)R, sizeof *s->pos);
    s->attn_tasks = calloc((size_t)(R * c->n_heads * 4), sizeof *s->attn_tasks);
    ok &= s->len && s->slot_fill && s->pos && s->attn_tasks;
    if (E > 0) {
        s->by_expert = calloc((size_t)(R * K), sizeof *s->by_expert);
        s->grouped_at = calloc((size_t)(R * K), sizeof *s->grouped_at);
        s->expert_start = calloc((size_t)E + 1, sizeof *s->expert_start);
        ok &= s->by_expert && s->grouped_at && s->expert_start;
        if (ok && moec_router_state_init(&s->router, R, (int)E, (int)K) != MOEC_OK) ok = 0;
    }
    if (!ok) {
        moec_session_free(s);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate a session of %d slots × %d positions (%lld MB of cache)",
                        n_slots, ctx, (long long)(2 * cache * moec_kv_bytes(kv) >> 20));
    }
    moec_rope_tables(s->rope_cos, s->rope_sin, ctx, c->head_dim, c->rope_theta);
    return MOEC_OK;
}

void moec_session_reset(moec_session *s, int slot) {
    if (slot >= 0 && slot < s->n_slots) s->len[slot] = 0;
}

static void add_bias(float *y, const float *b, int64_t n, int64_t w) {
    if (!b) return;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < w; j++) y[i * w + j] += b[j];
}

/* ---------------------------------------------------------------- attention over the cache */
/* Where (layer, slot, kv head g, position) is in cache (k_cache or v_cache), laid out [L][n_slots][G][ctx][Dh]. */
static void *kv_at(const moec_session *s, void *cache, int64_t layer, int64_t slot, int64_t g, int64_t pos) {
    const moec_config *c = &s->model->cfg;
    const int64_t at = (((layer * s->n_slots + slot) * c->n_kv_heads + g) * s->ctx + pos) * c->head_dim;
    return (char *)cache + at * moec_kv_bytes(s->kv);
}

typedef struct {
    moec_session *s;
    const int32_t *slots;
    int layer;
} attn_args;

/* One task = s->attn_hpt query heads h (from task[3] on, all sharing one KV head g) of a block of consecutive rows
 * of one sequence (positions p0 .. p0+nr-1): softmax(scale · Q_h Kᵀ) V over the cache positions 0 .. p0+nr-1,
 * causal inside the block, as two GEMMs (scores, then output), which is what makes prefill fast. With a half cache a
 * task takes all of g's query heads where there are tasks enough for the threads, so that g's keys and values are
 * widened once for all of them (attn_plan). A single row (decode) is a task per KV head (task[3] = g) and runs
 * kernels/cpu/attn_decode.h. */
static void attn_task(void *p, int64_t t0, int64_t t1, int thread) {
    const attn_args *a = p;
    moec_session *s = a->s;
    const moec_config *c = &s->model->cfg;
    const int64_t H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim, HD = H * Dh, QH = H / G;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *sc = s->scores + (int64_t)thread * scores_stride(s);
    for (int64_t t = t0; t < t1; t++) {
        const int32_t *task = s->attn_tasks + 4 * t;
        const int64_t row0 = task[0], nr = task[1], p0 = task[2], h0 = nr == 1 ? task[3] * QH : task[3], g = h0 / QH;
        const int64_t slot = a->slots[row0], nkeys = p0 + nr;
        const void *kh = kv_at(s, s->k_cache, a->layer, slot, g, 0), *vh = kv_at(s, s->v_cache, a->layer, slot, g, 0);
        if (nr == 1) {
            for (int64_t h = h0; h < (g + 1) * QH; h += MOEC_ATTN_DECODE_MAX_HEADS) {
                const int64_t left = (g + 1) * QH - h;
                moec_attn_decode(s->q + row0 * HD + h * Dh, kh, vh, s->kv, nkeys,
                                 left < MOEC_ATTN_DECODE_MAX_HEADS ? left : MOEC_ATTN_DECODE_MAX_HEADS, Dh, scale, sc,
                                 s->att + row0 * HD + h * Dh);
            }
            continue;
        }
        const float *kc = kh, *vc = vh;
        if (s->kv != MOEC_KV_F32) { /* the GEMMs take fp32: widen g's nkeys keys and values (exactly) */
            float *wk = sc + (int64_t)MOEC_ATTN_QBLOCK * s->ctx + H * MOEC_ATTN_DECODE_KEYS, *wv = wk + s->ctx * Dh;
            moec_kv_to_f32(wk, kh, s->kv, nkeys * Dh);
            moec_kv_to_f32(wv, vh, s->kv, nkeys * Dh);
            kc = wk, vc = wv;
        }
        for (int64_t h = h0; h < h0 + s->attn_hpt; h++) {
            const float *q = s->q + row0 * HD + h * Dh;
            float *o = s->att + row0 * HD + h * Dh;
            moec_gemm(0, 1, nr, nkeys, Dh, scale, q, HD, kc, Dh, 0.0f, sc, nkeys);
            for (int64_t i = 0; i < nr; i++) {
                float *r = sc + i * nkeys, mx = -INFINITY;
                const int64_t valid = p0 + i + 1; /* row i sees positions 0 .. p0+i */
                for (int64_t j = 0; j < valid; j++) mx = r[j] > mx ? r[j] : mx;
                const float inv = (float)(1.0 / moec_softmax_numerators(r, valid, mx));
                for (int64_t j = 0; j < valid; j++) r[j] *= inv;
                for (int64_t j = valid; j < nkeys; j++) r[j] = 0.0f;
            }
            moec_gemm(0, 0, nr, Dh, nkeys, 1.0f, sc, nkeys, vc, Dh, 0.0f, o, HD);
        }
    }
}

/* The end of the attention block starting at row i: the rows after it of the same slot at the next positions, at
 * most MOEC_ATTN_QBLOCK in all. */
static int64_t block_end(const moec_session *s, int64_t n, const int32_t *slots, int64_t i) {
    int64_t j = i + 1;
    while (j < n && j - i < MOEC_ATTN_QBLOCK && slots[j] == slots[i] && s->pos[j] == s->pos[j - 1] + 1) j++;
    return j;
}

/* Split the rows into blocks of consecutive positions of one slot (at most MOEC_ATTN_QBLOCK rows) × heads: a task
 * per query head, or per KV head (decode rows; and a half cache's blocks where that still gives each thread four
 * tasks — widening g's keys and values for each query head separately cost pp512 3-4 % on moe-1b). */
static int64_t attn_plan(moec_session *s, int64_t n, const int32_t *slots) {
    const int64_t H = s->model->cfg.n_heads, G = s->model->cfg.n_kv_heads, QH = H / G;
    int64_t blocks = 0;
    for (int64_t i = 0; i < n; blocks++) i = block_end(s, n, slots, i);
    s->attn_hpt = s->kv != MOEC_KV_F32 && blocks * G >= 4 * (int64_t)moec_threads_count() ? (int)QH : 1;
    int64_t nt = 0;
    for (int64_t i = 0; i < n;) {
        const int64_t j = block_end(s, n, slots, i);
        const int64_t step = j - i == 1 ? QH : s->attn_hpt; /* query heads per task */
        for (int64_t h = 0; h < H; h += step, nt++) {
            int32_t *t = s->attn_tasks + 4 * nt;
            t[0] = (int32_t)i, t[1] = (int32_t)(j - i), t[2] = s->pos[i], t[3] = (int32_t)(j - i == 1 ? h / QH : h);
        }
        i = j;
    }
    return nt;
}

/* ---------------------------------------------------------------- MoE: route, group by expert, run, combine */
static void moe_forward(moec_session *s, const moec_infer_layer *L, int64_t n) {
    const moec_config *c = &s->model->cfg;
    const int E = c->moe.n_experts, K = c->moe.top_k;
    const int64_t D = c->hidden, F = c->moe.ffn_dim;
    moec_qmat_matmul(s->router_logits, E, s->xn, D, n, &L->router);
    moec_moe_config dropless = c->moe;
    dropless.capacity_factor = 0.0f;
    moec_router_forward(&s->router, s->router_logits, n, &dropless);
    const int32_t *idx = s->router.topk_idx;
    /* counting sort of the (row, k) assignments by expert; stable, so rows stay in order inside each group */
    int64_t *start = s->expert_start;
    memset(start, 0, (size_t)(E + 1) * sizeof *start);
    for (int64_t a = 0; a < n * K; a++) start[idx[a] + 1]++;
    for (int e = 0; e < E; e++) start[e + 1] += start[e];
    for (int64_t a = 0; a < n * K; a++) {
        const int64_t at = start[idx[a]]++;
        s->by_expert[at] = (int32_t)a;
        s->grouped_at[a] = (int32_t)at;
    }
    for (int e = E; e > 0; e--) start[e] = start[e - 1];
    start[0] = 0;
    for (int64_t at = 0; at < n * K; at++) memcpy(s->xd + at * D, s->xn + (s->by_expert[at] / K) * D, (size_t)D * 4);
    /* the chosen experts in batches: their gate and up projections as one parallel loop, then their down
     * projections as another (an expert nobody chose is never read) */
    for (int e0 = 0; e0 < E;) {
        moec_qmat_op up[32], down[16];
        int nu = 0, nd = 0, e = e0;
        for (; e < E && nd < 16; e++) {
            const int64_t r0 = start[e], cnt = start[e + 1] - r0;
            if (cnt == 0) continue;
            const moec_qmat *w = L->experts + 3 * e;
            up[nu++] = (moec_qmat_op){s->h1 + r0 * F, F, s->xd + r0 * D, D, cnt, &w[0]};
            up[nu++] = (moec_qmat_op){s->h3 + r0 * F, F, s->xd + r0 * D, D, cnt, &w[1]};
            down[nd++] = (moec_qmat_op){s->yd + r0 * D, D, s->h1 + r0 * F, F, cnt, &w[2]};
        }
        e0 = e;
        if (nd == 0) continue;
        moec_qmat_matmul_many(up, nu);
        for (int i = 0; i < nd; i++) moec_swiglu_forward(up[2 * i].Y, up[2 * i].Y, up[2 * i + 1].Y, down[i].T, F);
        moec_qmat_matmul_many(down, nd);
    }
    /* combine in slot order k = 0..K-1 (fixed order: deterministic) */
    for (int64_t i = 0; i < n; i++) {
        float *x = s->x + i * D;
        for (int k = 0; k < K; k++) {
            const float wk = s->router.topk_w[i * K + k];
            const float *y = s->yd + (int64_t)s->grouped_at[i * K + k] * D;
            for (int64_t d = 0; d < D; d++) x[d] += wk * y[d];
        }
    }
}

static void dense_ffn(moec_session *s, const moec_infer_layer *L, int64_t n) {
    const moec_config *c = &s->model->cfg;
    const int64_t D = c->hidden, F = c->ffn_dim;
    const moec_qmat_op up[2] = {{s->h1, F, s->xn, D, n, &L->w1}, {s->h3, F, s->xn, D, n, &L->w3}};
    moec_qmat_matmul_many(up, 2);
    moec_swiglu_forward(s->h1, s->h1, s->h3, n, F);
    moec_qmat_matmul(s->tmp, D, s->h1, F, n, &L->w2);
    moec_add_inplace(s->x, s->tmp, n * D);
}

moec_status moec_session_forward(moec_session *s, int64_t n, const int32_t *tokens, const int32_t *slots,
                                 const uint8_t *want, float *logits) {
    const moec_infer_model *m = s->model;
    const moec_config *c = &m->cfg;
    const int64_t D = c->hidden, H = c->n_heads, Dh = c->head_dim, HD = H * Dh, G = c->n_kv_heads, GD = G * Dh,
                  V = c->vocab_size, half = Dh / 2;
    if (n <= 0 || n > s->max_rows)
        return MOEC_ERR(MOEC_ERR_ARG, "%lld rows in one call; the session holds 1..%lld", (long long)n,
                        (long long)s->max_rows);
    memset(s->slot_fill, 0, (size_t)s->n_slots * sizeof *s->slot_fill);
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return MOEC_ERR(MOEC_ERR_ARG, "token id %d (row %lld) is outside the vocabulary [0, %lld)", tokens[i],
                            (long long)i, (long long)V);
        if (slots[i] < 0 || slots[i] >= s->n_slots)
            return MOEC_ERR(MOEC_ERR_ARG, "slot %d (row %lld) is outside [0, %d)", slots[i], (long long)i, s->n_slots);
        const int64_t p = (int64_t)s->len[slots[i]] + s->slot_fill[slots[i]]++;
        if (p >= s->ctx)
            return MOEC_ERR(MOEC_ERR_ARG, "sequence in slot %d would reach %lld tokens, more than the context of %d",
                            slots[i], (long long)p + 1, s->ctx);
        s->pos[i] = (int32_t)p;
    }
    if (moec_threads_count() > s->n_score_threads) {
        float *sc = moec_alloc_floats((int64_t)moec_threads_count() * scores_stride(s));
        if (!sc) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
        moec_free(s->scores);
        s->scores = sc;
        s->n_score_threads = moec_threads_count();
    }
    for (int64_t i = 0; i < n; i++) moec_qmat_row(s->x + i * D, &m->tok_emb, tokens[i]);
    const int64_t n_attn_tasks = attn_plan(s, n, slots);
    for (int l = 0; l < c->n_layers; l++) {
        const moec_infer_layer *L = &m->layers[l];
        moec_rmsnorm_forward(s->xn, s->rstd, s->x, L->attn_norm, n, D, c->norm_eps);
        const moec_qmat_op qkv[3] = {{s->q, HD, s->xn, D, n, &L->wq}, {s->k, GD, s->xn, D, n, &L->wk},
                                     {s->v, GD, s->xn, D, n, &L->wv}};
        moec_qmat_matmul_many(qkv, 3);
        add_bias(s->q, L->bq, n, HD);
        add_bias(s->k, L->bk, n, GD);
        add_bias(s->v, L->bv, n, GD);
        for (int64_t i = 0; i < n; i++) {
            /* a one-row rope call whose tables start at the row's position */
            const float *cs = s->rope_cos + (int64_t)s->pos[i] * half, *sn = s->rope_sin + (int64_t)s->pos[i] * half;
            moec_rope_apply(s->q + i * HD, cs, sn, 1, 1, H, Dh, 0);
            moec_rope_apply(s->k + i * GD, cs, sn, 1, 1, G, Dh, 0);
            for (int64_t g = 0; g < G; g++) {
                moec_kv_from_f32(kv_at(s, s->k_cache, l, slots[i], g, s->pos[i]), s->k + i * GD + g * Dh, s->kv, Dh);
                moec_kv_from_f32(kv_at(s, s->v_cache, l, slots[i], g, s->pos[i]), s->v + i * GD + g * Dh, s->kv, Dh);
            }
        }
        attn_args aa = {.s = s, .slots = slots, .layer = l};
        moec_parallel_for_balanced(n_attn_tasks, 1, 1, attn_task, &aa); /* heads cost what their cache reads cost */
        moec_qmat_matmul(s->tmp, D, s->att, HD, n, &L->wo);
        moec_add_inplace(s->x, s->tmp, n * D);
        moec_rmsnorm_forward(s->xn, s->rstd, s->x, L->ffn_norm, n, D, c->norm_eps);
        if (c->is_moe_layer[l]) moe_forward(s, L, n);
        else dense_ffn(s, L, n);
    }
    int64_t n_out = 0;
    for (int64_t i = 0; i < n; i++)
        if (!want || want[i]) memcpy(s->final_x + n_out++ * D, s->x + i * D, (size_t)D * 4);
    if (n_out > 0 && logits) {
        moec_rmsnorm_forward(s->final_x, s->rstd, s->final_x, m->final_norm, n_out, D, c->norm_eps);
        moec_qmat_matmul(logits, V, s->final_x, D, n_out, &m->lm_head);
    }
    for (int64_t i = 0; i < n; i++) s->len[slots[i]] = s->pos[i] + 1;
    return MOEC_OK;
}
