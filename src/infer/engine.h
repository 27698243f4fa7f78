/* engine.h — the inference forward pass over a KV cache, for many sequences at once.
 *
 * A session owns a KV cache of n_slots sequences × ctx positions ([L][slot][G][pos][Dh] for K and for V, in fp32 or
 * IEEE half: moec_kv_dtype, kernels/cpu/attn_decode.h) and
 * scratch for up to max_rows rows per call. One call of moec_session_forward runs a list of rows through the
 * model; row i is token tokens[i] of the sequence in slot slots[i], at that slot's next position. Rows of one slot
 * must be consecutive positions in the order given (rows of different slots may interleave). So the same call does
 *   - prefill of a prompt block (many rows, one slot): attention over the cache plus the block, causally;
 *   - batched decoding (one row per active slot): every weight matrix is read once for all rows;
 *   - both at once (continuous batching: new prompts prefill while others decode).
 * Linear layers see all rows as one matrix (moec_qmat_matmul); MoE layers route every row, group the rows by
 * expert and run each selected expert once on its rows, so an expert's weights are fetched once per call however
 * many rows chose it, and experts nobody chose are not touched.
 *
 * Numerics: fp32 activations; with fp32 weights and an fp32 cache the result equals the training forward (model.h)
 * up to summation order (tests/test_infer.c checks incremental == full logits). A half cache rounds K and V once,
 * when written; every read (prefill's block included) sees the rounded values, so incremental == full holds too.
 */
#ifndef MOEC_INFER_ENGINE_H
#define MOEC_INFER_ENGINE_H

#include <stdint.h>

#include "infer/infer_model.h"
#include "kernels/cpu/attn_decode.h"
#include "moe/router.h"

/* Query rows of one sequence whose attention is computed together (one GEMM for scores, one for the output). */
#define MOEC_ATTN_QBLOCK 64

typedef struct {
    const moec_infer_model *model;
    int n_slots, ctx;
    int64_t max_rows;
    moec_kv_dtype kv;          /* the cache's number type */
    void *k_cache, *v_cache;   /* [L][n_slots][G][ctx][Dh] of kv: one KV head's positions are contiguous */
    int32_t *len;              /* [n_slots] positions filled */
    /* per-call scratch, sized for max_rows */
    int32_t *pos;              /* [rows] position of each row */
    float *x, *xn, *q, *k, *v, *att, *tmp; /* [rows, D | H·Dh | G·Dh] */
    float *h1, *h3;            /* [rows·K, F] (dense: [rows, F]) */
    float *router_logits;      /* [rows, E] */
    moec_router_state router;  /* the training router, run dropless: same normalisation, top-K and weights */
    int32_t *by_expert;        /* [rows·K] (row·K + k) grouped by expert */
    int32_t *grouped_at;       /* [rows·K] where (row·K + k) sits in the grouped order */
    int64_t *expert_start;     /* [E+1] */
    float *xd, *yd;            /* [rows·K, D] gathered inputs / expert outputs */
    float *scores;             /* [n_score_threads][ATTN_QBLOCK·ctx] attention scores */
    int32_t *attn_tasks;       /* [max_rows·H][4]: first row, rows, slot's first position, first query head (decode
                                  rows: KV head) */
    int attn_hpt;              /* query heads per prefill task in this call (engine.c's attn_plan) */
    int n_score_threads;
    int32_t *slot_fill;        /* [n_slots] rows of each slot seen so far in this call */
    float *rstd;               /* [rows] */
    float *rope_cos, *rope_sin;/* [ctx, Dh/2] */
    float *final_x;            /* [rows, D] normed rows that want logits */
} moec_session;

moec_status moec_session_init(moec_session *s, const moec_infer_model *m, int n_slots, int ctx, int64_t max_rows,
                              moec_kv_dtype kv);
void moec_session_free(moec_session *s);
/* Forget slot's sequence (its cache is reused by the next sequence put there). */
void moec_session_reset(moec_session *s, int slot);

/* Runs n rows (n <= max_rows). want: per row, nonzero if its next-token logits are wanted (NULL = every row);
 * logits receives them [n_wanted, V] in row order. Errors (nothing changed): a token outside the vocabulary, a
 * slot out of range, a slot whose cache would exceed ctx. */
moec_status moec_session_forward(moec_session *s, int64_t n, const int32_t *tokens, const int32_t *slots,
                                 const uint8_t *want, float *logits);

#endif
