/* model_dir.h — a model as a Hugging Face directory: config.json + model.safetensors.
 *
 * Layout of DIR:
 *   config.json                    see config_json.c (Llama keys for dense, Mixtral keys for MoE, moec extras)
 *   model.safetensors              every tensor of the parameter table under its HF name (params.h)
 *   or, instead of the single file,
 *   model.safetensors.index.json   {"metadata": {...}, "weight_map": {"<tensor name>": "<shard file name>"}}
 *                                  with the shards (plain file names, no '/') in DIR
 * Loading accepts F32, F16, BF16 (and F64/F8) tensors and converts them to fp32. Every table tensor must be
 * present with exactly the table's shape. Extra tensors are an error (a config that does not describe the
 * weights is a bug to report, not to ignore), except "*.rotary_emb.inv_freq" buffers that old exporters saved,
 * and lm_head.weight in a tied model (some exporters write the shared matrix twice).
 * Saving writes fp32 tensors with metadata {"format": "pt"} (so transformers loads them) plus the caller's
 * key/value strings; model.safetensors first, then config.json, each atomically. A failed save leaves the
 * previous files as they were.
 */
#ifndef MOEC_IO_MODEL_DIR_H
#define MOEC_IO_MODEL_DIR_H

#include "core/error.h"
#include "model/config.h"
#include "model/params.h"

/* Read DIR's config and weights. On success *params is a moec_alloc_floats buffer of table->total floats the
 * caller releases with moec_free (and the table with moec_param_table_free); on failure nothing is allocated. */
moec_status moec_model_dir_load(const char *dir, moec_config *cfg, moec_param_table *table, float **params);

/* Write DIR (created if missing). table must be the table of cfg (checked: same names and shapes). meta_kv
 * holds n_meta (key, value) pairs for the safetensors __metadata__. */
moec_status moec_model_dir_save(const char *dir, const moec_config *cfg, const moec_param_table *table,
                                const float *params, const char *const *meta_kv, int n_meta);

/* Table-driven save/load of any buffer laid out by a parameter table (optimizer moments, gradients dumps):
 * same names and shapes as the parameters, fp32, one safetensors file written atomically. Loading requires
 * exactly the table's tensors (no missing, no extra, same shapes) and fills buf (table->total floats). */
moec_status moec_model_dir_save_tensors(const char *path, const moec_param_table *table, const float *buf,
                                        const char *const *meta_kv, int n_meta);
moec_status moec_model_dir_load_tensors(const char *path, const moec_param_table *table, float *buf);

#endif
