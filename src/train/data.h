/* data.h — the training-data pipeline: a text corpus tokenized once into two token files (train.bin, val.bin),
 * mapped read-only at training time and cut into random (training) or fixed (validation) windows.
 *
 * Token file format (version 1; all fields little-endian; moec builds only on little-endian hosts):
 *   offset  size  field
 *        0     8  magic "MOECTOK1"
 *        8     4  uint32 version = 1
 *       12     4  uint32 bytes per token = 4
 *       16     8  int64  token count N (>= 2: one input and its target)
 *       24     4  uint32 vocabulary size of the tokenizer that wrote it (every id is below it)
 *       28     4  uint32 reserved, 0
 *       32    4N  int32  token ids
 * The file size must be exactly 32 + 4N. Files are written atomically (temporary file, fsync, rename).
 *
 * Windows: a window of S+1 consecutive tokens gives S inputs tokens[i..i+S) and S targets tokens[i+1..i+S]
 * (each target is the token following its input). Arrays are [B, S], row-major.
 */
#ifndef MOEC_TRAIN_DATA_H
#define MOEC_TRAIN_DATA_H

#include <stdint.h>
#include "core/error.h"
#include "io/tokenizer.h"

#define MOEC_TOKFILE_MAGIC "MOECTOK1"
#define MOEC_TOKFILE_VERSION 1
#define MOEC_TOKFILE_HEADER_BYTES 32

/* Tokenize the text file into out_dir/train.bin and out_dir/val.bin (out_dir is created if missing).
 * The split is contiguous: val.bin holds the last ~val_fraction of the text, starting at the beginning of a
 * line, so validation text is never trained on; the two halves are encoded separately and
 * decode(train) + decode(val) is the original text exactly. 0 < val_fraction < 1. An empty corpus, one with no
 * line break to split at, or one leaving fewer than 2 tokens on either side is an error. */
moec_status moec_data_prepare(const char *text_path, const moec_tokenizer *t, const char *out_dir,
                              double val_fraction, int64_t *n_train, int64_t *n_val);

typedef struct moec_token_shard moec_token_shard;

/* Map a token file read-only and validate it completely: header fields, file size against the token count, the
 * header's vocabulary size and every id against vocab_size (the model's vocabulary, >= the tokenizer's). */
moec_status moec_shard_open(moec_token_shard **s, const char *path, int vocab_size);
int64_t moec_shard_len(const moec_token_shard *s);
const int32_t *moec_shard_tokens(const moec_token_shard *s); /* [moec_shard_len(s)] */
void moec_shard_close(moec_token_shard *s);

/* splitmix64 (Steele, Lea & Flood 2014), i.e. moec_rand_u64 of core/rng.h: advances *state by
 * 0x9e3779b97f4a7c15 and returns a mix of it. Any seed is fine, 0 included; runs are reproducible. */
uint64_t moec_rng_next(uint64_t *state);

/* B random training windows. Row b's window starts at moec_rng_next(rng_state) % (len - S) (the calls made
 * in order b = 0..B-1), so the result depends only on *rng_state, which is advanced by B. Needs len > S;
 * a shorter shard is read cyclically (never out of bounds) — check moec_shard_len first. */
void moec_shard_sample_batch(const moec_token_shard *s, uint64_t *rng_state, int B, int S, int32_t *inputs /*[B,S]*/,
                             int32_t *targets /*[B,S]*/);

/* Number of non-overlapping evaluation windows of S inputs: (len - 1) / S (at least 1). */
int64_t moec_shard_eval_windows(const moec_token_shard *s, int S);

/* Evaluation batch `index` (>= 0): row b is window w = (index*B + b) mod moec_shard_eval_windows(s, S), which
 * starts at token w*S. Batches 0 .. eval_windows/B - 1 cover distinct windows, each exactly once. */
void moec_shard_eval_batch(const moec_token_shard *s, int64_t index, int B, int S, int32_t *inputs /*[B,S]*/,
                           int32_t *targets /*[B,S]*/);

#endif
