/* gguf_model.c — moec model <-> llama.cpp GGUF (architecture "llama"); layout and names in gguf_model.h.
 *
 * Why llama.cpp computes moec's MoE layer exactly when λ = 0 (checked in llama.cpp's src/models/llama.cpp and
 * llm_graph_context::build_moe_ffn in src/llama-graph.cpp): the llama architecture calls build_moe_ffn with
 * gating LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX (probs = softmax of ffn_gate_inp · x over ALL experts), selects
 * the top expert_used_count experts by those probabilities, and norm_w = true divides the selected weights by
 * their sum; each expert is SiLU(gate · x) * (up · x) then down, weighted and summed. moec's router with λ = 0
 * (src/moe/router.h) is the same: g = softmax(z) over all E, top-K by g, w = g / sum of the K selected g. llama.cpp
 * clamps that sum below at 6.1e-5, which cannot bind (the K largest of E softmax values sum to >= K/E). It has
 * no logit normalisation (λ != 0) and no capacity limit: it routes dropless, like moec with capacity_factor 0.
 */
#include "io/gguf_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"
#include "io/gguf.h"
#include "io/model_dir.h"

int moec_gguf_wtype_parse(const char *s, moec_gguf_wtype *t) {
    static const char *names[] = {"f32", "f16", "bf16", "q8_0"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) { *t = (moec_gguf_wtype)i; return 0; }
    return -1;
}

/* llama.cpp's llama_ftype numbers for general.file_type. */
static uint32_t file_type(moec_gguf_wtype t) {
    switch (t) { case MOEC_GGUF_F16: return 1; case MOEC_GGUF_Q8_0: return 7; case MOEC_GGUF_BF16: return 32; default: return 0; }
}

/* Rows of one projection, Hugging Face order -> llama.cpp order, per head: out row h*Dh + 2j + i = in row
 * h*Dh + i*Dh/2 + j (i in {0,1}, j < Dh/2). inverse = 1 maps back. Rows of row_bytes bytes (any element type). */
void moec_gguf_permute_rows(const void *in, void *out, int n_head, int dh, size_t row_bytes, int inverse) {
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < dh / 2; j++) {
                int64_t hf = (int64_t)h * dh + i * (dh / 2) + j, gg = (int64_t)h * dh + 2 * j + i;
                const char *src = (const char *)in + (size_t)(inverse ? gg : hf) * row_bytes;
                memcpy((char *)out + (size_t)(inverse ? hf : gg) * row_bytes, src, row_bytes);
            }
}

/* fp32 rows of cols values (cols = 1 for a bias). */
static void permute_rows(const float *in, float *out, int n_head, int dh, int64_t cols, int inverse) {
    moec_gguf_permute_rows(in, out, n_head, dh, (size_t)cols * sizeof(float), inverse);
}

/* One GGUF tensor: n_exp stacked slices of [rows, cols] (PyTorch order), slice e at base + e*stride;
 * perm_heads > 0 permutes each slice's rows for RoPE. */
typedef struct {
    char name[64];
    moec_ggml_type type;
    const float *base;
    int64_t rows, cols, stride;
    int n_exp, perm_heads, dh, is_vec;
} out_tensor;

typedef struct {
    out_tensor *t;
    int n, cap;
    moec_gguf_wtype wt;
    int fell_back;
} out_list;

static moec_status add(out_list *l, const char *name, const float *base, int64_t rows, int64_t cols, int n_exp,
                       int64_t stride, int keep_f32, int perm_heads, int dh) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        out_tensor *q = realloc(l->t, (size_t)cap * sizeof *q);
        if (!q) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory listing GGUF tensors");
        l->t = q;
        l->cap = cap;
    }
    out_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    static const moec_ggml_type map[4] = {MOEC_GGML_F32, MOEC_GGML_F16, MOEC_GGML_BF16, MOEC_GGML_Q8_0};
    t->type = keep_f32 ? MOEC_GGML_F32 : map[l->wt];
    if (t->type == MOEC_GGML_Q8_0 && cols % MOEC_Q8_0_BLOCK != 0) {
        t->type = MOEC_GGML_F16; /* as convert_hf_to_gguf.py does for rows that are not whole blocks */
        l->fell_back++;
    }
    t->base = base, t->rows = rows, t->cols = cols, t->n_exp = n_exp, t->stride = stride;
    t->perm_heads = perm_heads, t->dh = dh, t->is_vec = keep_f32 && rows == 1 && n_exp == 1;
    return MOEC_OK;
}

static moec_status list_tensors(out_list *l, const moec_config *c, const moec_weights *w) {
    const int64_t D = c->hidden, V = c->vocab_size, Dh = c->head_dim, H = c->n_heads, G = c->n_kv_heads;
    char n[64];
    MOEC_TRY(add(l, "token_embd.weight", w->tok_emb, V, D, 1, 0, 0, 0, 0));
    for (int i = 0; i < c->n_layers; i++) {
        const moec_layer_view *y = &w->layers[i];
#define NM(fmt) (snprintf(n, sizeof n, fmt, i), n)
        MOEC_TRY(add(l, NM("blk.%d.attn_norm.weight"), y->attn_norm, 1, D, 1, 0, 1, 0, 0));
        MOEC_TRY(add(l, NM("blk.%d.attn_q.weight"), y->wq, H * Dh, D, 1, 0, 0, (int)H, (int)Dh));
        MOEC_TRY(add(l, NM("blk.%d.attn_k.weight"), y->wk, G * Dh, D, 1, 0, 0, (int)G, (int)Dh));
        MOEC_TRY(add(l, NM("blk.%d.attn_v.weight"), y->wv, G * Dh, D, 1, 0, 0, 0, 0));
        if (c->qkv_bias) {
            MOEC_TRY(add(l, NM("blk.%d.attn_q.bias"), y->bq, 1, H * Dh, 1, 0, 1, (int)H, (int)Dh));
            MOEC_TRY(add(l, NM("blk.%d.attn_k.bias"), y->bk, 1, G * Dh, 1, 0, 1, (int)G, (int)Dh));
            MOEC_TRY(add(l, NM("blk.%d.attn_v.bias"), y->bv, 1, G * Dh, 1, 0, 1, 0, 0));
        }
        MOEC_TRY(add(l, NM("blk.%d.attn_output.weight"), y->wo, D, H * Dh, 1, 0, 0, 0, 0));
        MOEC_TRY(add(l, NM("blk.%d.ffn_norm.weight"), y->ffn_norm, 1, D, 1, 0, 1, 0, 0));
        if (c->is_moe_layer[i]) {
            const int E = c->moe.n_experts;
            const int64_t F = c->moe.ffn_dim;
            MOEC_TRY(add(l, NM("blk.%d.ffn_gate_inp.weight"), y->router, E, D, 1, 0, 1, 0, 0));
            MOEC_TRY(add(l, NM("blk.%d.ffn_gate_exps.weight"), moec_expert_w1(y, 0), F, D, E, y->expert_stride, 0, 0, 0));
            MOEC_TRY(add(l, NM("blk.%d.ffn_down_exps.weight"), moec_expert_w2(y, c, 0), D, F, E, y->expert_stride, 0, 0, 0));
            MOEC_TRY(add(l, NM("blk.%d.ffn_up_exps.weight"), moec_expert_w3(y, c, 0), F, D, E, y->expert_stride, 0, 0, 0));
        } else {
            MOEC_TRY(add(l, NM("blk.%d.ffn_gate.weight"), y->w1, c->ffn_dim, D, 1, 0, 0, 0, 0));
            MOEC_TRY(add(l, NM("blk.%d.ffn_down.weight"), y->w2, D, c->ffn_dim, 1, 0, 0, 0, 0));
            MOEC_TRY(add(l, NM("blk.%d.ffn_up.weight"), y->w3, c->ffn_dim, D, 1, 0, 0, 0, 0));
        }
#undef NM
    }
    MOEC_TRY(add(l, "output_norm.weight", w->final_norm, 1, D, 1, 0, 1, 0, 0));
    if (!c->tie_embeddings) MOEC_TRY(add(l, "output.weight", w->lm_head, V, D, 1, 0, 0, 0, 0));
    return MOEC_OK;
}

static moec_status put_hparams(moec_gguf_writer *w, const moec_config *c, const moec_tokenizer *tok, moec_gguf_wtype wt,
                               const char *name) {
    const int moe = c->moe.n_experts > 0;
    MOEC_TRY(moec_gguf_writer_kv_str(w, "general.architecture", "llama"));
    MOEC_TRY(moec_gguf_writer_kv_str(w, "general.type", "model"));
    MOEC_TRY(moec_gguf_writer_kv_str(w, "general.name", name));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.block_count", (uint32_t)c->n_layers));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.context_length", (uint32_t)c->max_seq));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.embedding_length", (uint32_t)c->hidden));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.feed_forward_length", (uint32_t)(moe ? c->moe.ffn_dim : c->ffn_dim)));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads));
    MOEC_TRY(moec_gguf_writer_kv_f32(w, "llama.rope.freq_base", c->rope_theta));
    MOEC_TRY(moec_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim));
    if (moe) {
        MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.expert_count", (uint32_t)c->moe.n_experts));
        MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.expert_used_count", (uint32_t)c->moe.top_k));
    }
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "general.file_type", file_type(wt)));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size));
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim));
    if (moe) {
        const moec_moe_config *m = &c->moe;
        MOEC_TRY(moec_gguf_writer_kv_f32(w, "moec.gate_lambda", m->gate_lambda));
        MOEC_TRY(moec_gguf_writer_kv_f32(w, "moec.capacity_factor", m->capacity_factor));
        MOEC_TRY(moec_gguf_writer_kv_str(w, "moec.aux_loss_type", m->aux_kind == MOEC_AUX_SWITCH ? "switch" : "sqdev"));
        MOEC_TRY(moec_gguf_writer_kv_f32(w, "moec.z_loss_coef", m->z_loss_coef));
        MOEC_TRY(moec_gguf_writer_kv_bool(w, "moec.adaptive_alpha", m->adaptive_alpha));
        MOEC_TRY(moec_gguf_writer_kv_f32(w, "moec.alpha_fixed", m->alpha_fixed));
        MOEC_TRY(moec_gguf_writer_kv_f32(w, "moec.alpha_xi", m->alpha_xi));
        MOEC_TRY(moec_gguf_writer_kv_f32(w, "moec.alpha_max", m->alpha_max));
        MOEC_TRY(moec_gguf_writer_kv_f32(w, "moec.alpha_beta", m->alpha_beta));
    }
    MOEC_TRY(moec_gguf_writer_kv_u32(w, "general.quantization_version", 2)); /* ggml's quant format version */
    if (tok) return moec_gguf_put_tokenizer(w, tok, c, c->vocab_size);
    /* No tokenizer.json: llama.cpp still needs the key; "none" is its no-vocabulary model. */
    MOEC_TRY(moec_gguf_writer_kv_str(w, "tokenizer.ggml.model", "none"));
    if (c->bos_id >= 0) MOEC_TRY(moec_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id));
    if (c->eos_id >= 0) MOEC_TRY(moec_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id));
    return MOEC_OK;
}

static moec_status put_data(moec_gguf_writer *w, const out_tensor *t) {
    float *tmp = NULL;
    if (t->perm_heads) {
        tmp = malloc((size_t)(t->rows * t->cols) * sizeof *tmp);
        if (!tmp) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory permuting %s", t->name);
        /* a bias is one "row" of rows*cols values in GGUF terms; permute it as rows of 1 */
        int64_t cols = t->rows == 1 ? 1 : t->cols;
        permute_rows(t->base, tmp, t->perm_heads, t->dh, cols, 0);
        moec_status s = moec_gguf_writer_put_f32(w, tmp, t->rows * t->cols);
        free(tmp);
        return s;
    }
    for (int e = 0; e < t->n_exp; e++) MOEC_TRY(moec_gguf_writer_put_f32(w, t->base + e * t->stride, t->rows * t->cols));
    return MOEC_OK;
}

static moec_status export_model(const char *dir, const char *out, const moec_config *c, float *params,
                                const moec_param_table *tab, const moec_tokenizer *tok, moec_gguf_wtype wt,
                                int allow_inexact) {
    const int n_moe = moec_config_n_moe_layers(c);
    if (n_moe && n_moe != c->n_layers)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: %d of %d layers are MoE; llama.cpp's llama architecture makes every "
                        "layer MoE when expert_count > 0, so a mixed model cannot be exported", dir, n_moe, c->n_layers);
    if (c->head_dim % 2 != 0) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: head_dim %d is odd (RoPE needs pairs)", dir, c->head_dim);
    if (n_moe && c->moe.gate_lambda != 0.0f) {
        if (!allow_inexact)
            return MOEC_ERR(MOEC_ERR_CONFIG, "%s: gate_lambda = %g (gating logit normalisation) has no llama.cpp "
                            "equivalent: llama.cpp would route differently; pass allow-inexact to export anyway", dir,
                            (double)c->moe.gate_lambda);
        fprintf(stderr, "moec: warning: %s: gate_lambda = %g is dropped for llama.cpp, which routes by the plain "
                "softmax of the router logits; its outputs will differ from moec's (kept in moec.gate_lambda)\n", dir,
                (double)c->moe.gate_lambda);
    }
    if (n_moe && c->moe.capacity_factor > 0.0f)
        fprintf(stderr, "moec: note: llama.cpp routes without a capacity limit (capacity_factor %g is kept in "
                "moec.capacity_factor for import)\n", (double)c->moe.capacity_factor);
    if (tok && moec_tokenizer_vocab_size(tok) > c->vocab_size)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: tokenizer.json has %d tokens but the model only %d embeddings", dir,
                        moec_tokenizer_vocab_size(tok), c->vocab_size);
    moec_weights wv;
    moec_weights_bind(&wv, tab, c, params);
    out_list l = {.wt = wt};
    moec_gguf_writer *w = NULL;
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    moec_status s = list_tensors(&l, c, &wv);
    if (s == MOEC_OK) s = moec_gguf_writer_begin(&w, out);
    if (s == MOEC_OK) s = put_hparams(w, c, tok, wt, base);
    for (int i = 0; s == MOEC_OK && i < l.n; i++) {
        const out_tensor *t = &l.t[i];
        int64_t ne[3] = {t->cols, t->rows, t->n_exp};
        /* norms and biases are 1-D (ne = {cols}), matrices 2-D, stacked experts 3-D */
        s = moec_gguf_writer_add_tensor(w, t->name, t->type, t->is_vec ? 1 : (t->n_exp > 1 ? 3 : 2), ne);
    }
    for (int i = 0; s == MOEC_OK && i < l.n; i++) s = put_data(w, &l.t[i]);
    if (s == MOEC_OK && l.fell_back)
        fprintf(stderr, "moec: note: %d matrices have rows that are not whole Q8_0 blocks of 32 and were written as F16\n",
                l.fell_back);
    free(l.t);
    if (s != MOEC_OK) {
        moec_gguf_writer_abort(w);
        return s;
    }
    return moec_gguf_writer_finish(w);
}

moec_status moec_gguf_export(const char *model_dir, const char *out_path, moec_gguf_wtype type, int allow_inexact) {
    if ((unsigned)type > MOEC_GGUF_Q8_0) return MOEC_ERR(MOEC_ERR_ARG, "unknown GGUF weight type %d", (int)type);
    moec_config cfg;
    moec_param_table tab;
    float *params;
    MOEC_TRY(moec_model_dir_load(model_dir, &cfg, &tab, &params));
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model_dir);
    moec_tokenizer *tok = NULL;
    moec_status s = moec_path_exists(tpath) ? moec_tokenizer_load_json(&tok, tpath) : MOEC_OK;
    if (s == MOEC_OK) s = export_model(model_dir, out_path, &cfg, params, &tab, tok, type, allow_inexact);
    moec_tokenizer_free(tok);
    moec_free(params);
    moec_param_table_free(&tab);
    return s;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    const moec_gguf_file *f;
    const char *path;
    const char *arch;
    char key[128];
} ctx;

static const char *K(ctx *x, const char *suffix) {
    snprintf(x->key, sizeof x->key, "%s.%s", x->arch, suffix);
    return x->key;
}

/* Optional integer hyper-parameter: *v unchanged when absent. */
static moec_status opt_u32(ctx *x, const char *suffix, int *v) {
    if (!moec_gguf_find_kv(x->f, K(x, suffix))) return MOEC_OK;
    uint32_t u;
    MOEC_TRY(moec_gguf_get_u32(x->f, x->key, &u));
    if (u > (uint32_t)INT32_MAX) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %s = %u is too large", x->path, x->key, u);
    *v = (int)u;
    return MOEC_OK;
}
static moec_status req_u32(ctx *x, const char *suffix, int *v) {
    if (!moec_gguf_find_kv(x->f, K(x, suffix))) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key %s is missing", x->path, x->key);
    return opt_u32(x, suffix, v);
}
static moec_status opt_f32(const moec_gguf_file *f, const char *key, float *v) {
    return moec_gguf_find_kv(f, key) ? moec_gguf_get_f32(f, key, v) : MOEC_OK;
}

/* Tensor name with exactly the given ne (n_dims = nd); NULL and *s set if absent (when required) or misshapen. */
static const moec_gguf_tensor *want(ctx *x, const char *name, int nd, int64_t n0, int64_t n1, int64_t n2, int required,
                                    moec_status *s) {
    const moec_gguf_tensor *t = moec_gguf_find_tensor(x->f, name);
    if (!t) {
        if (required) *s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor %s is missing", x->path, name);
        return NULL;
    }
    int64_t ne[3] = {n0, n1, n2};
    int ok = t->n_dims == nd;
    for (int d = 0; d < nd && ok; d++) ok = t->ne[d] == ne[d];
    if (!ok) {
        *s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor %s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 "] (%d dims); "
                      "expected [%" PRId64 ", %" PRId64 ", %" PRId64 "] (%d dims)", x->path, name, t->ne[0], t->ne[1],
                      t->ne[2], t->n_dims, n0, n1, n2, nd);
        return NULL;
    }
    return t;
}

static moec_status read_config(ctx *x, moec_config *c) {
    moec_config_defaults(c); /* router defaults: λ = 0, dropless, as llama.cpp routes */
    int n_vocab = 0, ff = 0, rope_dim = 0, n_exp = 0, n_used = 0, kl = 0, vl = 0;
    MOEC_TRY(req_u32(x, "block_count", &c->n_layers));
    MOEC_TRY(req_u32(x, "embedding_length", &c->hidden));
    MOEC_TRY(req_u32(x, "feed_forward_length", &ff));
    MOEC_TRY(req_u32(x, "attention.head_count", &c->n_heads));
    c->n_kv_heads = c->n_heads;
    MOEC_TRY(opt_u32(x, "attention.head_count_kv", &c->n_kv_heads));
    c->max_seq = 2048;
    MOEC_TRY(opt_u32(x, "context_length", &c->max_seq));
    MOEC_TRY(opt_f32(x->f, K(x, "rope.freq_base"), &c->rope_theta));
    MOEC_TRY(opt_f32(x->f, K(x, "attention.layer_norm_rms_epsilon"), &c->norm_eps));
    if (c->n_heads <= 0 || c->hidden % c->n_heads)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %d heads do not divide embedding_length %d", x->path, c->n_heads, c->hidden);
    kl = vl = c->hidden / c->n_heads;
    MOEC_TRY(opt_u32(x, "attention.key_length", &kl));
    MOEC_TRY(opt_u32(x, "attention.value_length", &vl));
    if (kl != vl) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: key_length %d != value_length %d", x->path, kl, vl);
    c->head_dim = kl;
    rope_dim = kl;
    MOEC_TRY(opt_u32(x, "rope.dimension_count", &rope_dim));
    if (rope_dim != kl)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: RoPE on %d of %d head dims (partial rotary) is not supported", x->path,
                        rope_dim, kl);
    const moec_gguf_kv *sc = moec_gguf_find_kv(x->f, K(x, "rope.scaling.type"));
    if (sc) {
        size_t n;
        const char *v = moec_gguf_kv_str(x->f, sc, &n);
        if (!v || !(n == 4 && !memcmp(v, "none", 4)))
            return MOEC_ERR(MOEC_ERR_CONFIG, "%s: RoPE scaling (%s) is not supported", x->path, x->key);
    }
    if (moec_gguf_find_tensor(x->f, "rope_freqs.weight"))
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: rope_freqs.weight (Llama 3.1 RoPE scaling) is not supported", x->path);
    MOEC_TRY(opt_u32(x, "expert_count", &n_exp));
    MOEC_TRY(opt_u32(x, "expert_used_count", &n_used));
    const moec_gguf_tensor *emb = moec_gguf_find_tensor(x->f, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || emb->ne[0] != c->hidden || emb->ne[1] > INT32_MAX)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: token_embd.weight is missing or not [vocab, %d]", x->path, c->hidden);
    n_vocab = (int)emb->ne[1];
    c->vocab_size = n_vocab;
    c->tie_embeddings = moec_gguf_find_tensor(x->f, "output.weight") == NULL;
    c->qkv_bias = moec_gguf_find_tensor(x->f, "blk.0.attn_q.bias") != NULL;
    if (n_exp > 0) {
        c->moe.n_experts = n_exp;
        c->moe.top_k = n_used;
        c->moe.ffn_dim = ff;
        c->ffn_dim = ff;
        for (int l = 0; l < c->n_layers && l < MOEC_MAX_LAYERS; l++) c->is_moe_layer[l] = 1;
        moec_moe_config *m = &c->moe;
        MOEC_TRY(opt_f32(x->f, "moec.gate_lambda", &m->gate_lambda));
        MOEC_TRY(opt_f32(x->f, "moec.capacity_factor", &m->capacity_factor));
        MOEC_TRY(opt_f32(x->f, "moec.z_loss_coef", &m->z_loss_coef));
        MOEC_TRY(opt_f32(x->f, "moec.alpha_fixed", &m->alpha_fixed));
        MOEC_TRY(opt_f32(x->f, "moec.alpha_xi", &m->alpha_xi));
        MOEC_TRY(opt_f32(x->f, "moec.alpha_max", &m->alpha_max));
        MOEC_TRY(opt_f32(x->f, "moec.alpha_beta", &m->alpha_beta));
        if (moec_gguf_find_kv(x->f, "moec.adaptive_alpha")) MOEC_TRY(moec_gguf_get_bool(x->f, "moec.adaptive_alpha", &m->adaptive_alpha));
        const char *s;
        size_t n;
        if (moec_gguf_find_kv(x->f, "moec.aux_loss_type") && moec_gguf_get_str(x->f, "moec.aux_loss_type", &s, &n) == MOEC_OK)
            m->aux_kind = n == 6 && !memcmp(s, "switch", 6) ? MOEC_AUX_SWITCH : MOEC_AUX_SQDEV;
    } else {
        c->ffn_dim = ff;
    }
    uint32_t id;
    if (moec_gguf_find_kv(x->f, "tokenizer.ggml.bos_token_id") &&
        moec_gguf_get_u32(x->f, "tokenizer.ggml.bos_token_id", &id) == MOEC_OK && id < (uint32_t)n_vocab)
        c->bos_id = (int)id;
    if (moec_gguf_find_kv(x->f, "tokenizer.ggml.eos_token_id") &&
        moec_gguf_get_u32(x->f, "tokenizer.ggml.eos_token_id", &id) == MOEC_OK && id < (uint32_t)n_vocab)
        c->eos_id = (int)id;
    return moec_config_validate(c);
}

/* Read tensor t (PyTorch [n_exp][rows][cols]) into dst slices (stride floats apart), un-permuting rows. */
static moec_status fill(const moec_gguf_tensor *t, float *dst, int64_t rows, int64_t cols, int n_exp, int64_t stride,
                        int perm_heads, int dh, int *used) {
    const int64_t n = rows * cols * n_exp;
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory reading %s", t->name);
    moec_status s = moec_gguf_tensor_read_f32(t, tmp, n);
    for (int e = 0; s == MOEC_OK && e < n_exp; e++) {
        const float *src = tmp + (int64_t)e * rows * cols;
        if (perm_heads) permute_rows(src, dst + e * stride, perm_heads, dh, rows == 1 ? 1 : cols, 1);
        else memcpy(dst + e * stride, src, (size_t)(rows * cols) * sizeof(float));
    }
    free(tmp);
    (*used)++;
    return s;
}

static moec_status read_weights(ctx *x, const moec_config *c, const moec_param_table *tab, float *params) {
    moec_weights w;
    moec_weights_bind(&w, tab, c, params);
    /* "llama"/"mistral" files hold q/k in llama.cpp's interleaved RoPE order; "qwen2" keeps Hugging Face's (NEOX). */
    const int perm = strcmp(x->arch, "qwen2") != 0;
    const int64_t D = c->hidden, V = c->vocab_size, Dh = c->head_dim, H = c->n_heads, G = c->n_kv_heads;
    moec_status s = MOEC_OK;
    int used = 0;
    char n[64];
    const moec_gguf_tensor *t;
#define GET(name, nd, a, b, e) do { t = want(x, name, nd, a, b, e, 1, &s); if (!t) return s; } while (0)
    GET("token_embd.weight", 2, D, V, 1);
    MOEC_TRY(fill(t, w.tok_emb, V, D, 1, 0, 0, 0, &used));
    GET("output_norm.weight", 1, D, 1, 1);
    MOEC_TRY(fill(t, w.final_norm, 1, D, 1, 0, 0, 0, &used));
    if (!c->tie_embeddings) {
        GET("output.weight", 2, D, V, 1);
        MOEC_TRY(fill(t, w.lm_head, V, D, 1, 0, 0, 0, &used));
    }
    for (int i = 0; i < c->n_layers; i++) {
        const moec_layer_view *y = &w.layers[i];
#define NM(fmt) (snprintf(n, sizeof n, fmt, i), n)
        GET(NM("blk.%d.attn_norm.weight"), 1, D, 1, 1);
        MOEC_TRY(fill(t, y->attn_norm, 1, D, 1, 0, 0, 0, &used));
        GET(NM("blk.%d.attn_q.weight"), 2, D, H * Dh, 1);
        MOEC_TRY(fill(t, y->wq, H * Dh, D, 1, 0, perm ? (int)H : 0, (int)Dh, &used));
        GET(NM("blk.%d.attn_k.weight"), 2, D, G * Dh, 1);
        MOEC_TRY(fill(t, y->wk, G * Dh, D, 1, 0, perm ? (int)G : 0, (int)Dh, &used));
        GET(NM("blk.%d.attn_v.weight"), 2, D, G * Dh, 1);
        MOEC_TRY(fill(t, y->wv, G * Dh, D, 1, 0, 0, 0, &used));
        if (c->qkv_bias) {
            GET(NM("blk.%d.attn_q.bias"), 1, H * Dh, 1, 1);
            MOEC_TRY(fill(t, y->bq, 1, H * Dh, 1, 0, perm ? (int)H : 0, (int)Dh, &used));
            GET(NM("blk.%d.attn_k.bias"), 1, G * Dh, 1, 1);
            MOEC_TRY(fill(t, y->bk, 1, G * Dh, 1, 0, perm ? (int)G : 0, (int)Dh, &used));
            GET(NM("blk.%d.attn_v.bias"), 1, G * Dh, 1, 1);
            MOEC_TRY(fill(t, y->bv, 1, G * Dh, 1, 0, 0, 0, &used));
        }
        GET(NM("blk.%d.attn_output.weight"), 2, H * Dh, D, 1);
        MOEC_TRY(fill(t, y->wo, D, H * Dh, 1, 0, 0, 0, &used));
        GET(NM("blk.%d.ffn_norm.weight"), 1, D, 1, 1);
        MOEC_TRY(fill(t, y->ffn_norm, 1, D, 1, 0, 0, 0, &used));
        if (c->is_moe_layer[i]) {
            const int E = c->moe.n_experts;
            const int64_t F = c->moe.ffn_dim;
            GET(NM("blk.%d.ffn_gate_inp.weight"), 2, D, E, 1);
            MOEC_TRY(fill(t, y->router, E, D, 1, 0, 0, 0, &used));
            GET(NM("blk.%d.ffn_gate_exps.weight"), 3, D, F, E);
            MOEC_TRY(fill(t, moec_expert_w1(y, 0), F, D, E, y->expert_stride, 0, 0, &used));
            GET(NM("blk.%d.ffn_up_exps.weight"), 3, D, F, E);
            MOEC_TRY(fill(t, moec_expert_w3(y, c, 0), F, D, E, y->expert_stride, 0, 0, &used));
            GET(NM("blk.%d.ffn_down_exps.weight"), 3, F, D, E);
            MOEC_TRY(fill(t, moec_expert_w2(y, c, 0), D, F, E, y->expert_stride, 0, 0, &used));
        } else {
            const int64_t F = c->ffn_dim;
            GET(NM("blk.%d.ffn_gate.weight"), 2, D, F, 1);
            MOEC_TRY(fill(t, y->w1, F, D, 1, 0, 0, 0, &used));
            GET(NM("blk.%d.ffn_up.weight"), 2, D, F, 1);
            MOEC_TRY(fill(t, y->w3, F, D, 1, 0, 0, 0, &used));
            GET(NM("blk.%d.ffn_down.weight"), 2, F, D, 1);
            MOEC_TRY(fill(t, y->w2, D, F, 1, 0, 0, 0, &used));
        }
#undef NM
    }
#undef GET
    if (used != moec_gguf_tensor_count(x->f)) {
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %" PRId64 " tensors, of which moec's layout uses %d; the others "
                        "(e.g. fused QKV, shared experts, rope factors) are not supported", x->path,
                        moec_gguf_tensor_count(x->f), used);
    }
    return MOEC_OK;
}

/* x->arch from general.architecture (one moec reads), pointing at the caller's buffer of 8 bytes. */
static moec_status read_arch(ctx *x, char archbuf[8]) {
    const char *arch;
    size_t an;
    MOEC_TRY(moec_gguf_get_str(x->f, "general.architecture", &arch, &an));
    if ((an == 5 && !memcmp(arch, "llama", 5)) || (an == 5 && !memcmp(arch, "qwen2", 5)) ||
        (an == 7 && !memcmp(arch, "mistral", 7))) {
        memcpy(archbuf, arch, an);
        archbuf[an] = '\0';
        x->arch = archbuf;
        return MOEC_OK;
    }
    return MOEC_ERR(MOEC_ERR_CONFIG, "%s: architecture '%.*s' is not supported (llama, mistral, qwen2)", x->path,
                    (int)(an < 64 ? an : 64), arch);
}

moec_status moec_gguf_read_config(const moec_gguf_file *f, const char *path, moec_config *cfg, int *permuted_qk) {
    ctx x = {.f = f, .path = path};
    char archbuf[8];
    MOEC_TRY(read_arch(&x, archbuf));
    *permuted_qk = strcmp(x.arch, "qwen2") != 0;
    return read_config(&x, cfg);
}

moec_status moec_gguf_read_tokenizer(const moec_gguf_file *f, const char *path, moec_tokenizer **tok) {
    *tok = NULL;
    char *json = NULL;
    const char *why = NULL;
    moec_status s = moec_gguf_tokenizer_json(f, &json, &why);
    if (s == MOEC_OK && json) s = moec_tokenizer_load_json_text(tok, json, strlen(json), path);
    if (s == MOEC_OK && !json) fprintf(stderr, "moec: note: %s: no tokenizer imported: %s\n", path, why);
    free(json);
    return s;
}

moec_status moec_gguf_load(const char *path, moec_config *cfg, moec_param_table *table, float **params,
                           moec_tokenizer **tok) {
    *params = NULL;
    if (tok) *tok = NULL;
    memset(table, 0, sizeof *table);
    moec_gguf_file *f;
    MOEC_TRY(moec_gguf_open(&f, path));
    ctx x = {.f = f, .path = path};
    char archbuf[8];
    moec_status s = read_arch(&x, archbuf);
    moec_config c;
    if (s == MOEC_OK) s = read_config(&x, &c);
    if (s == MOEC_OK) s = moec_param_table_build(table, &c);
    if (s == MOEC_OK && !(*params = moec_alloc_floats(table->total)))
        s = MOEC_ERR(MOEC_ERR_NOMEM, "%s: cannot allocate %" PRId64 " floats", path, table->total);
    if (s == MOEC_OK) s = read_weights(&x, &c, table, *params);
    if (s == MOEC_OK && tok) s = moec_gguf_read_tokenizer(f, path, tok);
    moec_gguf_close(f);
    if (s != MOEC_OK) {
        moec_free(*params);
        *params = NULL;
        moec_param_table_free(table);
        if (tok) { moec_tokenizer_free(*tok); *tok = NULL; }
        return s;
    }
    *cfg = c;
    return MOEC_OK;
}

moec_status moec_gguf_import(const char *path, const char *out_dir) {
    moec_config cfg;
    moec_param_table tab;
    float *params;
    moec_tokenizer *tok = NULL;
    MOEC_TRY(moec_gguf_load(path, &cfg, &tab, &params, &tok));
    const char *meta[2] = {"source", "gguf"};
    moec_status s = moec_model_dir_save(out_dir, &cfg, &tab, params, meta, 1);
    moec_free(params);
    moec_param_table_free(&tab);
    if (s == MOEC_OK && tok) {
        char tp[4096];
        snprintf(tp, sizeof tp, "%s/tokenizer.json", out_dir);
        /* SentencePiece-style tokenizers are not written by moec_tokenizer_save_json: write the JSON we built. */
        if (moec_tokenizer_kind_of(tok) == MOEC_TOK_KIND_SENTENCEPIECE) {
            moec_gguf_file *f;
            s = moec_gguf_open(&f, path);
            char *json = NULL;
            const char *why;
            if (s == MOEC_OK) s = moec_gguf_tokenizer_json(f, &json, &why);
            if (s == MOEC_OK && json) s = moec_write_file_atomic(tp, json, strlen(json));
            free(json);
            moec_gguf_close(f);
        } else {
            s = moec_tokenizer_save_json(tok, tp);
        }
    }
    moec_tokenizer_free(tok);
    return s;
}
