/* moec — command-line front end. Thin on purpose: it parses flags, calls the library, and is the only place
 * that decides to end the process. Every failure prints one line "moec: error: <what>" and exits non-zero.
 *
 *   moec forward --model DIR --ids "i1 i2 ..." [--out logits.npy]
 *   moec grad    --model DIR --ids "..." [--batch B] --out grads.safetensors
 *   moec train   --data FILE.txt --out DIR --steps N [--config MODEL.json] [--batch B] [--seq S] ...
 *   moec train   --resume DIR --steps N
 *   moec eval    --model DIR --data DIR/data/val.bin [--batch B] [--seq S]
 *   moec plot    --metrics DIR/metrics.jsonl [--out DIR/plots]
 *   moec experiment upcycle-vs-scratch --data FILE.txt [--out DIR] [--dense-steps C] ...
 *   moec upcycle --model DENSE_DIR --out MOE_DIR --experts N [--top-k K] [--layers all|0,2] [--lambda L] ...
 *   moec generate / perplexity / quantize / convert   (cmd_infer.c)
 * Flag parsing helpers live in cli.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/threads.h"
#include "io/fsutil.h"
#include "io/model_dir.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "moe/upcycle.h"
#include "train/data.h"
#include "train/experiment.h"
#include "train/plot.h"
#include "train/trainer.h"

/* ------------------------------------------------------------------ forward / grad */

static void print_stats(const moec_model *m, const moec_forward_stats *fs) {
    printf("loss %.6f\n", fs->ce_loss);
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (m->cfg.is_moe_layer[l])
            printf("layer %d: drop_rate %.4f dropped %lld aux %.6g z_loss %.6g max1/max2 %.3f\n", l,
                   fs->drop_rate[l], (long long)fs->dropped[l], fs->aux_loss[l], fs->z_loss[l],
                   fs->max1_over_max2[l]);
}

/* One batch from --ids: B rows of S = n/B tokens; each row predicts its own next tokens. */
static int run_batch(const flags *f, moec_model *m, int want_grad, int64_t *B_out, int64_t *S_out,
                     moec_forward_stats *fs) {
    const char *model_dir = get(f, "model"), *ids_s = get(f, "ids");
    if (!model_dir || !ids_s) return usage_error("--model and --ids are required", NULL);
    long long B = 1;
    if (get_int(f, "batch", 1, 1 << 20, &B) < 0) return 2;
    int32_t *ids = NULL;
    int64_t n = 0;
    if (parse_ids(ids_s, &ids, &n)) return 2;
    if (n % B != 0) {
        free(ids);
        return usage_error("the number of --ids must be a multiple of --batch", NULL);
    }
    const int64_t S = n / B;
    int32_t *targets = malloc((size_t)n * sizeof *targets);
    moec_status st = targets ? load_model(m, model_dir) : MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    for (int64_t b = 0; st == MOEC_OK && b < B; b++)
        for (int64_t t = 0; t < S; t++) targets[b * S + t] = t + 1 < S ? ids[b * S + t + 1] : -1;
    if (st == MOEC_OK) st = moec_model_forward(m, ids, targets, B, S, NULL, fs);
    if (st == MOEC_OK && want_grad) {
        st = moec_model_alloc_grads(m);
        if (st == MOEC_OK) st = moec_model_backward(m, NULL, 1.0f);
    }
    free(ids);
    free(targets);
    if (st != MOEC_OK) return fail(st);
    *B_out = B;
    *S_out = S;
    return 0;
}

static int cmd_forward(int argc, char **argv) {
    static const char *const allowed[] = {"model", "ids", "out", "threads", "batch", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed) || setup_threads(&f)) return 2;
    moec_model m;
    memset(&m, 0, sizeof m);
    moec_forward_stats fs;
    int64_t B, S;
    int rc = run_batch(&f, &m, 0, &B, &S, &fs);
    if (rc == 0) {
        print_stats(&m, &fs);
        const char *out = get(&f, "out");
        if (out) {
            int64_t shape[2] = {B * S, m.cfg.vocab_size};
            moec_status st = moec_npy_write_f32(out, m.acts.logits, 2, shape);
            if (st != MOEC_OK) rc = fail(st);
        }
    }
    moec_model_free(&m);
    return rc;
}

/* Writes the contract of tests/torch_ref/compare_grads.py: loss, total_loss, logits, drops, grad.<name>. */
static int cmd_grad(int argc, char **argv) {
    static const char *const allowed[] = {"model", "ids", "out", "threads", "batch", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed) || setup_threads(&f)) return 2;
    const char *out = get(&f, "out");
    if (!out) return usage_error("--out is required", NULL);
    moec_model m;
    memset(&m, 0, sizeof m);
    moec_forward_stats fs;
    int64_t B, S;
    /* logits are turned into dlogits by backward: run forward alone first to keep them */
    int rc = run_batch(&f, &m, 0, &B, &S, &fs);
    float *logits = NULL;
    if (rc == 0) {
        const int64_t n = B * S * m.cfg.vocab_size;
        logits = malloc((size_t)n * sizeof *logits);
        if (!logits) rc = usage_error("out of memory", NULL);
        else memcpy(logits, m.acts.logits, (size_t)n * sizeof *logits);
    }
    if (rc == 0) {
        moec_status st = moec_model_alloc_grads(&m);
        if (st == MOEC_OK) st = moec_model_backward(&m, NULL, 1.0f);
        if (st != MOEC_OK) rc = fail(st);
    }
    if (rc == 0) {
        const int n_moe = moec_config_n_moe_layers(&m.cfg);
        const int n = 4 + m.table.count;
        moec_st_write_entry *e = calloc((size_t)n, sizeof *e);
        char (*names)[MOEC_PARAM_NAME_MAX + 8] = calloc((size_t)m.table.count, sizeof *names);
        float loss = (float)fs.ce_loss, total = (float)fs.total_loss, drops[MOEC_MAX_LAYERS];
        for (int l = 0, j = 0; l < m.cfg.n_layers; l++)
            if (m.cfg.is_moe_layer[l]) drops[j++] = (float)fs.dropped[l];
        if (!e || !names) rc = usage_error("out of memory", NULL);
        else {
            e[0] = (moec_st_write_entry){.name = "loss", .dtype = MOEC_ST_F32, .ndim = 1, .shape = {1}, .data = &loss};
            e[1] = (moec_st_write_entry){.name = "total_loss", .dtype = MOEC_ST_F32, .ndim = 1, .shape = {1},
                                         .data = &total};
            e[2] = (moec_st_write_entry){.name = "logits", .dtype = MOEC_ST_F32, .ndim = 2,
                                         .shape = {B * S, m.cfg.vocab_size}, .data = logits};
            e[3] = (moec_st_write_entry){.name = "drops", .dtype = MOEC_ST_F32, .ndim = 1, .shape = {n_moe},
                                         .data = drops};
            for (int i = 0; i < m.table.count; i++) {
                const moec_param_info *p = &m.table.items[i];
                snprintf(names[i], sizeof names[i], "grad.%s", p->name);
                e[4 + i] = (moec_st_write_entry){.name = names[i], .dtype = MOEC_ST_F32, .ndim = p->ndim,
                                                 .shape = {p->shape[0], p->shape[1]}, .data = m.grads + p->offset};
            }
            moec_status st = moec_st_write(out, n, e, NULL, 0);
            if (st != MOEC_OK) rc = fail(st);
            else print_stats(&m, &fs);
        }
        free(e);
        free(names);
    }
    free(logits);
    moec_model_free(&m);
    return rc;
}

/* ------------------------------------------------------------------ train */

/* The built-in default: a small MoE that trains in minutes on two cores. */
static void default_moe_config(moec_config *c, int vocab) {
    moec_config_defaults(c);
    c->vocab_size = vocab;
    c->hidden = 128;
    c->n_layers = 4;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 32;
    c->ffn_dim = 384;
    c->max_seq = 256;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->tie_embeddings = 1;
    c->moe.n_experts = 8;
    c->moe.top_k = 2;
    c->moe.ffn_dim = 192;
    c->moe.gate_lambda = 1.0f;
    c->moe.capacity_factor = 1.25f;
    c->moe.adaptive_alpha = 1;
    for (int l = 0; l < c->n_layers; l++) c->is_moe_layer[l] = 1;
}

static int cmd_train(int argc, char **argv) {
    static const char *const allowed[] = {"data", "out", "steps", "config", "batch", "seq", "seed", "threads",
                                          "resume", "lr", "min-lr", "warmup", "schedule-steps", "eval-every",
                                          "eval-batches", "save-every", "grad-accum", "vocab", "weight-decay",
                                          "clip", "val-fraction", "quiet", "init", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed) || setup_threads(&f)) return 2;
    long long steps = 0, v;
    if (get_int(&f, "steps", 1, (long long)1 << 40, &steps) < 0) return 2;
    long long quiet = 0;
    if (get_int(&f, "quiet", 0, 1, &quiet) < 0) return 2;
    const char *resume = get(&f, "resume");
    if (resume) {
        moec_status st = moec_train_resume(resume, steps, (int)quiet);
        return st == MOEC_OK ? 0 : fail(st);
    }
    const char *data = get(&f, "data"), *out = get(&f, "out"), *config_path = get(&f, "config");
    if (!data || !out || !steps) return usage_error("train needs --data FILE.txt --out DIR --steps N (or --resume DIR)", NULL);

    moec_train_options o;
    moec_train_options_defaults(&o);
    o.out_dir = out;
    o.steps = steps;
    o.quiet = (int)quiet;
    o.optim.total = steps;
    o.optim.warmup = steps / 20 > 0 ? steps / 20 : 1;
    int r = 0;
    if ((r = get_int(&f, "batch", 1, 1 << 16, &v)) < 0) return 2; else if (r) o.batch = v;
    if ((r = get_int(&f, "seq", 2, 1 << 20, &v)) < 0) return 2; else if (r) o.seq = v;
    if ((r = get_int(&f, "seed", 0, INT64_MAX, &v)) < 0) return 2; else if (r) o.seed = (uint64_t)v;
    if ((r = get_int(&f, "warmup", 0, (long long)1 << 40, &v)) < 0) return 2; else if (r) o.optim.warmup = v;
    if ((r = get_int(&f, "schedule-steps", 1, (long long)1 << 40, &v)) < 0) return 2; else if (r) o.optim.total = v;
    if ((r = get_int(&f, "eval-every", 0, (long long)1 << 40, &v)) < 0) return 2; else if (r) o.eval_every = v;
    if ((r = get_int(&f, "eval-batches", 1, 1 << 20, &v)) < 0) return 2; else if (r) o.eval_batches = v;
    if ((r = get_int(&f, "save-every", 0, (long long)1 << 40, &v)) < 0) return 2; else if (r) o.save_every = v;
    if ((r = get_int(&f, "grad-accum", 1, 1 << 16, &v)) < 0) return 2; else if (r) o.grad_accum = (int)v;
    if (get_float(&f, "lr", 0, 10, &o.optim.lr) < 0 || get_float(&f, "min-lr", 0, 10, &o.optim.min_lr) < 0 ||
        get_float(&f, "weight-decay", 0, 10, &o.optim.weight_decay) < 0 ||
        get_float(&f, "clip", 0, 1e9, &o.optim.clip) < 0)
        return 2;
    float val_fraction = 0.05f;
    if (get_float(&f, "val-fraction", 0.001, 0.5, &val_fraction) < 0) return 2;
    long long vocab = 2048;
    if (get_int(&f, "vocab", 257, 1 << 20, &vocab) < 0) return 2;

    /* never train over an existing run: its checkpoint is someone's work */
    char path[4096];
    snprintf(path, sizeof path, "%s/trainer.json", out);
    if (moec_path_exists(path)) {
        fprintf(stderr, "moec: error: %s already holds a training run; use --resume %s or another --out\n", out, out);
        return 1;
    }
    moec_config cfg;
    moec_status st = MOEC_OK;
    const char *init = get(&f, "init"); /* continue from a model directory (e.g. `moec upcycle` output) */
    moec_model m;
    memset(&m, 0, sizeof m);
    if (init && config_path) return usage_error("--init and --config exclude each other (the model's config is used)", NULL);
    if (init) {
        st = load_model(&m, init);
        if (st != MOEC_OK) return fail(st);
        cfg = m.cfg;
        vocab = cfg.vocab_size;
    } else if (config_path) {
        st = moec_config_load_json(&cfg, config_path);
        if (st != MOEC_OK) return fail(st);
        vocab = cfg.vocab_size;
    } else {
        default_moe_config(&cfg, (int)vocab);
    }
    if (o.seq > cfg.max_seq) {
        fprintf(stderr, "moec: error: --seq %lld exceeds the model's max_seq %d\n", (long long)o.seq, cfg.max_seq);
        return 1;
    }
    /* tokenizer + token shards */
    char *text = NULL;
    size_t len = 0;
    st = moec_read_file(data, &text, &len, (size_t)1 << 32);
    if (st == MOEC_OK && len == 0) st = MOEC_ERR(MOEC_ERR_ARG, "%s is empty: nothing to train on", data);
    moec_tokenizer *tok = NULL;
    static const char *const specials[] = {"<|endoftext|>"};
    if (st == MOEC_OK) st = moec_mkdir_p(out);
    if (st == MOEC_OK && init) { /* the model's own tokenizer, carried over byte for byte */
        char src[4096], *tj = NULL;
        size_t tn = 0;
        snprintf(src, sizeof src, "%s/tokenizer.json", init);
        st = moec_tokenizer_load_json(&tok, src);
        if (st == MOEC_OK) st = moec_read_file(src, &tj, &tn, (size_t)1 << 30);
        snprintf(path, sizeof path, "%s/tokenizer.json", out);
        if (st == MOEC_OK) st = moec_write_file_atomic(path, tj, tn);
        free(tj);
        if (st == MOEC_OK && moec_tokenizer_vocab_size(tok) > cfg.vocab_size)
            st = MOEC_ERR(MOEC_ERR_CONFIG, "%s has %d tokens but the model only %d", src,
                          moec_tokenizer_vocab_size(tok), cfg.vocab_size);
    } else if (st == MOEC_OK) {
        if (!quiet) fprintf(stderr, "training a %lld-token byte-level BPE tokenizer on %s (%zu bytes)\n", vocab, data, len);
        st = moec_tokenizer_train(&tok, text, len, (int)vocab, specials, 1);
        snprintf(path, sizeof path, "%s/tokenizer.json", out);
        if (st == MOEC_OK) st = moec_tokenizer_save_json(tok, path);
    }
    free(text);
    int64_t n_train = 0, n_val = 0;
    if (st == MOEC_OK) {
        snprintf(path, sizeof path, "%s/data", out);
        st = moec_data_prepare(data, tok, path, val_fraction, &n_train, &n_val);
    }
    if (st == MOEC_OK) {
        if (!init) cfg.bos_id = cfg.eos_id = moec_tokenizer_token_id(tok, "<|endoftext|>");
        if (!quiet) fprintf(stderr, "tokens: %lld train, %lld validation\n", (long long)n_train, (long long)n_val);
    }
    if (tok) moec_tokenizer_free(tok);
    if (st == MOEC_OK && !init) {
        st = moec_model_init(&m, &cfg);
        if (st == MOEC_OK) moec_model_init_random(&m, o.seed);
    }
    if (st == MOEC_OK) {
        if (!quiet)
            fprintf(stderr, "model: %d layers (%d MoE, %d experts, top-%d), hidden %d, %lld parameters\n",
                    cfg.n_layers, moec_config_n_moe_layers(&cfg), cfg.moe.n_experts, cfg.moe.top_k, cfg.hidden,
                    (long long)m.table.total);
        st = moec_train_start(&m, &o);
    }
    moec_model_free(&m);
    if (st != MOEC_OK) return fail(st);
    if (!quiet) fprintf(stderr, "done: model and metrics in %s (plot them with `moec plot --metrics %s/metrics.jsonl`)\n", out, out);
    return 0;
}

/* ------------------------------------------------------------------ eval / plot */

static int cmd_eval(int argc, char **argv) {
    static const char *const allowed[] = {"model", "data", "batch", "seq", "batches", "threads", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed) || setup_threads(&f)) return 2;
    const char *model_dir = get(&f, "model"), *data = get(&f, "data");
    if (!model_dir || !data) return usage_error("eval needs --model DIR --data SHARD.bin", NULL);
    long long B = 8, S = 128, nb = 1 << 30;
    if (get_int(&f, "batch", 1, 1 << 16, &B) < 0 || get_int(&f, "seq", 2, 1 << 20, &S) < 0 ||
        get_int(&f, "batches", 1, 1 << 30, &nb) < 0)
        return 2;
    moec_model m;
    memset(&m, 0, sizeof m);
    moec_status st = load_model(&m, model_dir);
    double loss = 0;
    int64_t n = 0;
    if (st == MOEC_OK) st = moec_evaluate(&m, data, B, S, nb, &loss, &n);
    moec_model_free(&m);
    if (st != MOEC_OK) return fail(st);
    printf("val_loss %.6f\nval_ppl %.4f\ntokens %lld\n", loss, exp(loss), (long long)n);
    return 0;
}

static int cmd_plot(int argc, char **argv) {
    static const char *const allowed[] = {"metrics", "out", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed)) return 2;
    const char *metrics = get(&f, "metrics");
    if (!metrics) return usage_error("plot needs --metrics FILE.jsonl", NULL);
    char out[4096];
    if (get(&f, "out")) snprintf(out, sizeof out, "%s", get(&f, "out"));
    else {
        snprintf(out, sizeof out, "%s", metrics);
        char *slash = strrchr(out, '/');
        if (slash) snprintf(slash, sizeof out - (size_t)(slash - out), "/plots");
        else snprintf(out, sizeof out, "plots");
    }
    int n = 0;
    moec_status st = moec_mkdir_p(out);
    if (st == MOEC_OK) st = moec_plot_metrics(metrics, out, &n);
    if (st != MOEC_OK) return fail(st);
    printf("wrote %d plots to %s/\n", n, out);
    return 0;
}

/* moec upcycle: dense model directory -> MoE model directory (library: src/moe/upcycle.h). */
static int cmd_upcycle(int argc, char **argv) {
    static const char *const allowed[] = {"model", "out", "experts", "top-k", "layers", "lambda", "capacity-factor",
                                          "noise", "gate", "gate-std", "seed", NULL};
    flags f;
    if (parse_flags(&f, argc, argv, allowed)) return 2;
    const char *model = get(&f, "model"), *out = get(&f, "out");
    if (!model || !out || !get(&f, "experts")) return usage_error("upcycle needs --model DIR --out DIR --experts N", NULL);
    moec_upcycle_options o;
    moec_upcycle_options_defaults(&o);
    long long experts = 0, top_k = o.top_k, seed = 0;
    if (get_int(&f, "experts", 1, MOEC_MAX_EXPERTS, &experts) < 0 || get_int(&f, "top-k", 1, MOEC_MAX_EXPERTS, &top_k) < 0 ||
        get_int(&f, "seed", 0, (long long)1 << 62, &seed) < 0 || get_float(&f, "lambda", 0, 1e6, &o.gate_lambda) < 0 ||
        get_float(&f, "capacity-factor", 0, 1e6, &o.capacity_factor) < 0 ||
        get_float(&f, "noise", 0, 1e6, &o.noise_std) < 0 || get_float(&f, "gate-std", 0, 1e6, &o.gate_std) < 0)
        return 2;
    o.n_experts = (int)experts;
    o.top_k = (int)top_k;
    o.seed = (uint64_t)seed;
    const char *gate = get(&f, "gate");
    if (gate && strcmp(gate, "zero") && strcmp(gate, "random")) return usage_error("--gate expects zero or random", gate);
    if (gate) o.gate_init = strcmp(gate, "random") == 0;
    static uint8_t layers[MOEC_MAX_LAYERS];
    const char *ls = get(&f, "layers");
    if (ls && strcmp(ls, "all") != 0) {
        for (const char *p = ls;;) {
            char *end;
            errno = 0;
            long l = strtol(p, &end, 10);
            if (errno || end == p || l < 0 || l >= MOEC_MAX_LAYERS || (*end && *end != ','))
                return usage_error("--layers expects all or a list of layer indices like 0,2,5", ls);
            if (layers[l]) return usage_error("--layers lists a layer twice", ls);
            layers[l] = 1;
            if (!*end) break;
            p = end + 1;
        }
        o.moe_layers = layers;
    }
    moec_status st = moec_upcycle(model, out, &o);
    if (st != MOEC_OK) return fail(st);
    printf("upcycled %s into %s: %d experts, top-%d\n", model, out, o.n_experts, o.top_k);
    return 0;
}

/* moec experiment upcycle-vs-scratch (library: src/train/experiment.h). */
static int cmd_experiment(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "upcycle-vs-scratch") != 0)
        return usage_error("experiment expects a name: upcycle-vs-scratch", argc > 0 ? argv[0] : NULL);
    static const char *const allowed[] = {"data", "out", "dense-steps", "threads", "seed", "small-budget",
                                          "large-budget", "batch", "seq", "vocab", "eval-batches", "quiet", NULL};
    flags f;
    if (parse_flags(&f, argc - 1, argv + 1, allowed) || setup_threads(&f)) return 2;
    moec_experiment_options o;
    moec_experiment_options_defaults(&o);
    o.data_path = get(&f, "data");
    o.out_dir = get(&f, "out") ? get(&f, "out") : "runs/upcycle_vs_scratch";
    if (!o.data_path)
        return usage_error("experiment needs --data FILE.txt (scripts/quickstart.sh shows how to build the fortunes "
                           "corpus)", NULL);
    long long v = 0;
    float x = 0;
    int r;
    if ((r = get_int(&f, "dense-steps", 1, (long long)1 << 40, &v)) < 0) return 2; else if (r) o.dense_steps = v;
    if ((r = get_int(&f, "seed", 0, INT64_MAX, &v)) < 0) return 2; else if (r) o.seed = (uint64_t)v;
    if ((r = get_int(&f, "batch", 1, 1 << 16, &v)) < 0) return 2; else if (r) o.batch = v;
    if ((r = get_int(&f, "seq", 2, 1 << 16, &v)) < 0) return 2; else if (r) o.seq = v;
    if ((r = get_int(&f, "vocab", 257, 1 << 20, &v)) < 0) return 2; else if (r) o.vocab = (int)v;
    if ((r = get_int(&f, "eval-batches", 1, 1 << 20, &v)) < 0) return 2; else if (r) o.eval_batches = v;
    if ((r = get_int(&f, "quiet", 0, 1, &v)) < 0) return 2; else if (r) o.quiet = (int)v;
    if ((r = get_float(&f, "small-budget", 1e-6, 1e6, &x)) < 0) return 2; else if (r) o.small_budget = x;
    if ((r = get_float(&f, "large-budget", 1e-6, 1e6, &x)) < 0) return 2; else if (r) o.large_budget = x;
    char verdict[2048];
    moec_status st = moec_experiment_upcycle_vs_scratch(&o, verdict, sizeof verdict);
    if (st != MOEC_OK) return fail(st);
    printf("results: %s/results.md, %s/results.json\nplots:   %s/loss_vs_tokens.png, %s/expert_similarity.png\n\n%s\n",
           o.out_dir, o.out_dir, o.out_dir, o.out_dir, verdict);
    return 0;
}

static void help(void) {
    puts("moec — Mixture-of-Experts training and inference engine\n"
         "\n"
         "  moec train   --data FILE.txt --out DIR --steps N [--config MODEL.json] [--batch B] [--seq S]\n"
         "               [--seed S] [--threads T] [--lr LR] [--min-lr LR] [--warmup N] [--schedule-steps N]\n"
         "               [--eval-every N] [--eval-batches N] [--save-every N] [--grad-accum N] [--vocab V]\n"
         "               [--init MODEL_DIR]   start from a model directory and its tokenizer (e.g. upcycled)\n"
         "  moec train   --resume DIR [--steps N]\n"
         "  moec forward --model DIR --ids \"i1 i2 ...\" [--batch B] [--out logits.npy]\n"
         "  moec grad    --model DIR --ids \"...\" [--batch B] --out grads.safetensors\n"
         "  moec eval    --model DIR --data SHARD.bin [--batch B] [--seq S] [--batches N]\n"
         "  moec plot    --metrics DIR/metrics.jsonl [--out DIR/plots]\n"
         "  moec experiment upcycle-vs-scratch --data FILE.txt [--out DIR] [--dense-steps C] [--threads N]\n"
         "               [--seed S] [--small-budget F] [--large-budget F] [--batch B] [--seq S] [--vocab V]\n"
         "               [--eval-batches N]   dense model, upcycled vs from-scratch MoE at F x C FLOPs\n"
         "  moec upcycle --model DENSE_DIR --out MOE_DIR --experts N [--top-k K] [--layers all|0,2,5] [--lambda L]\n"
         "               [--capacity-factor C] [--noise STD] [--gate zero|random] [--gate-std S] [--seed S]\n"
         "  moec generate --model DIR|FILE.gguf (--prompt TEXT | --batch-file FILE) [--max-tokens N]\n"
         "               [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R]\n"
         "               [--repetition-window N] [--seed S] [--stop STR]... [--batch B] [--prefill-block N]\n"
         "               [--ctx N] [--bos 0|1] [--eos 0|1] [--tokenizer FILE] [--threads T] [--stats 1]\n"
         "               [--activations q8|f32]   (GGUF Q4_x/Q5_x/K-quant weights in decode: int8 inputs, or exact)\n"
         "               [--kv f16|f32]   (the KV cache's numbers: halves, the default, or exact fp32)\n"
         "               --batch-file: one prompt per line, one JSON line per finished prompt on stdout\n"
         "  moec perplexity --model DIR|FILE.gguf --data FILE.txt [--chunk 512] [--split blank-lines|none]\n"
         "               [--bos 0|1] [--max-chunks N] [--activations q8|f32] [--kv f16|f32]\n"
         "  moec logits --model DIR|FILE.gguf --ids 1,2,3 --out FILE.npy [--activations q8|f32] [--kv f16|f32]\n"
         "               (the inference engine's logits at every position)\n"
         "  moec quantize --to fp8|bf16|bf16p|f16 --model DIR --out DIR2\n"
         "  moec convert  --to gguf --type f32|f16|bf16|q8_0 --model DIR --out FILE.gguf [--allow-inexact 1]\n"
         "  moec convert  --to hf --model FILE.gguf --out DIR\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        help();
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int rc;
    if (!strcmp(cmd, "forward")) rc = cmd_forward(argc - 2, argv + 2);
    else if (!strcmp(cmd, "grad")) rc = cmd_grad(argc - 2, argv + 2);
    else if (!strcmp(cmd, "train")) rc = cmd_train(argc - 2, argv + 2);
    else if (!strcmp(cmd, "eval")) rc = cmd_eval(argc - 2, argv + 2);
    else if (!strcmp(cmd, "plot")) rc = cmd_plot(argc - 2, argv + 2);
    else if (!strcmp(cmd, "upcycle")) rc = cmd_upcycle(argc - 2, argv + 2);
    else if (!strcmp(cmd, "experiment")) rc = cmd_experiment(argc - 2, argv + 2);
    else if (!strcmp(cmd, "generate")) rc = cmd_generate(argc - 2, argv + 2);
    else if (!strcmp(cmd, "perplexity")) rc = cmd_perplexity(argc - 2, argv + 2);
    else if (!strcmp(cmd, "logits")) rc = cmd_logits(argc - 2, argv + 2);
    else if (!strcmp(cmd, "quantize")) rc = cmd_quantize(argc - 2, argv + 2);
    else if (!strcmp(cmd, "convert")) rc = cmd_convert(argc - 2, argv + 2);
    else rc = usage_error("unknown command", cmd);
    moec_threads_shutdown();
    return rc;
}
