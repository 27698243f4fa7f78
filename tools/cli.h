/* cli.h — the helpers every moec subcommand uses: --flag value parsing against an allowed list, typed getters
 * that print a one-line error for a bad value, and the one place that turns a moec_status into the
 * "moec: error: ..." line. */
#ifndef MOEC_TOOLS_CLI_H
#define MOEC_TOOLS_CLI_H

#include <stdint.h>

#include "core/error.h"
#include "kernels/cpu/attn_decode.h"
#include "model/model.h"

typedef struct {
    const char *name;
    const char *value; /* NULL if absent */
} flag;

typedef struct {
    flag items[48];
    int n;
} flags;

/* Prints "moec: error: <last error message>"; returns 1. */
int fail(moec_status st);
/* Prints a usage error; returns 2. */
int usage_error(const char *msg, const char *arg);
/* Every flag takes a value: --name value; names outside the NULL-terminated `allowed` are errors. 0 on success. */
int parse_flags(flags *f, int argc, char **argv, const char *const *allowed);
/* The flag's value (the last one given), or NULL. */
const char *get(const flags *f, const char *name);
/* 0 absent, 1 set *out, -1 bad value (error printed). */
int get_int(const flags *f, const char *name, long long lo, long long hi, long long *out);
int get_float(const flags *f, const char *name, double lo, double hi, float *out);
/* --threads N (0 = one per CPU): starts the thread pool. 0 on success. */
int setup_threads(const flags *f);
/* --activations q8|f32: how decode meets GGUF files' Q4_x / Q5_x / K-quant weights (moec_qmat_set_activations;
 * q8, the default, rounds the inputs to int8 as llama.cpp does; f32 is exact). 0 on success. */
int setup_activations(const flags *f);
/* --kv f16|f32: the KV cache's numbers (f16, the default, as llama.cpp's: half the memory and the reads; f32 keeps
 * K and V exact). 0 on success. */
int get_kv(const flags *f, moec_kv_dtype *kv);
/* "i1 i2 i3" (spaces or commas) -> a fresh malloc'ed array. 0 on success. */
int parse_ids(const char *s, int32_t **ids, int64_t *n);
/* A model directory loaded into fp32 parameters for the training-mode forward. */
moec_status load_model(moec_model *m, const char *dir);

/* Inference subcommands (cmd_infer.c). */
int cmd_generate(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_logits(int argc, char **argv);

#endif
