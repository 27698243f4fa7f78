/* fuzz_safetensors.c — libFuzzer target for the safetensors reader: any byte string must either be refused or
 * open into a file whose every tensor, name and metadata entry can be read without a fault.
 * Built and run by tests/test_fuzz.sh (clang -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

static volatile double sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    moec_st_file *f;
    if (moec_st_open_memory(&f, data, size, "fuzz") != MOEC_OK) return 0;
    double acc = 0;
    const char *m = moec_st_metadata(f, "format");
    if (m) acc += strlen(m);
    for (int i = 0; i < moec_st_count(f); i++) {
        const moec_st_tensor *t = moec_st_get(f, i);
        acc += (moec_st_find(f, t->name) == t) + strlen(t->name);
        const uint8_t *p = t->data;
        for (size_t j = 0; j < t->nbytes; j++) acc += p[j];
        int64_t n = moec_st_numel(t);
        switch (t->dtype) {
        case MOEC_ST_F64: case MOEC_ST_F32: case MOEC_ST_F16: case MOEC_ST_BF16:
        case MOEC_ST_F8_E4M3: case MOEC_ST_F8_E5M2: {
            float *v = malloc((size_t)(n ? n : 1) * sizeof *v); /* n <= nbytes: bounded by the input */
            if (v && moec_st_read_f32(t, v, n) == MOEC_OK && n > 0) acc += v[0] + v[n - 1];
            free(v);
            break;
        }
        default: break;
        }
    }
    sink = acc;
    moec_st_close(f);
    return 0;
}
