/* experiment.h — `moec experiment upcycle-vs-scratch`: the Skywork-MoE report's upcycling-vs-scratch finding
 * (report §4) reproduced at CPU scale, end to end, from one text corpus.
 *
 *   1. a byte-level BPE tokenizer and a dense Llama-style model (D 128, L 4, F 384, H 4, G 2, V 2048 by default)
 *      trained for dense_steps steps: the dense budget C = steps · tokens/step · 6 · N_active(dense) FLOPs;
 *   2. the dense model upcycled (moec_upcycle: 8 experts, top-2, λ = 1, DROPLESS so the upcycled model is exactly
 *      the dense function at step 0 — a capacity factor would drop tokens and break that equality; dropless
 *      routing uses a fixed auxiliary-loss α) and trained from those weights, and an MoE of the same
 *      config.json trained from a random initialisation, each under two budgets in MoE FLOPs:
 *      small_budget·C and large_budget·C (steps = round(budget / (tokens/step · 6 · N_active(MoE)))).
 *      Every run (dense included) follows one schedule rule: linear warmup over max(steps/20, min(10, steps/2),
 *      1) steps to the peak lr 3e-3, cosine to 3e-4 at its own last step; all runs share the seed (data order, init);
 *   3. OUT/results.md, OUT/results.json, OUT/loss_vs_tokens.png, OUT/expert_similarity.png, and a verdict.
 *
 * N_active counts the weights one token multiplies by: per layer the attention projections
 * D·H·Dh + 2·D·G·Dh + H·Dh·D, plus the dense FFN 3·D·F or, in an MoE layer, the router D·E and K experts
 * 3·D·F_e; plus the output projection V·D. Norm weights and the embedding lookup are not counted.
 *
 * Layout of OUT: dense/, upcycled_init/ (the upcycled model directory, step 0), upcycled_small/,
 * upcycled_large/, scratch_small/, scratch_large/ — each run an ordinary moec run directory (metrics.jsonl with
 * step/tokens/val_loss/expert_similarity records; evaluation every ~10% of the run).
 */
#ifndef MOEC_TRAIN_EXPERIMENT_H
#define MOEC_TRAIN_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "model/config.h"

typedef struct {
    const char *data_path;   /* text corpus */
    const char *out_dir;     /* created; must not already hold an experiment */
    int64_t dense_steps;     /* C in steps of the dense model */
    uint64_t seed;
    double small_budget, large_budget; /* MoE budgets as fractions of C */
    int64_t batch, seq;      /* B x S tokens per step for every run */
    int vocab;
    int64_t eval_batches;    /* validation batches per evaluation */
    int quiet;
} moec_experiment_options;

/* dense_steps 400, seed 1337, budgets 0.2 and 2, B 16, S 128, vocab 2048, 8 evaluation batches. */
void moec_experiment_options_defaults(moec_experiment_options *o);

/* Weights one token multiplies by (see above). */
int64_t moec_config_active_params(const moec_config *c);

/* Runs the whole experiment; the verdict paragraph (also in results.md/json) goes to verdict (may be NULL). */
moec_status moec_experiment_upcycle_vs_scratch(const moec_experiment_options *o, char *verdict, size_t cap);

#endif
