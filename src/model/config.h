/* config.h — the immutable description of a model: a Llama-family decoder whose FFN in each layer is either a
 * dense SwiGLU or a Mixture-of-Experts layer with Skywork-MoE routing. Dense is "no MoE layers".
 *
 * On disk this is Hugging Face's config.json (Llama keys for dense models, Mixtral keys for MoE) plus moec's
 * extra router keys; see config_json.c for the exact key list. Dimension legend used across moec:
 *   B batch, T tokens (sequence), D hidden, F FFN width, V vocab, H query heads, G KV heads, Dh head dim,
 *   E experts, K top-k, L layers.
 */
#ifndef MOEC_MODEL_CONFIG_H
#define MOEC_MODEL_CONFIG_H

#include <stdint.h>
#include "core/error.h"

#define MOEC_MAX_LAYERS 256
#define MOEC_MAX_EXPERTS 256

typedef enum {
    MOEC_AUX_SQDEV = 0,  /* Skywork: sum_j (1/E - mean_i g_ij)^2 */
    MOEC_AUX_SWITCH = 1, /* Switch Transformer: E * sum_j f_j * P_j */
} moec_aux_kind;

typedef struct {
    int n_experts;         /* E; 0 for a dense model */
    int top_k;             /* K, 1 <= K <= E */
    int ffn_dim;           /* F of one expert */
    float gate_lambda;     /* gating logit normalisation scale λ; 0 = off */
    float capacity_factor; /* 0 = dropless; else capacity = ceil(cf * K * T / E) per expert per batch */
    moec_aux_kind aux_kind;
    float z_loss_coef;     /* router z-loss coefficient; 0 = off */
    int adaptive_alpha;    /* 1: α per layer follows the drop rate (Skywork); 0: α fixed at alpha_fixed */
    float alpha_fixed;     /* used when adaptive_alpha == 0, and as the initial α when adaptive */
    float alpha_xi;        /* ξ   (default 0.2)  */
    float alpha_max;       /* α_max (default 0.01) */
    float alpha_beta;      /* β   (default 0.99) */
} moec_moe_config;

typedef struct {
    int vocab_size;        /* V */
    int hidden;            /* D */
    int n_layers;          /* L */
    int n_heads;           /* H */
    int n_kv_heads;        /* G, divides H */
    int head_dim;          /* Dh (H*Dh need not equal D) */
    int ffn_dim;           /* F of the dense SwiGLU (used by non-MoE layers) */
    int max_seq;           /* longest sequence the model accepts */
    float rope_theta;
    float norm_eps;
    int tie_embeddings;    /* 1: lm_head shares the token embedding */
    int qkv_bias;          /* 1: q/k/v projections carry biases [H*Dh], [G*Dh], [G*Dh] (Qwen2); o_proj never does */
    int bos_id, eos_id;    /* -1 if unknown */
    moec_moe_config moe;
    uint8_t is_moe_layer[MOEC_MAX_LAYERS]; /* 1 where layer l's FFN is MoE (all 0 when moe.n_experts == 0) */
} moec_config;

/* Fill a config with moec's defaults (router defaults from the Skywork report). Dimensions are left 0. */
void moec_config_defaults(moec_config *c);
/* Check every value for consistency; the error names the first impossible field. */
moec_status moec_config_validate(const moec_config *c);
int moec_config_n_moe_layers(const moec_config *c);

/* config.json <-> moec_config. Reading accepts Llama, Mistral, Mixtral, Qwen2-style keys and moec's extras;
 * writing emits Llama keys (dense), Qwen2 keys (dense with q/k/v biases only) or Mixtral keys (MoE) plus moec's
 * extras. Writing is atomic. */
moec_status moec_config_load_json(moec_config *c, const char *path);
moec_status moec_config_save_json(const moec_config *c, const char *path);
/* The same, plus n_extra (key, JSON value text) pairs in extra_kv[2i], extra_kv[2i+1] that are added to the object
 * or replace moec's own value of that key (e.g. a quantised copy's "quantization_config" and "torch_dtype"). */
moec_status moec_config_save_json_with(const moec_config *c, const char *path, const char *const *extra_kv,
                                       int n_extra);
/* Parse from an in-memory JSON text (used by load_json and tests). */
moec_status moec_config_parse_json(moec_config *c, const char *text, const char *origin);

#endif
