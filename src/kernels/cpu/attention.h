/* attention.h — causal multi-head attention with grouped KV heads (GQA), forward and backward, CPU.
 * q [B*S, H*Dh], k/v [B*S, G*Dh] (RoPE already applied), out [B*S, H*Dh]. Query head h reads KV head
 * h / (H/G), as in Hugging Face's repeat_kv. probs [B, H, S, S] is saved for backward (row t uses 0..t). */
#ifndef MOEC_KERNELS_ATTENTION_H
#define MOEC_KERNELS_ATTENTION_H

#include <stdint.h>

void moec_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int64_t B,
                            int64_t S, int64_t H, int64_t G, int64_t Dh);
/* dq (overwritten), dk, dv (overwritten) from dout. */
void moec_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                             const float *k, const float *v, int64_t B, int64_t S, int64_t H, int64_t G, int64_t Dh);

#endif
