/* moe_layer.h — one Mixture-of-Experts FFN layer: route → dispatch → expert compute → combine, and backward.
 *
 * The three stages are separate on purpose. Dispatch turns the router's (token, slot) choices into per-expert
 * contiguous row blocks (xd, expert e's rows at offsets[e]..offsets[e+1]); expert compute only ever sees those
 * blocks; combine sums the blocks' outputs back into token order with the combine weights. Under expert
 * parallelism the all-to-all exchange sits exactly between dispatch and expert compute (and mirrored between
 * expert compute and combine), so single-process and distributed runs share this code path.
 *
 * Rows inside an expert's block are in token order (stable), which keeps results independent of threading.
 */
#ifndef MOEC_MOE_LAYER_H
#define MOEC_MOE_LAYER_H

#include <stdint.h>

#include "model/config.h"
#include "model/params.h"
#include "moe/router.h"

typedef struct {
    int64_t T_max;
    moec_router_state router;
    float *logits;       /* [T,E] router logits z = x·Wgᵀ */
    int64_t *offsets;    /* [E+1] start of each expert's block in the dispatched rows */
    int32_t *row_token;  /* [T*K] token of each dispatched row */
    int32_t *slot_row;   /* [T*K] dispatched row of (token, slot), −1 if the slot was dropped */
    float *xd;           /* [T*K, D] dispatched inputs */
    float *h1, *h3, *act;/* [T*K, F] expert activations saved for backward */
    float *yd;           /* [T*K, D] expert outputs (before the combine weights) */
    int64_t n_rows;      /* dispatched rows in the last forward (kept assignments) */
} moec_moe_state;

/* Scratch shared by all MoE layers' backward (one layer runs at a time). */
typedef struct {
    float *dyd, *dxd;    /* [T*K, D] */
    float *ffn_scratch;  /* [3 · T*K · F] */
    float *dtopk_w;      /* [T,K] */
    float *dlogits;      /* [T,E] */
} moec_moe_workspace;

moec_status moec_moe_state_init(moec_moe_state *s, int64_t T_max, const moec_config *c);
void moec_moe_state_free(moec_moe_state *s);
moec_status moec_moe_workspace_init(moec_moe_workspace *ws, int64_t T_max, const moec_config *c);
void moec_moe_workspace_free(moec_moe_workspace *ws);

/* out [T,D] (overwritten) = MoE(x [T,D]). Router statistics are left in s->router. */
void moec_moe_forward(float *out, moec_moe_state *s, const float *x, const moec_layer_view *w, int64_t T,
                      const moec_config *c);
/* dx [T,D] overwritten; dw's router and experts accumulated. aux_coef = α of this layer. */
void moec_moe_backward(float *dx, const moec_layer_view *dw, moec_moe_workspace *ws, const float *dout,
                       const moec_moe_state *s, const float *x, const moec_layer_view *w, float aux_coef, int64_t T,
                       const moec_config *c);

#endif
