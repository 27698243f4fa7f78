/* params.h — the single table of a model's tensors: Hugging Face name, shape, and offset into ONE flat fp32
 * allocation. The same table drives the parameter buffer, the gradient buffer, both AdamW moment buffers,
 * checkpoint I/O (safetensors names) and test dumps, so the four can never disagree about layout.
 *
 * Order in the flat buffer: token embedding; per layer: input norm, q, k, v (each followed by its bias when the
 * config has qkv_bias), o, post-attention norm, then
 * either the dense MLP (gate_proj=w1, up_proj=w3, down_proj=w2) or the MoE router gate followed by the experts,
 * expert e's w1, w3, w2 adjacent so one expert is one contiguous slice (easy to send to another MPI rank);
 * final norm; lm_head when not tied. Linear weights are [out, in] as in PyTorch: y = x · Wᵀ.
 */
#ifndef MOEC_MODEL_PARAMS_H
#define MOEC_MODEL_PARAMS_H

#include <stdint.h>
#include "model/config.h"

#define MOEC_PARAM_NAME_MAX 96

typedef struct {
    char name[MOEC_PARAM_NAME_MAX]; /* Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    int ndim;                       /* 1 or 2 */
    int64_t shape[2];
    int64_t offset;                 /* in floats, from the start of the flat buffer (64-byte aligned) */
    int64_t numel;
} moec_param_info;

typedef struct {
    int count;
    moec_param_info *items;
    int64_t total; /* floats in the flat buffer, including alignment padding */
} moec_param_table;

/* Typed views into one flat buffer (parameters or gradients; same table, different base). */
typedef struct {
    float *attn_norm;  /* [D] */
    float *wq;         /* [H*Dh, D] */
    float *wk;         /* [G*Dh, D] */
    float *wv;         /* [G*Dh, D] */
    float *wo;         /* [D, H*Dh] */
    float *bq, *bk, *bv; /* [H*Dh], [G*Dh], [G*Dh]; NULL unless cfg.qkv_bias */
    float *ffn_norm;   /* [D] */
    /* dense layer */
    float *w1;         /* [F, D] gate_proj */
    float *w3;         /* [F, D] up_proj   */
    float *w2;         /* [D, F] down_proj */
    /* MoE layer */
    float *router;     /* [E, D] */
    float *experts;    /* E × { w1 [F,D], w3 [F,D], w2 [D,F] }, expert e at experts + e*expert_stride */
    int64_t expert_stride; /* floats between consecutive experts */
} moec_layer_view;

typedef struct {
    float *tok_emb;     /* [V, D] */
    float *final_norm;  /* [D] */
    float *lm_head;     /* [V, D]; == tok_emb when tied */
    moec_layer_view layers[MOEC_MAX_LAYERS];
} moec_weights;

moec_status moec_param_table_build(moec_param_table *t, const moec_config *c);
void moec_param_table_free(moec_param_table *t);
/* Index of a tensor by name, or -1. */
int moec_param_table_find(const moec_param_table *t, const char *name);
/* Point every view of w into base (which holds t->total floats). */
void moec_weights_bind(moec_weights *w, const moec_param_table *t, const moec_config *c, float *base);

/* Expert e's matrices inside a layer view. */
static inline float *moec_expert_w1(const moec_layer_view *l, int e) { return l->experts + (int64_t)e * l->expert_stride; }
float *moec_expert_w3(const moec_layer_view *l, const moec_config *c, int e);
float *moec_expert_w2(const moec_layer_view *l, const moec_config *c, int e);

/* 64-byte aligned allocation of n floats, zeroed; free with moec_free. NULL on failure. */
float *moec_alloc_floats(int64_t n);
void moec_free(void *p);

#endif
