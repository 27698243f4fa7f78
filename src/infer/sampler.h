/* sampler.h — choosing the next token from a row of logits: greedy, or a seeded random draw after repetition
 * penalty, temperature, top-k, top-p (nucleus) and min-p, in that order (the order of Hugging Face's
 * generate(): penalty, temperature, top-k, top-p; min-p last).
 *
 * One moec_sampler per generated sequence. It owns its random stream and its scratch, sized for the
 * vocabulary once at init, so sampling a token allocates nothing.
 *
 * The steps, on logits l[0..V) (the caller's array, modified in place):
 *   1. repetition penalty p (CTRL, Keskar et al. 2019, as Hugging Face applies it): every distinct id in the last
 *      repetition_window context tokens (all of them when 0) gets l > 0 ? l / p : l * p, once however often it
 *      occurs;
 *   2. temperature 0 (or V = 1): the argmax (ties -> lowest id), no random number used; stop here.
 *      Otherwise weights w_i = exp((l_i - l_max) / T), computed in double and stored as float (the softmax of
 *      l / T, not yet normalised; the most likely token's weight is exactly 1);
 *   3. top-k: keep the k largest logits (ties -> lower id kept), found by a size-k heap, O(V log k), no sort of V;
 *   4. top-p: of the kept tokens in probability order (larger logit first, ties -> lower id first), keep the
 *      smallest prefix whose mass is >= p of the kept total (so always at least one token). The comparison
 *      allows 1e-6 relative slack: a prefix whose mass is p on paper is not lost to rounding (probs .5 .3 .15
 *      .05, p = .8 keeps two tokens). Without top-k, tokens whose probability is below (1 - p) / (V - 1) are set
 *      aside first (together they weigh less than 1 - p, so none can be inside the nucleus), and the nucleus is
 *      taken from a heap one token at a time, O(n + m log n), rather than by sorting all n candidates;
 *   5. min-p: keep the tokens whose weight is >= min_p times the largest weight;
 *   6. the draw: one u = moec_rand_uniform (53 bits of one splitmix64 step) per token; the kept tokens are visited
 *      in ascending id order, their weights summed in double, and the first token whose running sum exceeds
 *      u * (sum of all kept weights) is drawn (the last kept token if rounding leaves none). So a seed gives the
 *      same tokens wherever the logits are the same bits (exp is the C library's; glibc's is the reference).
 *
 * Streams: moec_sampler_init_stream(..., stream) starts the generator at seed ^ mix(stream), mix being
 * splitmix64's output bijection with mix(0) = 0: stream 0 is the seed itself, sequence b of a batch uses stream b.
 */
#ifndef MOEC_INFER_SAMPLER_H
#define MOEC_INFER_SAMPLER_H

#include <stdint.h>
#include "core/error.h"

typedef struct {
    float temperature;         /* 0 = greedy (argmax, ties -> lowest id); must be >= 0 */
    int top_k;                 /* keep the k most likely tokens; 0 = off */
    float top_p;               /* nucleus mass in (0, 1]; 1 = off */
    float min_p;               /* keep tokens with prob >= min_p * max prob, in [0, 1]; 0 = off */
    float repetition_penalty;  /* > 0; 1 = off */
    int repetition_window;     /* the last N context tokens are penalised; 0 = the whole context */
    uint64_t seed;
} moec_sampler_params;

/* temperature 1, everything else off, seed 0. */
moec_sampler_params moec_sampler_params_default(void);
/* MOEC_ERR_ARG with a message naming the bad field and its allowed range; NaN is never valid. */
moec_status moec_sampler_params_validate(const moec_sampler_params *p);

typedef struct {
    moec_sampler_params params;
    int vocab;           /* V */
    uint64_t rng;        /* splitmix64 state */
    float *weight;       /* [V] w_i by id, for the tokens under consideration */
    int32_t *cand;       /* [V] candidate ids */
    uint32_t *seen;      /* [V] repetition penalty: seen[id] == stamp when id is already penalised this token */
    uint32_t stamp;
} moec_sampler;

/* Validates params and allocates the scratch for a vocabulary of `vocab` ids; the stream is 0. */
moec_status moec_sampler_init(moec_sampler *s, int vocab, const moec_sampler_params *params);
/* Same, on random stream `stream` (e.g. the sequence's index in a batch). */
moec_status moec_sampler_init_stream(moec_sampler *s, int vocab, const moec_sampler_params *params, uint64_t stream);

/* Choose the next token from logits[0..V) (modified in place: penalty and scaling), given the sequence so far
 * context[0..n_context) (prompt and generated ids; may be NULL when n_context is 0; read only for the repetition
 * penalty). Errors: with a penalty, a context id in the window outside [0, V) (MOEC_ERR_ARG); a NaN or +inf
 * logit, or no finite logit at all (MOEC_ERR_NUMERIC). -inf logits (masked tokens) are fine and never drawn. */
moec_status moec_sampler_sample(moec_sampler *s, float *logits, const int32_t *context, int64_t n_context,
                                int32_t *token);

void moec_sampler_free(moec_sampler *s);

#endif
