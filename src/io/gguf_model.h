/* gguf_model.h — a moec model as a llama.cpp GGUF file, both ways.
 *
 * Export writes architecture "llama" (dense, or Mixtral-style MoE: llama.cpp's llama architecture runs an MoE
 * FFN in every layer when llama.expert_count > 0), the hyper-parameters, the tokenizer (byte-level BPE as
 * tokenizer.ggml.model "gpt2" with the pre-tokenizer named in tokenizer.ggml.pre; SentencePiece-style BPE as
 * "llama" with scores and token types), and the tensors under llama.cpp's names:
 *   token_embd, output_norm, output (absent when tied: llama.cpp then reuses token_embd),
 *   blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm}.weight, blk.N.attn_{q,k,v}.bias (Qwen2-style
 *   biases; llama.cpp's llama loader takes them when present),
 *   dense: blk.N.ffn_{gate,up,down}.weight; MoE: blk.N.ffn_gate_inp.weight and the stacked 3-D
 *   blk.N.ffn_{gate,up,down}_exps.weight (ne = {in, out, experts}).
 * q/k rows are permuted from Hugging Face's rotate-half RoPE layout (pairs i, i + Dh/2) to llama.cpp's
 * interleaved one (pairs 2i, 2i+1), as llama.cpp's convert_hf_to_gguf.py does; loading undoes it.
 * Norm weights, biases and the router stay F32; the other matrices take the chosen type (Q8_0 needs the input
 * width to be a multiple of 32; a matrix that is not falls back to F16, with a note on stderr).
 * moec's router settings go into moec.* keys (gate_lambda, capacity_factor, aux loss, α controller) so an
 * import restores them; llama.cpp ignores them.
 */
#ifndef MOEC_IO_GGUF_MODEL_H
#define MOEC_IO_GGUF_MODEL_H

#include "core/error.h"
#include "io/tokenizer.h"
#include "model/config.h"
#include "model/params.h"

typedef enum { MOEC_GGUF_F32, MOEC_GGUF_F16, MOEC_GGUF_BF16, MOEC_GGUF_Q8_0 } moec_gguf_wtype;

/* Parse "f32" | "f16" | "bf16" | "q8_0"; 0 on success, -1 if unknown. */
int moec_gguf_wtype_parse(const char *s, moec_gguf_wtype *t);

/* model_dir: config.json + weights (moec_model_dir_load), and tokenizer.json when present. Refused: models that
 * mix dense and MoE layers (llama.cpp's llama architecture cannot express them), odd head_dim, and λ != 0
 * unless allow_inexact (llama.cpp has no gating-logit normalisation; then a warning on stderr). Atomic. */
moec_status moec_gguf_export(const char *model_dir, const char *out_path, moec_gguf_wtype type, int allow_inexact);

/* A llama-family GGUF ("llama", also "qwen2" (biases, rotate-half RoPE: no permutation) and "mistral") with
 * F32/F16/BF16/Q8_0 tensors, into moec_model_dir_load's in-memory form (fp32; caller frees *params with
 * moec_free and the table with moec_param_table_free). tok may be NULL; else *tok is the file's tokenizer, or
 * NULL when it has none moec can represent (a note on stderr says why). */
moec_status moec_gguf_load(const char *path, moec_config *cfg, moec_param_table *table, float **params,
                           moec_tokenizer **tok);

/* For loaders that run an open file's tensors in place (infer/infer_gguf.c): the model configuration as
 * moec_gguf_load reads it (architecture checked), and *permuted_qk = 1 when q/k rows are in llama.cpp's
 * interleaved RoPE order (llama, mistral; 0 for qwen2); the file's tokenizer as moec_gguf_load imports it. */
struct moec_gguf_file;
moec_status moec_gguf_read_config(const struct moec_gguf_file *f, const char *path, moec_config *cfg, int *permuted_qk);
moec_status moec_gguf_read_tokenizer(const struct moec_gguf_file *f, const char *path, moec_tokenizer **tok);
/* Rows of one q/k projection (or bias), Hugging Face's rotate-half order -> llama.cpp's interleaved one, per head
 * of dh rows: out row h*dh + 2j + i = in row h*dh + i*dh/2 + j; inverse = 1 maps back. Rows of row_bytes bytes. */
void moec_gguf_permute_rows(const void *in, void *out, int n_head, int dh, size_t row_bytes, int inverse);

/* GGUF -> model directory (config.json + model.safetensors, and tokenizer.json when representable). */
moec_status moec_gguf_import(const char *path, const char *out_dir);

/* ---- shared by gguf_model.c and gguf_tokenizer.c ---- */
struct moec_gguf_writer;
struct moec_gguf_file;
/* tokenizer.ggml.* KVs for t, padded to n_vocab tokens ("[PADi]", type unused) like convert_hf_to_gguf.py. */
moec_status moec_gguf_put_tokenizer(struct moec_gguf_writer *w, const moec_tokenizer *t, const moec_config *cfg,
                                    int n_vocab);
/* A tokenizer.json text for the file's tokenizer.ggml.* KVs (malloc'ed, *json NULL and *why set when the file
 * has no tokenizer moec can represent). */
moec_status moec_gguf_tokenizer_json(const struct moec_gguf_file *f, char **json, const char **why);

#endif
