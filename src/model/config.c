/* config.c — defaults and validation of moec_config (the JSON side is config_json.c). */
#include "model/config.h"

#include <math.h>
#include <string.h>

void moec_config_defaults(moec_config *c) {
    /* memset first so padding bytes are zero too: configs can then be compared with memcmp. */
    memset(c, 0, sizeof *c);
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->bos_id = -1;
    c->eos_id = -1;
    moec_moe_config *m = &c->moe;
    m->gate_lambda = 0.0f;       /* gating logit normalisation off unless the config asks (Skywork used λ = 1) */
    m->capacity_factor = 0.0f;   /* dropless */
    m->aux_kind = MOEC_AUX_SQDEV;
    m->z_loss_coef = 0.0f;
    m->adaptive_alpha = 1;
    m->alpha_fixed = 0.01f;      /* fixed α, and the adaptive controller's starting α */
    m->alpha_xi = 0.2f;          /* Skywork report: ξ = 1/5, α_max = 0.01, β = 0.99 */
    m->alpha_max = 0.01f;
    m->alpha_beta = 0.99f;
}

int moec_config_n_moe_layers(const moec_config *c) {
    int n = 0;
    for (int l = 0; l < c->n_layers && l < MOEC_MAX_LAYERS; l++) n += c->is_moe_layer[l] != 0;
    return n;
}

/* Limits on dimensions: far above any real model, low enough that products of two of them fit easily in
 * int64 and a corrupt config (hidden = 2^31 - 1) is refused before anything is allocated. */
#define MAX_VOCAB (1 << 24)
#define MAX_DIM (1 << 20)
#define MAX_HEADS 4096
#define MAX_HEAD_DIM 4096
#define MAX_SEQ (1 << 24)

#define CHECK_INT(name, field, lo, hi)                                                                                     \
    do {                                                                                                             \
        if ((field) < (lo) || (field) > (hi))                                                                        \
            return MOEC_ERR(MOEC_ERR_CONFIG, "config: %s = %lld, must be in [%lld, %lld]", name, (long long)(field), \
                            (long long)(lo), (long long)(hi));                                                      \
    } while (0)

#define CHECK_FLOAT(name, field, lo, hi)                                                                                   \
    do {                                                                                                             \
        if (!isfinite(field) || (field) < (lo) || (field) > (hi))                                                    \
            return MOEC_ERR(MOEC_ERR_CONFIG, "config: %s = %g, must be finite and in [%g, %g]", name,             \
                            (double)(field), (double)(lo), (double)(hi));                                           \
    } while (0)

moec_status moec_config_validate(const moec_config *c) {
    CHECK_INT("vocab_size", c->vocab_size, 1, MAX_VOCAB);
    CHECK_INT("hidden", c->hidden, 1, MAX_DIM);
    CHECK_INT("n_layers", c->n_layers, 1, MOEC_MAX_LAYERS);
    CHECK_INT("n_heads", c->n_heads, 1, MAX_HEADS);
    CHECK_INT("n_kv_heads", c->n_kv_heads, 1, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "config: n_heads = %d is not a multiple of n_kv_heads = %d", c->n_heads,
                        c->n_kv_heads);
    CHECK_INT("head_dim", c->head_dim, 2, MAX_HEAD_DIM);
    if (c->head_dim % 2 != 0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "config: head_dim = %d must be even (RoPE rotates pairs)", c->head_dim);
    CHECK_INT("max_seq", c->max_seq, 1, MAX_SEQ);
    CHECK_FLOAT("rope_theta", c->rope_theta, 1e-30f, 1e30f);
    if (!(c->rope_theta > 0))
        return MOEC_ERR(MOEC_ERR_CONFIG, "config: rope_theta = %g must be positive", (double)c->rope_theta);
    CHECK_FLOAT("norm_eps", c->norm_eps, 0.0f, 1.0f);
    if (!(c->norm_eps > 0)) return MOEC_ERR(MOEC_ERR_CONFIG, "config: norm_eps = %g must be positive", (double)c->norm_eps);
    CHECK_INT("tie_embeddings", c->tie_embeddings, 0, 1);
    CHECK_INT("qkv_bias", c->qkv_bias, 0, 1);
    CHECK_INT("bos_id", c->bos_id, -1, c->vocab_size - 1);
    CHECK_INT("eos_id", c->eos_id, -1, c->vocab_size - 1);

    const moec_moe_config *m = &c->moe;
    const int n_moe = moec_config_n_moe_layers(c);
    for (int l = c->n_layers; l < MOEC_MAX_LAYERS; l++)
        if (c->is_moe_layer[l])
            return MOEC_ERR(MOEC_ERR_CONFIG, "config: is_moe_layer[%d] set but the model has only %d layers", l,
                            c->n_layers);
    /* The dense FFN width only matters if some layer is dense (an all-MoE model may leave it 0). */
    if (n_moe < c->n_layers) CHECK_INT("ffn_dim", c->ffn_dim, 1, MAX_DIM);
    else CHECK_INT("ffn_dim", c->ffn_dim, 0, MAX_DIM);
    CHECK_INT("moe.n_experts", m->n_experts, 0, MOEC_MAX_EXPERTS);
    if (m->n_experts == 0) {
        if (n_moe > 0)
            return MOEC_ERR(MOEC_ERR_CONFIG, "config: %d layers marked MoE but moe.n_experts = 0", n_moe);
        return MOEC_OK; /* dense: the router settings are unused */
    }
    if (n_moe == 0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "config: moe.n_experts = %d but no layer is marked MoE", m->n_experts);
    CHECK_INT("moe.top_k", m->top_k, 1, m->n_experts);
    CHECK_INT("moe.ffn_dim", m->ffn_dim, 1, MAX_DIM);
    CHECK_FLOAT("moe.gate_lambda", m->gate_lambda, 0.0f, 1e6f);
    CHECK_FLOAT("moe.capacity_factor", m->capacity_factor, 0.0f, 1e6f);
    if ((unsigned)m->aux_kind > MOEC_AUX_SWITCH)
        return MOEC_ERR(MOEC_ERR_CONFIG, "config: moe.aux_kind = %d is not a known auxiliary loss", (int)m->aux_kind);
    CHECK_FLOAT("moe.z_loss_coef", m->z_loss_coef, 0.0f, 1e6f);
    CHECK_INT("moe.adaptive_alpha", m->adaptive_alpha, 0, 1);
    CHECK_FLOAT("moe.alpha_fixed", m->alpha_fixed, 0.0f, 1e6f);
    CHECK_FLOAT("moe.alpha_xi", m->alpha_xi, 0.0f, 1e6f);
    CHECK_FLOAT("moe.alpha_max", m->alpha_max, 0.0f, 1e6f);
    CHECK_FLOAT("moe.alpha_beta", m->alpha_beta, 0.0f, 1.0f);
    return MOEC_OK;
}
