/* config_json.c — Hugging Face config.json <-> moec_config.
 *
 * Keys read (null counts as absent; "req" = required):
 *   model_type / architectures    must be a family moec computes exactly: llama, mistral, mixtral, qwen2,
 *                                 skywork, skywork_moe (anything else, e.g. gpt2 or qwen2_moe, is refused)
 *   vocab_size req, hidden_size req, num_hidden_layers req, num_attention_heads req, intermediate_size req,
 *   max_position_embeddings req, num_key_value_heads (= heads), head_dim (= hidden / heads),
 *   rope_theta (10000; transformers >= 5 writes it as rope_parameters.rope_theta, which wins; rope_parameters'
 *   rope_type must be "default"), rms_norm_eps (1e-5 mixtral, else 1e-6: the HF defaults), tie_word_embeddings
 *   (false), bos_token_id / eos_token_id (int, or list: first; absent: -1)
 *   attention biases: qwen2 (model_type, or Qwen2ForCausalLM without model_type) has q/k/v biases and no o_proj
 *   bias (Qwen2 hard-codes them); moec's extra "qkv_bias" (bool) states it for any family (an MoE model with
 *   biases is written as Mixtral + "qkv_bias": true). Llama's "attention_bias": true also puts a bias on o_proj,
 *   which moec does not implement: refused, like mlp_bias.
 *   refused when present: rope_scaling != null, hidden_act other than silu, attention_bias / mlp_bias true,
 *   an active sliding window shorter than max_position_embeddings (moec attends to the whole context)
 * MoE (experts > 0 makes layers MoE):
 *   num_local_experts (Mixtral) or num_experts (Skywork; int or list [16]: all entries equal), num_experts_per_tok
 *   or moe_topk (2, Mixtral's and Skywork's default), moe_use_logits_norm + moe_gate_norm_std (λ, default 1.0,
 *   used only when the flag is true), capacity_factor (absent or 0: dropless), moe_expert_interval (only 1)
 * moec extras: moe_ffn_dim (= intermediate_size), dense_intermediate_size (dense-layer F; = intermediate_size),
 *   moe_layers (list of layer indices; default: all), router_aux_loss_type ("sqdev" | "switch"),
 *   router_z_loss_coef, router_aux_loss_coef (fixed α, Mixtral's name), moe_adaptive_aux_coef, moe_aux_xi,
 *   moe_aux_alpha_max, moe_aux_beta.
 * Writing emits Llama keys for a dense model (Qwen2 keys when it has q/k/v biases) and Mixtral keys for an MoE
 * model (HF Mixtral reads intermediate_size as the expert width, so it holds moe.ffn_dim there; HF's Mixtral has
 * no biases, so an MoE model with biases is readable by moec only, through "qkv_bias"), plus every moec extra,
 * so that save -> load reproduces the config exactly.
 */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"

#define CONFIG_MAX_BYTES ((size_t)16 << 20)

typedef struct {
    const cJSON *root;
    const char *origin;
} jsrc;

/* The key's value, or NULL when absent or JSON null. */
static const cJSON *item(const jsrc *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static moec_status int_value(const jsrc *j, const char *key, const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v))
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"%s\" must be an integer", j->origin, key);
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < -2147483648.0 || d > 2147483647.0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"%s\" = %g is not an integer in range", j->origin, key, d);
    *out = (int)d;
    return MOEC_OK;
}

static moec_status get_int(const jsrc *j, const char *key, int required, int def, int *out) {
    const cJSON *v = item(j, key);
    if (!v) {
        if (required) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: required key \"%s\" is missing", j->origin, key);
        *out = def;
        return MOEC_OK;
    }
    return int_value(j, key, v, out);
}

/* An int, or a list whose first element is taken (eos_token_id: [2, 32000]). */
static moec_status get_int_or_first(const jsrc *j, const char *key, int def, int *out) {
    const cJSON *v = item(j, key);
    if (v && cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) == 0) { *out = def; return MOEC_OK; }
        return int_value(j, key, cJSON_GetArrayItem(v, 0), out);
    }
    return get_int(j, key, 0, def, out);
}

static moec_status get_float(const jsrc *j, const char *key, float def, float *out) {
    const cJSON *v = item(j, key);
    if (!v) { *out = def; return MOEC_OK; }
    if (!cJSON_IsNumber(v)) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"%s\" must be a number", j->origin, key);
    float f = (float)v->valuedouble;
    if (!isfinite(f))
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"%s\" = %g does not fit a float", j->origin, key, v->valuedouble);
    *out = f;
    return MOEC_OK;
}

static moec_status get_bool(const jsrc *j, const char *key, int def, int *out) {
    const cJSON *v = item(j, key);
    if (!v) { *out = def; return MOEC_OK; }
    if (!cJSON_IsBool(v)) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"%s\" must be true or false", j->origin, key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return MOEC_OK;
}

static const char *const supported_types[] = {"llama", "mistral", "mixtral", "qwen2", "skywork", "skywork_moe"};
static const char *const supported_archs[] = {"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM",
                                              "Qwen2ForCausalLM", "SkyworkForCausalLM", "SkyworkMoeForCausalLM"};

static int in_list(const char *s, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0) return 1;
    return 0;
}

/* Refuse architectures and options whose computation differs from moec's (silently loading them would give
 * wrong outputs, which is worse than an error). */
static moec_status check_architecture(const jsrc *j, char *model_type, size_t cap) {
    model_type[0] = '\0';
    const cJSON *mt = item(j, "model_type");
    if (mt) {
        if (!cJSON_IsString(mt)) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"model_type\" must be a string", j->origin);
        if (!in_list(mt->valuestring, supported_types, sizeof supported_types / sizeof *supported_types))
            return MOEC_ERR(MOEC_ERR_CONFIG, "%s: model_type \"%s\" is not supported (moec runs llama, mistral, "
                            "mixtral, qwen2, skywork_moe)", j->origin, mt->valuestring);
        snprintf(model_type, cap, "%s", mt->valuestring);
    }
    const cJSON *ar = item(j, "architectures");
    if (ar) {
        if (!cJSON_IsArray(ar)) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"architectures\" must be a list", j->origin);
        const cJSON *a;
        cJSON_ArrayForEach(a, ar) {
            if (!cJSON_IsString(a))
                return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"architectures\" must hold strings", j->origin);
            if (!in_list(a->valuestring, supported_archs, sizeof supported_archs / sizeof *supported_archs))
                return MOEC_ERR(MOEC_ERR_CONFIG, "%s: architecture \"%s\" is not supported", j->origin, a->valuestring);
            /* no model_type: the architecture names the family (its defaults differ: eps, biases) */
            if (!model_type[0]) {
                static const char *const types_of_archs[] = {"llama", "mistral", "mixtral", "qwen2", "skywork",
                                                             "skywork_moe"};
                for (size_t i = 0; i < sizeof supported_archs / sizeof *supported_archs; i++)
                    if (strcmp(a->valuestring, supported_archs[i]) == 0) snprintf(model_type, cap, "%s", types_of_archs[i]);
            }
        }
    }
    const cJSON *rp = item(j, "rope_parameters");
    if (rp) {
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
        if (!cJSON_IsObject(rp) || (rt && !cJSON_IsNull(rt) && (!cJSON_IsString(rt) || strcmp(rt->valuestring, "default") != 0)))
            return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"rope_parameters\" must be an object with rope_type \"default\" "
                            "(moec implements plain RoPE only)", j->origin);
        const cJSON *pf = cJSON_GetObjectItemCaseSensitive(rp, "partial_rotary_factor");
        if (pf && !cJSON_IsNull(pf) && (!cJSON_IsNumber(pf) || pf->valuedouble != 1.0))
            return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"rope_parameters.partial_rotary_factor\" other than 1 is unsupported",
                            j->origin);
    }
    if (item(j, "rope_scaling"))
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"rope_scaling\" is unsupported (moec implements plain RoPE only)",
                        j->origin);
    const cJSON *act = item(j, "hidden_act");
    if (act && (!cJSON_IsString(act) || (strcmp(act->valuestring, "silu") != 0 && strcmp(act->valuestring, "swish") != 0)))
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"hidden_act\" must be \"silu\" (SwiGLU); other activations are "
                        "unsupported", j->origin);
    int flag = 0;
    MOEC_TRY(get_bool(j, "attention_bias", 0, &flag));
    if (flag && strcmp(model_type, "qwen2") != 0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"attention_bias\": true (a bias on o_proj too) is unsupported; moec "
                        "implements q/k/v biases only (Qwen2)", j->origin);
    MOEC_TRY(get_bool(j, "mlp_bias", 0, &flag));
    if (flag) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"mlp_bias\": true is unsupported", j->origin);
    return MOEC_OK;
}

static moec_status parse_moe(const jsrc *j, moec_config *c, int intermediate) {
    moec_moe_config *m = &c->moe;
    int e_local = 0, e_sky = 0;
    MOEC_TRY(get_int(j, "num_local_experts", 0, 0, &e_local));
    const cJSON *ne = item(j, "num_experts");
    if (ne && cJSON_IsArray(ne)) {
        /* Skywork writes a per-stage list; moec has one expert count for all MoE layers. */
        const cJSON *x;
        int first = 1;
        cJSON_ArrayForEach(x, ne) {
            int v = 0;
            MOEC_TRY(int_value(j, "num_experts", x, &v));
            if (!first && v != e_sky)
                return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"num_experts\" lists different counts (%d, %d); unsupported",
                                j->origin, e_sky, v);
            e_sky = v;
            first = 0;
        }
    } else {
        MOEC_TRY(get_int(j, "num_experts", 0, 0, &e_sky));
    }
    if (e_local && e_sky && e_local != e_sky)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"num_local_experts\" = %d disagrees with \"num_experts\" = %d",
                        j->origin, e_local, e_sky);
    m->n_experts = e_local ? e_local : e_sky;
    if (m->n_experts < 0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: number of experts %d is negative", j->origin, m->n_experts);
    const cJSON *layers = item(j, "moe_layers");
    if (m->n_experts == 0) {
        if (layers && cJSON_GetArraySize(layers) > 0)
            return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"moe_layers\" given but the model has no experts", j->origin);
        return MOEC_OK;
    }
    if (item(j, "num_experts_per_tok")) MOEC_TRY(get_int(j, "num_experts_per_tok", 1, 2, &m->top_k));
    else MOEC_TRY(get_int(j, "moe_topk", 0, 2, &m->top_k));
    MOEC_TRY(get_int(j, "moe_ffn_dim", 0, intermediate, &m->ffn_dim));
    int use_norm = 0;
    float std_target;
    MOEC_TRY(get_bool(j, "moe_use_logits_norm", 0, &use_norm));
    MOEC_TRY(get_float(j, "moe_gate_norm_std", 1.0f, &std_target));
    m->gate_lambda = use_norm ? std_target : 0.0f;
    MOEC_TRY(get_float(j, "capacity_factor", 0.0f, &m->capacity_factor));
    const cJSON *aux = item(j, "router_aux_loss_type");
    if (aux) {
        if (cJSON_IsString(aux) && strcmp(aux->valuestring, "sqdev") == 0) m->aux_kind = MOEC_AUX_SQDEV;
        else if (cJSON_IsString(aux) && strcmp(aux->valuestring, "switch") == 0) m->aux_kind = MOEC_AUX_SWITCH;
        else return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"router_aux_loss_type\" must be \"sqdev\" or \"switch\"", j->origin);
    }
    MOEC_TRY(get_float(j, "router_z_loss_coef", m->z_loss_coef, &m->z_loss_coef));
    MOEC_TRY(get_float(j, "router_aux_loss_coef", m->alpha_fixed, &m->alpha_fixed));
    MOEC_TRY(get_bool(j, "moe_adaptive_aux_coef", m->adaptive_alpha, &m->adaptive_alpha));
    MOEC_TRY(get_float(j, "moe_aux_xi", m->alpha_xi, &m->alpha_xi));
    MOEC_TRY(get_float(j, "moe_aux_alpha_max", m->alpha_max, &m->alpha_max));
    MOEC_TRY(get_float(j, "moe_aux_beta", m->alpha_beta, &m->alpha_beta));

    if (layers) {
        if (!cJSON_IsArray(layers)) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"moe_layers\" must be a list", j->origin);
        const cJSON *x;
        cJSON_ArrayForEach(x, layers) {
            int l;
            MOEC_TRY(int_value(j, "moe_layers", x, &l));
            if (l < 0 || l >= c->n_layers)
                return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"moe_layers\" entry %d outside [0, %d)", j->origin, l, c->n_layers);
            if (c->is_moe_layer[l])
                return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"moe_layers\" lists layer %d twice", j->origin, l);
            c->is_moe_layer[l] = 1;
        }
    } else {
        int interval;
        MOEC_TRY(get_int(j, "moe_expert_interval", 0, 1, &interval));
        if (interval != 1)
            return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"moe_expert_interval\" = %d is unsupported; list the MoE layers in "
                            "\"moe_layers\"", j->origin, interval);
        for (int l = 0; l < c->n_layers; l++) c->is_moe_layer[l] = 1;
    }
    return MOEC_OK;
}

static moec_status parse_root(moec_config *c, const jsrc *j) {
    char model_type[64];
    MOEC_TRY(check_architecture(j, model_type, sizeof model_type));
    MOEC_TRY(get_int(j, "vocab_size", 1, 0, &c->vocab_size));
    MOEC_TRY(get_int(j, "hidden_size", 1, 0, &c->hidden));
    MOEC_TRY(get_int(j, "num_hidden_layers", 1, 0, &c->n_layers));
    MOEC_TRY(get_int(j, "num_attention_heads", 1, 0, &c->n_heads));
    MOEC_TRY(get_int(j, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads));
    int intermediate;
    MOEC_TRY(get_int(j, "intermediate_size", 1, 0, &intermediate));
    MOEC_TRY(get_int(j, "max_position_embeddings", 1, 0, &c->max_seq));
    /* Range-check before using the values as divisors or array bounds. */
    if (c->n_heads <= 0) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"num_attention_heads\" = %d must be positive", j->origin, c->n_heads);
    if (c->n_layers <= 0 || c->n_layers > MOEC_MAX_LAYERS)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"num_hidden_layers\" = %d must be in [1, %d]", j->origin, c->n_layers,
                        MOEC_MAX_LAYERS);
    if (!item(j, "head_dim") && c->hidden % c->n_heads != 0)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"hidden_size\" = %d is not a multiple of \"num_attention_heads\" = %d "
                        "and no \"head_dim\" is given", j->origin, c->hidden, c->n_heads);
    MOEC_TRY(get_int(j, "head_dim", 0, c->hidden / c->n_heads, &c->head_dim));
    MOEC_TRY(get_float(j, "rope_theta", 10000.0f, &c->rope_theta));
    const cJSON *rp = item(j, "rope_parameters");
    if (rp) {
        jsrc rj = {rp, j->origin};
        MOEC_TRY(get_float(&rj, "rope_theta", c->rope_theta, &c->rope_theta));
    }
    MOEC_TRY(get_bool(j, "qkv_bias", strcmp(model_type, "qwen2") == 0, &c->qkv_bias));
    MOEC_TRY(get_float(j, "rms_norm_eps", strcmp(model_type, "mixtral") == 0 ? 1e-5f : 1e-6f, &c->norm_eps));
    MOEC_TRY(get_bool(j, "tie_word_embeddings", 0, &c->tie_embeddings));
    MOEC_TRY(get_int_or_first(j, "bos_token_id", -1, &c->bos_id));
    MOEC_TRY(get_int_or_first(j, "eos_token_id", -1, &c->eos_id));
    int use_sw = 1, sw = 0;
    MOEC_TRY(get_bool(j, "use_sliding_window", 1, &use_sw));
    MOEC_TRY(get_int(j, "sliding_window", 0, 0, &sw));
    if (use_sw && sw > 0 && sw < c->max_seq)
        return MOEC_ERR(MOEC_ERR_CONFIG, "%s: \"sliding_window\" = %d < max_position_embeddings = %d is unsupported "
                        "(moec attends to the whole context)", j->origin, sw, c->max_seq);
    MOEC_TRY(get_int(j, "dense_intermediate_size", 0, intermediate, &c->ffn_dim));
    return parse_moe(j, c, intermediate);
}

moec_status moec_config_parse_json(moec_config *c, const char *text, const char *origin) {
    moec_config_defaults(c);
    if (!origin) origin = "config";
    cJSON *root = cJSON_Parse(text);
    if (!root) return MOEC_ERR(MOEC_ERR_CONFIG, "%s: not valid JSON", origin);
    moec_status s = MOEC_OK;
    if (!cJSON_IsObject(root)) s = MOEC_ERR(MOEC_ERR_CONFIG, "%s: top level is not a JSON object", origin);
    jsrc j = {root, origin};
    if (s == MOEC_OK) s = parse_root(c, &j);
    cJSON_Delete(root);
    if (s == MOEC_OK && (s = moec_config_validate(c)) != MOEC_OK) {
        /* copy first: the message lives in the buffer MOEC_ERR is about to overwrite */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", moec_error_message());
        s = MOEC_ERR(s, "%s: %s", origin, msg);
    }
    return s;
}

moec_status moec_config_load_json(moec_config *c, const char *path) {
    char *text;
    size_t n;
    moec_config_defaults(c);
    MOEC_TRY(moec_read_file(path, &text, &n, CONFIG_MAX_BYTES));
    moec_status s = moec_config_parse_json(c, text, path);
    free(text);
    return s;
}

/* ---- writing ---- */

/* The shortest decimal that reads back as the same float: 1e-5f is written "1e-05", not
 * "9.9999997473787516e-06", and loading it gives 1e-5f again. */
static double float_for_json(float f) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

#define ADD_NUM(obj, key, v) ok = ok && cJSON_AddNumberToObject((obj), (key), (double)(v))
#define ADD_FLT(obj, key, v) ok = ok && cJSON_AddNumberToObject((obj), (key), float_for_json(v))
#define ADD_BOOL(obj, key, v) ok = ok && cJSON_AddBoolToObject((obj), (key), (v) ? 1 : 0)
#define ADD_STR(obj, key, v) ok = ok && cJSON_AddStringToObject((obj), (key), (v))

moec_status moec_config_save_json(const moec_config *c, const char *path) {
    return moec_config_save_json_with(c, path, NULL, 0);
}

moec_status moec_config_save_json_with(const moec_config *c, const char *path, const char *const *extra_kv,
                                       int n_extra) {
    MOEC_TRY(moec_config_validate(c));
    const moec_moe_config *m = &c->moe;
    const int moe = m->n_experts > 0;
    const int qwen2 = !moe && c->qkv_bias; /* HF's Qwen2: q/k/v biases, none on o_proj */
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    int ok = o && arch;
    if (ok) {
        cJSON_AddItemToArray(arch, cJSON_CreateString(moe ? "MixtralForCausalLM" : qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
        cJSON_AddItemToObject(o, "architectures", arch);
    } else {
        cJSON_Delete(arch);
    }
    ADD_STR(o, "model_type", moe ? "mixtral" : qwen2 ? "qwen2" : "llama");
    if (qwen2) ADD_BOOL(o, "use_sliding_window", 0);
    if (c->qkv_bias) ADD_BOOL(o, "qkv_bias", 1); /* moec's key: HF's Mixtral cannot express biases */
    ADD_NUM(o, "vocab_size", c->vocab_size);
    ADD_NUM(o, "hidden_size", c->hidden);
    ADD_NUM(o, "intermediate_size", moe ? m->ffn_dim : c->ffn_dim);
    ADD_NUM(o, "num_hidden_layers", c->n_layers);
    ADD_NUM(o, "num_attention_heads", c->n_heads);
    ADD_NUM(o, "num_key_value_heads", c->n_kv_heads);
    ADD_NUM(o, "head_dim", c->head_dim);
    ADD_NUM(o, "max_position_embeddings", c->max_seq);
    ADD_FLT(o, "rope_theta", c->rope_theta);
    ADD_FLT(o, "rms_norm_eps", c->norm_eps);
    ADD_BOOL(o, "tie_word_embeddings", c->tie_embeddings);
    ADD_STR(o, "hidden_act", "silu");
    if (c->bos_id >= 0) ADD_NUM(o, "bos_token_id", c->bos_id);
    if (c->eos_id >= 0) ADD_NUM(o, "eos_token_id", c->eos_id);
    ADD_STR(o, "torch_dtype", "float32");
    if (moe) {
        /* HF's MixtralConfig defaults sliding_window to 4096 when the key is absent: say explicitly "none". */
        ok = ok && cJSON_AddNullToObject(o, "sliding_window");
        ADD_NUM(o, "num_local_experts", m->n_experts);
        ADD_NUM(o, "num_experts_per_tok", m->top_k);
        ADD_NUM(o, "moe_ffn_dim", m->ffn_dim);
        ADD_NUM(o, "dense_intermediate_size", c->ffn_dim);
        cJSON *layers = cJSON_CreateArray();
        ok = ok && layers;
        for (int l = 0; ok && l < c->n_layers; l++)
            if (c->is_moe_layer[l]) {
                cJSON *x = cJSON_CreateNumber(l);
                ok = x != NULL;
                if (ok) cJSON_AddItemToArray(layers, x);
            }
        if (ok) cJSON_AddItemToObject(o, "moe_layers", layers);
        else cJSON_Delete(layers);
        ADD_FLT(o, "capacity_factor", m->capacity_factor);
        ADD_BOOL(o, "moe_use_logits_norm", m->gate_lambda > 0);
        if (m->gate_lambda > 0) ADD_FLT(o, "moe_gate_norm_std", m->gate_lambda);
        ADD_STR(o, "router_aux_loss_type", m->aux_kind == MOEC_AUX_SWITCH ? "switch" : "sqdev");
        ADD_FLT(o, "router_z_loss_coef", m->z_loss_coef);
        ADD_FLT(o, "router_aux_loss_coef", m->alpha_fixed);
        ADD_BOOL(o, "moe_adaptive_aux_coef", m->adaptive_alpha);
        ADD_FLT(o, "moe_aux_xi", m->alpha_xi);
        ADD_FLT(o, "moe_aux_alpha_max", m->alpha_max);
        ADD_FLT(o, "moe_aux_beta", m->alpha_beta);
    }
    for (int i = 0; ok && i < n_extra; i++) {
        cJSON *v = cJSON_Parse(extra_kv[2 * i + 1]);
        if (!v) {
            cJSON_Delete(o);
            return MOEC_ERR(MOEC_ERR_ARG, "%s: extra config key '%s' is not valid JSON", path, extra_kv[2 * i]);
        }
        if (cJSON_GetObjectItemCaseSensitive(o, extra_kv[2 * i])) cJSON_ReplaceItemInObjectCaseSensitive(o, extra_kv[2 * i], v);
        else cJSON_AddItemToObject(o, extra_kv[2 * i], v);
    }
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building config JSON", path);
    moec_atomic_file *f;
    moec_status s = moec_atomic_open(&f, path);
    if (s == MOEC_OK) {
        s = moec_atomic_write(f, text, strlen(text));
        if (s == MOEC_OK) s = moec_atomic_write(f, "\n", 1);
        if (s == MOEC_OK) s = moec_atomic_commit(f);
        else moec_atomic_abort(f);
    }
    free(text);
    return s;
}
