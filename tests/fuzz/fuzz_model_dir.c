/* fuzz_model_dir.c — libFuzzer target for a model directory's weights as moec serves them: the input is the
 * directory's model.safetensors (config.json fixed: a 1-layer model whose matrices are 128 columns wide where bf16p
 * can pack them), loaded in place by moec_infer_model_load — every dtype the loader maps (F32, BF16, F16, F8_E4M3
 * with its scale tensor, bf16p's U8 rows with their headers) and the checks before the kernels trust them — and two
 * tokens through the inference engine on whatever was loaded. Any input must be refused with an error or run
 * without a fault. Built from all of src/ and run by tests/test_fuzz.sh.
 *
 * With MOEC_FUZZ_WRITE_SEEDS=DIR the binary instead writes the seed files into DIR (the model with training's
 * random init, saved as f32, and through `moec quantize`'s code as bf16, f16, fp8 and bf16p) and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/engine.h"
#include "infer/infer_model.h"
#include "infer/quantize.h"
#include "io/fsutil.h"
#include "io/model_dir.h"
#include "model/config.h"
#include "model/model.h"

static char dir[4096];

static moec_config tiny_config(void) {
    moec_config c;
    moec_config_defaults(&c);
    c.vocab_size = 4;
    c.hidden = 128; /* bf16p packs rows of 128 */
    c.n_layers = 1;
    c.n_heads = 1;
    c.n_kv_heads = 1;
    c.head_dim = 8;
    c.ffn_dim = 8;
    c.max_seq = 8;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.bos_id = c.eos_id = -1;
    return c;
}

static int write_seeds(const char *out) {
    moec_config c = tiny_config();
    moec_model m;
    if (moec_model_init(&m, &c) != MOEC_OK) return 1;
    moec_model_init_random(&m, 1); /* training's init: Gaussian weights, norms 1 */
    char src[4200], q[4200], from[4400], to[4400];
    snprintf(src, sizeof src, "%s/f32", dir);
    int bad = moec_model_dir_save(src, &c, &m.table, m.params, NULL, 0) != MOEC_OK;
    static const moec_qtype types[] = {MOEC_QT_BF16, MOEC_QT_F16, MOEC_QT_F8E4M3, MOEC_QT_BF16P};
    snprintf(from, sizeof from, "%s/model.safetensors", src);
    snprintf(to, sizeof to, "%s/f32.safetensors", out);
    if (!bad) bad = moec_copy_file(from, to, 1 << 20) != MOEC_OK;
    for (int i = 0; i < 4 && !bad; i++) {
        snprintf(q, sizeof q, "%s/%s", dir, moec_qtype_name(types[i]));
        bad |= moec_quantize_model(src, q, types[i]) != MOEC_OK;
        snprintf(from, sizeof from, "%s/model.safetensors", q);
        snprintf(to, sizeof to, "%s/%s.safetensors", out, moec_qtype_name(types[i]));
        bad |= moec_copy_file(from, to, 1 << 20) != MOEC_OK;
    }
    moec_model_free(&m);
    if (bad) fprintf(stderr, "fuzz_model_dir: writing the seeds failed: %s\n", moec_error_message());
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *tmp = getenv("MOEC_FUZZ_TMP"); /* (test_fuzz.sh points it into its build folder, then removes it) */
    snprintf(dir, sizeof dir, "%s/moec-fuzz-dir-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) abort();
    const char *seeds = getenv("MOEC_FUZZ_WRITE_SEEDS");
    if (seeds) exit(write_seeds(seeds));
    moec_config c = tiny_config();
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (moec_config_save_json(&c, path) != MOEC_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    moec_infer_model m;
    if (moec_infer_model_load(&m, dir) != MOEC_OK) return 0;
    moec_session s;
    if (moec_session_init(&s, &m, 1, 2, 2, MOEC_KV_F16) == MOEC_OK) {
        const int32_t ids[2] = {0, m.cfg.vocab_size - 1}, slots[2] = {0, 0};
        float logits[2 * 4];
        moec_session_forward(&s, 2, ids, slots, NULL, logits);
        moec_session_free(&s);
    }
    moec_infer_model_free(&m);
    return 0;
}
