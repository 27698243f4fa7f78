/* tensor_source.h — the safetensors files one model directory's tensors live in: DIR/model.safetensors, or the
 * shards named by DIR/model.safetensors.index.json. Every file is mapped read-only (moec_st_open), so tensors can
 * be used in place (the inference engine runs on the mapping) or converted (moec_model_dir_load).
 *
 * Shard names from an index must be plain file names in DIR (no '/'), every shard must exist, and a tensor found
 * in a shard must be the one the index's weight_map names for it. */
#ifndef MOEC_IO_TENSOR_SOURCE_H
#define MOEC_IO_TENSOR_SOURCE_H

#include "core/error.h"
#include "io/safetensors.h"

typedef struct moec_tensor_source moec_tensor_source;

moec_status moec_tensor_source_open_dir(moec_tensor_source **s, const char *dir);
/* One file, no index (optimizer state and other table-shaped dumps). */
moec_status moec_tensor_source_open_file(moec_tensor_source **s, const char *path);
void moec_tensor_source_close(moec_tensor_source *s);

/* *t = the tensor called name, or NULL when no file has it (not an error). Errors: the name is in two files, or
 * in a different file than the index says. *file (may be NULL) receives the file's path, for messages. */
moec_status moec_tensor_source_find(const moec_tensor_source *s, const char *origin, const char *name,
                                    const moec_st_tensor **t, const char **file);

int moec_tensor_source_file_count(const moec_tensor_source *s);
const moec_st_file *moec_tensor_source_file(const moec_tensor_source *s, int i);

/* The per-output-channel scale tensor that pairs with an F8_E4M3 weight "X.weight": "X.weight_scale", F32 (or
 * BF16/F16), shape [rows, 1] or [rows] — the naming of Hugging Face FP8 checkpoints (fbgemm_fp8,
 * compressed-tensors "channel" strategy). Writes the name into buf. */
void moec_fp8_scale_name(char *buf, size_t cap, const char *weight_name);
/* *scale = that tensor for an FP8 weight of `rows` output rows; MOEC_ERR_FORMAT when it is absent or not shaped
 * [rows, 1] / [rows]. */
moec_status moec_fp8_scale_find(const moec_tensor_source *s, const char *origin, const char *weight_name, int64_t rows,
                                const moec_st_tensor **scale);
/* MOEC_ERR_FORMAT naming the first scale that is negative or not finite (it would poison its whole row). */
moec_status moec_fp8_scale_check(const char *origin, const moec_st_tensor *scale_tensor, const float *scale,
                                 int64_t rows);

/* bf16p weights (core/bf16p.h) in a safetensors file: a matrix [rows, cols] stored as a U8 tensor of shape
 * [rows, moec_bf16p_row_bytes(cols)], under the weight's own name (config.json says "moec_weight_format": "bf16p").
 * moec_bf16p_tensor_is: whether t is that for a weight of the given shape. moec_bf16p_tensor_check:
 * MOEC_ERR_FORMAT naming the first row whose header is unsound (moec_bf16p_check_row) — run before the kernels
 * trust the file. moec_bf16p_tensor_read_f32: the checked rows unpacked to fp32 (out[rows · cols]). */
int moec_bf16p_tensor_is(const moec_st_tensor *t, int64_t rows, int64_t cols);
moec_status moec_bf16p_tensor_check(const char *origin, const moec_st_tensor *t, int64_t rows, int64_t cols);
moec_status moec_bf16p_tensor_read_f32(const char *origin, const moec_st_tensor *t, int64_t rows, int64_t cols,
                                       float *out);

#endif
