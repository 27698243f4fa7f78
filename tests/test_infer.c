/* test_infer.c — the inference engine against the training forward (model.h), which tests/test_vs_torch.sh checks
 * against an independent PyTorch implementation:
 *   - logits of incremental decoding (prefill in uneven blocks, then one token at a time) equal the full forward's
 *     logits of the same sequence, for a dense GQA model with q/k/v biases, an MoE with gating-logit
 *     normalisation (λ = 1), and an MoE with λ = 0 and tied embeddings;
 *   - several sequences decoded together in one call (rows of different slots interleaved, different lengths)
 *     give each sequence's own full-forward logits;
 *   - `moec quantize` output (bf16, f16, fp8, bf16p) run in place from the mapped file equals the full forward of the
 *     dequantised weights (moec_model_dir_load dequantises independently of the kernels), and nothing is copied;
 *   - the model exported to GGUF (f32, f16, bf16, q8_0) and run in place from the mapped GGUF equals the full
 *     forward of moec_gguf_load's fp32 conversion of the same file (its own decoders and row un-permutation), and
 *     only the q/k projections that llama.cpp stores permuted are copied;
 *   - bad input (token outside the vocabulary, context overflow, bad slot) is an error that changes nothing.
 * Tolerance: both sides compute in fp32 with different summation orders (GEMM vs matvec, attention per row vs per
 * block), so logits agree to ~1e-7 (measured); 2e-5 absolute on logits of magnitude ~1 leaves margin without
 * hiding a real error (a wrong position, mask, cache slot or routing changes logits by >1e-2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/threads.h"
#include "infer/engine.h"
#include "infer/quantize.h"
#include "io/gguf_model.h"
#include "io/model_dir.h"
#include "kernels/cpu/qmatmul.h"
#include "model/model.h"

static int failures = 0;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) printf("ok   ");                                                                                     \
        else printf("FAIL "), failures++;                                                                              \
        printf(__VA_ARGS__);                                                                                           \
        printf("\n");                                                                                                  \
    } while (0)

static moec_config make_config(int kind) {
    moec_config c;
    moec_config_defaults(&c);
    c.vocab_size = 97;
    c.hidden = 48;
    c.n_layers = 3;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.ffn_dim = 40;
    c.max_seq = 64;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.bos_id = c.eos_id = -1;
    if (kind == 0) c.qkv_bias = 1;
    if (kind >= 1) {
        c.moe.n_experts = 6;
        c.moe.top_k = 2;
        c.moe.ffn_dim = 24;
        c.moe.gate_lambda = kind == 1 ? 1.0f : 0.0f;
        c.moe.capacity_factor = 0.0f; /* the training forward must route dropless too, for equality */
        c.is_moe_layer[0] = 1;
        c.is_moe_layer[1] = kind >= 3; /* every layer MoE: what a GGUF (llama architecture) can hold */
        c.is_moe_layer[2] = 1;
        c.tie_embeddings = kind == 2;
    }
    if (kind == 4) { /* every matrix 128 columns wide: what bf16p packs (core/bf16p.h) */
        c.hidden = 128;
        c.head_dim = 32;
        c.ffn_dim = 128;
        c.moe.ffn_dim = 128;
        c.moe.gate_lambda = 1.0f;
    }
    return c;
}

static void random_ids(int32_t *ids, int n, int V, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        ids[i] = (int32_t)((seed >> 8) % (unsigned)V);
    }
}

/* logits [S, V] of the training forward */
static float *full_logits(moec_model *m, const int32_t *ids, int S) {
    moec_forward_stats st;
    if (moec_model_forward(m, ids, NULL, 1, S, NULL, &st) != MOEC_OK) {
        printf("forward failed: %s\n", moec_error_message());
        return NULL;
    }
    float *out = malloc((size_t)S * m->cfg.vocab_size * sizeof *out);
    memcpy(out, m->acts.logits, (size_t)S * m->cfg.vocab_size * sizeof *out);
    return out;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        if (!(x <= d)) d = x; /* NaN counts as infinitely wrong */
    }
    return d;
}

/* Logits [S, V] of the sequence run through slot `slot` in blocks of the given sizes (cycled); NULL on error. */
static float *session_logits(moec_session *s, int slot, const int32_t *ids, int S, const int *blocks, int nb, int V) {
    float *lg = malloc((size_t)S * V * sizeof *lg);
    int32_t slots[64];
    int at = 0, bi = 0;
    moec_session_reset(s, slot);
    while (at < S) {
        int b = blocks[bi++ % nb];
        if (b > S - at) b = S - at;
        for (int i = 0; i < b; i++) slots[i] = slot;
        if (moec_session_forward(s, b, ids + at, slots, NULL, lg + (int64_t)at * V) != MOEC_OK) {
            printf("session forward: %s\n", moec_error_message());
            free(lg);
            return NULL;
        }
        at += b;
    }
    return lg;
}

/* max |Δ| between those logits and want_logits */
static double incremental(moec_session *s, int slot, const int32_t *ids, int S, const int *blocks, int nb,
                          const float *want_logits, int V) {
    float *lg = session_logits(s, slot, ids, S, blocks, nb, V);
    if (!lg) return INFINITY;
    double d = max_diff(lg, want_logits, (int64_t)S * V);
    free(lg);
    return d;
}

static void test_kind(int kind, const char *tmpdir) {
    static const char *names[] = {"dense GQA + qkv bias", "MoE λ=1", "MoE λ=0 tied", "MoE λ=0 every layer",
                                  "MoE λ=1 every layer 128 wide"};
    moec_config c = make_config(kind);
    moec_model m;
    if (moec_model_init(&m, &c) != MOEC_OK) {
        CHECK(0, "init %s: %s", names[kind], moec_error_message());
        return;
    }
    moec_model_init_random(&m, 1234 + kind);
    if (kind == 0) /* non-zero biases, so that a bias applied at the wrong place shows */
        for (int l = 0; l < c.n_layers; l++)
            for (int j = 0; j < c.n_heads * c.head_dim; j++) m.w.layers[l].bq[j] = 0.1f * sinf((float)j + l);
    const int V = c.vocab_size, S = 40;
    int32_t seqs[3][40];
    const int lens[3] = {40, 23, 9};
    for (int q = 0; q < 3; q++) random_ids(seqs[q], lens[q], V, 77u + 13u * q + kind);
    float *full[3];
    for (int q = 0; q < 3; q++) full[q] = full_logits(&m, seqs[q], lens[q]);

    moec_infer_model im;
    moec_session s;
    CHECK(moec_infer_model_from_params(&im, &c, &m.table, m.params) == MOEC_OK, "%s: wrap fp32 params", names[kind]);
    CHECK(moec_session_init(&s, &im, 3, 48, 64, MOEC_KV_F32) == MOEC_OK, "%s: session", names[kind]);
    const int all[] = {40}, ones[] = {1}, mixed[] = {5, 1, 7, 3, 1, 11};
    double d1 = incremental(&s, 0, seqs[0], S, all, 1, full[0], V);
    double d2 = incremental(&s, 1, seqs[0], S, ones, 1, full[0], V);
    double d3 = incremental(&s, 2, seqs[0], S, mixed, 6, full[0], V);
    CHECK(d1 < 2e-5, "%s: one-block prefill == full forward (max |Δ| %.2e)", names[kind], d1);
    CHECK(d2 < 2e-5, "%s: token-by-token decoding == full forward (max |Δ| %.2e)", names[kind], d2);
    CHECK(d3 < 2e-5, "%s: blocks 5,1,7,3,1,11 == full forward (max |Δ| %.2e)", names[kind], d3);

    /* three sequences at once: step t feeds token t of every sequence still running, slots interleaved */
    float *lg = malloc((size_t)3 * S * V * sizeof *lg);
    for (int q = 0; q < 3; q++) moec_session_reset(&s, q);
    int ok = 1;
    for (int t = 0; t < S && ok; t++) {
        int32_t tok[3], sl[3];
        int n = 0;
        for (int q = 2; q >= 0; q--) /* reverse slot order: rows need not be sorted by slot */
            if (t < lens[q]) tok[n] = seqs[q][t], sl[n++] = q;
        float out[3 * 97];
        ok = moec_session_forward(&s, n, tok, sl, NULL, out) == MOEC_OK;
        for (int i = 0; i < n; i++) memcpy(lg + ((int64_t)sl[i] * S + t) * V, out + (int64_t)i * V, (size_t)V * 4);
    }
    double db = 0;
    for (int q = 0; q < 3; q++) {
        double d = max_diff(lg + (int64_t)q * S * V, full[q], (int64_t)lens[q] * V);
        if (!(d <= db)) db = d;
    }
    CHECK(ok && db < 2e-5, "%s: 3 sequences (lengths 40, 23, 9) decoded together == each one's full forward (%.2e)",
          names[kind], db);

    /* want-mask: only the last row's logits, as prefill uses it */
    {
        int32_t sl[9];
        uint8_t want[9] = {0};
        want[8] = 1;
        for (int i = 0; i < 9; i++) sl[i] = 0;
        moec_session_reset(&s, 0);
        float out[97];
        ok = moec_session_forward(&s, 9, seqs[2], sl, want, out) == MOEC_OK;
        CHECK(ok && max_diff(out, full[2] + 8 * V, V) < 2e-5, "%s: logits of the wanted row only", names[kind]);
    }
    /* errors change nothing */
    {
        int32_t bad = V, sl0 = 0, t1 = 1;
        int32_t len_before = s.len[0];
        CHECK(moec_session_forward(&s, 1, &bad, &sl0, NULL, lg) != MOEC_OK && s.len[0] == len_before,
              "%s: token %d outside the vocabulary refused, cache unchanged: %s", names[kind], V, moec_error_message());
        int32_t sl9 = 9;
        CHECK(moec_session_forward(&s, 1, &t1, &sl9, NULL, lg) != MOEC_OK, "%s: slot 9 refused: %s", names[kind],
              moec_error_message());
        int32_t many[48], msl[48];
        for (int i = 0; i < 48; i++) many[i] = 1, msl[i] = 0;
        moec_session_reset(&s, 0);
        CHECK(moec_session_forward(&s, 48, many, msl, NULL, NULL) == MOEC_OK, "%s: 48 tokens fill the context",
              names[kind]);
        CHECK(moec_session_forward(&s, 1, many, msl, NULL, NULL) != MOEC_OK && s.len[0] == 48,
              "%s: the 49th token is refused: %s", names[kind], moec_error_message());
    }
    moec_session_free(&s);

    /* a half-precision cache: K and V rounded once, when written (the cache holds exactly moec_f32_to_f16 of the
     * fp32 session's K and V), and every read sees those values, so one-block prefill, token by token and mixed
     * blocks agree with one another as the fp32 cache's do; against the fp32 model the logits move by what rounding
     * K and V to 11 significant bits moves them (nonzero, and small beside the logits' spread) */
    {
        moec_session h, f;
        CHECK(moec_session_init(&h, &im, 1, 48, 64, MOEC_KV_F16) == MOEC_OK &&
                  moec_session_init(&f, &im, 1, 48, 64, MOEC_KV_F32) == MOEC_OK,
              "%s: f16 session", names[kind]);
        float *one = session_logits(&h, 0, seqs[0], S, all, 1, V);
        /* the cache's bytes, checked right after the one-block prefill, against the fp32 session's cache: layer 0's
         * (the later layers' K and V differ a little already: they come after attention over rounded values) */
        float *fl = session_logits(&f, 0, seqs[0], S, all, 1, V);
        const int64_t n_cache = (int64_t)c.n_kv_heads * 48 * c.head_dim; /* layout [L][slot][G][ctx][Dh] */
        int64_t bad = 0, nonzero = 0;
        for (int64_t i = 0; i < n_cache; i++)
            for (int kvi = 0; kvi < 2; kvi++) {
                const float x = ((const float *)(kvi ? f.v_cache : f.k_cache))[i];
                const uint16_t got = ((const uint16_t *)(kvi ? h.v_cache : h.k_cache))[i];
                bad += got != moec_f32_to_f16(x);
                nonzero += x != 0.0f;
            }
        CHECK(bad == 0 && nonzero > 0, "%s: the f16 cache holds the fp32 cache's layer-0 K and V rounded to f16 (%lld of %lld "
              "differ; %lld nonzero)", names[kind], (long long)bad, (long long)(2 * n_cache), (long long)nonzero);
        float *tok = session_logits(&h, 0, seqs[0], S, ones, 1, V), *mix = session_logits(&h, 0, seqs[0], S, mixed, 6, V);
        const double dt = one && tok ? max_diff(one, tok, (int64_t)S * V) : INFINITY,
                     dm = one && mix ? max_diff(one, mix, (int64_t)S * V) : INFINITY,
                     dfull = one ? max_diff(one, full[0], (int64_t)S * V) : INFINITY;
        double spread = 0;
        for (int64_t i = 0; i < (int64_t)S * V; i++) spread = fmax(spread, fabs(full[0][i]));
        CHECK(dt < 2e-5 && dm < 2e-5, "%s: f16 cache: token by token (%.2e) and blocks 5,1,7,3,1,11 (%.2e) == one-block "
              "prefill", names[kind], dt, dm);
        /* four prefill blocks in one call (sequence 0's positions 0-9, sequence 1's 0-9, sequence 2's 0-8, then
         * sequence 0's 10-19): tasks enough for 2 threads, so each takes both query heads of a KV head. Within
         * 1e-4: the call's 39 rows take the products' prefill path (GEMM) where the 10-row runs take the decode
         * path, a different summation order (2.4e-5 measured in the emulated-AVX-512 build, 7e-6 natively); a
         * task that skips its second query head is off by 0.15-0.78 */
        {
            moec_session h3;
            int32_t tok[39], sl[39];
            int n = 0;
            for (int i = 0; i < 10; i++) tok[n] = seqs[0][i], sl[n++] = 0;
            for (int i = 0; i < 10; i++) tok[n] = seqs[1][i], sl[n++] = 1;
            for (int i = 0; i < 9; i++) tok[n] = seqs[2][i], sl[n++] = 2;
            for (int i = 10; i < 20; i++) tok[n] = seqs[0][i], sl[n++] = 0;
            float *out = malloc((size_t)n * V * sizeof *out);
            const int okh = moec_session_init(&h3, &im, 3, 48, 64, MOEC_KV_F16) == MOEC_OK &&
                            moec_session_forward(&h3, n, tok, sl, NULL, out) == MOEC_OK;
            double d4 = INFINITY;
            if (okh && one) {
                d4 = fmax(max_diff(out, one, 10 * V), max_diff(out + 29 * V, one + 10 * V, 10 * V));
                /* sequences 1 and 2 against the same f16 session run alone */
                for (int q = 1; q < 3; q++) {
                    float *alone = session_logits(&h, 0, seqs[q], lens[q] < 10 ? lens[q] : 10, all, 1, V);
                    d4 = alone ? fmax(d4, max_diff(out + (q == 1 ? 10 : 20) * V, alone, (q == 1 ? 10 : 9) * V))
                               : INFINITY;
                    free(alone);
                }
            }
            CHECK(okh && h3.attn_hpt == c.n_heads / c.n_kv_heads && d4 < 1e-4,
                  "%s: f16 cache, 4 prefill blocks of 3 sequences in one call (%d query heads per task) == each alone "
                  "(%.2e)", names[kind], h3.attn_hpt, d4);
            free(out);
            if (okh) moec_session_free(&h3);
        }
        CHECK(dfull > 0 && dfull < 3e-3 * spread, "%s: f16 cache vs the fp32 full forward: max |Δ| %.2e, nonzero and "
              "< 3e-3 x max |logit| %.2f", names[kind], dfull, spread);
        free(one), free(fl), free(tok), free(mix);
        moec_session_free(&h);
        moec_session_free(&f);
    }
    moec_infer_model_free(&im);

    /* quantised copies, run in place from the mapping */
    char dir[512], qdir[512];
    snprintf(dir, sizeof dir, "%s/m%d", tmpdir, kind);
    CHECK(moec_model_dir_save(dir, &c, &m.table, m.params, NULL, 0) == MOEC_OK, "%s: save", names[kind]);
    for (int qt = 0; qt < 4; qt++) {
        const moec_qtype to = qt == 0 ? MOEC_QT_BF16 : qt == 1 ? MOEC_QT_F16 : qt == 2 ? MOEC_QT_F8E4M3 : MOEC_QT_BF16P;
        snprintf(qdir, sizeof qdir, "%s/m%d-%s", tmpdir, kind, moec_qtype_name(to));
        if (moec_quantize_model(dir, qdir, to) != MOEC_OK) {
            CHECK(0, "%s: quantize to %s: %s", names[kind], moec_qtype_name(to), moec_error_message());
            continue;
        }
        moec_config dc;
        moec_param_table dt;
        float *dp;
        if (moec_model_dir_load(qdir, &dc, &dt, &dp) != MOEC_OK) {
            CHECK(0, "%s: load %s dequantised: %s", names[kind], qdir, moec_error_message());
            continue;
        }
        moec_model dm;
        moec_model_adopt(&dm, &dc, &dt, dp);
        float *ref = full_logits(&dm, seqs[0], S);
        double werr = 0; /* quantisation error of the weights themselves, relative to the largest weight */
        for (int64_t i = 0; i < m.table.total; i++) werr = fmax(werr, fabs((double)m.params[i] - dp[i]));
        moec_infer_model qm;
        if (moec_infer_model_load(&qm, qdir) != MOEC_OK) {
            CHECK(0, "%s: infer load %s: %s", names[kind], qdir, moec_error_message());
        } else {
            CHECK(qm.mapped_bytes == qm.weight_bytes, "%s %s: weights used in place, nothing copied (%lld of %lld bytes)",
                  names[kind], moec_qtype_name(to), (long long)qm.mapped_bytes, (long long)qm.weight_bytes);
            if (to == MOEC_QT_BF16P) /* packed only where every matrix is a multiple of 128 wide, else bf16 */
                CHECK(qm.layers[0].wq.type == (kind == 4 ? MOEC_QT_BF16P : MOEC_QT_BF16) &&
                          qm.lm_head.type == qm.layers[0].wq.type,
                      "%s bf16p: matrices stored as %s", names[kind], moec_qtype_name(qm.layers[0].wq.type));
            moec_session qs;
            moec_session_init(&qs, &qm, 1, 48, 64, MOEC_KV_F32);
            double d = incremental(&qs, 0, seqs[0], S, mixed, 6, ref, V);
            CHECK(d < 2e-5, "%s %s: incremental on the mapped file == full forward of the dequantised weights (%.2e)",
                  names[kind], moec_qtype_name(to), d);
            float *f32 = full[0];
            CHECK(max_diff(ref, f32, (int64_t)S * V) > 0, "%s %s: and it is not the fp32 model (max weight error %.2e)",
                  names[kind], moec_qtype_name(to), werr);
            moec_session_free(&qs);
            moec_infer_model_free(&qm);
        }
        free(ref);
        moec_model_free(&dm);
    }
    if (kind == 4) { /* a bf16p directory holds the bf16 model: both convert to the same GGUF tensors */
        char da[512], db[512], ga[600], gb[600];
        snprintf(da, sizeof da, "%s/m4-bf16", tmpdir);
        snprintf(db, sizeof db, "%s/m4-bf16p", tmpdir);
        snprintf(ga, sizeof ga, "%s/m4-from-bf16.gguf", tmpdir);
        snprintf(gb, sizeof gb, "%s/m4-from-bf16p.gguf", tmpdir);
        moec_gguf_wtype wt;
        moec_gguf_wtype_parse("bf16", &wt);
        moec_config ca, cb;
        moec_param_table ta, tb;
        float *pa = NULL, *pb = NULL;
        moec_status sa = moec_gguf_export(da, ga, wt, 1), sb = moec_gguf_export(db, gb, wt, 1);
        if (sa == MOEC_OK) sa = moec_gguf_load(ga, &ca, &ta, &pa, NULL);
        if (sb == MOEC_OK) sb = moec_gguf_load(gb, &cb, &tb, &pb, NULL);
        const int same = sa == MOEC_OK && sb == MOEC_OK && ta.total == tb.total &&
                         memcmp(pa, pb, sizeof(float) * (size_t)ta.total) == 0;
        CHECK(same, "%s: the bf16p and bf16 directories export the same bf16 GGUF tensors (%s)", names[kind],
              sa == MOEC_OK && sb == MOEC_OK ? "compared" : moec_error_message());
        if (sa == MOEC_OK) moec_free(pa), moec_param_table_free(&ta);
        if (sb == MOEC_OK) moec_free(pb), moec_param_table_free(&tb);
    }
    /* the same model as GGUF, run in place (llama.cpp's llama architecture: no mixed dense/MoE stacks) */
    static const char *gguf_types[] = {"f32", "f16", "bf16", "q8_0"};
    for (int gt = 0; gt < 4 && (kind == 0 || kind == 3); gt++) {
        char gpath[600];
        snprintf(gpath, sizeof gpath, "%s/m%d-%s.gguf", tmpdir, kind, gguf_types[gt]);
        moec_gguf_wtype wt;
        moec_gguf_wtype_parse(gguf_types[gt], &wt);
        if (moec_gguf_export(dir, gpath, wt, 1) != MOEC_OK) {
            CHECK(0, "%s: export %s: %s", names[kind], gpath, moec_error_message());
            continue;
        }
        moec_config gc;
        moec_param_table gtab;
        float *gp;
        if (moec_gguf_load(gpath, &gc, &gtab, &gp, NULL) != MOEC_OK) {
            CHECK(0, "%s: gguf_load %s: %s", names[kind], gpath, moec_error_message());
            continue;
        }
        moec_model gm;
        moec_model_adopt(&gm, &gc, &gtab, gp);
        float *ref = full_logits(&gm, seqs[0], S);
        moec_infer_model qm;
        if (moec_infer_model_load_gguf(&qm, gpath) != MOEC_OK) {
            CHECK(0, "%s: infer load %s: %s", names[kind], gpath, moec_error_message());
        } else {
            /* moec writes architecture "llama", whose q/k rows (and biases) llama.cpp keeps permuted */
            int64_t qk = 0;
            for (int l = 0; l < c.n_layers; l++)
                qk += qm.layers[l].wq.rows * moec_qtype_row_bytes(qm.layers[l].wq.type, qm.layers[l].wq.cols) +
                      qm.layers[l].wk.rows * moec_qtype_row_bytes(qm.layers[l].wk.type, qm.layers[l].wk.cols) +
                      (c.qkv_bias ? (qm.layers[l].wq.rows + qm.layers[l].wk.rows) * 4 : 0);
            const int64_t copied = qm.weight_bytes - qm.mapped_bytes;
            CHECK(copied == qk,
                  "%s gguf %s: used in place except the q/k projections (%lld of %lld bytes copied, q/k %lld)",
                  names[kind], gguf_types[gt], (long long)copied, (long long)qm.weight_bytes, (long long)qk);
            moec_session qs;
            moec_session_init(&qs, &qm, 1, 48, 64, MOEC_KV_F32);
            /* exact products (Q8_0 rows up to 1536 wide otherwise take int8 activations, checked below) */
            moec_qmat_set_activations(MOEC_QACT_F32);
            double d = incremental(&qs, 0, seqs[0], S, mixed, 6, ref, V);
            moec_qmat_set_activations(MOEC_QACT_Q8);
            CHECK(d < 2e-5, "%s gguf %s: incremental on the mapped file == full forward of its fp32 conversion (%.2e)",
                  names[kind], gguf_types[gt], d);
            if (strcmp(gguf_types[gt], "q8_0") == 0) {
                /* int8 activations (the default): each input moves by at most half a step of its block's 127 */
                moec_session_free(&qs);
                moec_session_init(&qs, &qm, 1, 48, 64, MOEC_KV_F32);
                d = incremental(&qs, 0, seqs[0], S, mixed, 6, ref, V);
                CHECK(d > 0 && d < 2e-2, "%s gguf q8_0, int8 activations: incremental within 2e-2 of the exact full "
                      "forward, and not equal to it (%.2e)", names[kind], d);
            }
            moec_session_free(&qs);
            moec_infer_model_free(&qm);
        }
        free(ref);
        moec_model_free(&gm);
    }

    /* f16 cannot hold a weight beyond 65504: refused, nothing written (bf16 takes it) */
    if (kind == 0) {
        int wi = 1;
        while (m.table.items[wi].ndim != 2) wi++; /* the first layer's first matrix (past the embedding) */
        m.params[m.table.items[wi].offset] = 70000.0f;
        snprintf(dir, sizeof dir, "%s/big", tmpdir);
        snprintf(qdir, sizeof qdir, "%s/big-f16", tmpdir);
        CHECK(moec_model_dir_save(dir, &c, &m.table, m.params, NULL, 0) == MOEC_OK, "save the model with a big weight");
        moec_status st = moec_quantize_model(dir, qdir, MOEC_QT_F16);
        CHECK(st == MOEC_ERR_NUMERIC && access(qdir, F_OK) != 0, "quantize f16 refuses a weight of 70000 and leaves "
              "nothing behind: %s", moec_error_message());
        snprintf(qdir, sizeof qdir, "%s/big-bf16", tmpdir);
        CHECK(moec_quantize_model(dir, qdir, MOEC_QT_BF16) == MOEC_OK, "bf16 takes it");
    }
    for (int q = 0; q < 3; q++) free(full[q]);
    free(lg);
    moec_model_free(&m);
}

int main(void) {
    moec_threads_init(2);
    char tmpl[] = "/tmp/moec-test-infer-XXXXXX";
    const char *tmp = mkdtemp(tmpl);
    if (!tmp) return 1;
    for (int kind = 0; kind < 5; kind++) test_kind(kind, tmp);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp);
    moec_qmat_release();
    moec_threads_shutdown();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
