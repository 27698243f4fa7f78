/* trainer.c — the training loop and its checkpoints (see trainer.h). */
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <glob.h>
#include <unistd.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/fsutil.h"
#include "kernels/cpu/gemm.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "train/data.h"
#include "train/metrics.h"

#define TRAINER_FORMAT "moec-trainer"
#define TRAINER_VERSION 1

typedef struct {
    moec_model *m;
    moec_train_options o;
    float *adam_m, *adam_v;
    int64_t step;          /* last completed step */
    uint64_t rng;          /* batch-sampling state after `step` */
    float alpha[MOEC_MAX_LAYERS];
    double tokens_seen;
    moec_token_shard *train;
    int32_t *inputs, *targets;
    moec_metrics *metrics;
    moec_jsonbuf json;
} trainer;

void moec_train_options_defaults(moec_train_options *o) {
    memset(o, 0, sizeof *o);
    o->steps = 200;
    o->batch = 16;
    o->seq = 128;
    o->grad_accum = 1;
    o->seed = 1337;
    o->eval_every = 50;
    o->eval_batches = 8;
    o->save_every = 100;
    moec_optim_defaults(&o->optim);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void path_join(char *dst, size_t n, const char *dir, const char *name) { snprintf(dst, n, "%s/%s", dir, name); }

/* ------------------------------------------------------------------ checkpoint */

static cJSON *options_to_json(const moec_train_options *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "batch", (double)o->batch);
    cJSON_AddNumberToObject(j, "seq", (double)o->seq);
    cJSON_AddNumberToObject(j, "grad_accum", o->grad_accum);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "eval_every", (double)o->eval_every);
    cJSON_AddNumberToObject(j, "eval_batches", (double)o->eval_batches);
    cJSON_AddNumberToObject(j, "save_every", (double)o->save_every);
    cJSON_AddNumberToObject(j, "lr", o->optim.lr);
    cJSON_AddNumberToObject(j, "min_lr", o->optim.min_lr);
    cJSON_AddNumberToObject(j, "warmup", (double)o->optim.warmup);
    cJSON_AddNumberToObject(j, "schedule_steps", (double)o->optim.total);
    cJSON_AddNumberToObject(j, "beta1", o->optim.beta1);
    cJSON_AddNumberToObject(j, "beta2", o->optim.beta2);
    cJSON_AddNumberToObject(j, "eps", o->optim.eps);
    cJSON_AddNumberToObject(j, "weight_decay", o->optim.weight_decay);
    cJSON_AddNumberToObject(j, "clip", o->optim.clip);
    return j;
}

static moec_status json_number(const cJSON *obj, const char *key, const char *origin, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key '%s' is missing or not a finite number", origin, key);
    *out = v->valuedouble;
    return MOEC_OK;
}

static moec_status options_from_json(moec_train_options *o, const cJSON *j, const char *origin) {
    double v = 0;
#define NUM(key, field, type) MOEC_TRY(json_number(j, key, origin, &v)); field = (type)v
    NUM("batch", o->batch, int64_t);
    NUM("seq", o->seq, int64_t);
    NUM("grad_accum", o->grad_accum, int);
    NUM("eval_every", o->eval_every, int64_t);
    NUM("eval_batches", o->eval_batches, int64_t);
    NUM("save_every", o->save_every, int64_t);
    NUM("lr", o->optim.lr, float);
    NUM("min_lr", o->optim.min_lr, float);
    NUM("warmup", o->optim.warmup, int64_t);
    NUM("schedule_steps", o->optim.total, int64_t);
    NUM("beta1", o->optim.beta1, float);
    NUM("beta2", o->optim.beta2, float);
    NUM("eps", o->optim.eps, float);
    NUM("weight_decay", o->optim.weight_decay, float);
    NUM("clip", o->optim.clip, float);
#undef NUM
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (!cJSON_IsString(seed)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: key 'seed' is missing", origin);
    o->seed = strtoull(seed->valuestring, NULL, 10);
    if (o->batch <= 0 || o->seq <= 0 || o->grad_accum <= 0)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: impossible batch/seq/grad_accum", origin);
    return MOEC_OK;
}

static moec_status save_optimizer(const trainer *tr, const char *path, const char *step_str) {
    const moec_param_table *t = &tr->m->table;
    moec_st_write_entry *e = calloc((size_t)(2 * t->count), sizeof *e);
    char (*names)[MOEC_PARAM_NAME_MAX + 2] = calloc((size_t)(2 * t->count), sizeof *names);
    if (!e || !names) {
        free(e);
        free(names);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate optimizer index");
    }
    for (int i = 0; i < t->count; i++)
        for (int which = 0; which < 2; which++) {
            const moec_param_info *p = &t->items[i];
            moec_st_write_entry *x = &e[2 * i + which];
            snprintf(names[2 * i + which], sizeof names[0], "%c.%s", which ? 'v' : 'm', p->name);
            x->name = names[2 * i + which];
            x->dtype = MOEC_ST_F32;
            x->ndim = p->ndim;
            x->shape[0] = p->shape[0];
            x->shape[1] = p->shape[1];
            x->data = (which ? tr->adam_v : tr->adam_m) + p->offset;
        }
    const char *meta[] = {"step", step_str};
    moec_status st = moec_st_write(path, 2 * t->count, e, meta, 1);
    free(e);
    free(names);
    return st;
}

static moec_status load_optimizer(trainer *tr, const char *path, const char *step_str) {
    moec_st_file *f;
    MOEC_TRY(moec_st_open(&f, path));
    moec_status st = MOEC_OK;
    const char *fs = moec_st_metadata(f, "step");
    if (!fs || strcmp(fs, step_str) != 0)
        st = MOEC_ERR(MOEC_ERR_FORMAT, "%s is from step %s but trainer.json says %s (torn checkpoint?)", path,
                      fs ? fs : "?", step_str);
    const moec_param_table *t = &tr->m->table;
    for (int i = 0; i < t->count && st == MOEC_OK; i++)
        for (int which = 0; which < 2 && st == MOEC_OK; which++) {
            char name[MOEC_PARAM_NAME_MAX + 2];
            snprintf(name, sizeof name, "%c.%s", which ? 'v' : 'm', t->items[i].name);
            const moec_st_tensor *x = moec_st_find(f, name);
            if (!x || moec_st_numel(x) != t->items[i].numel)
                st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' is missing or has the wrong size", path, name);
            else
                st = moec_st_read_f32(x, (which ? tr->adam_v : tr->adam_m) + t->items[i].offset, t->items[i].numel);
        }
    moec_st_close(f);
    return st;
}

/* Before a state file is replaced, its current version is kept as NAME.prev (a hard link: no copy). A kill
 * between replacing the files and writing trainer.json then leaves the previous checkpoint complete: the
 * files trainer.json names are either in place or in their .prev links (see restore_previous). */
static moec_status keep_previous(const char *dir, const char *name) {
    char cur[4096], prev[4200];
    path_join(cur, sizeof cur, dir, name);
    snprintf(prev, sizeof prev, "%s.prev", cur);
    if (!moec_path_exists(cur)) return MOEC_OK;
    if (unlink(prev) != 0 && errno != ENOENT)
        return MOEC_ERR(MOEC_ERR_IO, "cannot remove %s: %s", prev, strerror(errno));
    if (link(cur, prev) != 0) return MOEC_ERR(MOEC_ERR_IO, "cannot link %s to %s: %s", cur, prev, strerror(errno));
    return MOEC_OK;
}

/* The "step" a state file's metadata records, into buf ("" if unreadable). */
static void file_step(const char *path, char *buf, size_t n) {
    buf[0] = 0;
    moec_st_file *f;
    if (moec_st_open(&f, path) != MOEC_OK) return;
    const char *s = moec_st_metadata(f, "step");
    if (s) snprintf(buf, n, "%s", s);
    moec_st_close(f);
}

/* If NAME is not from `step` but NAME.prev is (the run died between replacing files and writing trainer.json),
 * put NAME.prev back. Otherwise leave things as they are; the caller's checks report any remaining mismatch. */
static moec_status restore_previous(const char *dir, const char *name, const char *step) {
    char cur[4096], prev[4200], s[64];
    path_join(cur, sizeof cur, dir, name);
    snprintf(prev, sizeof prev, "%s.prev", cur);
    file_step(cur, s, sizeof s);
    if (strcmp(s, step) == 0) return MOEC_OK;
    file_step(prev, s, sizeof s);
    if (strcmp(s, step) != 0) return MOEC_OK;
    if (rename(prev, cur) != 0) return MOEC_ERR(MOEC_ERR_IO, "cannot restore %s: %s", prev, strerror(errno));
    fprintf(stderr, "restored %s from the checkpoint of step %s (the run stopped during a save)\n", cur, step);
    return MOEC_OK;
}

/* A run killed mid-write leaves NAME.tmp.<pid> files (see fsutil.c); the resuming process owns the directory,
 * so they are garbage. */
static void remove_stale_temps(const char *dir) {
    static const char *const names[] = {"model.safetensors", "optimizer.safetensors", "config.json",
                                        "trainer.json", "metrics.jsonl"};
    char pattern[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(pattern, sizeof pattern, "%s/%s.tmp.*", dir, names[i]);
        glob_t g;
        if (glob(pattern, 0, NULL, &g) == 0)
            for (size_t k = 0; k < g.gl_pathc; k++) unlink(g.gl_pathv[k]);
        globfree(&g);
    }
}

/* Optimizer first, model second, trainer.json last: trainer.json names the step the other two must carry. */
static moec_status save_checkpoint(trainer *tr) {
    const char *dir = tr->o.out_dir;
    char path[4096], step_str[32];
    snprintf(step_str, sizeof step_str, "%lld", (long long)tr->step);
    path_join(path, sizeof path, dir, "optimizer.safetensors");
    MOEC_TRY(keep_previous(dir, "optimizer.safetensors"));
    MOEC_TRY(save_optimizer(tr, path, step_str));
    const char *meta[] = {"step", step_str};
    MOEC_TRY(keep_previous(dir, "model.safetensors"));
    MOEC_TRY(moec_model_dir_save(dir, &tr->m->cfg, &tr->m->table, tr->m->params, meta, 1));

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", TRAINER_FORMAT);
    cJSON_AddNumberToObject(j, "version", TRAINER_VERSION);
    cJSON_AddNumberToObject(j, "step", (double)tr->step);
    cJSON_AddNumberToObject(j, "target_steps", (double)tr->o.steps);
    char rng[32];
    snprintf(rng, sizeof rng, "%" PRIu64, tr->rng);
    cJSON_AddStringToObject(j, "rng_state", rng);
    cJSON_AddNumberToObject(j, "tokens_seen", tr->tokens_seen);
    cJSON *alpha = cJSON_AddArrayToObject(j, "aux_coef");
    for (int l = 0; l < tr->m->cfg.n_layers; l++) cJSON_AddItemToArray(alpha, cJSON_CreateNumber(tr->alpha[l]));
    cJSON_AddItemToObject(j, "options", options_to_json(&tr->o));
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return MOEC_ERR(MOEC_ERR_NOMEM, "cannot serialise trainer state");
    path_join(path, sizeof path, dir, "trainer.json");
    moec_status st = moec_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

/* ------------------------------------------------------------------ expert similarity */

double moec_expert_similarity(const moec_layer_view *w, const moec_config *c) {
    /* Each expert = its w1, w3, w2 as one vector (one contiguous slice: expert_stride floats, padding zero).
     * Gram matrix G = X·Xᵀ over the E experts; cosine(i, j) = G_ij / sqrt(G_ii·G_jj); mean over i < j. */
    const int E = c->moe.n_experts;
    if (E < 2) return NAN;
    float gram[MOEC_MAX_EXPERTS * MOEC_MAX_EXPERTS];
    if (E > 64) return NAN; /* gram kept on the stack; 64 experts is far beyond the report's setting */
    moec_gemm(0, 1, E, E, w->expert_stride, 1.0f, w->experts, w->expert_stride, w->experts, w->expert_stride, 0.0f,
              gram, E);
    double sum = 0;
    int pairs = 0;
    for (int i = 0; i < E; i++)
        for (int j = i + 1; j < E; j++) {
            const double d = sqrt((double)gram[i * E + i] * (double)gram[j * E + j]);
            sum += d > 0 ? gram[i * E + j] / d : 0.0;
            pairs++;
        }
    return sum / pairs;
}

/* ------------------------------------------------------------------ evaluation */

moec_status moec_evaluate(moec_model *m, const char *val_path, int64_t B, int64_t S, int64_t n_batches,
                          double *mean_loss, int64_t *n_tokens) {
    moec_token_shard *val;
    MOEC_TRY(moec_shard_open(&val, val_path, m->cfg.vocab_size));
    const int64_t available = moec_shard_len(val) / (B * S + 1);
    if (available < 1) {
        moec_shard_close(val);
        return MOEC_ERR(MOEC_ERR_ARG, "%s holds %lld tokens, too few for one %lldx%lld evaluation batch", val_path,
                        (long long)moec_shard_len(val), (long long)B, (long long)S);
    }
    if (n_batches > available) n_batches = available;
    int32_t *in = malloc((size_t)(B * S) * sizeof *in), *tg = malloc((size_t)(B * S) * sizeof *tg);
    moec_status st = (in && tg) ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate evaluation batch");
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n_batches && st == MOEC_OK; i++) {
        moec_shard_eval_batch(val, i, (int)B, (int)S, in, tg);
        moec_forward_stats fs;
        st = moec_model_forward(m, in, tg, B, S, NULL, &fs);
        if (st == MOEC_OK) {
            sum += fs.ce_loss * (double)fs.n_targets;
            count += fs.n_targets;
        }
    }
    free(in);
    free(tg);
    moec_shard_close(val);
    if (st != MOEC_OK) return st;
    *mean_loss = count ? sum / (double)count : NAN;
    if (n_tokens) *n_tokens = count;
    return MOEC_OK;
}

/* ------------------------------------------------------------------ the loop */

/* Keep only metrics records of steps <= step (records past the last checkpoint belong to a run that died). */
static moec_status truncate_metrics(const char *path, int64_t step) {
    char *text;
    size_t n;
    if (!moec_path_exists(path)) return MOEC_OK;
    MOEC_TRY(moec_read_file(path, &text, &n, (size_t)1 << 31));
    char *out = malloc(n + 1);
    if (!out) {
        free(text);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate %zu bytes", n);
    }
    size_t w = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line + 1) : strlen(line);
        const char *sp = strstr(line, "\"step\":");
        long long s = sp && sp < line + len ? strtoll(sp + 7, NULL, 10) : 0;
        if (s <= step) {
            memcpy(out + w, line, len);
            w += len;
        }
        line += len;
    }
    moec_status st = moec_write_file_atomic(path, out, w);
    free(text);
    free(out);
    return st;
}

static moec_status write_step_record(trainer *tr, const moec_forward_stats *avg, const double *load, double gnorm,
                                     float lr, double tok_s, int skipped) {
    const moec_config *c = &tr->m->cfg;
    moec_jsonbuf *b = &tr->json;
    double drop[MOEC_MAX_LAYERS], alpha[MOEC_MAX_LAYERS], ratio[MOEC_MAX_LAYERS];
    int n = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (c->is_moe_layer[l]) {
            drop[n] = avg->drop_rate[l];
            alpha[n] = tr->alpha[l];
            ratio[n] = avg->max1_over_max2[l];
            n++;
        }
    moec_jsonl_begin(b);
    moec_jsonl_int(b, "step", tr->step);
    moec_jsonl_num(b, "loss", avg->ce_loss);
    moec_jsonl_num(b, "total_loss", avg->total_loss);
    moec_jsonl_num(b, "lr", lr);
    moec_jsonl_num(b, "grad_norm", gnorm);
    moec_jsonl_num(b, "tokens_per_s", tok_s);
    moec_jsonl_num(b, "tokens", tr->tokens_seen);
    if (skipped) moec_jsonl_int(b, "skipped", 1);
    moec_jsonl_num_list(b, "drop_rate", drop, (size_t)n);
    moec_jsonl_num_list(b, "aux_coef", alpha, (size_t)n);
    moec_jsonl_num_list(b, "max1_max2", ratio, (size_t)n);
    double sim[MOEC_MAX_LAYERS];
    for (int l = 0, j = 0; l < c->n_layers; l++)
        if (c->is_moe_layer[l]) sim[j++] = moec_expert_similarity(&tr->m->w.layers[l], c);
    moec_jsonl_num_list(b, "expert_similarity", sim, (size_t)n);
    if (n > 0) moec_jsonl_num_matrix(b, "expert_load", load, (size_t)n, (size_t)c->moe.n_experts);
    MOEC_TRY(moec_jsonl_end(b));
    return moec_metrics_write(tr->metrics, b->data);
}

static moec_status run_eval(trainer *tr, int quiet) {
    char path[4096];
    path_join(path, sizeof path, tr->o.out_dir, "data/val.bin");
    double loss;
    int64_t n;
    MOEC_TRY(moec_evaluate(tr->m, path, tr->o.batch, tr->o.seq, tr->o.eval_batches, &loss, &n));
    moec_jsonbuf *b = &tr->json;
    moec_jsonl_begin(b);
    moec_jsonl_int(b, "step", tr->step);
    moec_jsonl_num(b, "val_loss", loss);
    moec_jsonl_num(b, "val_ppl", exp(loss));
    moec_jsonl_int(b, "val_tokens", n);
    MOEC_TRY(moec_jsonl_end(b));
    MOEC_TRY(moec_metrics_write(tr->metrics, b->data));
    if (!quiet) fprintf(stderr, "\nstep %lld: validation loss %.4f, perplexity %.2f (%lld tokens)\n",
                        (long long)tr->step, loss, exp(loss), (long long)n);
    return MOEC_OK;
}

static moec_status train_loop(trainer *tr) {
    moec_model *m = tr->m;
    const moec_config *c = &m->cfg;
    const moec_train_options *o = &tr->o;
    const int64_t B = o->batch, S = o->seq, T = B * S, E = c->moe.n_experts > 0 ? c->moe.n_experts : 1;
    const int n_moe = moec_config_n_moe_layers(c);
    double *load = calloc((size_t)(n_moe > 0 ? n_moe : 1) * (size_t)E, sizeof *load);
    if (!load) return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate expert-load statistics");
    moec_progress prog;
    if (!o->quiet) moec_progress_begin(&prog, "train", o->steps, stderr); /* --quiet: no progress at all */
    moec_status st = MOEC_OK;
    while (tr->step < o->steps && st == MOEC_OK) {
        const double t0 = now_s();
        const int64_t step = tr->step + 1;
        /* gradients are zero here: AdamW zeroes them as it consumes them, a skipped step below, and
         * trainer_open at the start */
        moec_forward_stats avg;
        memset(&avg, 0, sizeof avg);
        memset(load, 0, (size_t)(n_moe > 0 ? n_moe : 1) * (size_t)E * sizeof *load);
        int non_finite = 0;
        for (int micro = 0; micro < o->grad_accum && st == MOEC_OK; micro++) {
            moec_shard_sample_batch(tr->train, &tr->rng, (int)B, (int)S, tr->inputs, tr->targets);
            moec_forward_stats fs;
            st = moec_model_forward(m, tr->inputs, tr->targets, B, S, tr->alpha, &fs);
            if (st == MOEC_ERR_NUMERIC) { /* reported below; the step is skipped, never applied */
                st = MOEC_OK;
                non_finite = 1;
                avg.ce_loss = NAN;
                continue;
            }
            if (st != MOEC_OK) break;
            st = moec_model_backward(m, tr->alpha, 1.0f / (float)o->grad_accum);
            const double inv = 1.0 / o->grad_accum;
            avg.ce_loss += fs.ce_loss * inv;
            avg.total_loss += fs.total_loss * inv;
            for (int l = 0, j = 0; l < c->n_layers; l++) {
                if (!c->is_moe_layer[l]) continue;
                avg.drop_rate[l] += fs.drop_rate[l] * (float)inv;
                avg.max1_over_max2[l] += fs.max1_over_max2[l] * (float)inv;
                const moec_router_state *r = &m->acts.moe[l].router;
                for (int64_t e = 0; e < E; e++)
                    load[j * E + e] += inv * (double)r->expert_demand[e] / (double)(T * c->moe.top_k);
                j++;
            }
        }
        if (st != MOEC_OK) break;
        /* fault injection for tests: MOEC_FAULT_NAN_STEP=N poisons one gradient entry at step N */
        const char *fault = getenv("MOEC_FAULT_NAN_STEP");
        if (fault && strtoll(fault, NULL, 10) == step) m->grads[m->table.total / 2] = NAN;
        const double gnorm = non_finite ? NAN : moec_grad_norm(m->grads, m->table.total);
        const float lr = moec_lr_at(&o->optim, step);
        tr->step = step;
        tr->tokens_seen += (double)(T * o->grad_accum);
        const int skipped = non_finite || !isfinite(gnorm) || !isfinite(avg.ce_loss);
        if (skipped) {
            moec_model_zero_grads(m);
            fprintf(stderr, "\nstep %lld: non-finite %s — update skipped, weights unchanged\n", (long long)step,
                    isfinite(avg.ce_loss) ? "gradient" : "loss");
        } else {
            const float scale = (o->optim.clip > 0 && gnorm > o->optim.clip) ? (float)(o->optim.clip / gnorm) : 1.0f;
            moec_adamw_step(m->params, tr->adam_m, tr->adam_v, m->grads, &m->table, &o->optim, step, lr, scale);
        }
        const double dt = now_s() - t0;
        st = write_step_record(tr, &avg, load, gnorm, lr, (double)(T * o->grad_accum) / dt, skipped);
        /* Skywork's adaptive α: the next step's coefficient follows this step's drop rate */
        for (int l = 0; l < c->n_layers && !skipped; l++)
            if (c->is_moe_layer[l]) tr->alpha[l] = moec_alpha_next(tr->alpha[l], avg.drop_rate[l], &c->moe);
        char suffix[160];
        snprintf(suffix, sizeof suffix, "loss %.4f lr %.2e gnorm %.3f %.0f tok/s", avg.ce_loss, lr, gnorm,
                 (double)(T * o->grad_accum) / dt);
        if (!o->quiet) moec_progress_update(&prog, step, suffix);
        if (st == MOEC_OK && ((o->eval_every > 0 && step % o->eval_every == 0) || step == o->steps))
            st = run_eval(tr, o->quiet);
        if (st == MOEC_OK && ((o->save_every > 0 && step % o->save_every == 0) || step == o->steps))
            st = save_checkpoint(tr);
    }
    if (!o->quiet) moec_progress_end(&prog);
    free(load);
    return st;
}

static moec_status trainer_open(trainer *tr, moec_model *m, const moec_train_options *o, int append_metrics) {
    tr->m = m;
    tr->o = *o;
    MOEC_TRY(moec_model_alloc_grads(m));
    moec_model_zero_grads(m);
    tr->adam_m = moec_alloc_floats(m->table.total);
    tr->adam_v = moec_alloc_floats(m->table.total);
    tr->inputs = malloc((size_t)(o->batch * o->seq) * sizeof(int32_t));
    tr->targets = malloc((size_t)(o->batch * o->seq) * sizeof(int32_t));
    if (!tr->adam_m || !tr->adam_v || !tr->inputs || !tr->targets)
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate optimizer state");
    char path[4096];
    path_join(path, sizeof path, o->out_dir, "data/train.bin");
    MOEC_TRY(moec_shard_open(&tr->train, path, m->cfg.vocab_size));
    if (moec_shard_len(tr->train) < o->seq + 1)
        return MOEC_ERR(MOEC_ERR_ARG, "%s holds %lld tokens, fewer than one training window of %lld", path,
                        (long long)moec_shard_len(tr->train), (long long)o->seq + 1);
    MOEC_TRY(moec_model_reserve(m, o->batch, o->seq));
    path_join(path, sizeof path, o->out_dir, "metrics.jsonl");
    return moec_metrics_open(&tr->metrics, path, append_metrics);
}

static void trainer_close(trainer *tr) {
    moec_free(tr->adam_m);
    moec_free(tr->adam_v);
    free(tr->inputs);
    free(tr->targets);
    if (tr->train) moec_shard_close(tr->train);
    if (tr->metrics) moec_metrics_close(tr->metrics);
    moec_jsonbuf_free(&tr->json);
}

moec_status moec_train_start(moec_model *m, const moec_train_options *o) {
    trainer tr;
    memset(&tr, 0, sizeof tr);
    moec_status st = trainer_open(&tr, m, o, 0);
    if (st == MOEC_OK) {
        tr.rng = o->seed;
        for (int l = 0; l < m->cfg.n_layers; l++) tr.alpha[l] = m->cfg.moe.alpha_fixed;
        st = train_loop(&tr);
    }
    trainer_close(&tr);
    return st;
}

moec_status moec_train_resume(const char *dir, int64_t steps, int quiet) {
    char path[4096];
    path_join(path, sizeof path, dir, "trainer.json");
    char *text;
    size_t n;
    MOEC_TRY(moec_read_file(path, &text, &n, 1 << 20));
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) return MOEC_ERR(MOEC_ERR_FORMAT, "%s is not valid JSON", path);
    moec_train_options o;
    moec_train_options_defaults(&o);
    o.out_dir = dir;
    o.quiet = quiet;
    moec_model m;
    memset(&m, 0, sizeof m);
    trainer tr;
    memset(&tr, 0, sizeof tr);
    double v = 0;
    moec_status st = MOEC_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, TRAINER_FORMAT) != 0)
        st = MOEC_ERR(MOEC_ERR_FORMAT, "%s is not a moec trainer state", path);
    if (st == MOEC_OK) st = options_from_json(&o, cJSON_GetObjectItemCaseSensitive(j, "options"), path);
    if (st == MOEC_OK) st = json_number(j, "step", path, &v);
    const int64_t step = (int64_t)v;
    if (st == MOEC_OK) st = json_number(j, "target_steps", path, &v);
    o.steps = steps > 0 ? steps : (int64_t)v;
    moec_config cfg;
    moec_param_table table;
    float *params = NULL;
    char step_str[32];
    snprintf(step_str, sizeof step_str, "%lld", (long long)step);
    remove_stale_temps(dir);
    if (st == MOEC_OK) st = restore_previous(dir, "model.safetensors", step_str);
    if (st == MOEC_OK) st = restore_previous(dir, "optimizer.safetensors", step_str);
    if (st == MOEC_OK) st = moec_model_dir_load(dir, &cfg, &table, &params);
    if (st == MOEC_OK) st = moec_model_adopt(&m, &cfg, &table, params);
    if (st == MOEC_OK) { /* the model file must be the one trainer.json describes */
        moec_st_file *f;
        path_join(path, sizeof path, dir, "model.safetensors");
        st = moec_st_open(&f, path);
        if (st == MOEC_OK) {
            const char *ms = moec_st_metadata(f, "step");
            if (!ms || strcmp(ms, step_str) != 0)
                st = MOEC_ERR(MOEC_ERR_FORMAT, "%s is from step %s but trainer.json says %s (torn checkpoint?)",
                              path, ms ? ms : "?", step_str);
            moec_st_close(f);
        }
    }
    if (st == MOEC_OK) { /* before the metrics file is opened for appending */
        path_join(path, sizeof path, dir, "metrics.jsonl");
        st = truncate_metrics(path, step);
    }
    if (st == MOEC_OK) st = trainer_open(&tr, &m, &o, 1);
    if (st == MOEC_OK) {
        path_join(path, sizeof path, dir, "optimizer.safetensors");
        st = load_optimizer(&tr, path, step_str);
    }
    if (st == MOEC_OK) {
        const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng_state");
        const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(j, "aux_coef");
        if (!cJSON_IsString(rng) || !cJSON_IsArray(alpha) || cJSON_GetArraySize(alpha) != cfg.n_layers)
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: rng_state or aux_coef missing or malformed", path);
        else {
            tr.rng = strtoull(rng->valuestring, NULL, 10);
            for (int l = 0; l < cfg.n_layers; l++) tr.alpha[l] = (float)cJSON_GetArrayItem(alpha, l)->valuedouble;
            tr.step = step;
            st = json_number(j, "tokens_seen", path, &tr.tokens_seen);
        }
    }
    if (st == MOEC_OK && step >= o.steps && !quiet)
        fprintf(stderr, "%s is already at step %lld (target %lld): nothing to do\n", dir, (long long)step,
                (long long)o.steps);
    if (st == MOEC_OK) st = train_loop(&tr);
    cJSON_Delete(j);
    trainer_close(&tr);
    moec_model_free(&m);
    return st;
}
