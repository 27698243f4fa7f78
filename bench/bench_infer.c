/* bench_infer.c — moec's inference speed on one model, measured the way llama-bench measures llama.cpp:
 *   prefill ("pp N"): N prompt tokens in one forward from an empty cache (prefill blocks of up to 512 rows),
 *                     tokens/s = N / time;
 *   decode  ("tg M"): M tokens generated one at a time (batch 1, greedy) after a 1-token context (--depth D:
 *                     after a D-token context, prefilled untimed, as llama-bench -d D), tokens/s = M / time;
 *   decode batch B:   B sequences decoded together, tokens/s over all of them (shows expert grouping).
 * Each is repeated --reps times (median reported, after one warm-up). Also reported: the weight bytes one decode
 * token reads (every non-expert matrix, K experts per MoE layer, lm_head, one embedding row), the machine's read
 * bandwidth measured in the same process, the decode bound bandwidth / bytes-per-token, and peak RSS (the
 * weights are mapped, so RSS counts the pages actually touched).
 *
 *   bench_infer --model DIR|FILE.gguf [--pp 512] [--tg 128] [--reps 5] [--threads 2] [--batch 0] [--depth 0] [--bw-mib 1024]
 *               [--copy 1] [--activations q8|f32] [--isa auto|scalar|avx2|avx512]   (the matmul kernels; auto = the best this CPU has)
 *               [--streams 0|1|ab]   (moec_qmat.streamed forced off / on, or alternating token by token, both timed)
 *               [--kv f16|f32|ab]    (the KV cache's numbers, f16 by default as llama.cpp's; ab: two sessions, one of
 *                                     each, fed the same tokens, each prefill and every decode step run on both, in
 *                                     alternating order; pp / tg figures are then the f16 session's / both)
 * Prints one JSON line. Token ids are random (the model's speed does not depend on them, except through routing,
 * which random weights spread evenly). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "bench_util.h"
#include "core/threads.h"
#include "infer/engine.h"

/* --copy 1: every matrix copied into anonymous memory with transparent huge pages requested, to measure what the
 * file mapping's 4 KB pages cost (TLB misses while streaming weights). The copies are leaked at exit. */
static void copy_to_hugepages(moec_qmat *q) {
    const size_t n = (size_t)(q->rows * moec_qtype_row_bytes(q->type, q->cols)), align = (size_t)2 << 20;
    void *p = aligned_alloc(align, (n + align - 1) / align * align);
    if (!p) return;
    madvise(p, (n + align - 1) / align * align, MADV_HUGEPAGE);
    memcpy(p, q->data, n);
    q->data = p;
}

static void copy_model(moec_infer_model *m) {
    const moec_config *c = &m->cfg;
    const int tied = m->lm_head.data == m->tok_emb.data;
    copy_to_hugepages(&m->tok_emb);
    if (tied) m->lm_head = m->tok_emb;
    else copy_to_hugepages(&m->lm_head);
    for (int l = 0; l < c->n_layers; l++) {
        moec_infer_layer *L = &m->layers[l];
        moec_qmat *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2, &L->router};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
            if (mats[i]->data) copy_to_hugepages(mats[i]);
        if (c->is_moe_layer[l])
            for (int e = 0; e < 3 * c->moe.n_experts; e++) copy_to_hugepages(&L->experts[e]);
    }
}

/* Bytes of file-backed memory this process maps with 2 MB page-table entries (FilePmdMapped): how much of the
 * weights the kernel gave huge pages (see moec_st_open). -1 if unknown. */
static long long file_pmd_mapped_bytes(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "FilePmdMapped: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb << 10;
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int pp = 512, tg = 128, reps = 5, threads = 2, batch = 0, bw_mib = 1024, copy = 0, depth = 0, streams = -1, kv_mode = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--pp")) pp = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tg")) tg = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--depth")) depth = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bw-mib")) bw_mib = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--copy")) copy = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--kv") && !strcmp(argv[i + 1], "f16")) kv_mode = 1;
        else if (!strcmp(argv[i], "--kv") && !strcmp(argv[i + 1], "f32")) kv_mode = 0;
        else if (!strcmp(argv[i], "--kv") && !strcmp(argv[i + 1], "ab")) kv_mode = 2;
        else if (!strcmp(argv[i], "--streams")) streams = !strcmp(argv[i + 1], "ab") ? 2 : atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "--isa")) {
            const char *v = argv[i + 1];
            const moec_gemm_isa isa = !strcmp(v, "scalar") ? MOEC_GEMM_ISA_SCALAR : !strcmp(v, "avx2") ? MOEC_GEMM_ISA_AVX2
                                      : !strcmp(v, "avx512")                    ? MOEC_GEMM_ISA_AVX512
                                                                                : MOEC_GEMM_ISA_AUTO;
            if (moec_qmat_set_isa(isa) != MOEC_OK || moec_gemm_set_isa(isa) != MOEC_OK) {
                fprintf(stderr, "bench_infer: %s\n", moec_error_message());
                return 1;
            }
        } else if (!strcmp(argv[i], "--activations") && !strcmp(argv[i + 1], "f32")) moec_qmat_set_activations(MOEC_QACT_F32);
        else if (!strcmp(argv[i], "--activations") && !strcmp(argv[i + 1], "q8")) moec_qmat_set_activations(MOEC_QACT_Q8);
        else {
            fprintf(stderr, "bench_infer: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (!model || pp < 1 || tg < 1 || reps < 1 || reps > 64 || depth < 0) {
        fprintf(stderr, "usage: bench_infer --model DIR [--pp N] [--tg N] [--reps R] [--threads T] [--batch B] [--depth D]\n"
                        "                   [--activations q8|f32] [--isa auto|scalar|avx2|avx512] [--streams 0|1|ab]\n"
                        "                   [--kv f16|f32|ab]\n");
        return 2;
    }
    moec_threads_init(threads);
    moec_infer_model m;
    const size_t ml = strlen(model);
    const int gguf = ml > 5 && !strcmp(model + ml - 5, ".gguf");
    if ((gguf ? moec_infer_model_load_gguf(&m, model) : moec_infer_model_load(&m, model)) != MOEC_OK) {
        fprintf(stderr, "bench_infer: %s\n", moec_error_message());
        return 1;
    }
    if (copy) copy_model(&m);
    if (streams == 0 || streams == 1) moec_infer_model_set_streamed(&m, streams);
    const int V = m.cfg.vocab_size, want_ctx = (pp > depth + 1 ? pp : depth + 1) + tg + 1;
    if (depth + tg + 1 > m.cfg.max_seq) {
        fprintf(stderr, "bench_infer: --depth %d + --tg %d does not fit the model's context of %d\n", depth, tg,
                m.cfg.max_seq);
        return 2;
    }
    const int ctx = want_ctx <= m.cfg.max_seq ? want_ctx : m.cfg.max_seq;
    const int64_t block = pp < 512 ? pp : 512, dblock = depth < 512 ? depth : 512; /* prefill blocks */
    int64_t rows = block; /* the session's rows per call: the largest block or batch */
    if (batch > rows) rows = batch;
    if (dblock > rows) rows = dblock;
    moec_session s, s32; /* s32: --kv ab's fp32 session (s is then the f16 one) */
    memset(&s32, 0, sizeof s32);
    if (moec_session_init(&s, &m, batch > 1 ? batch : 1, ctx, rows, kv_mode == 0 ? MOEC_KV_F32 : MOEC_KV_F16) !=
            MOEC_OK ||
        (kv_mode == 2 && moec_session_init(&s32, &m, 1, ctx, rows, MOEC_KV_F32) != MOEC_OK)) {
        fprintf(stderr, "bench_infer: %s\n", moec_error_message());
        return 1;
    }
    int32_t *ids = malloc((size_t)rows * sizeof *ids), *slots = calloc((size_t)rows, sizeof *slots);
    uint8_t *want = calloc((size_t)rows, 1);
    float *logits = moec_alloc_floats((int64_t)(batch > 1 ? batch : 1) * V);
    uint64_t r = 12345;
    for (int64_t i = 0; i < rows; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((r >> 33) % (uint64_t)V);
    }
    double t_pp[64], t_pp32[64], t_tg[64], t_b[64], t_ab[2][64] = {{0}};
    for (int rep = -1; rep < reps; rep++) {
        /* prefill (--kv ab: on both sessions, in turns first) */
        double t0 = 0;
        for (int turn = 0; turn < (kv_mode == 2 ? 2 : 1); turn++) {
            moec_session *ses = kv_mode == 2 && ((turn + rep) & 1) ? &s32 : &s;
            moec_session_reset(ses, 0);
            t0 = bench_now();
            for (int at = 0; at < pp; at += (int)block) {
                const int n = pp - at < block ? pp - at : (int)block;
                memset(want, 0, (size_t)n);
                want[n - 1] = 1;
                moec_session_forward(ses, n, ids, slots, want, logits);
            }
            if (rep >= 0) (ses == &s ? t_pp : t_pp32)[rep] = bench_now() - t0;
        }
        /* decode from a 1-token (or --depth) context */
        int32_t tok = ids[0], sl = 0;
        for (moec_session *ses = &s; ses; ses = ses == &s && kv_mode == 2 ? &s32 : NULL) {
            moec_session_reset(ses, 0);
            if (depth <= 1) moec_session_forward(ses, 1, &tok, &sl, NULL, logits);
            for (int at = 0; depth > 1 && at < depth; at += (int)rows) {
                const int n = depth - at < rows ? depth - at : (int)rows;
                memset(want, 0, (size_t)n);
                want[n - 1] = 1;
                moec_session_forward(ses, n, ids, slots, want, logits);
            }
        }
        t0 = bench_now();
        for (int i = 0; i < tg; i++) {
            tok = argmax(logits, V);
            if (kv_mode == 2) { /* --kv ab: the same token through both caches, in turns first */
                for (int turn = 0; turn < 2; turn++) {
                    const int f16 = (turn + i) & 1;
                    const double ta = bench_now();
                    moec_session_forward(f16 ? &s : &s32, 1, &tok, &sl, NULL, logits);
                    if (rep >= 0) t_ab[f16][rep] += bench_now() - ta;
                }
            } else if (streams == 2) { /* --streams ab: the decode tokens alternate, so both see the same moments */
                moec_infer_model_set_streamed(&m, i & 1);
                const double ta = bench_now();
                moec_session_forward(&s, 1, &tok, &sl, NULL, logits);
                if (rep >= 0) t_ab[i & 1][rep] += bench_now() - ta;
            } else {
                moec_session_forward(&s, 1, &tok, &sl, NULL, logits);
            }
        }
        if (rep >= 0) t_tg[rep] = bench_now() - t0;
        /* batched decode */
        if (batch > 1) {
            int32_t bt[4096], bs[4096];
            for (int b = 0; b < batch; b++) moec_session_reset(&s, b), bt[b] = ids[b], bs[b] = b;
            moec_session_forward(&s, batch, bt, bs, NULL, logits);
            const int steps = tg / 4 > 8 ? tg / 4 : 8;
            t0 = bench_now();
            for (int i = 0; i < steps; i++) {
                for (int b = 0; b < batch; b++) bt[b] = argmax(logits + (int64_t)b * V, V);
                moec_session_forward(&s, batch, bt, bs, NULL, logits);
            }
            if (rep >= 0) t_b[rep] = (bench_now() - t0) / steps / batch;
        }
    }
    double t_pp_raw[64], t_tg_raw[64];
    memcpy(t_pp_raw, t_pp, sizeof t_pp);
    memcpy(t_tg_raw, t_tg, sizeof t_tg);
    const double pp_s = bench_median(t_pp, reps), tg_s = bench_median(t_tg, reps);
    const double b_s = batch > 1 ? bench_median(t_b, reps) : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const long rss_mb = ru.ru_maxrss / 1024;
    const long long huge = file_pmd_mapped_bytes();
    /* bandwidth last, so its buffer does not count in the model's peak RSS */
    const int64_t bw_bytes = (int64_t)bw_mib << 20;
    float *buf = moec_alloc_floats(bw_bytes / 4);
    for (int64_t i = 0; i < bw_bytes / 4; i++) buf[i] = 1.0f;
    const double bw = bench_read_bandwidth(buf, bw_bytes, 0, 5, NULL);
    moec_free(buf);
    const int64_t active = moec_infer_active_weight_bytes(&m);
    const double bound = bw * 1e9 / (double)active, tg_tps = tg / tg_s;
    if (kv_mode == 2) { /* per rep: tokens/s with each cache, and their ratio */
        double h[64], f[64], ratio[64];
        for (int r = 0; r < reps; r++) h[r] = tg / t_ab[1][r], f[r] = tg / t_ab[0][r], ratio[r] = h[r] / f[r];
        fprintf(stderr, "bench_infer --kv ab: decode with the f16 cache %.1f tok/s, fp32 cache %.1f tok/s (medians); "
                        "median ratio %.3f over %d reps\n", bench_median(h, reps), bench_median(f, reps),
                bench_median(ratio, reps), reps);
        for (int r = 0; r < reps; r++) h[r] = pp / t_pp_raw[r], f[r] = pp / t_pp32[r], ratio[r] = h[r] / f[r];
        fprintf(stderr, "bench_infer --kv ab: prefill with the f16 cache %.1f tok/s, fp32 cache %.1f tok/s (medians); "
                        "median ratio %.3f over %d reps\n", bench_median(h, reps), bench_median(f, reps),
                bench_median(ratio, reps), reps);
    }
    if (streams == 2) { /* per rep: tokens/s of the streamed and of the adjacent tokens, and their ratio */
        double on[64], off[64], ratio[64];
        for (int r = 0; r < reps; r++)
            on[r] = (tg / 2) / t_ab[1][r], off[r] = ((tg + 1) / 2) / t_ab[0][r], ratio[r] = on[r] / off[r];
        fprintf(stderr, "bench_infer --streams ab: decode tokens streamed %.1f tok/s, adjacent %.1f tok/s (medians); "
                        "median ratio %.3f over %d reps\n", bench_median(on, reps), bench_median(off, reps),
                bench_median(ratio, reps), reps);
    }
    printf("{\"pp_samples\": [");
    for (int i = 0; i < reps; i++) printf("%s%.3f", i ? ", " : "", pp / t_pp_raw[i]);
    printf("], \"tg_samples\": [");
    for (int i = 0; i < reps; i++) printf("%s%.3f", i ? ", " : "", tg / t_tg_raw[i]);
    printf("], \"model\": \"%s\", \"threads\": %d, \"weights\": \"%s\", \"weight_bytes\": %lld, \"active_bytes_per_token\": "
           "%lld, \"pp\": %d, \"pp_tok_s\": %.2f, \"tg\": %d, \"tg_tok_s\": %.2f, \"read_bw_gbs\": %.2f, "
           "\"tg_bound_tok_s\": %.2f, \"tg_pct_of_bound\": %.1f, \"depth\": %d, \"batch\": %d, \"batch_tok_s\": %.2f, "
           "\"peak_rss_mb\": %ld, \"mapped_bytes\": %lld, \"huge_mapped_bytes\": %lld, \"activations\": \"%s\", \"isa\": \"%s\", "
           "\"weights_streamed\": %d, \"kv\": \"%s\"}\n",
           model, threads, moec_qtype_name(m.layers[0].wq.type), (long long)m.weight_bytes, (long long)active, pp,
           pp / pp_s, tg, tg_tps, bw, bound, 100.0 * tg_tps / bound, depth, batch, b_s > 0 ? 1.0 / b_s : 0.0, rss_mb,
           (long long)m.mapped_bytes, huge, moec_qmat_activations() == MOEC_QACT_Q8 ? "q8" : "f32", moec_qmat_isa_name(),
           m.lm_head.streamed, kv_mode == 0 ? "f32" : kv_mode == 1 ? "f16" : "ab");
    free(ids);
    free(slots);
    free(want);
    moec_free(logits);
    moec_session_free(&s);
    if (kv_mode == 2) moec_session_free(&s32);
    moec_infer_model_free(&m);
    moec_qmat_release();
    moec_threads_shutdown();
    return 0;
}
