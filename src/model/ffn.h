/* ffn.h — the SwiGLU feed-forward block, y = (silu(x·W1ᵀ) ∘ (x·W3ᵀ))·W2ᵀ, forward and backward.
 * A dense layer's MLP is one call over all T tokens; an MoE expert is one call over the rows routed to it.
 * W1 = gate_proj [F,D], W3 = up_proj [F,D], W2 = down_proj [D,F]. */
#ifndef MOEC_MODEL_FFN_H
#define MOEC_MODEL_FFN_H

#include <stdint.h>

/* Saved for backward: h1, h3, act [n,F]. y [n,D] overwritten. */
void moec_ffn_forward(float *y, float *h1, float *h3, float *act, const float *x, const float *w1, const float *w3,
                      const float *w2, int64_t n, int64_t D, int64_t F);
/* dx [n,D] overwritten; dw1/dw3/dw2 accumulated. scratch: 3·n·F floats (dact, dh1, dh3). */
void moec_ffn_backward(float *dx, float *dw1, float *dw3, float *dw2, float *scratch, const float *dy,
                       const float *x, const float *h1, const float *h3, const float *act, const float *w1,
                       const float *w3, const float *w2, int64_t n, int64_t D, int64_t F);

#endif
