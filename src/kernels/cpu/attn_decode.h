/* attn_decode.h — attention of one query row (decoding) over a KV cache, for the query heads of one KV head. */
#ifndef MOEC_KERNELS_ATTN_DECODE_H
#define MOEC_KERNELS_ATTN_DECODE_H

#include <stdint.h>

/* How a KV cache stores its numbers: fp32, or IEEE half (the values rounded to nearest even when written; half the
 * bytes to read and to hold). */
typedef enum { MOEC_KV_F32 = 0, MOEC_KV_F16 = 1 } moec_kv_dtype;

/* Keys per block of the online softmax, and the most query heads one call takes. */
#define MOEC_ATTN_DECODE_KEYS 32
#define MOEC_ATTN_DECODE_MAX_HEADS 64

/* o[h·Dh .. +Dh) = softmax(scale · q_h · Kᵀ) V for the QH (<= MOEC_ATTN_DECODE_MAX_HEADS) query heads
 * q[h·Dh .. +Dh) that share one KV head, whose nkeys (>= 1) cached positions are the rows of kc and vc [nkeys, Dh]
 * (numbers of type kv: float or uint16_t halves). scratch: QH · MOEC_ATTN_DECODE_KEYS floats. */
void moec_attn_decode(const float *q, const void *kc, const void *vc, moec_kv_dtype kv, int64_t nkeys, int64_t QH,
                      int64_t Dh, float scale, float *scratch, float *o);
/* The same in portable C, which moec_attn_decode runs without AVX2 or when Dh is not a multiple of 8 (exposed so
 * that tests check it on any CPU). */
void moec_attn_decode_portable(const float *q, const void *kc, const void *vc, moec_kv_dtype kv, int64_t nkeys,
                               int64_t QH, int64_t Dh, float scale, float *scratch, float *o);

/* dst[0..n) = the n cached numbers at src of type kv, as floats (exact: every half is a float). */
void moec_kv_to_f32(float *dst, const void *src, moec_kv_dtype kv, int64_t n);
/* dst[0..n) of type kv = src[0..n) (halves rounded to nearest even; beyond ±65504 they become ±inf, as IEEE says). */
void moec_kv_from_f32(void *dst, const float *src, moec_kv_dtype kv, int64_t n);
/* Bytes of one cached number. */
static inline int64_t moec_kv_bytes(moec_kv_dtype kv) { return kv == MOEC_KV_F16 ? 2 : 4; }

#endif
