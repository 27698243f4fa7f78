/* fuzz_gguf.c — libFuzzer target for the GGUF reader: any byte string must either be refused with an error or
 * open into a file whose every KV, string, array element and tensor byte can be read without a fault.
 * Built and run by tests/test_fuzz.sh (clang -fsanitize=fuzzer,address,undefined). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"

static volatile double sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    moec_gguf_file *f;
    if (moec_gguf_open_memory(&f, data, size, "fuzz") != MOEC_OK) return 0;
    double acc = moec_gguf_version(f) + moec_gguf_alignment(f);
    for (int64_t i = 0; i < moec_gguf_kv_count(f); i++) {
        const moec_gguf_kv *kv = moec_gguf_kv_at(f, i);
        size_t len;
        acc += (double)strlen(kv->key) + (moec_gguf_find_kv(f, kv->key) != NULL);
        if (kv->type == MOEC_GGUF_KV_STRING) {
            const char *s = moec_gguf_kv_str(f, kv, &len);
            for (size_t j = 0; j < len; j++) acc += (unsigned char)s[j];
            moec_gguf_get_str(f, kv->key, &s, &len);
        } else if (kv->type == MOEC_GGUF_KV_ARRAY && kv->arr_type == MOEC_GGUF_KV_STRING) {
            for (uint64_t j = 0; j < kv->n; j++) {
                const char *s = moec_gguf_kv_arr_str(f, kv, j, &len);
                if (len) acc += (unsigned char)s[0] + (unsigned char)s[len - 1];
            }
        } else if (kv->type == MOEC_GGUF_KV_ARRAY) {
            for (uint64_t j = 0; j < kv->n; j++) {
                double v = moec_gguf_kv_arr_num(kv, j);
                if (!isnan(v)) acc += v;
            }
        } else {
            uint32_t u;
            int32_t s;
            uint64_t u64;
            float x;
            int b;
            moec_gguf_get_u32(f, kv->key, &u);
            moec_gguf_get_i32(f, kv->key, &s);
            moec_gguf_get_u64(f, kv->key, &u64);
            moec_gguf_get_f32(f, kv->key, &x);
            moec_gguf_get_bool(f, kv->key, &b);
        }
    }
    for (int64_t i = 0; i < moec_gguf_tensor_count(f); i++) {
        const moec_gguf_tensor *t = moec_gguf_tensor_at(f, i);
        acc += (moec_gguf_find_tensor(f, t->name) == t);
        const uint8_t *p = t->data;
        for (size_t j = 0; j < t->nbytes; j++) acc += p[j];
        int64_t n = moec_gguf_tensor_numel(t);
        if (t->type == MOEC_GGML_F32 || t->type == MOEC_GGML_F16 || t->type == MOEC_GGML_BF16 ||
            t->type == MOEC_GGML_Q8_0) {
            float *v = malloc((size_t)n * sizeof *v); /* n <= 2 * nbytes: bounded by the input */
            if (v && moec_gguf_tensor_read_f32(t, v, n) == MOEC_OK && n > 0) acc += v[0] + v[n - 1];
            free(v);
        }
    }
    sink = acc;
    moec_gguf_close(f);
    return 0;
}
