/* cmd_infer.c — the inference subcommands: generate, perplexity, quantize, convert. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "infer/engine.h"
#include "infer/generate.h"
#include "infer/quantize.h"
#include "infer/stop.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul.h"
#include "io/fsutil.h"
#include "io/gguf_model.h"
#include "io/npy.h"
#include "io/tokenizer.h"

/* A model to run: a model directory or a GGUF file (weights used in place either way, see infer_model.h). */
typedef struct {
    moec_infer_model im;
    moec_tokenizer *tok;
} loaded;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static moec_status load_for_inference(loaded *L, const char *model, const char *tokenizer_path, int need_tok) {
    memset(L, 0, sizeof *L);
    if (ends_with(model, ".gguf")) {
        MOEC_TRY(moec_infer_model_load_gguf(&L->im, model));
        if (need_tok && !tokenizer_path) MOEC_TRY(moec_gguf_read_tokenizer(L->im.gguf, model, &L->tok));
    } else {
        MOEC_TRY(moec_infer_model_load(&L->im, model));
    }
    if (need_tok && !L->tok) {
        char path[4096];
        if (tokenizer_path) snprintf(path, sizeof path, "%s", tokenizer_path);
        else snprintf(path, sizeof path, "%s/tokenizer.json", model);
        if (!moec_path_exists(path))
            return MOEC_ERR(MOEC_ERR_ARG, "no tokenizer: %s does not exist (give --tokenizer FILE)", path);
        MOEC_TRY(moec_tokenizer_load_json(&L->tok, path));
    }
    if (L->tok && moec_tokenizer_vocab_size(L->tok) > L->im.cfg.vocab_size)
        return MOEC_ERR(MOEC_ERR_ARG, "the tokenizer has %d ids but the model only %d", moec_tokenizer_vocab_size(L->tok),
                        L->im.cfg.vocab_size);
    return MOEC_OK;
}

static void unload(loaded *L) {
    moec_infer_model_free(&L->im);
    if (L->tok) moec_tokenizer_free(L->tok);
    memset(L, 0, sizeof *L);
}

static long peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* ------------------------------------------------------------------ generate */

typedef struct {
    int jsonl;
} gen_out;

static void on_event(void *ctx, const moec_gen_event *ev) {
    const gen_out *o = ctx;
    if (!o->jsonl) {
        if (ev->kind == MOEC_GEN_TEXT) fwrite(ev->text, 1, ev->len, stdout);
        else fputc('\n', stdout);
        fflush(stdout);
        return;
    }
    if (ev->kind != MOEC_GEN_DONE) return;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "index", ev->index);
    char *t = malloc(ev->len + 1);
    if (t) {
        memcpy(t, ev->text, ev->len);
        t[ev->len] = 0;
        cJSON_AddStringToObject(j, "text", t);
        free(t);
    }
    cJSON_AddStringToObject(j, "finish", ev->finish);
    cJSON_AddNumberToObject(j, "prompt_tokens", (double)ev->prompt_tokens);
    cJSON_AddNumberToObject(j, "generated_tokens", (double)ev->generated_tokens);
    char *s = cJSON_PrintUnformatted(j);
    if (s) printf("%s\n", s);
    fflush(stdout);
    free(s);
    cJSON_Delete(j);
}

/* One prompt per non-empty line. */
static int read_prompts(const char *path, char **text, char ***prompts, int *n) {
    size_t len;
    moec_status st = moec_read_file(path, text, &len, (size_t)1 << 30);
    if (st != MOEC_OK) return fail(st);
    int cap = 16;
    *prompts = malloc((size_t)cap * sizeof **prompts);
    *n = 0;
    if (!*prompts) return usage_error("out of memory reading", path);
    for (char *line = strtok(*text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!*line) continue;
        if (*n == cap) {
            char **grown = realloc(*prompts, (size_t)(cap *= 2) * sizeof **prompts);
            if (!grown) return usage_error("out of memory reading", path);
            *prompts = grown;
        }
        (*prompts)[(*n)++] = line;
    }
    if (*n == 0) return usage_error("--batch-file has no prompts", path);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    static const char *const allowed[] = {"model", "prompt", "batch-file", "max-tokens", "temperature", "top-k",
                                          "top-p", "min-p", "repetition-penalty", "repetition-window", "seed", "stop",
                                          "batch", "prefill-block", "ctx", "threads", "tokenizer", "bos", "eos",
                                          "stats", "activations", "kv", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed) || setup_threads(&f) || setup_activations(&f)) return 2;
    const char *model = get(&f, "model"), *prompt = get(&f, "prompt"), *batch_file = get(&f, "batch-file");
    if (!model || (!prompt == !batch_file)) return usage_error("give --model and exactly one of --prompt / --batch-file", NULL);
    moec_generate_opts o = moec_generate_opts_default();
    if (get_kv(&f, &o.kv)) return 2;
    long long v;
    int r = 0;
    if ((r = get_int(&f, "max-tokens", 1, 1 << 24, &v)) < 0) return 2; else if (r) o.max_tokens = (int)v;
    if ((r = get_int(&f, "top-k", 0, 1 << 30, &v)) < 0) return 2; else if (r) o.sampling.top_k = (int)v;
    if ((r = get_int(&f, "repetition-window", 0, 1 << 30, &v)) < 0) return 2; else if (r) o.sampling.repetition_window = (int)v;
    if ((r = get_int(&f, "seed", 0, INT64_MAX, &v)) < 0) return 2; else if (r) o.sampling.seed = (uint64_t)v;
    if ((r = get_int(&f, "batch", 1, 4096, &v)) < 0) return 2; else if (r) o.batch = (int)v;
    if ((r = get_int(&f, "prefill-block", 1, 1 << 16, &v)) < 0) return 2; else if (r) o.prefill_block = (int)v;
    if ((r = get_int(&f, "ctx", 1, 1 << 24, &v)) < 0) return 2; else if (r) o.ctx = (int)v;
    if ((r = get_int(&f, "bos", 0, 1, &v)) < 0) return 2; else if (r) o.add_bos = (int)v;
    if ((r = get_int(&f, "eos", 0, 1, &v)) < 0) return 2; else if (r) o.stop_at_eos = (int)v;
    if (get_float(&f, "temperature", 0, 1e6, &o.sampling.temperature) < 0 || get_float(&f, "top-p", 0, 1, &o.sampling.top_p) < 0 ||
        get_float(&f, "min-p", 0, 1, &o.sampling.min_p) < 0 ||
        get_float(&f, "repetition-penalty", 0, 1e6, &o.sampling.repetition_penalty) < 0)
        return 2;
    const char *stops[MOEC_STOP_MAX];
    int n_stops = 0;
    for (int i = 0; i < f.n; i++)
        if (!strcmp(f.items[i].name, "stop")) {
            if (n_stops == MOEC_STOP_MAX) return usage_error("too many --stop strings", NULL);
            stops[n_stops++] = f.items[i].value;
        }
    o.stops = stops;
    o.n_stops = n_stops;
    char *file_text = NULL;
    char **prompts = NULL;
    const char *one[1] = {prompt};
    int n_prompts = 1;
    if (batch_file && read_prompts(batch_file, &file_text, &prompts, &n_prompts)) {
        free(file_text);
        free(prompts);
        return 2;
    }
    loaded L;
    moec_status st = load_for_inference(&L, model, get(&f, "tokenizer"), 1);
    gen_out out = {.jsonl = batch_file != NULL};
    moec_gen_stats gs;
    if (st == MOEC_OK)
        st = moec_generate(&L.im, L.tok, batch_file ? (const char *const *)prompts : one, n_prompts, &o, on_event, &out, &gs);
    long long want_stats = 0;
    get_int(&f, "stats", 0, 1, &want_stats);
    if (st == MOEC_OK && want_stats)
        fprintf(stderr, "moec: %lld prompt + %lld generated tokens in %.2f s; prefill %.1f tok/s, decode %.1f tok/s; "
                "peak RSS %ld MB; weights %.1f MB, %.1f MB of them used in place; kernels %s (GGUF block types: %s "
                "activations)\n",
                (long long)gs.prompt_tokens, (long long)gs.generated_tokens, gs.seconds,
                gs.prefill_seconds > 0 ? gs.prompt_tokens / gs.prefill_seconds : 0.0,
                gs.decode_seconds > 0 ? gs.decode_step_tokens / gs.decode_seconds : 0.0, peak_rss_mb(),
                L.im.weight_bytes / 1048576.0, L.im.mapped_bytes / 1048576.0, moec_qmat_isa_name(),
                moec_qmat_activations() == MOEC_QACT_Q8 ? "int8" : "fp32");
    unload(&L);
    free(file_text);
    free(prompts);
    return st == MOEC_OK ? 0 : fail(st);
}

/* ------------------------------------------------------------------ perplexity */

/* Next-token NLL of one chunk of ids (positions 1..n-1 scored), summed into *nll, counted into *count. */
static moec_status score_chunk(moec_session *s, const int32_t *ids, int64_t n, int64_t block, float *logits,
                               float *losses, int V, double *nll, int64_t *count) {
    int32_t *slots = calloc((size_t)block, sizeof *slots);
    if (!slots) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    moec_session_reset(s, 0);
    moec_status st = MOEC_OK;
    for (int64_t at = 0; at < n - 1 && st == MOEC_OK; at += block) {
        const int64_t b = at + block <= n - 1 ? block : n - 1 - at;
        st = moec_session_forward(s, b, ids + at, slots, NULL, logits);
        if (st != MOEC_OK) break;
        int64_t counted;
        const double mean = moec_cross_entropy(NULL, losses, &counted, logits, ids + at + 1, b, V, 0.0f);
        *nll += mean * (double)counted;
        *count += counted;
    }
    free(slots);
    return st;
}

/* ------------------------------------------------------------------ logits */

/* The inference engine's next-token logits at every position of one sequence (prefilled in one block), as an
 * [n, V] .npy — what a comparison with another engine on the same weights file needs. */
int cmd_logits(int argc, char **argv) {
    static const char *const allowed[] = {"model", "ids", "out", "threads", "activations", "kv", NULL};
    flags f;
    moec_kv_dtype kv;
    if (parse_flags(&f, argc, argv, allowed) || setup_threads(&f) || setup_activations(&f) || get_kv(&f, &kv)) return 2;
    const char *model = get(&f, "model"), *ids_s = get(&f, "ids"), *out = get(&f, "out");
    if (!model || !ids_s || !out) return usage_error("--model, --ids and --out are required", NULL);
    int32_t *ids;
    int64_t n;
    if (parse_ids(ids_s, &ids, &n)) return 2;
    loaded L;
    moec_status st = load_for_inference(&L, model, NULL, 0);
    if (st == MOEC_OK && n > L.im.cfg.max_seq)
        st = MOEC_ERR(MOEC_ERR_ARG, "%lld ids exceed the model's context of %d", (long long)n, L.im.cfg.max_seq);
    const int64_t V = L.im.cfg.vocab_size;
    moec_session s;
    memset(&s, 0, sizeof s);
    float *logits = st == MOEC_OK ? moec_alloc_floats(n * V) : NULL;
    int32_t *slots = calloc((size_t)n, sizeof *slots);
    if (st == MOEC_OK && (!logits || !slots)) st = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    if (st == MOEC_OK) st = moec_session_init(&s, &L.im, 1, (int)n, n, kv);
    if (st == MOEC_OK) st = moec_session_forward(&s, n, ids, slots, NULL, logits);
    if (st == MOEC_OK) st = moec_npy_write_f32(out, logits, 2, (int64_t[2]){n, V});
    moec_session_free(&s);
    moec_free(logits);
    free(slots);
    free(ids);
    unload(&L);
    return st == MOEC_OK ? 0 : fail(st);
}

int cmd_perplexity(int argc, char **argv) {
    static const char *const allowed[] = {"model", "data", "chunk", "split", "bos", "threads", "tokenizer",
                                          "max-chunks", "activations", "kv", NULL};
    flags f;
    moec_kv_dtype kv;
    if (parse_flags(&f, argc, argv, allowed) || setup_threads(&f) || setup_activations(&f) || get_kv(&f, &kv)) return 2;
    const char *model = get(&f, "model"), *data = get(&f, "data"), *split = get(&f, "split");
    if (!model || !data) return usage_error("--model and --data are required", NULL);
    if (split && strcmp(split, "blank-lines") && strcmp(split, "none"))
        return usage_error("--split must be blank-lines or none", split);
    const int by_blank = !split || !strcmp(split, "blank-lines");
    long long chunk = 512, bos = 1, max_chunks = 0;
    if (get_int(&f, "chunk", 2, 1 << 20, &chunk) < 0 || get_int(&f, "bos", 0, 1, &bos) < 0 ||
        get_int(&f, "max-chunks", 0, 1 << 30, &max_chunks) < 0)
        return 2;
    loaded L;
    moec_status st = load_for_inference(&L, model, get(&f, "tokenizer"), 1);
    char *text = NULL;
    size_t len = 0;
    if (st == MOEC_OK) st = moec_read_file(data, &text, &len, (size_t)1 << 31);
    const int V = L.im.cfg.vocab_size;
    if (st == MOEC_OK && chunk > L.im.cfg.max_seq) chunk = L.im.cfg.max_seq;
    const int64_t block = chunk < 256 ? chunk : 256;
    moec_session s;
    memset(&s, 0, sizeof s);
    float *logits = st == MOEC_OK ? moec_alloc_floats(block * V) : NULL;
    float *losses = st == MOEC_OK ? moec_alloc_floats(block) : NULL;
    if (st == MOEC_OK) st = moec_session_init(&s, &L.im, 1, (int)chunk, block, kv);
    const int bos_id = moec_generate_bos_id(&L.im, L.tok);
    double nll = 0;
    int64_t count = 0, chunks = 0;
    char *p = text;
    while (st == MOEC_OK && p && *p && (!max_chunks || chunks < max_chunks)) {
        char *end = by_blank ? strstr(p, "\n\n") : NULL;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (p[0] == '\n')) p++, n--;
        if (n > 0) {
            int32_t *raw;
            int64_t nr;
            st = moec_tokenizer_encode(L.tok, p, n, &raw, &nr);
            if (st != MOEC_OK) break;
            int64_t total = nr + (bos && bos_id >= 0);
            int32_t *ids = malloc((size_t)(total + 1) * sizeof *ids);
            if (bos && bos_id >= 0) ids[0] = bos_id;
            memcpy(ids + (bos && bos_id >= 0), raw, (size_t)nr * sizeof *ids);
            free(raw);
            if (total > chunk) total = chunk;
            if (total >= 2) st = score_chunk(&s, ids, total, block, logits, losses, V, &nll, &count);
            free(ids);
            chunks++;
        }
        p = end ? end + 2 : NULL;
    }
    if (st == MOEC_OK) {
        if (count == 0) st = MOEC_ERR(MOEC_ERR_ARG, "%s: no chunk has two tokens to score", data);
        else
            printf("{\"model\": \"%s\", \"chunks\": %lld, \"tokens\": %lld, \"nll\": %.6f, \"perplexity\": %.4f}\n", model,
                   (long long)chunks, (long long)count, nll / count, exp(nll / count));
    }
    moec_session_free(&s);
    moec_free(logits);
    moec_free(losses);
    free(text);
    unload(&L);
    return st == MOEC_OK ? 0 : fail(st);
}

/* ------------------------------------------------------------------ quantize / convert */

int cmd_quantize(int argc, char **argv) {
    static const char *const allowed[] = {"model", "out", "to", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed)) return 2;
    const char *model = get(&f, "model"), *out = get(&f, "out"), *to = get(&f, "to");
    if (!model || !out || !to) return usage_error("--model, --out and --to are required", NULL);
    moec_qtype t;
    if (!strcmp(to, "fp8") || !strcmp(to, "f8_e4m3")) t = MOEC_QT_F8E4M3;
    else if (!strcmp(to, "bf16")) t = MOEC_QT_BF16;
    else if (!strcmp(to, "bf16p")) t = MOEC_QT_BF16P;
    else if (!strcmp(to, "f16") || !strcmp(to, "fp16")) t = MOEC_QT_F16;
    else return usage_error("--to must be fp8, bf16, bf16p or f16", to);
    moec_status st = moec_quantize_model(model, out, t);
    if (st != MOEC_OK) return fail(st);
    printf("wrote %s (%s weights)\n", out, moec_qtype_name(t));
    return 0;
}

int cmd_convert(int argc, char **argv) {
    static const char *const allowed[] = {"model", "out", "to", "type", "allow-inexact", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed)) return 2;
    const char *model = get(&f, "model"), *out = get(&f, "out"), *to = get(&f, "to"), *type = get(&f, "type");
    if (!model || !out || !to) return usage_error("--model, --out and --to are required", NULL);
    long long inexact = 0;
    if (get_int(&f, "allow-inexact", 0, 1, &inexact) < 0) return 2;
    moec_status st;
    if (!strcmp(to, "gguf")) {
        moec_gguf_wtype wt = MOEC_GGUF_F32;
        if (!type || !strcmp(type, "f32")) wt = MOEC_GGUF_F32;
        else if (!strcmp(type, "f16")) wt = MOEC_GGUF_F16;
        else if (!strcmp(type, "bf16")) wt = MOEC_GGUF_BF16;
        else if (!strcmp(type, "q8_0")) wt = MOEC_GGUF_Q8_0;
        else return usage_error("--type must be f32, f16, bf16 or q8_0", type);
        st = moec_gguf_export(model, out, wt, (int)inexact);
    } else if (!strcmp(to, "hf")) {
        if (type) return usage_error("--type applies to --to gguf only", type);
        st = moec_gguf_import(model, out);
    } else {
        return usage_error("--to must be gguf (model directory -> GGUF) or hf (GGUF -> model directory)", to);
    }
    if (st != MOEC_OK) return fail(st);
    printf("wrote %s\n", out);
    return 0;
}
