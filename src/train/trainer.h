/* trainer.h — the training loop: sampling, forward/backward with gradient accumulation, NaN/Inf guard,
 * clipping, AdamW, Skywork's per-layer adaptive aux-loss coefficients, evaluation, metrics and atomic
 * checkpoints that a resumed run continues bit-for-bit.
 *
 * A run directory holds:
 *   config.json, model.safetensors, tokenizer.json   — a Hugging Face model directory (loadable on its own)
 *   optimizer.safetensors                            — AdamW moments "m.<param>", "v.<param>"
 *   trainer.json                                     — step, RNG state, α per layer, options (written last)
 *   data/train.bin, data/val.bin                     — token shards
 *   metrics.jsonl                                    — one record per step (+ evaluation records)
 * Every file is replaced atomically (temp, fsync, rename); model and optimizer carry the step in their
 * safetensors metadata and resume refuses a directory whose files disagree about it.
 */
#ifndef MOEC_TRAIN_TRAINER_H
#define MOEC_TRAIN_TRAINER_H

#include <stdint.h>

#include "model/model.h"
#include "train/optim.h"

typedef struct {
    const char *out_dir;
    int64_t steps;          /* train up to this step (absolute) */
    int64_t batch, seq;     /* micro-batch B×S */
    int grad_accum;         /* micro-batches per optimizer step */
    uint64_t seed;
    int64_t eval_every;     /* 0 = only at the end */
    int64_t eval_batches;
    int64_t save_every;     /* 0 = only at the end */
    moec_optim_config optim;
    int quiet;              /* no progress output */
} moec_train_options;

void moec_train_options_defaults(moec_train_options *o);

/* Train `m` (parameters initialised or loaded by the caller) on out_dir/data/{train,val}.bin from step 0. */
moec_status moec_train_start(moec_model *m, const moec_train_options *o);
/* Continue the run saved in dir up to `steps` (0 = the saved target). Options other than steps come from dir. */
moec_status moec_train_resume(const char *dir, int64_t steps, int quiet);

/* Mean validation loss over n_batches deterministic windows of the shard at path (used by train and eval). */
moec_status moec_evaluate(moec_model *m, const char *val_path, int64_t B, int64_t S, int64_t n_batches,
                          double *mean_loss, int64_t *n_tokens);

/* Mean pairwise cosine similarity of one MoE layer's experts (w1, w3, w2 of each as one vector): 1 right after
 * upcycling (identical copies), ~0 for independently initialised experts. NaN when E < 2. */
double moec_expert_similarity(const moec_layer_view *w, const moec_config *c);

#endif
