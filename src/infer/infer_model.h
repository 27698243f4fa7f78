/* infer_model.h — a model ready for inference: every linear weight is a moec_qmat (fp32, bf16, f16, or fp8 E4M3
 * with a per-output-row scale) that points straight into the read-only mapping of the model's safetensors files when
 * the stored dtype is one the kernels read; nothing is copied then (the page cache holds the only copy, shared by
 * every process serving the model). Tensors stored in a dtype the kernels do not read (F64, E5M2, 1-D norms in a
 * 16-bit type) are converted once into owned fp32 buffers.
 *
 * Where the weights can come from:
 *   - a model directory (config.json + model.safetensors or shards): F32 / BF16 / F16 matrices used in place, F8_E4M3
 *     matrices with their "X.weight_scale" [rows, 1] tensors (as `moec quantize --to fp8` writes) used in place;
 *   - a llama-family GGUF file (infer_gguf.c): F32 / F16 / BF16 / Q8_0 matrices used in place, stacked expert
 *     tensors sliced in place; q/k projections whose rows llama.cpp stores in its interleaved RoPE order are
 *     copied once in Hugging Face's order (the kernels' types are kept);
 *   - an in-memory fp32 parameter buffer (moec_model_dir_load, moec_gguf_load, a training run), borrowed.
 *
 * Inference semantics: MoE layers route dropless (capacity factor and token dropping are training-time load
 * balancing; at inference every token gets its top-K experts), with the same gating-logit normalisation and
 * top-K weights as training (router.h).
 */
#ifndef MOEC_INFER_INFER_MODEL_H
#define MOEC_INFER_INFER_MODEL_H

#include "core/error.h"
#include "kernels/cpu/qmatmul.h"
#include "model/config.h"
#include "model/params.h"

typedef struct {
    const float *attn_norm, *ffn_norm; /* [D] */
    moec_qmat wq, wk, wv, wo;
    const float *bq, *bk, *bv;         /* NULL unless cfg.qkv_bias */
    moec_qmat w1, w3, w2;              /* dense FFN */
    moec_qmat router;                  /* MoE: [E, D] */
    moec_qmat *experts;                /* MoE: [3E]: expert e's w1, w3, w2 at 3e, 3e+1, 3e+2 */
} moec_infer_layer;

typedef struct moec_tensor_source moec_tensor_source;
struct moec_gguf_file;

typedef struct {
    moec_config cfg;
    moec_qmat tok_emb;                 /* [V, D] (rows looked up with moec_qmat_row) */
    moec_qmat lm_head;                 /* [V, D]; the same matrix as tok_emb when tied */
    const float *final_norm;
    moec_infer_layer layers[MOEC_MAX_LAYERS];
    moec_qmat *expert_mats;            /* storage behind every layer's experts */
    moec_tensor_source *source;        /* the mapped files, or NULL */
    struct moec_gguf_file *gguf;       /* the mapped GGUF file, or NULL */
    void **owned;                      /* converted copies, freed with the model */
    int n_owned, cap_owned;
    int64_t weight_bytes;              /* bytes of all weights as the kernels read them */
    int64_t mapped_bytes;              /* of those, bytes used in place from the mapping */
} moec_infer_model;

/* Load DIR (see above). */
moec_status moec_infer_model_load(moec_infer_model *m, const char *dir);
/* Wrap an fp32 parameter buffer laid out by table (borrowed: it must outlive m). */
moec_status moec_infer_model_from_params(moec_infer_model *m, const moec_config *c, const moec_param_table *table,
                                         const float *params);
/* Load a GGUF file (see above). */
moec_status moec_infer_model_load_gguf(moec_infer_model *m, const char *path);
/* The same from an open file, which m takes over (closed with the model, or at once if this fails); origin names
 * it in messages. */
moec_status moec_infer_model_from_gguf(moec_infer_model *m, struct moec_gguf_file *f, const char *origin);
void moec_infer_model_free(moec_infer_model *m);

/* For the loaders: take ownership of p (moec_free'd with the model; freed at once on failure), and bind one matrix
 * (vectors: rows = length, cols = 1, F32) per table entry, in table order, to the model's slots. */
moec_status moec_infer_model_keep(moec_infer_model *m, void *p);
moec_status moec_infer_model_bind(moec_infer_model *m, const moec_param_table *table, const moec_qmat *all);

/* Bytes of weights one token reads in a decode step: every non-expert matrix, K experts per MoE layer, one
 * embedding row (the memory-bandwidth bound of decoding is this over the machine's read bandwidth). */
int64_t moec_infer_active_weight_bytes(const moec_infer_model *m);

/* Sets moec_qmat.streamed on every weight matrix. Loading sets it when the active weights are at least 4x the
 * last-level cache (moec_cpu_llc_bytes); benchmarks override it to compare. */
void moec_infer_model_set_streamed(moec_infer_model *m, int on);

#endif
