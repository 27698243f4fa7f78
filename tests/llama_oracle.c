/* llama_oracle.c — llama.cpp as an independent oracle for moec's GGUF export (not a test_*.c: it links the
 * pinned llama.cpp, so scripts/llama_cpp.sh compiles it, not the Makefile).
 *
 *   llama_oracle logits   MODEL.gguf --ids "1,2,3" --out logits.npy [--threads 2]
 *       evaluates the ids as ONE sequence in ONE llama_decode call with an output at every position and
 *       writes the logits [n_tokens, n_vocab] as a float32 .npy — the layout `moec forward --out` writes, so
 *       the two compare row for row.
 *   llama_oracle tokenize MODEL.gguf --text "..." [--add-special]
 *       prints llama.cpp's token ids for the text (comma separated, one line), parse_special off: the
 *       exported tokenizer's ids, not moec's, for a text.
 *       The KV cache is f32 and flash attention off, so with an f32 GGUF every operation is f32.
 *   llama_oracle info     MODEL.gguf
 *       prints n_vocab, n_ctx_train, n_params.
 *   llama_oracle quantize IN.gguf OUT.gguf --ftype Q4_K_M
 *       llama.cpp's own quantizer (llama_model_quantize, as llama-quantize runs it): every 2-D weight to the
 *       type's mix (Q4_K_M: Q4_K with some Q6_K; rows that are not whole blocks fall back to other types), the
 *       norms stay f32. --pure: every weight the one type. ftypes: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M
 *       Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K.
 * Only llama.h's public C API is used. llama.cpp's own log goes to stderr only with LLAMA_ORACLE_VERBOSE=1.
 * Exit status: 0 ok, 1 llama.cpp refused the model or the input, 2 usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR || getenv("LLAMA_ORACLE_VERBOSE")) fputs(text, stderr);
}

static int usage(const char *why) {
    fprintf(stderr, "llama_oracle: %s\n"
                    "usage: llama_oracle logits MODEL.gguf --ids \"1,2,3\" --out FILE.npy [--threads N]\n"
                    "       llama_oracle tokenize MODEL.gguf --text TEXT [--add-special]\n"
                    "       llama_oracle info MODEL.gguf\n"
                    "       llama_oracle quantize IN.gguf OUT.gguf --ftype TYPE [--pure]\n", why);
    return 2;
}

/* Ids separated by commas and/or spaces, each a non-negative int32. */
static int parse_ids(const char *s, llama_token **ids_out, int *n_out) {
    int cap = 16, n = 0;
    llama_token *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return -1;
    for (const char *p = s;;) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',' && *end != ' ')) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            llama_token *grown = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!grown) { free(ids); return -1; }
            ids = grown;
        }
        ids[n++] = (llama_token)v;
        p = end;
    }
    if (n == 0) { free(ids); return -1; }
    *ids_out = ids;
    *n_out = n;
    return 0;
}

/* NumPy .npy v1.0, '<f4', C order; header padded so that data starts at a multiple of 64. */
static int write_npy(const char *path, const float *data, int64_t rows, int64_t cols) {
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                       (long long)rows, (long long)cols);
    int total = (10 + len + 1 + 63) / 64 * 64;
    int pad = total - 10 - len - 1;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                               (unsigned char)((total - 10) & 0xff), (unsigned char)((total - 10) >> 8)};
    int ok = fwrite(magic, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)len, f) == (size_t)len;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    ok = ok && fwrite(data, sizeof(float), (size_t)(rows * cols), f) == (size_t)(rows * cols);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static const char *flag(int argc, char **argv, const char *name) {
    for (int i = 3; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return NULL;
}

static int has(int argc, char **argv, const char *name) {
    for (int i = 3; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

static int cmd_logits(struct llama_model *model, int argc, char **argv) {
    const char *ids_s = flag(argc, argv, "--ids"), *out = flag(argc, argv, "--out");
    const char *threads_s = flag(argc, argv, "--threads");
    if (!ids_s || !out) return usage("logits needs --ids and --out");
    int threads = threads_s ? atoi(threads_s) : 2;
    if (threads < 1) return usage("--threads must be >= 1");
    llama_token *ids;
    int n;
    if (parse_ids(ids_s, &ids, &n)) return usage("--ids: expected non-negative integers");
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (int i = 0; i < n; i++)
        if (ids[i] >= n_vocab) {
            fprintf(stderr, "llama_oracle: id %d out of range (n_vocab %d)\n", ids[i], n_vocab);
            free(ids);
            return 1;
        }

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n;   /* exactly the sequence: one batch, one ubatch, all in the KV cache */
    cp.n_batch = (uint32_t)n;
    cp.n_ubatch = (uint32_t)n;
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.no_perf = true;
    /* llama.cpp's defaults store K and V in f16 (and may pick flash attention, which then rounds Q to f16):
     * both add ~1e-3 relative error of their own. An oracle for an f32 export wants f32 end to end. */
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama_oracle: cannot create a context\n");
        free(ids);
        return 1;
    }
    struct llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1; /* an output row at every position, not only the last */
    }
    batch.n_tokens = n;
    int rc = 0;
    int32_t dec = llama_decode(ctx, batch);
    float *logits = NULL;
    if (dec != 0) {
        fprintf(stderr, "llama_oracle: llama_decode returned %d\n", dec);
        rc = 1;
    } else if (!(logits = malloc((size_t)n * (size_t)n_vocab * sizeof *logits))) {
        fprintf(stderr, "llama_oracle: out of memory\n");
        rc = 1;
    } else {
        for (int i = 0; i < n && rc == 0; i++) {
            const float *row = llama_get_logits_ith(ctx, i);
            if (!row) { fprintf(stderr, "llama_oracle: no logits for position %d\n", i); rc = 1; break; }
            memcpy(logits + (size_t)i * (size_t)n_vocab, row, (size_t)n_vocab * sizeof *row);
        }
        if (rc == 0 && write_npy(out, logits, n, n_vocab)) {
            fprintf(stderr, "llama_oracle: cannot write %s\n", out);
            rc = 1;
        }
    }
    free(logits);
    llama_batch_free(batch);
    llama_free(ctx);
    free(ids);
    return rc;
}

static int cmd_tokenize(struct llama_model *model, int argc, char **argv) {
    const char *text = flag(argc, argv, "--text");
    if (!text) return usage("tokenize needs --text");
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int len = (int)strlen(text);
    int cap = len + 8;
    llama_token *toks = malloc((size_t)cap * sizeof *toks);
    if (!toks) return 1;
    int n = llama_tokenize(vocab, text, len, toks, cap, has(argc, argv, "--add-special"), false);
    if (n < 0) { /* -n is the size needed */
        cap = -n;
        llama_token *grown = realloc(toks, (size_t)cap * sizeof *toks);
        if (!grown) { free(toks); return 1; }
        toks = grown;
        n = llama_tokenize(vocab, text, len, toks, cap, has(argc, argv, "--add-special"), false);
    }
    if (n < 0) {
        fprintf(stderr, "llama_oracle: llama_tokenize failed (%d)\n", n);
        free(toks);
        return 1;
    }
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", toks[i]);
    printf("\n");
    free(toks);
    return 0;
}

static int cmd_quantize(int argc, char **argv) {
    static const struct { const char *name; enum llama_ftype ftype; } types[] = {
        {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
        {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},     {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
        {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},     {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},
        {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
        {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},
        {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M},
        {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},
    };
    const char *ft = flag(argc, argv, "--ftype");
    if (argc < 4 || !ft) return usage("quantize needs IN.gguf OUT.gguf --ftype TYPE");
    struct llama_model_quantize_params qp = llama_model_quantize_default_params();
    int found = 0;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(types[i].name, ft)) qp.ftype = types[i].ftype, found = 1;
    if (!found) return usage("unknown --ftype");
    qp.nthread = 2;
    qp.pure = has(argc, argv, "--pure");
    if (llama_model_quantize(argv[2], argv[3], &qp) != 0) {
        fprintf(stderr, "llama_oracle: llama.cpp could not quantize %s\n", argv[2]);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage("missing command or model");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "quantize")) {
        llama_log_set(quiet_log, NULL);
        llama_backend_init();
        const int rc = cmd_quantize(argc, argv);
        llama_backend_free();
        return rc;
    }
    if (strcmp(cmd, "logits") && strcmp(cmd, "tokenize") && strcmp(cmd, "info")) return usage("unknown command");
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.vocab_only = strcmp(cmd, "tokenize") == 0;
    struct llama_model *model = llama_model_load_from_file(argv[2], mp);
    int rc;
    if (!model) {
        fprintf(stderr, "llama_oracle: llama.cpp cannot load %s\n", argv[2]);
        rc = 1;
    } else if (!strcmp(cmd, "logits")) {
        rc = cmd_logits(model, argc, argv);
    } else if (!strcmp(cmd, "tokenize")) {
        rc = cmd_tokenize(model, argc, argv);
    } else {
        printf("n_vocab %d\nn_ctx_train %d\nn_params %llu\n", llama_vocab_n_tokens(llama_model_get_vocab(model)),
               llama_model_n_ctx_train(model), (unsigned long long)llama_model_n_params(model));
        rc = 0;
    }
    if (model) llama_model_free(model);
    llama_backend_free();
    return rc;
}
