/* test_config.c — moec_config defaults/validation and config.json parsing/saving: real HF configs (stories260K,
 * Mixtral-style, Skywork-MoE's published keys) parse to the right values, save -> load is exact, and every
 * impossible or unsupported input gives a one-line error naming the key. Run from the repository root. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/fsutil.h"
#include "model/config.h"

static int n_pass, n_fail;

#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (cond) { n_pass++; printf("ok    "); printf(__VA_ARGS__); printf("\n"); }                                 \
        else { n_fail++; printf("FAIL  "); printf(__VA_ARGS__); printf("  [%s:%d] last error: %s\n", __FILE__, __LINE__, moec_error_message()); } \
    } while (0)

#define STORIES "../shared/models/stories260K/hf/config.json" /* tests run from the repository root */

/* The stories260K keys; llama_with(",\"key\":v,...") puts the extra keys FIRST, because cJSON returns the first
 * of duplicate keys: an extra key thus overrides the base one. */
static const char *LLAMA_BASE =
    "\"model_type\":\"llama\",\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":512,\"hidden_size\":64,"
    "\"intermediate_size\":172,\"num_hidden_layers\":5,\"num_attention_heads\":8,\"num_key_value_heads\":4,"
    "\"max_position_embeddings\":512,\"rms_norm_eps\":1e-05}";

static char *llama_with(const char *extra) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "{%s%s%s", extra[0] ? extra + 1 : "", extra[0] ? "," : "", LLAMA_BASE);
    return buf;
}

static void expect_error(const char *what, const char *text, const char *needle) {
    moec_config c;
    moec_status s = moec_config_parse_json(&c, text, "test.json");
    const char *m = moec_error_message();
    CHECK(s != MOEC_OK && strstr(m, needle) && !strchr(m, '\n') && strstr(m, "test.json"), "%-28s -> %s", what, m);
}

static void test_defaults_validate(void) {
    moec_config c;
    moec_config_defaults(&c);
    CHECK(c.rope_theta == 10000.0f && c.norm_eps == 1e-5f && c.bos_id == -1 && c.eos_id == -1 && c.moe.n_experts == 0,
          "defaults: rope 10000, eps 1e-5, bos/eos -1, dense");
    CHECK(c.moe.aux_kind == MOEC_AUX_SQDEV && c.moe.adaptive_alpha == 1 && c.moe.alpha_xi == 0.2f &&
              c.moe.alpha_max == 0.01f && c.moe.alpha_beta == 0.99f && c.moe.capacity_factor == 0 &&
              c.moe.gate_lambda == 0 && c.moe.alpha_fixed == 0.01f,
          "defaults: Skywork router values");
    CHECK(moec_config_validate(&c) == MOEC_ERR_CONFIG && strstr(moec_error_message(), "vocab_size"),
          "defaults alone do not validate (dims 0): %s", moec_error_message());
    c.vocab_size = 100; c.hidden = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.head_dim = 8;
    c.ffn_dim = 64; c.max_seq = 128;
    CHECK(moec_config_validate(&c) == MOEC_OK, "small dense config validates");
    moec_config d = c;
    d.n_kv_heads = 3;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "n_kv_heads"), "G not dividing H: %s",
          moec_error_message());
    d = c; d.head_dim = 7;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "head_dim"), "odd head_dim: %s",
          moec_error_message());
    d = c; d.n_layers = MOEC_MAX_LAYERS + 1;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "n_layers"), "too many layers: %s",
          moec_error_message());
    d = c; d.norm_eps = NAN;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "norm_eps"), "NaN eps: %s",
          moec_error_message());
    d = c; d.moe.n_experts = 4; d.moe.top_k = 2; d.moe.ffn_dim = 16;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "no layer"),
          "experts without MoE layers: %s", moec_error_message());
    d.is_moe_layer[1] = 1;
    CHECK(moec_config_validate(&d) == MOEC_OK && moec_config_n_moe_layers(&d) == 1, "one MoE layer validates");
    d.moe.top_k = 5;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "moe.top_k"), "top_k > E: %s",
          moec_error_message());
    d.moe.top_k = 2; d.moe.capacity_factor = -1;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "capacity_factor"),
          "negative capacity factor: %s", moec_error_message());
    d.moe.capacity_factor = 1.25f; d.moe.gate_lambda = INFINITY;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "gate_lambda"), "infinite lambda: %s",
          moec_error_message());
    d.moe.gate_lambda = 1; d.is_moe_layer[5] = 1;
    CHECK(moec_config_validate(&d) != MOEC_OK && strstr(moec_error_message(), "is_moe_layer[5]"),
          "MoE flag beyond n_layers: %s", moec_error_message());
    d.is_moe_layer[5] = 0; d.is_moe_layer[0] = 1; d.ffn_dim = 0;
    CHECK(moec_config_validate(&d) == MOEC_OK, "all-MoE model may leave the dense ffn_dim 0");
    d.moe.n_experts = 0;
    CHECK(moec_config_validate(&d) != MOEC_OK, "MoE layers with 0 experts: %s", moec_error_message());
}

static void test_parse_real(void) {
    moec_config c;
    moec_status s = moec_config_load_json(&c, STORIES);
    CHECK(s == MOEC_OK, "load stories260K config.json");
    if (s == MOEC_OK)
        CHECK(c.vocab_size == 512 && c.hidden == 64 && c.n_layers == 5 && c.n_heads == 8 && c.n_kv_heads == 4 &&
                  c.head_dim == 8 && c.ffn_dim == 172 && c.max_seq == 512 && c.norm_eps == 1e-5f &&
                  c.rope_theta == 10000.0f && c.tie_embeddings == 1 && c.bos_id == 1 && c.eos_id == 2 &&
                  c.moe.n_experts == 0 && moec_config_n_moe_layers(&c) == 0,
              "stories260K values (V 512, D 64, L 5, H 8, G 4, Dh 8, F 172, tied, bos 1, eos 2)");

    const char *mixtral =
        "{\"architectures\":[\"MixtralForCausalLM\"],\"model_type\":\"mixtral\",\"vocab_size\":32000,"
        "\"hidden_size\":4096,\"intermediate_size\":14336,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
        "\"num_key_value_heads\":8,\"max_position_embeddings\":32768,\"rope_theta\":1e6,\"sliding_window\":null,"
        "\"num_local_experts\":8,\"num_experts_per_tok\":2,\"router_aux_loss_coef\":0.02,\"output_router_logits\":false,"
        "\"hidden_act\":\"silu\",\"tie_word_embeddings\":false,\"bos_token_id\":1,\"eos_token_id\":2,"
        "\"rope_scaling\":null,\"torch_dtype\":\"bfloat16\"}";
    s = moec_config_parse_json(&c, mixtral, "mixtral");
    CHECK(s == MOEC_OK && c.moe.n_experts == 8 && c.moe.top_k == 2 && c.moe.ffn_dim == 14336 && c.ffn_dim == 14336 &&
              moec_config_n_moe_layers(&c) == 32 && c.head_dim == 128 && c.n_kv_heads == 8 && c.rope_theta == 1e6f &&
              c.norm_eps == 1e-5f && c.moe.alpha_fixed == 0.02f && c.moe.gate_lambda == 0,
          "Mixtral-8x7B config: E 8, K 2, F 14336, all 32 layers MoE, eps default 1e-5");

    const char *skywork =
        "{\"architectures\":[\"SkyworkForCausalLM\"],\"model_type\":\"skywork_moe\",\"hidden_size\":4608,"
        "\"num_hidden_layers\":52,\"num_attention_heads\":36,\"num_key_value_heads\":36,\"intermediate_size\":12288,"
        "\"num_experts\":[16],\"moe_expert_interval\":1,\"vocab_size\":65532,\"max_position_embeddings\":8192,"
        "\"rms_norm_eps\":1e-06,\"rope_theta\":10000,\"tie_word_embeddings\":false,\"bos_token_id\":1,"
        "\"eos_token_id\":2,\"pad_token_id\":0,\"moe_use_logits_norm\":true,\"moe_gate_norm_std\":1.0,"
        "\"moe_feature_no_mul_topk\":true,\"moe_2layer_gate\":false,\"use_cache\":true}";
    s = moec_config_parse_json(&c, skywork, "skywork");
    CHECK(s == MOEC_OK && c.moe.n_experts == 16 && c.moe.top_k == 2 && c.moe.ffn_dim == 12288 && c.head_dim == 128 &&
              c.moe.gate_lambda == 1.0f && c.norm_eps == 1e-6f && c.vocab_size == 65532 &&
              moec_config_n_moe_layers(&c) == 52 && c.moe.capacity_factor == 0,
          "Skywork-MoE config: num_experts [16], λ = moe_gate_norm_std 1.0, top-2, dropless");

    s = moec_config_parse_json(&c, llama_with(",\"eos_token_id\":[2,7],\"num_key_value_heads\":null,"
                                              "\"head_dim\":null,\"bos_token_id\":null"), "t");
    CHECK(s == MOEC_OK && c.eos_id == 2 && c.bos_id == -1 && c.n_kv_heads == 8 && c.head_dim == 8,
          "eos list -> first, null keys count as absent (kv heads = heads)");
    s = moec_config_parse_json(&c, llama_with(",\"num_experts\":4,\"num_experts_per_tok\":1,\"moe_layers\":[1,3],"
                                              "\"moe_ffn_dim\":32,\"capacity_factor\":1.5"), "t");
    CHECK(s == MOEC_OK && c.moe.n_experts == 4 && c.moe.top_k == 1 && c.is_moe_layer[1] && c.is_moe_layer[3] &&
              !c.is_moe_layer[0] && moec_config_n_moe_layers(&c) == 2 && c.moe.ffn_dim == 32 && c.ffn_dim == 172 &&
              c.moe.capacity_factor == 1.5f, "moec extras: moe_layers subset, moe_ffn_dim, capacity_factor");
}

static int configs_equal(const moec_config *a, const moec_config *b) { return memcmp(a, b, sizeof *a) == 0; }

static void test_round_trip(void) {
    char dir[] = "/tmp/moec_test_cfg_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    moec_config a, b;
    if (moec_config_load_json(&a, STORIES) == MOEC_OK) {
        CHECK(moec_config_save_json(&a, path) == MOEC_OK && moec_config_load_json(&b, path) == MOEC_OK &&
                  configs_equal(&a, &b), "dense stories260K config: save -> load exact");
    }
    moec_config_defaults(&a);
    a.vocab_size = 300; a.hidden = 48; a.n_layers = 4; a.n_heads = 6; a.n_kv_heads = 2; a.head_dim = 10;
    a.ffn_dim = 96; a.max_seq = 256; a.rope_theta = 500000.0f; a.norm_eps = 1e-6f; a.tie_embeddings = 0;
    a.bos_id = 0; a.eos_id = 299;
    a.moe = (moec_moe_config){.n_experts = 6, .top_k = 3, .ffn_dim = 40, .gate_lambda = 1.7f,
                              .capacity_factor = 1.25f, .aux_kind = MOEC_AUX_SWITCH, .z_loss_coef = 1e-3f,
                              .adaptive_alpha = 0, .alpha_fixed = 0.003f, .alpha_xi = 0.3f, .alpha_max = 0.02f,
                              .alpha_beta = 0.95f};
    a.is_moe_layer[1] = a.is_moe_layer[2] = 1;
    CHECK(moec_config_validate(&a) == MOEC_OK, "MoE test config validates");
    CHECK(moec_config_save_json(&a, path) == MOEC_OK && moec_config_load_json(&b, path) == MOEC_OK &&
              configs_equal(&a, &b), "MoE config (2 of 4 layers, switch aux, fixed α, λ 1.7): save -> load exact");
    char *text;
    size_t n;
    if (moec_read_file(path, &text, &n, 1 << 20) == MOEC_OK) {
        CHECK(strstr(text, "\"MixtralForCausalLM\"") && strstr(text, "\"intermediate_size\":\t40") &&
                  strstr(text, "\"dense_intermediate_size\":\t96") && strstr(text, "\"sliding_window\":\tnull") &&
                  strstr(text, "\"rms_norm_eps\":\t1e-06"), "saved MoE JSON uses Mixtral keys, shortest floats");
        free(text);
    }
    a.is_moe_layer[0] = a.is_moe_layer[3] = 1;
    a.ffn_dim = 0;
    a.moe.gate_lambda = 0;
    a.moe.adaptive_alpha = 1;
    CHECK(moec_config_save_json(&a, path) == MOEC_OK && moec_config_load_json(&b, path) == MOEC_OK &&
              configs_equal(&a, &b), "all-MoE config, λ off, adaptive α: save -> load exact");
    a.moe.top_k = 9;
    CHECK(moec_config_save_json(&a, path) == MOEC_ERR_CONFIG && moec_config_load_json(&b, path) == MOEC_OK &&
              b.moe.top_k == 3, "saving an invalid config fails and leaves the old file");
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
}

static void test_errors(void) {
    expect_error("invalid JSON", "{\"vocab_size\": 5", "JSON");
    expect_error("not an object", "[1]", "object");
    expect_error("string for number",
                 "{\"vocab_size\":\"512\",\"hidden_size\":64,\"intermediate_size\":172,\"num_hidden_layers\":5,"
                 "\"num_attention_heads\":8,\"max_position_embeddings\":512}", "vocab_size");
    expect_error("missing hidden_size",
                 "{\"vocab_size\":512,\"intermediate_size\":172,\"num_hidden_layers\":5,"
                 "\"num_attention_heads\":8,\"max_position_embeddings\":512}", "hidden_size");
    expect_error("fractional integer",
                 "{\"vocab_size\":512.5,\"hidden_size\":64,\"intermediate_size\":172,\"num_hidden_layers\":5,"
                 "\"num_attention_heads\":8,\"max_position_embeddings\":512}", "vocab_size");
    expect_error("model_type gpt2", "{\"model_type\":\"gpt2\",\"vocab_size\":5}", "gpt2");
    expect_error("architecture bert", "{\"architectures\":[\"BertForMaskedLM\"]}", "BertForMaskedLM");
    expect_error("model_type qwen2_moe", "{\"model_type\":\"qwen2_moe\"}", "qwen2_moe");
    expect_error("rope_scaling", llama_with(",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}"), "rope_scaling");
    expect_error("gelu", llama_with(",\"hidden_act\":\"gelu\""), "hidden_act");
    expect_error("attention_bias", llama_with(",\"attention_bias\":true"), "attention_bias");
    expect_error("sliding window", llama_with(",\"sliding_window\":128"), "sliding_window");
    expect_error("bool as string", llama_with(",\"tie_word_embeddings\":\"yes\""), "tie_word_embeddings");
    expect_error("kv heads not dividing", llama_with(",\"num_key_value_heads\":3"), "n_kv_heads");
    expect_error("odd head_dim", llama_with(",\"head_dim\":7"), "head_dim");
    expect_error("float overflow", llama_with(",\"rope_theta\":1e400"), "rope_theta");
    expect_error("eos beyond vocab", llama_with(",\"eos_token_id\":512"), "eos_id");
    expect_error("top_k > experts", llama_with(",\"num_local_experts\":4,\"num_experts_per_tok\":5"), "top_k");
    expect_error("expert count mismatch", llama_with(",\"num_local_experts\":4,\"num_experts\":8"), "num_experts");
    expect_error("mixed expert list", llama_with(",\"num_experts\":[8,16]"), "num_experts");
    expect_error("too many experts", llama_with(",\"num_local_experts\":1000"), "n_experts");
    expect_error("moe_layers out of range", llama_with(",\"num_local_experts\":4,\"moe_layers\":[0,5]"), "moe_layers");
    expect_error("moe_layers duplicate", llama_with(",\"num_local_experts\":4,\"moe_layers\":[1,1]"), "moe_layers");
    expect_error("moe_layers without experts", llama_with(",\"moe_layers\":[1]"), "moe_layers");
    expect_error("expert interval 2", llama_with(",\"num_experts\":[4],\"moe_expert_interval\":2"), "moe_expert_interval");
    expect_error("bad aux type", llama_with(",\"num_local_experts\":4,\"router_aux_loss_type\":\"foo\""),
                 "router_aux_loss_type");
    expect_error("negative capacity", llama_with(",\"num_local_experts\":4,\"capacity_factor\":-1"), "capacity_factor");
    expect_error("beta > 1", llama_with(",\"num_local_experts\":4,\"moe_aux_beta\":1.5"), "alpha_beta");
    expect_error("zero layers",
                 "{\"vocab_size\":512,\"hidden_size\":64,\"intermediate_size\":172,\"num_hidden_layers\":0,"
                 "\"num_attention_heads\":8,\"max_position_embeddings\":512}", "num_hidden_layers");
    expect_error("zero heads",
                 "{\"vocab_size\":512,\"hidden_size\":64,\"intermediate_size\":172,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":0,\"max_position_embeddings\":512}", "num_attention_heads");
    expect_error("hidden not divisible",
                 "{\"vocab_size\":512,\"hidden_size\":65,\"intermediate_size\":172,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":8,\"max_position_embeddings\":512}", "head_dim");
    expect_error("negative hidden", llama_with(",\"hidden_size\":-64,\"head_dim\":8"), "hidden");
    expect_error("huge layer count", llama_with(",\"num_hidden_layers\":100000"), "num_hidden_layers");
    moec_config c;
    CHECK(moec_config_load_json(&c, "/nonexistent/config.json") == MOEC_ERR_IO, "missing file -> %s",
          moec_error_message());
}

int main(void) {
    test_defaults_validate();
    test_parse_real();
    test_round_trip();
    test_errors();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
