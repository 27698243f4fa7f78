/* generate.h — text generation for one or many prompts over one KV-cache session: chunked prefill, batched
 * decoding, continuous batching (a finished sequence's slot takes the next waiting prompt), per-sequence
 * sampling (sampler.h) and stop strings (stop.h).
 *
 * Every step runs ONE moec_session_forward over the rows of all active sequences: up to prefill_block prompt
 * tokens of each sequence still reading its prompt, and the last sampled token of each decoding one. Logits are
 * computed only where a token is sampled (the last prompt row, and decode rows).
 *
 * Text: the generated ids are decoded as a whole (so a SentencePiece leading space or a multi-token UTF-8
 * character comes out as the tokenizer decodes it), and only the newly stable bytes are fed to the stop
 * matcher; trailing U+FFFD from an unfinished byte-fallback sequence is held until the next token settles it.
 */
#ifndef MOEC_INFER_GENERATE_H
#define MOEC_INFER_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "infer/engine.h"
#include "infer/sampler.h"
#include "io/tokenizer.h"

typedef struct {
    moec_sampler_params sampling;
    int max_tokens;              /* new tokens per prompt (>= 1) */
    const char *const *stops;    /* stop strings (<= MOEC_STOP_MAX) */
    int n_stops;
    int stop_at_eos;             /* end a sequence at the model's/tokenizer's EOS id (not emitted) */
    int add_bos;                 /* prepend BOS (config bos_token_id, else the tokenizer's template BOS) */
    int prefill_block;           /* prompt tokens of one sequence per step (>= 1) */
    int batch;                   /* sequences decoded together (>= 1) */
    int ctx;                     /* KV-cache positions per sequence; 0 = the model's max_seq */
    moec_kv_dtype kv;            /* the KV cache's numbers (default MOEC_KV_F16) */
} moec_generate_opts;

moec_generate_opts moec_generate_opts_default(void);

typedef enum { MOEC_GEN_TEXT, MOEC_GEN_DONE } moec_gen_event_kind;

typedef struct {
    moec_gen_event_kind kind;
    int index;                   /* prompt index */
    const char *text;            /* TEXT: new bytes (not NUL-terminated); DONE: the whole generated text */
    size_t len;
    const char *finish;          /* DONE: "stop", "eos", "length" (max_tokens) or "context" (cache full) */
    int64_t prompt_tokens, generated_tokens;
} moec_gen_event;

typedef void (*moec_gen_callback)(void *ctx, const moec_gen_event *ev);

typedef struct {
    int64_t prompt_tokens, generated_tokens, steps;
    double seconds;              /* wall time of the whole run */
    double prefill_seconds;      /* steps that only prefilled */
    double decode_seconds;       /* steps that only decoded */
    int64_t decode_step_tokens;  /* tokens produced by decode-only steps */
} moec_gen_stats;

/* The BOS id prompts start with: config.json's bos_token_id, else the tokenizer's template BOS, else -1. */
int moec_generate_bos_id(const moec_infer_model *m, const moec_tokenizer *tok);

/* Generates for prompts[0..n). Errors before anything runs: bad options, an empty prompt without BOS, a prompt
 * that does not fit the context (its length and the context are named). cb may be NULL; stats may be NULL. */
moec_status moec_generate(const moec_infer_model *m, const moec_tokenizer *tok, const char *const *prompts, int n,
                          const moec_generate_opts *o, moec_gen_callback cb, void *cb_ctx, moec_gen_stats *stats);

#endif
