/* upcycle.h — sparse upcycling: turn a dense Llama model directory into an MoE (Mixtral-named) model directory.
 *
 * Every chosen layer's dense SwiGLU (gate_proj, up_proj, down_proj) is copied into each of the E experts
 * (w1, w3, w2), optionally plus N(0, noise_std²) noise per element; the router gate starts new (zero, or
 * N(0, gate_std²)). Every other tensor is copied unchanged, converted to fp32. With identical experts and the
 * renormalised top-K combine, the MoE model computes exactly the dense function at step 0 whatever the gate says,
 * as long as no token is dropped (dropless, or a capacity factor large enough) — Skywork-MoE report §4.
 *
 * Output DIR: config.json (Mixtral keys + moec extras; expert width = dense width, non-MoE layers keep the dense
 * FFN as dense_intermediate_size), model.safetensors (fp32, metadata {"format": "pt", "upcycled_from": DENSE_DIR}),
 * tokenizer.json copied when the dense directory has one. It is built in "OUT_DIR.tmp-<pid>" and renamed into place
 * at the end; OUT_DIR must not exist, and on any failure the temporary directory is removed.
 *
 * Memory: O(one tensor). The input is read with pread (no mapping: a mapping counts toward RLIMIT_AS) and the
 * output is streamed, so a model larger than the address-space limit upcycles fine.
 */
#ifndef MOEC_MOE_UPCYCLE_H
#define MOEC_MOE_UPCYCLE_H

#include <stdint.h>
#include "core/error.h"

typedef struct {
    int n_experts, top_k;        /* E >= 1 (E = 1 is allowed, if unusual), 1 <= K <= E */
    const uint8_t *moe_layers;   /* MOEC_MAX_LAYERS flags, 1 = make layer l MoE; NULL = all layers */
    float gate_lambda;           /* λ of the gating logit normalisation (0 = off) */
    float capacity_factor;       /* 0 = dropless */
    float noise_std;             /* per-element N(0, noise_std²) added to each expert copy; 0 = exact copies */
    uint64_t seed;               /* noise and gate streams: seeded per (layer, expert, matrix) and per layer */
    int gate_init;               /* 0: zero gate, 1: N(0, gate_std²) */
    float gate_std;
} moec_upcycle_options;

/* Fill o with the CLI's defaults: K = 2, all layers, λ = 1, dropless, no noise, random gate std 0.02, seed 0.
 * n_experts is left 0 (the caller must choose it). */
void moec_upcycle_options_defaults(moec_upcycle_options *o);

/* Read DENSE_DIR (config.json + model.safetensors or a sharded index), write OUT_DIR as described above. With a
 * dropless router the upcycled config uses a fixed auxiliary-loss α (an adaptive α would decay to 0). */
moec_status moec_upcycle(const char *dense_dir, const char *out_dir, const moec_upcycle_options *o);

#endif
