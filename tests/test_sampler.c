/* test_sampler.c — the next-token sampler (src/infer/sampler.h) against hand-computed values, the exact
 * distribution it must draw from, and an independent re-implementation of its specified draw.
 *
 * Oracles: hand values (argmax, the top-p sets of probs .5 .3 .15 .05, penalised logits); for the empirical
 * test, the target distribution is computed here in double from the definition (softmax(l / T), keep the top k
 * by sorting, keep the smallest sorted prefix of mass >= p, keep prob >= min_p * max, renormalise), and 200,000
 * draws must fit it by Pearson's chi-square below the 1e-6 upper quantile for its degrees of freedom (Wilson–
 * Hilferty approximation, z = 4.753), with no draw outside the kept set; for determinism, a Python program
 * written from sampler.h's text (splitmix64, exp in double rounded to float, ascending-id running sum) must
 * choose the same tokens for the same seed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/rng.h"
#include "infer/sampler.h"
#include "test_util.h"

static int n_pass, n_fail;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (ok) n_pass++; else n_fail++;
}

static moec_sampler_params params(float t, int k, float p) {
    moec_sampler_params sp = moec_sampler_params_default();
    sp.temperature = t;
    sp.top_k = k;
    sp.top_p = p;
    sp.seed = 12345;
    return sp;
}

/* Draw once from a copy of logits (the sampler modifies its input). */
static int32_t draw(moec_sampler *s, const float *logits, int V, float *scratch) {
    memcpy(scratch, logits, (size_t)V * sizeof *scratch);
    int32_t tok = -1;
    if (moec_sampler_sample(s, scratch, NULL, 0, &tok) != MOEC_OK) printf("  sample: %s\n", moec_error_message());
    return tok;
}

static void test_validate(void) {
    struct { moec_sampler_params p; const char *field; } bad[9];
    for (int i = 0; i < 9; i++) bad[i].p = moec_sampler_params_default();
    bad[0].p.temperature = -0.5f; bad[0].field = "temperature";
    bad[1].p.temperature = NAN; bad[1].field = "temperature";
    bad[2].p.top_p = 0.0f; bad[2].field = "top_p";
    bad[3].p.top_p = 1.01f; bad[3].field = "top_p";
    bad[4].p.repetition_penalty = 0.0f; bad[4].field = "repetition_penalty";
    bad[5].p.repetition_penalty = -1.2f; bad[5].field = "repetition_penalty";
    bad[6].p.top_k = -1; bad[6].field = "top_k";
    bad[7].p.min_p = 1.5f; bad[7].field = "min_p";
    bad[8].p.repetition_window = -3; bad[8].field = "repetition_window";
    int ok = 1;
    for (int i = 0; i < 9; i++) {
        moec_sampler s;
        int refused = moec_sampler_params_validate(&bad[i].p) == MOEC_ERR_ARG &&
                      strstr(moec_error_message(), bad[i].field) != NULL &&
                      moec_sampler_init(&s, 10, &bad[i].p) == MOEC_ERR_ARG;
        printf("  %s\n", moec_error_message());
        ok &= refused;
    }
    moec_sampler_params good = params(0.0f, 5, 1.0f);
    ok &= moec_sampler_params_validate(&good) == MOEC_OK;
    check(ok, "invalid parameters rejected with a message naming the field; valid ones accepted");
}

static void test_greedy(void) {
    const int V = 1000;
    float *l = malloc(V * sizeof *l), *tmp = malloc(V * sizeof *tmp);
    uint64_t r = 7;
    moec_sampler g, cold, k1;
    moec_sampler_params pg = params(0.0f, 0, 1.0f), pc = params(1e-4f, 0, 1.0f), pk = params(1.0f, 1, 1.0f);
    int ok = moec_sampler_init(&g, V, &pg) == MOEC_OK && moec_sampler_init(&cold, V, &pc) == MOEC_OK &&
             moec_sampler_init(&k1, V, &pk) == MOEC_OK;
    int greedy_ok = ok, cold_ok = ok, k1_ok = ok;
    for (int row = 0; ok && row < 200; row++) {
        /* logits on a 0.01 grid, so the best is at least 0.01 above the second unless tied */
        for (int i = 0; i < V; i++) l[i] = (float)(int)(moec_rand_uniform(&r) * 2000.0) * 0.01f - 10.0f;
        int arg = 0;
        for (int i = 1; i < V; i++) if (l[i] > l[arg]) arg = i;
        int unique = 1;
        for (int i = 0; i < V; i++) unique &= i == arg || l[i] < l[arg];
        greedy_ok &= draw(&g, l, V, tmp) == arg;
        if (unique) cold_ok &= draw(&cold, l, V, tmp) == arg;
        k1_ok &= draw(&k1, l, V, tmp) == arg;
    }
    float tie[6] = {0.5f, 1.0f, -3.0f, 2.0f, 1.0f, 2.0f};
    moec_sampler g6, k6;
    greedy_ok &= moec_sampler_init(&g6, 6, &pg) == MOEC_OK && moec_sampler_init(&k6, 6, &pk) == MOEC_OK;
    greedy_ok &= draw(&g6, tie, 6, tmp) == 3;
    k1_ok &= draw(&k6, tie, 6, tmp) == 3;
    moec_sampler_free(&g6);
    moec_sampler_free(&k6);
    check(greedy_ok, "temperature 0 = argmax on 200 random rows; ties -> lowest id (2.0 at ids 3 and 5 -> 3)");
    check(cold_ok, "temperature 1e-4 (gap >= 0.01 -> weight <= e^-100) draws the argmax every time");
    check(k1_ok, "top_k = 1 at temperature 1 = greedy, ties included");
    moec_sampler_free(&g);
    moec_sampler_free(&cold);
    moec_sampler_free(&k1);
    free(l);
    free(tmp);
}

/* Probs .5 .3 .15 .05 placed at ids 2, 0, 3, 1 (so the order of ids is not the order of probabilities). */
static void test_top_p_sets(void) {
    const float prob[4] = {0.3f, 0.05f, 0.5f, 0.15f};
    float l[4], tmp[4];
    for (int i = 0; i < 4; i++) l[i] = logf(prob[i]) + 1.7f;
    struct { float p; int k; int keep[4]; const char *what; } cases[] = {
        {0.80f, 0, {1, 0, 1, 0}, "top_p .8 on .5 .3 .15 .05 keeps exactly {.5, .3}"},
        {0.81f, 0, {1, 0, 1, 1}, "top_p .81 keeps exactly {.5, .3, .15}"},
        {0.50f, 0, {0, 0, 1, 0}, "top_p .5 keeps exactly {.5}"},
        {0.10f, 0, {0, 0, 1, 0}, "top_p .1 keeps the most likely token only"},
        {1.00f, 0, {1, 1, 1, 1}, "top_p 1 keeps all four"},
        {0.95f, 3, {1, 0, 1, 1}, "top_k 3 then top_p .95 (of the renormalised .5 .3 .15) keeps all three"},
        {0.60f, 3, {1, 0, 1, 0}, "top_k 3 then top_p .6 keeps {.5, .3} (.5/.95 < .6)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        moec_sampler s;
        moec_sampler_params sp = params(1.0f, cases[c].k, cases[c].p);
        int count[4] = {0}, ok = moec_sampler_init(&s, 4, &sp) == MOEC_OK;
        for (int i = 0; ok && i < 20000; i++) {
            int32_t t = draw(&s, l, 4, tmp);
            if (t < 0 || t > 3) { ok = 0; break; }
            count[t]++;
        }
        for (int i = 0; i < 4; i++) ok &= (count[i] > 0) == cases[c].keep[i];
        printf("  counts by id: %d %d %d %d\n", count[0], count[1], count[2], count[3]);
        check(ok, cases[c].what);
        moec_sampler_free(&s);
    }
}

static void test_penalty(void) {
    const float orig[5] = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
    const int32_t ctx[5] = {0, 1, 1, 4, 1}; /* id 1 three times: penalised once */
    float l[5];
    moec_sampler s;
    moec_sampler_params sp = params(0.0f, 0, 1.0f);
    sp.repetition_penalty = 2.0f;
    int ok = moec_sampler_init(&s, 5, &sp) == MOEC_OK;
    int32_t tok = -1;
    memcpy(l, orig, sizeof l);
    ok &= moec_sampler_sample(&s, l, ctx, 5, &tok) == MOEC_OK && tok == 3;
    ok &= l[0] == 1.0f && l[1] == -2.0f && l[2] == 0.5f && l[3] == 3.0f && l[4] == -4.0f;
    printf("  penalised: %g %g %g %g %g\n", l[0], l[1], l[2], l[3], l[4]);
    check(ok, "penalty 2, context {0,1,1,4,1}: 2 -> 1, -1 -> -2 (once), -2 -> -4, others unchanged");
    moec_sampler_free(&s);

    sp.repetition_window = 2; /* last two context tokens: ids 4 and 1 */
    sp.repetition_penalty = 0.5f; /* < 1 favours repeats */
    ok = moec_sampler_init(&s, 5, &sp) == MOEC_OK;
    memcpy(l, orig, sizeof l);
    ok &= moec_sampler_sample(&s, l, ctx, 5, &tok) == MOEC_OK && tok == 3;
    ok &= l[0] == 2.0f && l[1] == -0.5f && l[2] == 0.5f && l[3] == 3.0f && l[4] == -1.0f;
    printf("  penalised: %g %g %g %g %g\n", l[0], l[1], l[2], l[3], l[4]);
    check(ok, "penalty 0.5, window 2 (ids 4, 1): -1 -> -0.5, -2 -> -1, id 0 outside the window unchanged");
    /* The penalty changes the greedy choice: 3.0 vs 2.0 with id 3 repeated and penalty 2 -> 1.5 < 2. */
    moec_sampler_free(&s);
    sp.repetition_window = 0;
    sp.repetition_penalty = 2.0f;
    ok = moec_sampler_init(&s, 5, &sp) == MOEC_OK;
    memcpy(l, orig, sizeof l);
    const int32_t ctx3[1] = {3}, bad_ctx[1] = {5};
    ok &= moec_sampler_sample(&s, l, ctx3, 1, &tok) == MOEC_OK && tok == 0;
    memcpy(l, orig, sizeof l);
    ok &= moec_sampler_sample(&s, l, bad_ctx, 1, &tok) == MOEC_ERR_ARG;
    printf("  %s\n", moec_error_message());
    float nan_l[5] = {0, NAN, 0, 0, 0}, inf_l[5] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    ok &= moec_sampler_sample(&s, nan_l, NULL, 0, &tok) == MOEC_ERR_NUMERIC;
    ok &= moec_sampler_sample(&s, inf_l, NULL, 0, &tok) == MOEC_ERR_NUMERIC;
    check(ok, "penalised repeat changes the greedy pick; out-of-vocab context id, NaN and all -inf logits refused");
    moec_sampler_free(&s);
}

/* The distribution sampler.h specifies, computed from its definition in double. */
static void target_dist(const float *l, int V, const moec_sampler_params *sp, double *q) {
    int *order = malloc(V * sizeof *order);
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < V; i++) { order[i] = i; mx = fmax(mx, l[i]); }
    for (int i = 0; i < V; i++) q[i] = exp((l[i] - mx) / sp->temperature);
    for (int i = 1; i < V; i++) /* insertion sort by probability, ties by id */
        for (int j = i; j > 0 && (q[order[j]] > q[order[j - 1]] ||
                                  (q[order[j]] == q[order[j - 1]] && order[j] < order[j - 1])); j--) {
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    int kept = sp->top_k > 0 && sp->top_k < V ? sp->top_k : V;
    for (int i = 0; i < kept; i++) sum += q[order[i]];
    double cum = 0.0;
    int nuc = kept;
    for (int i = 0; i < kept; i++) {
        cum += q[order[i]];
        if (cum >= sp->top_p * sum) { nuc = i + 1; break; }
    }
    for (int i = nuc; i < V; i++) q[order[i]] = 0.0;
    for (int i = 0; i < V; i++) if (q[i] < sp->min_p * q[order[0]]) q[i] = 0.0;
    sum = 0.0;
    for (int i = 0; i < V; i++) sum += q[i];
    for (int i = 0; i < V; i++) q[i] /= sum;
    free(order);
}

static void test_distribution(void) {
    struct { int V; float t; int k; float p; float min_p; const char *what; } cases[] = {
        {10, 1.0f, 0, 1.0f, 0.0f, "plain softmax, V 10"},
        {12, 0.7f, 6, 1.0f, 0.0f, "T 0.7, top_k 6"},
        {50, 1.0f, 0, 0.9f, 0.0f, "top_p 0.9 alone, V 50 (tail set aside before sorting)"},
        {40, 1.3f, 20, 0.8f, 0.0f, "T 1.3, top_k 20, top_p 0.8"},
        {30, 1.0f, 0, 1.0f, 0.1f, "min_p 0.1"},
    };
    const int N = 200000;
    uint64_t r = 99;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int V = cases[c].V;
        float *l = malloc(V * sizeof *l), *tmp = malloc(V * sizeof *tmp);
        double *q = malloc(V * sizeof *q);
        long *count = calloc(V, sizeof *count);
        for (int i = 0; i < V; i++) l[i] = (float)(moec_rand_normal(&r) * 1.5);
        moec_sampler_params sp = params(cases[c].t, cases[c].k, cases[c].p);
        sp.min_p = cases[c].min_p;
        sp.seed = 1000 + c;
        target_dist(l, V, &sp, q);
        moec_sampler s;
        int ok = moec_sampler_init(&s, V, &sp) == MOEC_OK;
        for (int i = 0; ok && i < N; i++) {
            int32_t t = draw(&s, l, V, tmp);
            if (t < 0 || t >= V) ok = 0;
            else count[t]++;
        }
        double chi2 = 0.0;
        int df = -1, outside = 0;
        for (int i = 0; i < V; i++) {
            if (q[i] == 0.0) { outside += count[i] != 0; continue; }
            double e = q[i] * N;
            chi2 += (count[i] - e) * (count[i] - e) / e;
            df++;
        }
        double z = 4.753, a = 2.0 / (9.0 * df), bound = df * pow(1.0 - a + z * sqrt(a), 3.0);
        printf("  %d kept of %d, chi2 %.2f with %d dof, bound %.2f (P = 1e-6), %d draws outside the kept set\n",
               df + 1, V, chi2, df, bound, outside);
        char what[256];
        snprintf(what, sizeof what, "%d draws fit the target distribution: %s", N, cases[c].what);
        check(ok && df >= 1 && chi2 < bound && outside == 0, what);
        moec_sampler_free(&s);
        free(l); free(tmp); free(q); free(count);
    }
}

static void test_seed(void) {
    const int V = 300, n = 500;
    float *l = malloc(V * sizeof *l), *tmp = malloc(V * sizeof *tmp);
    uint64_t r = 5;
    for (int i = 0; i < V; i++) l[i] = (float)moec_rand_normal(&r);
    moec_sampler_params sp = params(1.0f, 40, 0.95f);
    moec_sampler a, b, c, d, e;
    int ok = moec_sampler_init(&a, V, &sp) == MOEC_OK && moec_sampler_init(&b, V, &sp) == MOEC_OK &&
             moec_sampler_init_stream(&c, V, &sp, 0) == MOEC_OK && moec_sampler_init_stream(&d, V, &sp, 1) == MOEC_OK;
    sp.seed++;
    ok &= moec_sampler_init(&e, V, &sp) == MOEC_OK;
    int same = ok, same0 = ok, diff_stream = 0, diff_seed = 0;
    for (int i = 0; ok && i < n; i++) {
        int32_t ta = draw(&a, l, V, tmp), tb = draw(&b, l, V, tmp), tc = draw(&c, l, V, tmp);
        int32_t td = draw(&d, l, V, tmp), te = draw(&e, l, V, tmp);
        same &= ta == tb;
        same0 &= ta == tc;
        diff_stream += ta != td;
        diff_seed += ta != te;
    }
    printf("  %d draws: stream 1 differs at %d, seed+1 at %d\n", n, diff_stream, diff_seed);
    check(same && same0, "same seed -> same tokens (and stream 0 = the plain init)");
    check(diff_stream > n / 2 && diff_seed > n / 2, "another stream or seed -> different tokens");
    moec_sampler_free(&a); moec_sampler_free(&b); moec_sampler_free(&c); moec_sampler_free(&d); moec_sampler_free(&e);
    free(l);
    free(tmp);
}

/* sampler.h's draw, written again in Python from its text alone. Input: V, then rows "seed T k p min_p pen
 * window | ctx ids | logits as float32 hex"; output: one token per row after `draws` draws each. */
static const char *py_oracle =
    "import sys, math, struct\n"
    "M = (1 << 64) - 1\n"
    "def f32(x): return struct.unpack('<f', struct.pack('<f', x))[0]\n"
    "def mix(z):\n"
    "    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M\n"
    "    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M\n"
    "    return z ^ (z >> 31)\n"
    "out = []\n"
    "for line in open(sys.argv[1]):\n"
    "    head, ctx, logits = line.split('|')\n"
    "    seed, stream, T, k, p, minp, pen, win, draws = head.split()\n"
    "    state = int(seed) ^ mix(int(stream)); T = float(T); k = int(k); p = f32(float(p))\n"
    "    minp = f32(float(minp)); pen = f32(float(pen)); win = int(win)\n"
    "    ctx = [int(x) for x in ctx.split()]\n"
    "    l = [struct.unpack('<f', bytes.fromhex(h))[0] for h in logits.split()]\n"
    "    V = len(l)\n"
    "    if pen != 1 and ctx:\n"
    "        for i in set(ctx[-win:] if win else ctx): l[i] = f32(l[i] / pen if l[i] > 0 else l[i] * pen)\n"
    "    toks = []\n"
    "    for _ in range(int(draws)):\n"
    "        order = sorted(range(V), key=lambda i: (-l[i], i))\n"
    "        keep = order[:k] if 0 < k < V else order\n"
    "        lmax = l[order[0]]\n"
    "        w = {i: f32(math.exp((l[i] - lmax) / T)) for i in keep}\n"
    "        if p < 1:\n"
    "            tot = 0.0; cum = 0.0\n"
    "            for i in (keep if 0 < k < V else range(V)): tot += w[i]\n"
    "            for n, i in enumerate(keep):\n"
    "                cum += w[i]\n"
    "                if cum >= p * tot * (1 - 1e-6): keep = keep[:n + 1]; break\n"
    "        keep = sorted(i for i in keep if w[i] >= minp)\n"
    "        tot = 0.0\n"
    "        for i in keep: tot += w[i]\n"
    "        state = (state + 0x9E3779B97F4A7C15) & M\n"
    "        u = (mix(state) >> 11) * 2.0 ** -53\n"
    "        cum, tok = 0.0, None\n"
    "        for i in keep:\n"
    "            if w[i] <= 0: continue\n"
    "            tok = i; cum += w[i]\n"
    "            if cum > u * tot: break\n"
    "        toks.append(tok)\n"
    "    out.append(' '.join(map(str, toks)))\n"
    "open(sys.argv[2], 'w').write('\\n'.join(out) + '\\n')\n";

static void test_python_oracle(void) {
    char dir[] = "/tmp/moec_sampler_test_XXXXXX", in[64], out[64], prog[64], cmd[2048];
    if (!mkdtemp(dir)) { check(0, "python oracle: mkdtemp"); return; }
    snprintf(in, sizeof in, "%s/rows.txt", dir);
    snprintf(out, sizeof out, "%s/tokens.txt", dir);
    snprintf(prog, sizeof prog, "%s/oracle.py", dir);
    struct { uint64_t seed, stream; float t; int k; float p, min_p, pen; int window; } cfg[] = {
        {1, 0, 1.0f, 0, 1.0f, 0.0f, 1.0f, 0},
        {2, 3, 0.8f, 40, 1.0f, 0.0f, 1.0f, 0},
        {3, 0, 1.1f, 0, 0.9f, 0.0f, 1.3f, 0},
        {0xDEADBEEFCAFEull, 7, 0.6f, 50, 0.7f, 0.05f, 1.2f, 8},
        {5, 1, 2.0f, 0, 1.0f, 0.02f, 0.9f, 3},
    };
    const int V = 400, n_cfg = sizeof cfg / sizeof *cfg, draws = 60;
    const int32_t ctx[12] = {3, 17, 17, 399, 0, 250, 3, 42, 42, 42, 5, 100};
    float *l = malloc(V * sizeof *l), *tmp = malloc(V * sizeof *tmp);
    int32_t mine[5][60];
    FILE *f = fopen(in, "w");
    uint64_t r = 31;
    int ok = f != NULL;
    for (int c = 0; ok && c < n_cfg; c++) {
        for (int i = 0; i < V; i++) l[i] = (float)(moec_rand_normal(&r) * 2.0);
        l[17] = 4.0f; l[42] = 3.5f; l[0] = -2.0f; /* repeated ids worth penalising */
        fprintf(f, "%llu %llu %.9g %d %.9g %.9g %.9g %d %d |", (unsigned long long)cfg[c].seed,
                (unsigned long long)cfg[c].stream, (double)cfg[c].t, cfg[c].k, (double)cfg[c].p,
                (double)cfg[c].min_p, (double)cfg[c].pen, cfg[c].window, draws);
        for (int i = 0; i < 12; i++) fprintf(f, " %d", ctx[i]);
        fprintf(f, " |");
        for (int i = 0; i < V; i++) {
            uint8_t b[4];
            memcpy(b, &l[i], 4);
            fprintf(f, " %02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
        }
        fprintf(f, "\n");
        moec_sampler s;
        moec_sampler_params sp = params(cfg[c].t, cfg[c].k, cfg[c].p);
        sp.seed = cfg[c].seed;
        sp.min_p = cfg[c].min_p;
        sp.repetition_penalty = cfg[c].pen;
        sp.repetition_window = cfg[c].window;
        ok &= moec_sampler_init_stream(&s, V, &sp, cfg[c].stream) == MOEC_OK;
        for (int d = 0; ok && d < draws; d++) {
            memcpy(tmp, l, V * sizeof *l);
            ok &= moec_sampler_sample(&s, tmp, ctx, 12, &mine[c][d]) == MOEC_OK;
        }
        moec_sampler_free(&s);
    }
    if (f) fclose(f);
    ok = ok && write_all(prog, py_oracle, strlen(py_oracle));
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s'", python(), prog, in, out);
    fflush(stdout);
    ok = ok && system(cmd) == 0;
    size_t n;
    char *text = ok ? read_all(out, &n) : NULL, *p = text;
    int n_same = 0;
    for (int c = 0; text && c < n_cfg; c++)
        for (int d = 0; d < draws; d++) {
            long t = strtol(p, &p, 10);
            n_same += t == mine[c][d];
        }
    printf("  %d of %d tokens equal (5 settings x %d draws, V %d)\n", n_same, n_cfg * draws, draws, V);
    check(ok && text && n_same == n_cfg * draws,
          "an independent Python implementation of the specified draw picks the same tokens for the same seeds");
    free(text);
    free(l);
    free(tmp);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("  could not remove %s\n", dir);
}

int main(void) {
    test_validate();
    test_greedy();
    test_top_p_sets();
    test_penalty();
    test_distribution();
    test_seed();
    test_python_oracle();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
