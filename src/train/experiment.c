/* experiment.c — `moec experiment upcycle-vs-scratch` (see experiment.h). It only orchestrates: tokenizer and
 * shards (io/tokenizer.h, train/data.h), training (train/trainer.h), upcycling (moe/upcycle.h), and reads the
 * runs' metrics.jsonl back for the tables and plots (train/plot.h). */
#include "train/experiment.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/fsutil.h"
#include "io/model_dir.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "moe/upcycle.h"
#include "train/data.h"
#include "train/plot.h"
#include "train/trainer.h"

#define N_RUNS 5 /* dense, upcycled small/large, scratch small/large */

typedef struct {
    const char *name;      /* directory under OUT and legend label */
    int moe, upcycled;
    double fraction;       /* budget as a fraction of C (dense: 1) */
    int64_t steps;
    double tokens, flops, wall_s;
    double final_val, first_sim, final_sim;
    double *vx, *vy;       /* validation loss vs tokens */
    size_t nv;
    double *sx, *sy;       /* mean expert similarity vs tokens */
    size_t ns;
} run_result;

void moec_experiment_options_defaults(moec_experiment_options *o) {
    memset(o, 0, sizeof *o);
    o->dense_steps = 400;
    o->seed = 1337;
    o->small_budget = 0.2;
    o->large_budget = 2.0;
    o->batch = 16;
    o->seq = 128;
    o->vocab = 2048;
    o->eval_batches = 8;
}

int64_t moec_config_active_params(const moec_config *c) {
    const int64_t D = c->hidden, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t n = (int64_t)c->vocab_size * D; /* output projection */
    for (int l = 0; l < c->n_layers; l++) {
        n += D * q + 2 * D * kv + q * D;
        if (c->is_moe_layer[l]) n += D * c->moe.n_experts + (int64_t)c->moe.top_k * 3 * D * c->moe.ffn_dim;
        else n += 3 * D * c->ffn_dim;
    }
    return n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* dir/name into dst; a path longer than n is cut (and then fails to open, naming the cut path). */
static void join(char *dst, size_t n, const char *dir, const char *name) {
    if (snprintf(dst, n, "%s/%s", dir, name) >= (int)n) dst[n - 1] = 0;
}

static moec_status copy_file(const char *src, const char *dst) {
    char *buf = NULL;
    size_t n = 0;
    MOEC_TRY(moec_read_file(src, &buf, &n, (size_t)1 << 34));
    moec_status st = moec_write_file_atomic(dst, buf, n);
    free(buf);
    return st;
}

/* A fresh run directory sharing the dense run's tokenizer and token shards (copied, so each is self-contained). */
static moec_status run_dir_from_dense(const char *out, const char *name) {
    char dir[4096], src[4096], dst[4096], dense[4096];
    join(dir, sizeof dir, out, name);
    join(dense, sizeof dense, out, "dense");
    join(dst, sizeof dst, dir, "data");
    MOEC_TRY(moec_mkdir_p(dst));
    static const char *const files[] = {"tokenizer.json", "data/train.bin", "data/val.bin"};
    for (int i = 0; i < 3; i++) {
        join(src, sizeof src, dense, files[i]);
        join(dst, sizeof dst, dir, files[i]);
        MOEC_TRY(copy_file(src, dst));
    }
    return MOEC_OK;
}

/* The one schedule rule of every run: linear warmup to lr 3e-3, cosine to 3e-4 at the run's last step. */
static moec_status train_run(moec_model *m, const moec_experiment_options *eo, const char *dir, int64_t steps) {
    moec_train_options o;
    moec_train_options_defaults(&o);
    o.out_dir = dir;
    o.steps = steps;
    o.batch = eo->batch;
    o.seq = eo->seq;
    o.seed = eo->seed;
    o.eval_every = steps / 10 > 0 ? steps / 10 : 1;
    o.eval_batches = eo->eval_batches;
    o.save_every = 0;
    o.quiet = eo->quiet;
    o.optim.total = steps;
    /* 5% warmup, but at least min(10, steps/2) steps: an upcycled model's first full-lr Adam step would
     * otherwise move its identical experts apart by ~lr per weight at once */
    int64_t warmup = steps / 20, floor_w = steps / 2 < 10 ? steps / 2 : 10;
    o.optim.warmup = warmup > floor_w ? warmup : floor_w > 0 ? floor_w : 1;
    return moec_train_start(m, &o);
}

static moec_status push(double **x, double **y, size_t *n, double xv, double yv) {
    double *nx = realloc(*x, (*n + 1) * sizeof *nx);
    if (!nx) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    *x = nx;
    double *ny = realloc(*y, (*n + 1) * sizeof *ny);
    if (!ny) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    *y = ny;
    (*x)[*n] = xv;
    (*y)[(*n)++] = yv;
    return MOEC_OK;
}

/* Reads DIR/metrics.jsonl: validation points (x = step · tokens/step) and the mean expert similarity. */
static moec_status read_run_metrics(const char *dir, double tokens_per_step, run_result *r) {
    char path[4096];
    join(path, sizeof path, dir, "metrics.jsonl");
    char *text = NULL;
    size_t n = 0;
    MOEC_TRY(moec_read_file(path, &text, &n, (size_t)1 << 31));
    moec_status st = MOEC_OK;
    r->first_sim = r->final_sim = r->final_val = NAN;
    int line_no = 0;
    for (char *line = text; st == MOEC_OK && *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        line_no++;
        cJSON *j = cJSON_Parse(line);
        if (!j) st = MOEC_ERR(MOEC_ERR_FORMAT, "%s:%d is not JSON", path, line_no);
        const cJSON *step = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
        const cJSON *val = j ? cJSON_GetObjectItemCaseSensitive(j, "val_loss") : NULL;
        const cJSON *tok = j ? cJSON_GetObjectItemCaseSensitive(j, "tokens") : NULL;
        const cJSON *sim = j ? cJSON_GetObjectItemCaseSensitive(j, "expert_similarity") : NULL;
        if (st == MOEC_OK && cJSON_IsNumber(step) && cJSON_IsNumber(val)) {
            st = push(&r->vx, &r->vy, &r->nv, step->valuedouble * tokens_per_step, val->valuedouble);
            r->final_val = val->valuedouble;
        }
        if (st == MOEC_OK && cJSON_IsNumber(tok)) {
            r->tokens = tok->valuedouble;
            if (cJSON_IsArray(sim) && cJSON_GetArraySize(sim) > 0) {
                double s = 0;
                int k = 0;
                for (const cJSON *e = sim->child; e; e = e->next)
                    if (cJSON_IsNumber(e)) s += e->valuedouble, k++;
                if (k > 0) {
                    s /= k;
                    if (r->ns == 0) r->first_sim = s;
                    r->final_sim = s;
                    st = push(&r->sx, &r->sy, &r->ns, tok->valuedouble, s);
                }
            }
        }
        cJSON_Delete(j);
        if (!end) break;
        line = end + 1;
    }
    free(text);
    return st;
}

/* ------------------------------------------------------------------ plots */

static void range_of(const run_result *r, int n, int sim, double *xmax, double *ymin, double *ymax) {
    *xmax = 0;
    *ymin = INFINITY;
    *ymax = -INFINITY;
    for (int k = 0; k < n; k++) {
        const double *x = sim ? r[k].sx : r[k].vx, *y = sim ? r[k].sy : r[k].vy;
        const size_t m = sim ? r[k].ns : r[k].nv;
        for (size_t i = 0; i < m; i++) {
            if (!isfinite(y[i])) continue;
            *xmax = fmax(*xmax, x[i]);
            *ymin = fmin(*ymin, y[i]);
            *ymax = fmax(*ymax, y[i]);
        }
    }
}

static moec_status plot_runs(const char *path, const char *title, const char *ylabel, const run_result *r, int n,
                             int sim) {
    double xmax, ymin, ymax;
    range_of(r, n, sim, &xmax, &ymin, &ymax);
    if (!(ymax >= ymin)) ymin = 0, ymax = 1;
    const double pad = ymax > ymin ? 0.05 * (ymax - ymin) : 0.1;
    moec_axes ax = {.title = title, .xlabel = "training tokens", .ylabel = ylabel, .grid = 1, .xmin = 0,
                    .xmax = xmax > 0 ? xmax : 1, .ymin = ymin - pad, .ymax = ymax + pad,
                    .legend_corner = sim ? 0 : 0};
    moec_canvas c;
    MOEC_TRY(moec_canvas_init(&c, 900, 560, 0xF7F7F7));
    moec_axes_draw(&ax, &c);
    const char *names[N_RUNS];
    uint32_t colors[N_RUNS];
    int m = 0;
    moec_status st = MOEC_OK;
    for (int k = 0; k < n && st == MOEC_OK; k++) {
        const double *x = sim ? r[k].sx : r[k].vx, *y = sim ? r[k].sy : r[k].vy;
        const size_t cnt = sim ? r[k].ns : r[k].nv;
        if (cnt == 0) continue;
        const uint32_t col = moec_series_color(k, N_RUNS);
        st = moec_axes_series(&ax, &c, x, y, cnt, 2, col);
        if (!sim) moec_axes_markers(&ax, &c, x, y, cnt, 3, col);
        names[m] = r[k].name;
        colors[m++] = col;
    }
    if (st == MOEC_OK && m > 0) moec_axes_legend(&ax, &c, names, colors, NULL, m);
    if (st == MOEC_OK) st = moec_canvas_write_png(&c, path);
    moec_canvas_free(&c);
    return st;
}

/* ------------------------------------------------------------------ report */

static void verdict_text(const run_result *r, const moec_experiment_options *o, char *buf, size_t cap) {
    const run_result *us = &r[1], *ul = &r[2], *ss = &r[3], *sl = &r[4];
    const int up_small = us->final_val < ss->final_val, scratch_large = sl->final_val < ul->final_val;
    snprintf(buf, cap,
             "At the small budget (%.3g x the dense cost C) the upcycled MoE reaches validation loss %.4f against "
             "%.4f from scratch: upcycling %s (by %.4f). At the large budget (%.3g x C) upcycled %.4f vs scratch "
             "%.4f: training from scratch %s (by %.4f). %s The upcycled experts' mean similarity fell from %.4f to "
             "%.4f (small) and %.4f (large budget), while the scratch experts stayed near %.3f.",
             o->small_budget, us->final_val, ss->final_val, up_small ? "wins" : "does not win",
             fabs(us->final_val - ss->final_val), o->large_budget, ul->final_val, sl->final_val,
             scratch_large ? "wins" : "does not win", fabs(ul->final_val - sl->final_val),
             up_small && scratch_large
                 ? "Both halves of the Skywork-MoE finding are reproduced."
                 : up_small ? "Only the first half of the Skywork-MoE finding (upcycling wins on a small budget) is "
                              "reproduced here; at this scale the large budget is not yet enough for scratch to "
                              "overtake."
                            : "This run does not reproduce the Skywork-MoE finding's small-budget half.",
             us->first_sim, us->final_sim, ul->final_sim, sl->final_sim);
}

static moec_status write_results(const char *out, const run_result *r, const moec_experiment_options *o,
                                 double C, int64_t n_dense, int64_t n_moe, const char *verdict, double wall_s) {
    char path[4096];
    size_t cap = 16384, len = 0;
    char *md = malloc(cap);
    if (!md) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
#define MD(...) len += (size_t)snprintf(md + len, len < cap ? cap - len : 0, __VA_ARGS__)
    MD("# Upcycling vs training from scratch\n\n");
    MD("Dense budget C = %.4g FLOPs (%lld steps x %lld tokens x 6 x N_active %lld); MoE N_active %lld.\n\n",
       C, (long long)o->dense_steps, (long long)(o->batch * o->seq), (long long)n_dense, (long long)n_moe);
    MD("| run | budget (x C) | steps | tokens | final val loss | final mean expert similarity |\n");
    MD("|---|---|---|---|---|---|\n");
    for (int k = 0; k < N_RUNS; k++) {
        char sim[32] = "-";
        if (r[k].moe) snprintf(sim, sizeof sim, "%.4f", r[k].final_sim);
        MD("| %s | %.3g | %lld | %.0f | %.4f | %s |\n", r[k].name, r[k].flops / C, (long long)r[k].steps,
           r[k].tokens, r[k].final_val, sim);
    }
    MD("\nBudgets are training FLOPs = tokens x 6 x N_active (attention + router + K active experts or the dense "
       "FFN + output projection). MoE: 8 experts, top-2, lambda = 1, dropless, upcycled from `dense` or randomly "
       "initialised (same config, seed %llu, same data order). Every run: warmup max(steps/20, min(10, steps/2)) "
       "to lr 3e-3, cosine to 3e-4 at its last step; validation every ~10%% of the run. In loss_vs_tokens.png the "
       "upcycled curves start at the dense model's final loss (the upcycled model is the dense function at step "
       "0). Wall time: %.0f s in all (", (unsigned long long)o->seed, wall_s);
    for (int k = 0; k < N_RUNS; k++) MD("%s %.0f s%s", r[k].name, r[k].wall_s, k + 1 < N_RUNS ? ", " : ").\n");
    MD("\n%s\n", verdict);
#undef MD
    moec_status st = len < cap ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "results.md longer than its buffer");
    join(path, sizeof path, out, "results.md");
    if (st == MOEC_OK) st = moec_write_file_atomic(path, md, len);
    free(md);
    if (st != MOEC_OK) return st;

    cJSON *j = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(j, "runs");
    cJSON_AddNumberToObject(j, "dense_flops_C", C);
    cJSON_AddNumberToObject(j, "dense_steps", (double)o->dense_steps);
    cJSON_AddNumberToObject(j, "tokens_per_step", (double)(o->batch * o->seq));
    cJSON_AddNumberToObject(j, "n_active_dense", (double)n_dense);
    cJSON_AddNumberToObject(j, "n_active_moe", (double)n_moe);
    cJSON_AddNumberToObject(j, "small_budget", o->small_budget);
    cJSON_AddNumberToObject(j, "large_budget", o->large_budget);
    for (int k = 0; k < N_RUNS; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", r[k].name);
        cJSON_AddStringToObject(e, "kind", !r[k].moe ? "dense" : r[k].upcycled ? "upcycled" : "scratch");
        cJSON_AddNumberToObject(e, "budget_fraction", r[k].fraction);
        cJSON_AddNumberToObject(e, "steps", (double)r[k].steps);
        cJSON_AddNumberToObject(e, "tokens", r[k].tokens);
        cJSON_AddNumberToObject(e, "flops", r[k].flops);
        cJSON_AddNumberToObject(e, "final_val_loss", r[k].final_val);
        if (r[k].moe) {
            cJSON_AddNumberToObject(e, "first_expert_similarity", r[k].first_sim);
            cJSON_AddNumberToObject(e, "final_expert_similarity", r[k].final_sim);
        }
        cJSON_AddNumberToObject(e, "wall_s", r[k].wall_s);
        cJSON_AddItemToArray(runs, e);
    }
    cJSON_AddNumberToObject(j, "wall_s", wall_s);
    cJSON_AddStringToObject(j, "verdict", verdict);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return MOEC_ERR(MOEC_ERR_NOMEM, "cannot format results.json");
    join(path, sizeof path, out, "results.json");
    st = moec_write_file_atomic(path, text, strlen(text));
    cJSON_free(text);
    return st;
}

/* ------------------------------------------------------------------ the experiment */

static void dense_config(moec_config *c, int vocab, int64_t seq) {
    moec_config_defaults(c);
    c->vocab_size = vocab;
    c->hidden = 128;
    c->n_layers = 4;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 32;
    c->ffn_dim = 384;
    c->max_seq = seq > 256 ? (int)seq : 256;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->tie_embeddings = 1;
}

/* Tokenizer + shards into OUT/dense, then the dense model trained there. */
static moec_status run_dense(const moec_experiment_options *o, run_result *r, int64_t *n_active) {
    char dir[4096], path[4096];
    join(dir, sizeof dir, o->out_dir, "dense");
    MOEC_TRY(moec_mkdir_p(dir));
    char *text = NULL;
    size_t len = 0;
    MOEC_TRY(moec_read_file(o->data_path, &text, &len, (size_t)1 << 32));
    moec_status st = len ? MOEC_OK : MOEC_ERR(MOEC_ERR_ARG, "%s is empty: nothing to train on", o->data_path);
    moec_tokenizer *tok = NULL;
    static const char *const specials[] = {"<|endoftext|>"};
    if (st == MOEC_OK && !o->quiet)
        fprintf(stderr, "training a %d-token byte-level BPE tokenizer on %s (%zu bytes)\n", o->vocab, o->data_path,
                len);
    if (st == MOEC_OK) st = moec_tokenizer_train(&tok, text, len, o->vocab, specials, 1);
    free(text);
    join(path, sizeof path, dir, "tokenizer.json");
    if (st == MOEC_OK) st = moec_tokenizer_save_json(tok, path);
    int64_t n_train = 0, n_val = 0;
    join(path, sizeof path, dir, "data");
    if (st == MOEC_OK) st = moec_data_prepare(o->data_path, tok, path, 0.05, &n_train, &n_val);
    moec_config cfg;
    dense_config(&cfg, o->vocab, o->seq);
    if (st == MOEC_OK) {
        cfg.bos_id = cfg.eos_id = moec_tokenizer_token_id(tok, "<|endoftext|>");
        if (!o->quiet) fprintf(stderr, "tokens: %lld train, %lld validation\n", (long long)n_train, (long long)n_val);
    }
    if (tok) moec_tokenizer_free(tok);
    moec_model m;
    memset(&m, 0, sizeof m);
    if (st == MOEC_OK) st = moec_model_init(&m, &cfg);
    if (st == MOEC_OK) {
        moec_model_init_random(&m, o->seed);
        *n_active = moec_config_active_params(&cfg);
        if (!o->quiet) fprintf(stderr, "== dense: %lld steps ==\n", (long long)o->dense_steps);
        st = train_run(&m, o, dir, o->dense_steps);
    }
    moec_model_free(&m);
    return st;
}

moec_status moec_experiment_upcycle_vs_scratch(const moec_experiment_options *o, char *verdict, size_t vcap) {
    if (!o->data_path || !o->out_dir || o->dense_steps < 1 || !(o->small_budget > 0) || !(o->large_budget > 0) ||
        o->batch < 1 || o->seq < 2 || o->eval_batches < 1)
        return MOEC_ERR(MOEC_ERR_ARG, "experiment: data, out, dense steps, budgets, batch and seq must be set");
    char path[4096], dir[4096];
    join(path, sizeof path, o->out_dir, "dense");
    if (moec_path_exists(path))
        return MOEC_ERR(MOEC_ERR_ARG, "%s already holds an experiment; choose another --out", o->out_dir);
    MOEC_TRY(moec_mkdir_p(o->out_dir));

    run_result r[N_RUNS] = {
        {.name = "dense", .fraction = 1},
        {.name = "upcycled_small", .moe = 1, .upcycled = 1, .fraction = o->small_budget},
        {.name = "upcycled_large", .moe = 1, .upcycled = 1, .fraction = o->large_budget},
        {.name = "scratch_small", .moe = 1, .fraction = o->small_budget},
        {.name = "scratch_large", .moe = 1, .fraction = o->large_budget},
    };
    const double T = (double)(o->batch * o->seq);
    const double t_all = now_s();
    int64_t n_dense = 0, n_moe = 0;
    double t0 = now_s();
    moec_status st = run_dense(o, &r[0], &n_dense);
    r[0].wall_s = now_s() - t0;
    r[0].steps = o->dense_steps;
    const double C = (double)o->dense_steps * T * 6.0 * (double)n_dense;
    r[0].flops = C;

    /* upcycle: 8 experts, top-2, λ = 1, dropless (exactly the dense function at step 0) */
    char init_dir[4096];
    join(init_dir, sizeof init_dir, o->out_dir, "upcycled_init");
    if (st == MOEC_OK) {
        moec_upcycle_options uo;
        moec_upcycle_options_defaults(&uo);
        uo.n_experts = 8;
        uo.top_k = 2;
        uo.gate_lambda = 1.0f;
        uo.capacity_factor = 0; /* dropless */
        uo.seed = o->seed;
        join(dir, sizeof dir, o->out_dir, "dense");
        st = moec_upcycle(dir, init_dir, &uo);
    }
    moec_config moe_cfg;
    join(path, sizeof path, init_dir, "config.json");
    if (st == MOEC_OK) st = moec_config_load_json(&moe_cfg, path);
    if (st == MOEC_OK) n_moe = moec_config_active_params(&moe_cfg);

    for (int k = 1; k < N_RUNS && st == MOEC_OK; k++) {
        const double budget = r[k].fraction * C;
        int64_t steps = (int64_t)llround(budget / (T * 6.0 * (double)n_moe));
        r[k].steps = steps < 1 ? 1 : steps;
        join(dir, sizeof dir, o->out_dir, r[k].name);
        st = run_dir_from_dense(o->out_dir, r[k].name);
        moec_model m;
        memset(&m, 0, sizeof m);
        if (st == MOEC_OK && r[k].upcycled) {
            moec_config cfg;
            moec_param_table table;
            float *params = NULL;
            st = moec_model_dir_load(init_dir, &cfg, &table, &params);
            if (st == MOEC_OK) st = moec_model_adopt(&m, &cfg, &table, params);
        } else if (st == MOEC_OK) {
            st = moec_model_init(&m, &moe_cfg);
            if (st == MOEC_OK) moec_model_init_random(&m, o->seed);
        }
        if (st == MOEC_OK) {
            if (!o->quiet)
                fprintf(stderr, "== %s: %lld steps (%.3g x C in MoE FLOPs) ==\n", r[k].name, (long long)r[k].steps,
                        r[k].fraction);
            t0 = now_s();
            st = train_run(&m, o, dir, r[k].steps);
            r[k].wall_s = now_s() - t0;
        }
        moec_model_free(&m);
    }
    for (int k = 0; k < N_RUNS && st == MOEC_OK; k++) {
        join(dir, sizeof dir, o->out_dir, r[k].name);
        st = read_run_metrics(dir, T, &r[k]);
        r[k].flops = r[k].tokens * 6.0 * (double)(r[k].moe ? n_moe : n_dense);
    }
    /* the upcycled model is the dense function at step 0: its curve starts at the dense run's final loss */
    for (int k = 1; k <= 2 && st == MOEC_OK; k++) {
        st = push(&r[k].vx, &r[k].vy, &r[k].nv, 0, r[0].final_val);
        if (st == MOEC_OK) {
            memmove(r[k].vx + 1, r[k].vx, (r[k].nv - 1) * sizeof *r[k].vx);
            memmove(r[k].vy + 1, r[k].vy, (r[k].nv - 1) * sizeof *r[k].vy);
            r[k].vx[0] = 0;
            r[k].vy[0] = r[0].final_val;
        }
    }
    char text[2048];
    if (st == MOEC_OK) {
        verdict_text(r, o, text, sizeof text);
        st = write_results(o->out_dir, r, o, C, n_dense, n_moe, text, now_s() - t_all);
    }
    join(path, sizeof path, o->out_dir, "loss_vs_tokens.png");
    if (st == MOEC_OK)
        st = plot_runs(path, "validation loss vs training tokens",
                       "validation loss", r, N_RUNS, 0);
    join(path, sizeof path, o->out_dir, "expert_similarity.png");
    if (st == MOEC_OK)
        st = plot_runs(path, "mean expert similarity vs training tokens", "expert similarity", r,
                       N_RUNS, 1);
    if (st == MOEC_OK && !o->quiet) fprintf(stderr, "experiment wall time: %.1f s\n", now_s() - t_all);
    if (st == MOEC_OK && verdict) snprintf(verdict, vcap, "%s", text);
    for (int k = 0; k < N_RUNS; k++) {
        free(r[k].vx);
        free(r[k].vy);
        free(r[k].sx);
        free(r[k].sy);
    }
    return st;
}
