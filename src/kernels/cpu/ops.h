/* ops.h — the element-wise and row-wise layers of the decoder, forward next to backward, CPU.
 *
 * Argument order everywhere: outputs, saved-for-backward, inputs, weights, dims. Gradients are named d<x>;
 * gradients of weights are ACCUMULATED (+=) so micro-batches can accumulate; gradients of activations are
 * overwritten unless the comment says otherwise. Legend: T tokens (rows), D hidden, V vocab, F FFN width,
 * H/G query/KV heads, Dh head dim. All functions parallelise over rows with moec_parallel_for.
 */
#ifndef MOEC_KERNELS_OPS_H
#define MOEC_KERNELS_OPS_H

#include <stdint.h>

/* y[T,D] = x * rstd * w,  rstd[T] = 1/sqrt(mean(x²) + eps) (saved). */
void moec_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int64_t T, int64_t D, float eps);
/* dx[T,D] (+= when accumulate) and dw[D] += from dy[T,D]. */
void moec_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                           int64_t T, int64_t D, int accumulate);

/* RoPE tables: cos/sin [S_max, Dh/2] for the rotate-half convention (Hugging Face Llama):
 * pair (i, i+Dh/2) of each head rotates by pos · theta^(−2i/Dh). */
void moec_rope_tables(float *cos_t, float *sin_t, int64_t S_max, int64_t Dh, float theta);
/* In place on x[B*S, n_heads*Dh]; row r has position r % S. inverse=1 applies the transpose rotation
 * (which is the backward of the forward rotation). */
void moec_rope_apply(float *x, const float *cos_t, const float *sin_t, int64_t B, int64_t S, int64_t n_heads,
                     int64_t Dh, int inverse);

/* act[T,F] = silu(h1) * h3 (h1 = gate, h3 = up projections). */
void moec_swiglu_forward(float *act, const float *h1, const float *h3, int64_t T, int64_t F);
/* dh1, dh3 [T,F] from dact (overwritten). */
void moec_swiglu_backward(float *dh1, float *dh3, const float *dact, const float *h1, const float *h3, int64_t T,
                          int64_t F);

/* x[T,D] = emb[ids[t]]. ids must be validated (0 <= id < V) by the caller. */
void moec_embedding_forward(float *x, const int32_t *ids, const float *emb, int64_t T, int64_t D);
/* demb[V,D] += rows of dx scattered by id (serial over tokens, parallel over D: no races). */
void moec_embedding_backward(float *demb, const float *dx, const int32_t *ids, int64_t T, int64_t D);

/* Cross-entropy of logits[T,V] against targets[T] (target < 0: position ignored).
 * losses[T] gets each position's loss (0 where ignored). Returns the mean over counted positions, and the count.
 * If dlogits != NULL it receives d(mean loss)/dlogits scaled by dscale (may alias logits: computed in place). */
double moec_cross_entropy(float *dlogits, float *losses, int64_t *n_counted, const float *logits,
                          const int32_t *targets, int64_t T, int64_t V, float dscale);

/* Softmax numerators in place, r[j] = e^(r[j] − mx) for j < n; returns their sum (accumulated in double).
 * mx >= every r[j] keeps each term in (0, 1]. Within a few ulp of expf (8 at a time on AVX2). */
double moec_softmax_numerators(float *r, int64_t n, float mx);

/* Residual add: y[n] += x[n]. */
void moec_add_inplace(float *y, const float *x, int64_t n);

#endif
