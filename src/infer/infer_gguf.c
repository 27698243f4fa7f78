/* infer_gguf.c — a llama-family GGUF file as a moec_infer_model, its tensors used in place (see infer_model.h).
 *
 * The walk below visits the tensors in the order of moec's parameter table (model/params.c) and produces one
 * matrix per table entry, which moec_infer_model_bind then checks against the table's shapes and assigns. The
 * GGUF reader (io/gguf.c) has already checked every tensor's type, size, alignment and bounds in the file; here
 * each tensor must also have the shape the configuration implies, and every tensor in the file must be used (the
 * same rules as moec_gguf_load, which converts everything to fp32 instead).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer_model.h"
#include "io/gguf.h"
#include "io/gguf_model.h"

typedef struct {
    moec_infer_model *m;
    const moec_gguf_file *f;
    const char *path;
    int permuted; /* q/k rows in llama.cpp's interleaved RoPE order */
    int used;     /* tensors consumed */
    moec_qmat *all;
    int n; /* entries of all filled */
} walk;

/* The qmat type that reads a ggml type in place; -1 if none does. */
static int qtype_of(moec_ggml_type t) {
    switch (t) {
    case MOEC_GGML_F32: return MOEC_QT_F32;
    case MOEC_GGML_F16: return MOEC_QT_F16;
    case MOEC_GGML_BF16: return MOEC_QT_BF16;
    default:
        for (int q = 0; q < MOEC_QT_COUNT; q++) /* the block types: Q8_0, Q4_0 .. Q6_K */
            if (moec_qtype_ggml((moec_qtype)q) == (int)t) return q;
        return -1;
    }
}

/* Tensor `name` with nd dims and ne = {cols, rows, n_exp} (as far as nd goes), or an error naming what is wrong. */
static moec_status find(walk *w, const char *name, int nd, int64_t rows, int64_t cols, int n_exp,
                        const moec_gguf_tensor **out) {
    const moec_gguf_tensor *t = moec_gguf_find_tensor(w->f, name);
    if (!t) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor %s is missing", w->path, name);
    const int ok = t->n_dims == nd && t->ne[0] == cols && (nd < 2 || t->ne[1] == rows) && (nd < 3 || t->ne[2] == n_exp);
    if (!ok)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor %s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 "] (%d dims); "
                        "expected [%" PRId64 ", %" PRId64 ", %d]", w->path, name, t->ne[0], t->ne[1], t->ne[2],
                        t->n_dims, cols, rows, n_exp ? n_exp : 1);
    w->used++;
    *out = t;
    return MOEC_OK;
}

/* An owned fp32 copy of t (n values), rows un-permuted when perm_heads > 0. */
static moec_status f32_copy(walk *w, const moec_gguf_tensor *t, int64_t n, int64_t cols, int perm_heads, int dh,
                            float **out) {
    float *buf = moec_alloc_floats(n), *tmp = perm_heads ? moec_alloc_floats(n) : NULL;
    moec_status s = buf && (tmp || !perm_heads) ? MOEC_OK
                                                : MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory for %s", w->path, t->name);
    if (s == MOEC_OK) s = moec_gguf_tensor_read_f32(t, perm_heads ? tmp : buf, n);
    if (s == MOEC_OK && perm_heads) moec_gguf_permute_rows(tmp, buf, perm_heads, dh, (size_t)cols * sizeof(float), 1);
    moec_free(tmp);
    if (s != MOEC_OK) {
        moec_free(buf);
        return s;
    }
    *out = buf;
    return moec_infer_model_keep(w->m, buf);
}

/* Slices e < n_exp of matrix tensor `name` [n_exp][rows, cols] (n_exp == 0: a 2-D tensor, one slice) into
 * out[e · out_step]: in place when a kernel reads its type, else an fp32 copy; perm_heads > 0 (q/k of a permuted
 * file): a copy with the rows in Hugging Face's order, in the same type. */
static moec_status mats(walk *w, const char *name, int64_t rows, int64_t cols, int n_exp, int perm_heads, int dh,
                        moec_qmat *out, int out_step) {
    const moec_gguf_tensor *t;
    MOEC_TRY(find(w, name, n_exp ? 3 : 2, rows, cols, n_exp, &t));
    int qt = qtype_of(t->type);
    const size_t es = qt >= 0 ? moec_qtype_size((moec_qtype)qt) : 0, align = qt == MOEC_QT_Q8_0 ? 2 : es ? es : 1;
    if (qt >= 0 && (uintptr_t)t->data % align) qt = -1; /* misaligned (a file alignment below 4) */
    const int64_t per = rows * cols, slices = n_exp ? n_exp : 1;
    const char *base = t->data;
    float *f32 = NULL;
    if (qt < 0) { /* a type no kernel reads: fp32 */
        MOEC_TRY(f32_copy(w, t, per * slices, cols, perm_heads, dh, &f32));
    } else if (perm_heads) {
        const size_t row_bytes = (size_t)moec_qtype_row_bytes((moec_qtype)qt, cols);
        void *buf = malloc((size_t)rows * row_bytes);
        if (!buf) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory for %s", w->path, name);
        moec_gguf_permute_rows(t->data, buf, perm_heads, dh, row_bytes, 1);
        MOEC_TRY(moec_infer_model_keep(w->m, buf));
        base = buf;
    }
    for (int64_t e = 0; e < slices; e++) {
        moec_qmat *q = &out[e * out_step];
        if (f32) {
            *q = (moec_qmat){.type = MOEC_QT_F32, .rows = rows, .cols = cols, .data = f32 + e * per};
        } else {
            const size_t bytes = (size_t)(rows * moec_qtype_row_bytes((moec_qtype)qt, cols));
            *q = (moec_qmat){.type = (moec_qtype)qt, .rows = rows, .cols = cols, .data = base + e * bytes};
            if (!perm_heads) w->m->mapped_bytes += (int64_t)bytes;
        }
        w->m->weight_bytes += rows * moec_qtype_row_bytes(q->type, cols);
        MOEC_TRY(moec_qmat_check(q));
    }
    return MOEC_OK;
}

static moec_status next_mat(walk *w, const char *name, int64_t rows, int64_t cols, int perm_heads, int dh) {
    MOEC_TRY(mats(w, name, rows, cols, 0, perm_heads, dh, &w->all[w->n], 1));
    w->n++;
    return MOEC_OK;
}

/* A 1-D tensor of n values as fp32: in place when it is F32, else a copy (rows un-permuted for a q/k bias). */
static moec_status next_vec(walk *w, const char *name, int64_t n, int perm_heads, int dh) {
    const moec_gguf_tensor *t;
    MOEC_TRY(find(w, name, 1, 1, n, 0, &t));
    const float *v = t->data;
    if (t->type != MOEC_GGML_F32 || (uintptr_t)t->data % 4 || perm_heads) {
        float *c;
        MOEC_TRY(f32_copy(w, t, n, 1, perm_heads, dh, &c));
        v = c;
    } else {
        w->m->mapped_bytes += n * 4;
    }
    w->m->weight_bytes += n * 4;
    w->all[w->n++] = (moec_qmat){.type = MOEC_QT_F32, .rows = n, .cols = 1, .data = v};
    return MOEC_OK;
}

static moec_status walk_tensors(walk *w) {
    const moec_config *c = &w->m->cfg;
    const int64_t D = c->hidden, V = c->vocab_size, Dh = c->head_dim, H = c->n_heads, G = c->n_kv_heads;
    const int ph = w->permuted ? (int)H : 0, pg = w->permuted ? (int)G : 0, dh = (int)Dh;
    char n[64];
#define NM(fmt) (snprintf(n, sizeof n, fmt, l), n)
    MOEC_TRY(next_mat(w, "token_embd.weight", V, D, 0, 0));
    for (int l = 0; l < c->n_layers; l++) {
        MOEC_TRY(next_vec(w, NM("blk.%d.attn_norm.weight"), D, 0, 0));
        MOEC_TRY(next_mat(w, NM("blk.%d.attn_q.weight"), H * Dh, D, ph, dh));
        if (c->qkv_bias) MOEC_TRY(next_vec(w, NM("blk.%d.attn_q.bias"), H * Dh, ph, dh));
        MOEC_TRY(next_mat(w, NM("blk.%d.attn_k.weight"), G * Dh, D, pg, dh));
        if (c->qkv_bias) MOEC_TRY(next_vec(w, NM("blk.%d.attn_k.bias"), G * Dh, pg, dh));
        MOEC_TRY(next_mat(w, NM("blk.%d.attn_v.weight"), G * Dh, D, 0, 0));
        if (c->qkv_bias) MOEC_TRY(next_vec(w, NM("blk.%d.attn_v.bias"), G * Dh, 0, 0));
        MOEC_TRY(next_mat(w, NM("blk.%d.attn_output.weight"), D, H * Dh, 0, 0));
        MOEC_TRY(next_vec(w, NM("blk.%d.ffn_norm.weight"), D, 0, 0));
        if (c->is_moe_layer[l]) {
            const int E = c->moe.n_experts;
            const int64_t F = c->moe.ffn_dim;
            MOEC_TRY(next_mat(w, NM("blk.%d.ffn_gate_inp.weight"), E, D, 0, 0));
            /* the table holds expert e's w1, w3, w2 side by side; the file stacks each kind over the experts */
            moec_qmat *x = &w->all[w->n];
            MOEC_TRY(mats(w, NM("blk.%d.ffn_gate_exps.weight"), F, D, E, 0, 0, x, 3));
            MOEC_TRY(mats(w, NM("blk.%d.ffn_up_exps.weight"), F, D, E, 0, 0, x + 1, 3));
            MOEC_TRY(mats(w, NM("blk.%d.ffn_down_exps.weight"), D, F, E, 0, 0, x + 2, 3));
            w->n += 3 * E;
        } else {
            const int64_t F = c->ffn_dim;
            MOEC_TRY(next_mat(w, NM("blk.%d.ffn_gate.weight"), F, D, 0, 0));
            MOEC_TRY(next_mat(w, NM("blk.%d.ffn_up.weight"), F, D, 0, 0));
            MOEC_TRY(next_mat(w, NM("blk.%d.ffn_down.weight"), D, F, 0, 0));
        }
    }
#undef NM
    MOEC_TRY(next_vec(w, "output_norm.weight", D, 0, 0));
    if (!c->tie_embeddings) MOEC_TRY(next_mat(w, "output.weight", V, D, 0, 0));
    if (w->used != moec_gguf_tensor_count(w->f))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %" PRId64 " tensors, of which moec's layout uses %d; the others "
                        "(e.g. fused QKV, shared experts, rope factors) are not supported", w->path,
                        moec_gguf_tensor_count(w->f), w->used);
    return MOEC_OK;
}

moec_status moec_infer_model_load_gguf(moec_infer_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    moec_gguf_file *f;
    MOEC_TRY(moec_gguf_open(&f, path));
    return moec_infer_model_from_gguf(m, f, path);
}

moec_status moec_infer_model_from_gguf(moec_infer_model *m, moec_gguf_file *f, const char *path) {
    memset(m, 0, sizeof *m);
    m->gguf = f;
    walk w = {.m = m, .f = f, .path = path};
    moec_status s = moec_gguf_read_config(f, path, &m->cfg, &w.permuted);
    moec_param_table table = {0};
    if (s == MOEC_OK) s = moec_param_table_build(&table, &m->cfg);
    if (s == MOEC_OK && !(w.all = calloc((size_t)table.count, sizeof *w.all)))
        s = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    if (s == MOEC_OK) s = walk_tensors(&w);
    if (s == MOEC_OK && w.n != table.count)
        s = MOEC_ERR(MOEC_ERR_ARG, "internal: %d of %d tensors walked", w.n, table.count);
    if (s == MOEC_OK) s = moec_infer_model_bind(m, &table, w.all);
    free(w.all);
    if (table.items) moec_param_table_free(&table);
    if (s != MOEC_OK) moec_infer_model_free(m);
    return s;
}
