/* upcycle.c — dense model directory -> MoE model directory, streamed one tensor at a time (see upcycle.h). */
#include "moe/upcycle.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "io/fsutil.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/params.h"

#define INDEX_MAX_BYTES ((size_t)64 << 20)
#define TOKENIZER_MAX_BYTES ((size_t)1 << 30)

void moec_upcycle_options_defaults(moec_upcycle_options *o) {
    memset(o, 0, sizeof *o);
    o->top_k = 2;
    o->gate_lambda = 1.0f;
    o->gate_init = 1;
    o->gate_std = 0.02f;
}

/* ------------------------------------------------------------------ the dense tensors, unmapped */

typedef struct {
    int n;
    moec_st_file **files;
} sources;

static void sources_close(sources *s) {
    for (int i = 0; i < s->n; i++) moec_st_close(s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

static moec_status sources_add(sources *s, const char *path) {
    moec_st_file **grown = realloc(s->files, (size_t)(s->n + 1) * sizeof *grown);
    if (!grown) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory opening %s", path);
    s->files = grown;
    MOEC_TRY(moec_st_open_unmapped(&s->files[s->n], path));
    s->n++;
    return MOEC_OK;
}

/* DIR/model.safetensors, else the shards named by DIR/model.safetensors.index.json (plain file names only). */
static moec_status sources_open(sources *s, const char *dir) {
    memset(s, 0, sizeof *s);
    char *single = moec_path_join(dir, "model.safetensors"), *index = moec_path_join(dir, "model.safetensors.index.json");
    moec_status st = MOEC_OK;
    cJSON *root = NULL;
    if (!single || !index) {
        st = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    } else if (moec_path_exists(single) || !moec_path_exists(index)) {
        st = sources_add(s, single);
    } else {
        char *text;
        size_t len;
        st = moec_read_file(index, &text, &len, INDEX_MAX_BYTES);
        if (st == MOEC_OK) {
            root = cJSON_Parse(text);
            free(text);
            const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
            if (!cJSON_IsObject(map)) st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: not JSON with a \"weight_map\" object", index);
            const cJSON *e;
            if (st == MOEC_OK) cJSON_ArrayForEach(e, map) {
                if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') ||
                    !strcmp(e->valuestring, ".") || !strcmp(e->valuestring, "..")) {
                    st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: weight_map entry for '%s' is not a plain file name", index,
                                  e->string);
                    break;
                }
                int seen = 0; /* shards repeat across entries: open each once */
                for (const cJSON *p = map->child; p != e && !seen; p = p->next) seen = !strcmp(p->valuestring, e->valuestring);
                if (seen) continue;
                char *path = moec_path_join(dir, e->valuestring);
                st = path ? sources_add(s, path) : MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
                free(path);
                if (st != MOEC_OK) break;
            }
        }
    }
    cJSON_Delete(root);
    free(single);
    free(index);
    if (st != MOEC_OK) sources_close(s);
    return st;
}

/* The tensor called name, with its file; NULL (and no error) if absent; an error if it is in two shards. */
static moec_status sources_find(const sources *s, const char *name, const moec_st_file **file,
                                const moec_st_tensor **t) {
    *file = NULL;
    *t = NULL;
    for (int f = 0; f < s->n; f++) {
        const moec_st_tensor *x = moec_st_find(s->files[f], name);
        if (!x) continue;
        if (*t)
            return MOEC_ERR(MOEC_ERR_FORMAT, "tensor '%s' appears in both %s and %s", name, moec_st_path(*file),
                            moec_st_path(s->files[f]));
        *t = x;
        *file = s->files[f];
    }
    return MOEC_OK;
}

/* Every tensor of the dense table present with its shape, and nothing unexpected (old exporters' rotary
 * inv_freq buffers and a duplicated lm_head in a tied model excepted, as model_dir.c allows). */
static moec_status check_dense(const sources *s, const char *dir, const moec_param_table *dense, int tied) {
    for (int i = 0; i < dense->count; i++) {
        const moec_param_info *p = &dense->items[i];
        const moec_st_file *f;
        const moec_st_tensor *t;
        MOEC_TRY(sources_find(s, p->name, &f, &t));
        if (!t) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' is missing from the dense model", dir, p->name);
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' has a shape other than the config's [%lld, %lld]", dir,
                            p->name, (long long)p->shape[0], (long long)(p->ndim > 1 ? p->shape[1] : 1));
    }
    for (int f = 0; f < s->n; f++)
        for (int i = 0; i < moec_st_count(s->files[f]); i++) {
            const char *name = moec_st_get(s->files[f], i)->name;
            size_t n = strlen(name), k = strlen(".rotary_emb.inv_freq");
            if (moec_param_table_find(dense, name) >= 0 || (n >= k && !strcmp(name + n - k, ".rotary_emb.inv_freq")) ||
                (tied && !strcmp(name, "lm_head.weight")))
                continue;
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: unexpected tensor '%s' in %s: the dense config does not describe it",
                            dir, name, moec_st_path(s->files[f]));
        }
    return MOEC_OK;
}

/* ------------------------------------------------------------------ output directory */

/* ------------------------------------------------------------------ tensors */

/* A stream per (layer, expert, matrix): the noise of one expert does not depend on which others exist. */
static uint64_t stream_seed(uint64_t seed, int layer, int expert, int matrix) {
    uint64_t s = seed ^ 0x75706379636C65ull; /* "upcycle" */
    uint64_t mix = moec_rand_u64(&s);
    s = mix ^ ((uint64_t)(uint32_t)layer << 32) ^ ((uint64_t)(uint32_t)(expert + 1) << 8) ^ (uint64_t)matrix;
    moec_rand_u64(&s);
    return s;
}

/* Fill buf (numel floats) with output tensor p: a copy of its dense source, or the new router gate. */
static moec_status make_tensor(const moec_param_info *p, const sources *s, const moec_upcycle_options *o, float *buf) {
    static const char *const dense_of[4] = {NULL, "gate_proj", "down_proj", "up_proj"}; /* w1, w2, w3 */
    int l, e, w, end = -1;
    char src[MOEC_PARAM_NAME_MAX + 16];
    if (sscanf(p->name, "model.layers.%d.block_sparse_moe.gate.weight%n", &l, &end) == 1 && end == (int)strlen(p->name)) {
        uint64_t rng = stream_seed(o->seed, l, -1, 0);
        for (int64_t i = 0; i < p->numel; i++)
            buf[i] = o->gate_init ? (float)(o->gate_std * moec_rand_normal(&rng)) : 0.0f;
        return MOEC_OK;
    }
    end = -1;
    int expert = sscanf(p->name, "model.layers.%d.block_sparse_moe.experts.%d.w%d.weight%n", &l, &e, &w, &end) == 3 &&
                 end == (int)strlen(p->name) && w >= 1 && w <= 3;
    if (expert) snprintf(src, sizeof src, "model.layers.%d.mlp.%s.weight", l, dense_of[w]);
    else snprintf(src, sizeof src, "%s", p->name);
    const moec_st_file *f;
    const moec_st_tensor *t;
    MOEC_TRY(sources_find(s, src, &f, &t));
    if (!t) return MOEC_ERR(MOEC_ERR_FORMAT, "tensor '%s' is missing from the dense model", src);
    moec_status st = moec_st_pread_f32(f, t, buf, p->numel);
    if (st != MOEC_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", moec_error_message());
        return MOEC_ERR(st, "%s: %s", moec_st_path(f), msg);
    }
    if (expert && o->noise_std > 0) {
        uint64_t rng = stream_seed(o->seed, l, e, w);
        for (int64_t i = 0; i < p->numel; i++) buf[i] += (float)(o->noise_std * moec_rand_normal(&rng));
    }
    return MOEC_OK;
}

/* Stream every tensor of table into path, one reusable buffer of the largest tensor. */
static moec_status write_weights(const char *path, const moec_param_table *table, const sources *s,
                                 const char *dense_dir, const moec_upcycle_options *o) {
    moec_st_write_entry *ent = calloc((size_t)table->count + 1, sizeof *ent);
    if (!ent) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory for %d tensor entries", table->count);
    int64_t max_numel = 1;
    for (int i = 0; i < table->count; i++) {
        const moec_param_info *p = &table->items[i];
        ent[i] = (moec_st_write_entry){.name = p->name, .dtype = MOEC_ST_F32, .ndim = p->ndim};
        for (int d = 0; d < p->ndim; d++) ent[i].shape[d] = p->shape[d];
        if (p->numel > max_numel) max_numel = p->numel;
    }
    const char *meta[] = {"format", "pt", "upcycled_from", dense_dir};
    float *buf = malloc((size_t)max_numel * sizeof *buf);
    moec_st_writer *w = NULL;
    moec_status st = buf ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate %lld floats for one tensor",
                                               (long long)max_numel);
    if (st == MOEC_OK) st = moec_st_writer_begin(&w, path, table->count, ent, meta, 2);
    for (int i = 0; st == MOEC_OK && i < table->count; i++) {
        st = make_tensor(&table->items[i], s, o, buf);
        if (st == MOEC_OK) st = moec_st_writer_put(w, buf, (size_t)table->items[i].numel * sizeof *buf);
    }
    if (w) {
        if (st == MOEC_OK) st = moec_st_writer_finish(w);
        else moec_st_writer_abort(w);
    }
    free(buf);
    free(ent);
    return st;
}

/* ------------------------------------------------------------------ the whole operation */

static moec_status check_options(const moec_upcycle_options *o) {
    if (o->n_experts < 1 || o->n_experts > MOEC_MAX_EXPERTS)
        return MOEC_ERR(MOEC_ERR_ARG, "upcycle: number of experts %d outside [1, %d]", o->n_experts, MOEC_MAX_EXPERTS);
    if (o->top_k < 1 || o->top_k > o->n_experts)
        return MOEC_ERR(MOEC_ERR_ARG, "upcycle: top-k %d outside [1, %d] (the number of experts)", o->top_k,
                        o->n_experts);
    if (!(o->gate_lambda >= 0 && isfinite(o->gate_lambda)))
        return MOEC_ERR(MOEC_ERR_ARG, "upcycle: gate λ %g must be finite and >= 0", o->gate_lambda);
    if (!(o->capacity_factor >= 0 && isfinite(o->capacity_factor)))
        return MOEC_ERR(MOEC_ERR_ARG, "upcycle: capacity factor %g must be finite and >= 0", o->capacity_factor);
    if (!(o->noise_std >= 0 && isfinite(o->noise_std)))
        return MOEC_ERR(MOEC_ERR_ARG, "upcycle: noise std %g must be finite and >= 0", o->noise_std);
    if (o->gate_init != 0 && o->gate_init != 1)
        return MOEC_ERR(MOEC_ERR_ARG, "upcycle: gate init %d is neither 0 (zero) nor 1 (random)", o->gate_init);
    if (!(o->gate_std >= 0 && isfinite(o->gate_std)))
        return MOEC_ERR(MOEC_ERR_ARG, "upcycle: gate std %g must be finite and >= 0", o->gate_std);
    return MOEC_OK;
}

static moec_status build_moe_config(moec_config *moe, const moec_config *dense, const char *dense_dir,
                                    const moec_upcycle_options *o) {
    if (dense->moe.n_experts > 0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s is already an MoE model (%d experts); upcycle takes a dense model",
                        dense_dir, dense->moe.n_experts);
    *moe = *dense;
    moec_moe_config *m = &moe->moe;
    m->n_experts = o->n_experts;
    m->top_k = o->top_k;
    m->ffn_dim = dense->ffn_dim;
    m->gate_lambda = o->gate_lambda;
    m->capacity_factor = o->capacity_factor;
    if (o->capacity_factor == 0) m->adaptive_alpha = 0; /* dropless: the drop-rate rule would decay α to 0 */
    int n_moe = 0;
    for (int l = 0; l < MOEC_MAX_LAYERS; l++) {
        int want = o->moe_layers ? o->moe_layers[l] != 0 : l < dense->n_layers;
        if (want && l >= dense->n_layers)
            return MOEC_ERR(MOEC_ERR_ARG, "upcycle: layer %d chosen for MoE but %s has %d layers", l, dense_dir,
                            dense->n_layers);
        moe->is_moe_layer[l] = (uint8_t)want;
        n_moe += want;
    }
    if (n_moe == 0) return MOEC_ERR(MOEC_ERR_ARG, "upcycle: no layer chosen for MoE");
    return moec_config_validate(moe);
}

moec_status moec_upcycle(const char *dense_dir, const char *out_dir, const moec_upcycle_options *o) {
    MOEC_TRY(check_options(o));
    if (moec_path_exists(out_dir))
        return MOEC_ERR(MOEC_ERR_IO, "%s already exists; upcycle writes a new directory and overwrites nothing", out_dir);
    moec_config dense, moe;
    char *cfg_path = moec_path_join(dense_dir, "config.json");
    if (!cfg_path) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    moec_status st = moec_config_load_json(&dense, cfg_path);
    free(cfg_path);
    MOEC_TRY(st);
    MOEC_TRY(build_moe_config(&moe, &dense, dense_dir, o));

    moec_param_table dtab = {0}, mtab = {0};
    sources src = {0};
    char *tmp = NULL, *weights = NULL, *cfg = NULL, *tok_in = NULL, *tok_out = NULL;
    int made_tmp = 0;
    st = moec_param_table_build(&dtab, &dense);
    if (st == MOEC_OK) st = moec_param_table_build(&mtab, &moe);
    if (st == MOEC_OK) st = sources_open(&src, dense_dir);
    if (st == MOEC_OK) st = check_dense(&src, dense_dir, &dtab, dense.tie_embeddings);
    if (st == MOEC_OK) {
        size_t n = strlen(out_dir) + 32;
        tmp = malloc(n);
        if (tmp) snprintf(tmp, n, "%s.tmp-%ld", out_dir, (long)getpid());
        weights = tmp ? moec_path_join(tmp, "model.safetensors") : NULL;
        cfg = tmp ? moec_path_join(tmp, "config.json") : NULL;
        tok_in = moec_path_join(dense_dir, "tokenizer.json");
        tok_out = tmp ? moec_path_join(tmp, "tokenizer.json") : NULL;
        if (!tmp || !weights || !cfg || !tok_in || !tok_out) st = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    }
    if (st == MOEC_OK) {
        if (mkdir(tmp, 0777) != 0) st = MOEC_ERR(MOEC_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        else made_tmp = 1;
    }
    if (st == MOEC_OK) st = write_weights(weights, &mtab, &src, dense_dir, o);
    if (st == MOEC_OK) st = moec_config_save_json(&moe, cfg);
    if (st == MOEC_OK && moec_path_exists(tok_in)) st = moec_copy_file(tok_in, tok_out, TOKENIZER_MAX_BYTES);
    if (st == MOEC_OK && moec_path_exists(out_dir))
        st = MOEC_ERR(MOEC_ERR_IO, "%s appeared while upcycling; not overwriting it", out_dir);
    if (st == MOEC_OK && rename(tmp, out_dir) != 0)
        st = MOEC_ERR(MOEC_ERR_IO, "cannot rename %s to %s: %s", tmp, out_dir, strerror(errno));
    if (st == MOEC_OK) moec_sync_parent_dir(out_dir);
    else if (made_tmp) moec_remove_staging_dir(tmp);
    sources_close(&src);
    moec_param_table_free(&dtab);
    moec_param_table_free(&mtab);
    free(tmp);
    free(weights);
    free(cfg);
    free(tok_in);
    free(tok_out);
    return st;
}
