/* router.h — Skywork-MoE routing for one MoE layer over a batch of T tokens, forward and backward.
 *
 * Forward, per token i (E experts, top-K):
 *   z_i        = router logits (x_i · Wgᵀ), given                                  [T,E]
 *   zn_i       = λ (z_i − mean(z_i)) / (std(z_i) + eps)   if λ > 0, else z_i       [T,E]
 *                std is the unbiased (E−1) standard deviation, as torch.std computes it
 *   g_i        = softmax(zn_i) over all E experts                                   [T,E]
 *   sel_i      = the K experts with the largest g_ij (descending; ties -> lower expert index)
 *   s_i        = Σ_{j∈sel_i} g_ij
 *   w_ij       = g_ij / s_i for a kept slot, 0 for a dropped slot (other weights NOT renormalised)
 *   capacity   = ceil(capacity_factor · K · T / E) per expert (unlimited when capacity_factor == 0);
 *                an expert over capacity keeps the assignments with the highest g_ij (ties: lower token
 *                index) and drops the rest.
 *   drop rate  = dropped assignments / (K·T)
 *   aux (SQDEV)  = Σ_j (1/E − (1/T) Σ_i g_ij)²
 *   aux (SWITCH) = E · Σ_j f_j · P_j,  f_j = (assignments to j before dropping)/(K·T) (no gradient),
 *                  P_j = (1/T) Σ_i g_ij
 *   z-loss     = (1/T) Σ_i (logsumexp_j z_ij)²   on the raw logits z
 * Backward: given dL/dw [T,K] from the combine step, returns dL/dz [T,E] for
 *   L = (terms through w) + aux_coef · aux + z_loss_coef · zloss.
 */
#ifndef MOEC_MOE_ROUTER_H
#define MOEC_MOE_ROUTER_H

#include <stdint.h>
#include "model/config.h"

#define MOEC_ROUTER_STD_EPS 1e-6f

typedef struct {
    int64_t T_max;
    int E, K;
    int64_t T;              /* tokens in the last forward */
    float *zn;              /* [T,E] normalised logits (softmax input) */
    float *probs;           /* [T,E] g */
    float *inv_sigma;       /* [T]   1/(std+eps), saved for backward (1 when λ == 0) */
    int32_t *topk_idx;      /* [T,K] selected experts, descending g */
    float *topk_w;          /* [T,K] combine weights w_ij (0 where dropped) */
    uint8_t *kept;          /* [T,K] 1 where the slot was kept */
    int64_t *expert_demand; /* [E] assignments before dropping */
    int64_t *expert_count;  /* [E] assignments kept */
    int64_t capacity;       /* per expert; INT64_MAX when dropless */
    int64_t dropped;        /* dropped assignments */
    float drop_rate;        /* dropped / (K·T) */
    float aux_loss;         /* of the configured kind */
    float z_loss;
    float max1_over_max2;   /* mean over tokens of g_(1)/g_(2) (1 when E == 1) */
    void *scratch;          /* private working memory */
} moec_router_state;

moec_status moec_router_state_init(moec_router_state *s, int64_t T_max, int E, int K);
void moec_router_state_free(moec_router_state *s);

/* logits: [T,E]; T <= T_max. Fills every output field of s. */
void moec_router_forward(moec_router_state *s, const float *logits, int64_t T, const moec_moe_config *mc);

/* dlogits: [T,E] output (overwritten) = dL/dz. dtopk_w: [T,K] = dL/dw from the combine (entries of dropped
 * slots are ignored). aux_coef: α for this layer at this step. */
void moec_router_backward(float *dlogits, const moec_router_state *s, const float *logits, const float *dtopk_w,
                          float aux_coef, const moec_moe_config *mc);

/* capacity = ceil(cf · K · T / E), exact: cf is taken as the shortest decimal that reads back as the same
 * float (the value written in config.json), so cf = 1.1 with K·T/E = 10/11 gives 1, not 2 as 1.1f·10/11 =
 * 1.0000000217 would. INT64_MAX (dropless) when cf <= 0, NaN or Inf. Also sizes dispatch buffers. */
int64_t moec_router_capacity(float capacity_factor, int K, int64_t T, int E);

/* Skywork's adaptive coefficient: α ← β·α + (1−β)·min(ξ·drop_rate, α_max). Fixed α when not adaptive. */
float moec_alpha_next(float alpha, float drop_rate, const moec_moe_config *mc);

#endif
