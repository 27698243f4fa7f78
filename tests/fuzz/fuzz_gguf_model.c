/* fuzz_gguf_model.c — libFuzzer target for what consumes a GGUF file past the reader: the model loader that runs
 * a file in place (moec_infer_model_from_gguf: hyper-parameters, tensor shapes and types against the config, q/k
 * row permutation, stacked experts), two tokens through the inference engine with whatever weights were loaded,
 * and the tokenizer import (moec_gguf_read_tokenizer's steps). Any input must be refused with an error or run without a
 * fault. Built from all of src/ and run by tests/test_fuzz.sh (clang -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infer/engine.h"
#include "infer/infer_model.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    moec_gguf_file *f;
    if (moec_gguf_open_memory(&f, data, size, "fuzz") != MOEC_OK) return 0;
    /* moec_gguf_read_tokenizer's steps, without its note on stderr (which would slow the fuzzer down) */
    char *json = NULL;
    const char *why;
    moec_tokenizer *tok = NULL;
    if (moec_gguf_tokenizer_json(f, &json, &why) == MOEC_OK && json &&
        moec_tokenizer_load_json_text(&tok, json, strlen(json), "fuzz") == MOEC_OK) {
        int32_t *ids;
        int64_t n;
        if (moec_tokenizer_encode(tok, "Hi there", 8, &ids, &n) == MOEC_OK) free(ids);
        moec_tokenizer_free(tok);
    }
    free(json);
    moec_infer_model m;
    if (moec_infer_model_from_gguf(&m, f, "fuzz") != MOEC_OK) return 0; /* f closed */
    moec_session s;
    if (m.cfg.max_seq >= 2 && moec_session_init(&s, &m, 1, 2, 2, MOEC_KV_F16) == MOEC_OK) {
        const int32_t ids[2] = {0, m.cfg.vocab_size - 1}, slots[2] = {0, 0};
        float *logits = malloc(sizeof(float) * 2 * (size_t)m.cfg.vocab_size);
        if (logits) moec_session_forward(&s, 2, ids, slots, NULL, logits);
        free(logits);
        moec_session_free(&s);
    }
    moec_infer_model_free(&m);
    return 0;
}
