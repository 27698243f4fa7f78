/* model.h — the decoder: parameters, gradients and saved activations of one model, and its training-mode
 * forward and backward.
 *
 * Three lifetimes, three structs (after llama2.c): moec_config (immutable), the flat parameter/gradient
 * buffers described by moec_param_table, and moec_activations (scratch for one batch shape, reused every step;
 * nothing is allocated inside forward/backward once the shape is reserved).
 *
 * Forward over B sequences of S tokens (T = B·S rows): embedding → L × [RMSNorm → GQA attention with RoPE
 * (optional q/k/v biases, added before RoPE) →
 * residual → RMSNorm → SwiGLU or MoE → residual] → RMSNorm → lm_head → cross-entropy. An MoE layer routes all
 * T tokens of the batch as one group, so capacity = ceil(cf·K·T/E) is per batch.
 */
#ifndef MOEC_MODEL_MODEL_H
#define MOEC_MODEL_MODEL_H

#include <stdint.h>

#include "model/config.h"
#include "model/params.h"
#include "moe/moe_layer.h"

typedef struct {
    int64_t B, S, T;           /* reserved shape (T = B·S) */
    float *x;                  /* [L+1][T,D] residual stream entering layer l; x[L] leaves the last layer */
    float *xn1, *xn2;          /* [L][T,D] attention / FFN norm outputs */
    float *rstd1, *rstd2;      /* [L][T] */
    float *q, *k, *v;          /* [L][T,H·Dh], [L][T,G·Dh] ×2, after RoPE */
    float *probs;              /* [L][B,H,S,S] attention probabilities */
    float *att;                /* [L][T,H·Dh] attention output before o_proj */
    float *xmid;               /* [L][T,D] residual after attention */
    float *h1, *h3, *act;      /* [L][T,F] dense-layer SwiGLU activations (dense layers only) */
    moec_moe_state *moe;       /* [L] (initialised for MoE layers only) */
    float *xf, *rstdf;         /* final norm output [T,D] and its rstd [T] */
    float *logits;             /* [T,V]; the backward turns it into dlogits in place */
    float *losses;             /* [T] */
    int32_t *inputs, *targets; /* [T] copies of the last batch */
    /* backward scratch */
    float *dx, *dxn, *dmid;    /* [T,D] */
    float *datt, *dq, *dk, *dv;/* [T,H·Dh], [T,H·Dh], [T,G·Dh] ×2 */
    float *ffn_scratch;        /* [3·T·F] */
    moec_moe_workspace moe_ws;
    float *rope_cos, *rope_sin;/* [S, Dh/2] */
} moec_activations;

typedef struct {
    moec_config cfg;
    moec_param_table table;
    float *params;             /* [table.total] */
    float *grads;              /* [table.total], allocated by moec_model_alloc_grads */
    moec_weights w, dw;        /* typed views of params / grads */
    moec_activations acts;
} moec_model;

/* Statistics of the last forward. Arrays are indexed by layer (entries of dense layers unused). */
typedef struct {
    double ce_loss;            /* mean next-token cross-entropy over counted targets */
    int64_t n_targets;
    double total_loss;         /* ce + Σ_l α_l·aux_l + z_coef·Σ_l zloss_l */
    float drop_rate[MOEC_MAX_LAYERS];
    float aux_loss[MOEC_MAX_LAYERS];
    float z_loss[MOEC_MAX_LAYERS];
    float max1_over_max2[MOEC_MAX_LAYERS];
    int64_t dropped[MOEC_MAX_LAYERS];
} moec_forward_stats;

/* Allocate parameters (zeroed) for a validated config. */
moec_status moec_model_init(moec_model *m, const moec_config *c);
/* Take ownership of an existing parameter buffer built for (c, table) (e.g. from moec_model_dir_load). */
moec_status moec_model_adopt(moec_model *m, const moec_config *c, moec_param_table *table, float *params);
moec_status moec_model_alloc_grads(moec_model *m);
void moec_model_zero_grads(moec_model *m);
void moec_model_free(moec_model *m);
/* Llama-style random init from a seed: linear weights N(0, 0.02), output projections (o_proj, w2) scaled by
 * 1/sqrt(2L), norms 1, projection biases (names ending ".bias") 0. */
void moec_model_init_random(moec_model *m, uint64_t seed);

/* Ensure activations for B×S; reallocates only when the shape grows or changes. */
moec_status moec_model_reserve(moec_model *m, int64_t B, int64_t S);

/* Training-mode forward. inputs/targets [B,S]; target < 0 = not counted. aux_coef[L] = α per layer (entries of
 * dense layers ignored); may be NULL for α = the config's alpha_fixed. Logits stay in m->acts.logits. */
moec_status moec_model_forward(moec_model *m, const int32_t *inputs, const int32_t *targets, int64_t B, int64_t S,
                               const float *aux_coef, moec_forward_stats *stats);
/* Backward of the last forward's total loss, scaled by loss_scale (1/accumulation steps), ACCUMULATED into
 * m->grads. Must follow moec_model_forward with the same aux_coef. */
moec_status moec_model_backward(moec_model *m, const float *aux_coef, float loss_scale);

#endif
