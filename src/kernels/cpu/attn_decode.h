/* attn_decode.h — attention of one query row (decoding) over a KV cache, for the query heads of one KV head. */
#ifndef MOEC_KERNELS_ATTN_DECODE_H
#define MOEC_KERNELS_ATTN_DECODE_H

#include <stdint.h>

/* Keys per block of the online softmax, and the most query heads one call takes. */
#define MOEC_ATTN_DECODE_KEYS 32
#define MOEC_ATTN_DECODE_MAX_HEADS 64

/* o[h·Dh .. +Dh) = softmax(scale · q_h · Kᵀ) V for the QH (<= MOEC_ATTN_DECODE_MAX_HEADS) query heads
 * q[h·Dh .. +Dh) that share one KV head, whose nkeys (>= 1) cached positions are the rows of kc and vc [nkeys, Dh].
 * scratch: QH · MOEC_ATTN_DECODE_KEYS floats. */
void moec_attn_decode(const float *q, const float *kc, const float *vc, int64_t nkeys, int64_t QH, int64_t Dh,
                      float scale, float *scratch, float *o);
/* The same in portable C, which moec_attn_decode runs without AVX2 or when Dh is not a multiple of 8 (exposed so
 * that tests check it on any CPU). */
void moec_attn_decode_portable(const float *q, const float *kc, const float *vc, int64_t nkeys, int64_t QH,
                               int64_t Dh, float scale, float *scratch, float *o);

#endif
