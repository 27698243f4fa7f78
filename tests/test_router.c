/* test_router.c — checks src/moe/router.c against oracles that share none of its code:
 *   1. hand-computed small cases (normalisation, probabilities, selection, weights, capacity, which slots drop,
 *      aux / z-loss / Max1/Max2 values, tie rules);
 *   2. capacity formula edge cases (exact decimal ceilings);
 *   3. finite differences: a straightforward double-precision re-implementation of the forward below computes
 *      L = Σ_{i,k} c_ik w_ik + α·aux + zc·zloss, and central differences of it are compared with the float
 *      backward, for λ ∈ {0, 1, 2.5}, dropping on/off, SQDEV/SWITCH, z-loss on, several seeds. An entry whose
 *      perturbation flips a selection or drop decision is skipped (L is not differentiable there);
 *   4. invariants on a large batch (T=4096, E=64, K=8) and its timing;
 *   5. the adaptive-α recurrence, stepped by hand;
 *   6. optionally, tests/router_oracle.py (PyTorch autograd in float64) on the same random cases; skipped with a
 *      message when the venv's python or torch is missing. Python: $MOEC_PYTHON or ~/.cache/moec/venv/bin/python.
 * Prints one line per check and finally "N passed, M failed"; exits non-zero on any failure.
 */
#include "moe/router.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int n_pass, n_fail;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) n_pass++;
    else n_fail++;
}

static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

/* ---------------------------------------------------------------- random numbers (splitmix64 + Box–Muller) */
static uint64_t rng_state;
static uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_uniform(void) { return ((double)(rng_u64() >> 11) + 0.5) / 9007199254740992.0; }
static double rng_normal(void) { return sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform()); }

static moec_moe_config make_cfg(int E, int K, float lambda, float cf, moec_aux_kind aux, float zc) {
    moec_moe_config mc;
    memset(&mc, 0, sizeof mc);
    mc.n_experts = E;
    mc.top_k = K;
    mc.gate_lambda = lambda;
    mc.capacity_factor = cf;
    mc.aux_kind = aux;
    mc.z_loss_coef = zc;
    mc.alpha_fixed = 0.001f;
    mc.alpha_xi = 0.2f;
    mc.alpha_max = 0.01f;
    mc.alpha_beta = 0.99f;
    return mc;
}

/* ---------------------------------------------------------------- the double-precision reference forward */
typedef struct {
    int T, E, K;
    double lambda;
    int64_t capacity; /* given by the caller from exact integer arithmetic */
    int aux_kind;
    double alpha, zc;
} ref_cfg;

typedef struct {
    double *zn, *g;   /* [T,E] */
    int *idx, *kept;  /* [T,K] */
    double *w;        /* [T,K] */
    double aux, zloss, L;
    int64_t dropped;
} ref_out;

static void ref_alloc(ref_out *o, int T, int E, int K) {
    o->zn = calloc((size_t)T * E, sizeof(double));
    o->g = calloc((size_t)T * E, sizeof(double));
    o->idx = calloc((size_t)T * K, sizeof(int));
    o->kept = calloc((size_t)T * K, sizeof(int));
    o->w = calloc((size_t)T * K, sizeof(double));
}
static void ref_free(ref_out *o) {
    free(o->zn);
    free(o->g);
    free(o->idx);
    free(o->kept);
    free(o->w);
}

/* Written from the formulas in router.h, as plainly as possible: no shared code with router.c. */
static void ref_forward(ref_out *o, const ref_cfg *c, const double *z, const double *cw) {
    const int T = c->T, E = c->E, K = c->K;
    double zsum = 0.0;
    for (int i = 0; i < T; i++) {
        const double *zi = z + (size_t)i * E;
        double *zn = o->zn + (size_t)i * E, *g = o->g + (size_t)i * E;
        if (c->lambda > 0) {
            double mu = 0, v = 0;
            for (int j = 0; j < E; j++) mu += zi[j] / E;
            for (int j = 0; j < E; j++) v += (zi[j] - mu) * (zi[j] - mu) / (E - 1);
            for (int j = 0; j < E; j++) zn[j] = c->lambda * (zi[j] - mu) / (sqrt(v) + 1e-6);
        } else {
            for (int j = 0; j < E; j++) zn[j] = zi[j];
        }
        double sum = 0;
        for (int j = 0; j < E; j++) sum += exp(zn[j]);
        for (int j = 0; j < E; j++) g[j] = exp(zn[j]) / sum;
        double se = 0;
        for (int j = 0; j < E; j++) se += exp(zi[j]);
        zsum += log(se) * log(se);
        /* selection: rank of j = number of experts that beat it (higher g, or equal g and lower index) */
        for (int j = 0; j < E; j++) {
            int rank = 0;
            for (int l = 0; l < E; l++)
                if (g[l] > g[j] || (g[l] == g[j] && l < j)) rank++;
            if (rank < K) o->idx[i * K + rank] = j;
        }
    }
    /* dropping: an assignment is kept when fewer than capacity assignments to its expert beat it */
    o->dropped = 0;
    for (int i = 0; i < T; i++)
        for (int k = 0; k < K; k++) {
            const int j = o->idx[i * K + k];
            const double gij = o->g[(size_t)i * E + j];
            int64_t better = 0;
            for (int i2 = 0; i2 < T; i2++)
                for (int k2 = 0; k2 < K; k2++) {
                    if (o->idx[i2 * K + k2] != j) continue;
                    const double g2 = o->g[(size_t)i2 * E + j];
                    if (g2 > gij || (g2 == gij && i2 < i)) better++;
                }
            o->kept[i * K + k] = better < c->capacity;
            o->dropped += !o->kept[i * K + k];
        }
    double L = 0;
    for (int i = 0; i < T; i++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += o->g[(size_t)i * E + o->idx[i * K + k]];
        for (int k = 0; k < K; k++) {
            o->w[i * K + k] = o->kept[i * K + k] ? o->g[(size_t)i * E + o->idx[i * K + k]] / s : 0.0;
            if (o->kept[i * K + k]) L += cw[i * K + k] * o->w[i * K + k];
        }
    }
    double aux = 0;
    for (int j = 0; j < E; j++) {
        double P = 0, f = 0;
        for (int i = 0; i < T; i++) P += o->g[(size_t)i * E + j] / T;
        for (int n = 0; n < T * K; n++) f += (o->idx[n] == j) / (double)(K * T);
        aux += c->aux_kind == MOEC_AUX_SWITCH ? E * f * P : (1.0 / E - P) * (1.0 / E - P);
    }
    o->aux = aux;
    o->zloss = zsum / T;
    o->L = L + c->alpha * aux + c->zc * o->zloss;
}

static int same_decisions(const ref_out *a, const ref_out *b, int n) {
    for (int i = 0; i < n; i++)
        if (a->idx[i] != b->idx[i] || a->kept[i] != b->kept[i]) return 0;
    return 1;
}

/* ---------------------------------------------------------------- 1. hand-computed cases */
static void test_hand_main(void) {
    /* T=4, E=3, K=2, λ=0, cf=1. Logits log(g) + offset give known probabilities:
     *   t0 g=[.5 .3 .2] -> {0,1}   t1 g=[.6 .1 .3] -> {0,2}   t2 g=[.4 .35 .25] -> {0,1}   t3 g=[.7 .2 .1] -> {0,1}
     * capacity = ceil(1·2·4/3) = 3; expert 0 has demand 4 (g .5 .6 .4 .7) and drops its lowest, t2's slot 0. */
    const double G[4][3] = {{.5, .3, .2}, {.6, .1, .3}, {.4, .35, .25}, {.7, .2, .1}};
    const double off[4] = {0, 1, -1, 2};
    float z[12];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) z[i * 3 + j] = (float)(log(G[i][j]) + off[i]);
    moec_router_state s;
    check(moec_router_state_init(&s, 8, 3, 2) == MOEC_OK, "hand: state_init");
    moec_moe_config mc = make_cfg(3, 2, 0.0f, 1.0f, MOEC_AUX_SQDEV, 0.0f);
    moec_router_forward(&s, z, 4, &mc);
    double perr = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) perr = fmax(perr, fabs(s.probs[i * 3 + j] - G[i][j]));
    check(perr < 1e-6, "hand: probs = softmax(log g + c) = g (max err %.2e)", perr);
    const int idx_exp[8] = {0, 1, 0, 2, 0, 1, 0, 1};
    const int kept_exp[8] = {1, 1, 1, 1, 0, 1, 1, 1};
    const double w_exp[8] = {.625, .375, .6 / .9, .3 / .9, 0, .35 / .75, .7 / .9, .2 / .9};
    int idx_ok = 1, kept_ok = 1;
    double werr = 0;
    for (int n = 0; n < 8; n++) {
        idx_ok &= s.topk_idx[n] == idx_exp[n];
        kept_ok &= s.kept[n] == kept_exp[n];
        werr = fmax(werr, fabs(s.topk_w[n] - w_exp[n]));
    }
    check(idx_ok, "hand: top-2 experts per token, descending");
    check(kept_ok, "hand: only token 2's slot to expert 0 (lowest g of 4 over capacity 3) is dropped");
    check(werr < 1e-6, "hand: weights g/s, dropped slot 0 and the other NOT renormalised (max err %.2e)", werr);
    check(s.capacity == 3, "hand: capacity = ceil(8/3) = 3 (got %lld)", (long long)s.capacity);
    check(s.expert_demand[0] == 4 && s.expert_demand[1] == 3 && s.expert_demand[2] == 1, "hand: demand [4 3 1]");
    check(s.expert_count[0] == 3 && s.expert_count[1] == 3 && s.expert_count[2] == 1, "hand: kept counts [3 3 1]");
    check(s.dropped == 1 && near(s.drop_rate, 0.125, 1e-7), "hand: dropped 1, drop rate 1/8 (got %lld, %g)",
          (long long)s.dropped, s.drop_rate);
    /* P = column means = [.55 .2375 .2125] */
    const double sq = (1. / 3 - .55) * (1. / 3 - .55) + (1. / 3 - .2375) * (1. / 3 - .2375) +
                      (1. / 3 - .2125) * (1. / 3 - .2125);
    check(near(s.aux_loss, sq, 1e-6), "hand: SQDEV aux %.7f (want %.7f)", s.aux_loss, sq);
    check(near(s.z_loss, 1.5, 1e-5), "hand: z-loss = mean of offset² = 1.5 (got %.7f)", s.z_loss);
    const double ratio = (.5 / .3 + .6 / .3 + .4 / .35 + .7 / .2) / 4;
    check(near(s.max1_over_max2, ratio, 1e-5), "hand: max1/max2 %.6f (want %.6f)", s.max1_over_max2, ratio);
    check(s.inv_sigma[0] == 1.0f, "hand: inv_sigma = 1 when lambda = 0");

    mc.aux_kind = MOEC_AUX_SWITCH; /* f = demand/8 = [4 3 1]/8 */
    moec_router_forward(&s, z, 4, &mc);
    const double sw = 3 * (4. / 8 * .55 + 3. / 8 * .2375 + 1. / 8 * .2125);
    check(near(s.aux_loss, sw, 1e-6), "hand: SWITCH aux %.7f (want %.7f)", s.aux_loss, sw);

    mc.capacity_factor = 0.0f; /* dropless */
    moec_router_forward(&s, z, 4, &mc);
    int all_kept = 1;
    for (int n = 0; n < 8; n++) all_kept &= s.kept[n] == 1;
    check(all_kept && s.dropped == 0 && s.drop_rate == 0.0f && s.capacity == INT64_MAX &&
              s.expert_count[0] == 4 && near(s.topk_w[4], .4 / .75, 1e-6),
          "hand: dropless keeps all 8 slots, capacity INT64_MAX, t2 w = .4/.75");

    /* backward on the hand case with only the w-term: K = 2, λ = 0, dropless, dL/dw = [1, 0] for token 0.
     * w0 = g0/(g0+g1) = sigmoid(z0 − z1): dw0/dz0 = w0 w1 = .234375, dz1 = −.234375, dz2 = 0. */
    float dw[8] = {1, 0, 0, 0, 0, 0, 0, 0}, dz[12];
    moec_router_backward(dz, &s, z, dw, 0.0f, &mc);
    check(near(dz[0], .234375, 1e-6) && near(dz[1], -.234375, 1e-6) && near(dz[2], 0, 1e-7),
          "hand: dL/dz of w0 = sigmoid(z0 - z1) is [w0 w1, -w0 w1, 0] (got %.6f %.6f %.6f)", dz[0], dz[1], dz[2]);
    double rest = 0;
    for (int n = 3; n < 12; n++) rest = fmax(rest, fabs(dz[n]));
    check(rest == 0.0, "hand: tokens with dL/dw = 0 get dL/dz = 0 when alpha = zc = 0");
    moec_router_state_free(&s);
}

static void test_hand_norm(void) {
    moec_router_state s;
    check(moec_router_state_init(&s, 2, 3, 1) == MOEC_OK, "norm: state_init");
    /* z = [1 2 3]: mean 2, unbiased std sqrt((1+0+1)/2) = 1, so zn = λ [-1 0 1] / (1 + 1e-6) */
    const float z[6] = {1, 2, 3, 5, 5, 5};
    const float lams[2] = {1.0f, 2.5f};
    for (int t = 0; t < 2; t++) {
        moec_moe_config mc = make_cfg(3, 1, lams[t], 0.0f, MOEC_AUX_SQDEV, 0.0f);
        moec_router_forward(&s, z, 2, &mc);
        const double a = lams[t] / (1 + 1e-6);
        const double den = exp(-a) + 1 + exp(a);
        check(near(s.zn[0], -a, 1e-6) && near(s.zn[1], 0, 1e-7) && near(s.zn[2], a, 1e-6) &&
                  near(s.inv_sigma[0], 1 / (1 + 1e-6), 1e-7),
              "norm: lambda=%.1f zn = lambda*[-1 0 1]/(1+eps)", lams[t]);
        check(near(s.probs[0], exp(-a) / den, 1e-6) && near(s.probs[1], 1 / den, 1e-6) &&
                  near(s.probs[2], exp(a) / den, 1e-6) && s.topk_idx[0] == 2 && s.topk_w[0] == 1.0f,
              "norm: lambda=%.1f probs softmax(zn), top-1 expert 2 with w = 1", lams[t]);
        /* all-equal logits: σ = 0, zn = 0, g = 1/3, ties go to expert 0 */
        check(s.zn[3] == 0 && s.zn[4] == 0 && s.zn[5] == 0 && near(s.probs[3], 1. / 3, 1e-7) && s.topk_idx[1] == 0,
              "norm: lambda=%.1f equal logits give zn = 0, g = 1/3, tie -> expert 0", lams[t]);
        const double ratio = (exp(a) + 1.0) / 2; /* token 0: e^a/1, token 1: 1 */
        check(near(s.max1_over_max2, ratio, 1e-5), "norm: lambda=%.1f max1/max2 %.6f (want %.6f)", lams[t],
              s.max1_over_max2, ratio);
        float dw[2] = {1, 1}, dz[6];
        moec_router_backward(dz, &s, z, dw, 1.0f, &mc);
        int finite = 1;
        for (int n = 0; n < 6; n++) finite &= isfinite(dz[n]);
        check(finite, "norm: lambda=%.1f backward finite at sigma = 0", lams[t]);
    }
    moec_router_state_free(&s);
}

static void test_hand_ties(void) {
    /* E=2, K=1, T=3, all logits [1 0]: every token picks expert 0 with the same g; capacity = ceil(3/2) = 2,
     * so the tie on g goes to the lower tokens: 0 and 1 kept, 2 dropped. */
    moec_router_state s;
    check(moec_router_state_init(&s, 3, 2, 1) == MOEC_OK, "ties: state_init");
    const float z[6] = {1, 0, 1, 0, 1, 0};
    moec_moe_config mc = make_cfg(2, 1, 0.0f, 1.0f, MOEC_AUX_SQDEV, 0.0f);
    moec_router_forward(&s, z, 3, &mc);
    check(s.capacity == 2 && s.kept[0] == 1 && s.kept[1] == 1 && s.kept[2] == 0 && s.dropped == 1 &&
              s.topk_w[2] == 0.0f,
          "ties: equal g over capacity -> lower token indices kept");
    /* equal logits [0 0] with K=2: order (0, 1) */
    moec_router_state s2;
    check(moec_router_state_init(&s2, 1, 2, 2) == MOEC_OK, "ties: state_init K=2");
    const float z2[2] = {0, 0};
    moec_router_forward(&s2, z2, 1, &mc);
    check(s2.topk_idx[0] == 0 && s2.topk_idx[1] == 1 && near(s2.max1_over_max2, 1, 0),
          "ties: equal g -> experts in ascending index, max1/max2 = 1");
    /* T = 0 is a valid empty batch */
    moec_router_forward(&s, z, 0, &mc);
    check(s.T == 0 && s.dropped == 0 && s.drop_rate == 0 && s.aux_loss == 0 && s.z_loss == 0, "ties: T = 0");
    moec_router_state_free(&s2);
    check(moec_router_state_init(&s2, 4, 3, 4) == MOEC_ERR_ARG, "init: K > E rejected (%s)", moec_error_message());
    check(moec_router_state_init(&s2, 4, 0, 1) == MOEC_ERR_ARG, "init: E = 0 rejected (%s)", moec_error_message());
    moec_router_state_free(&s);
    moec_router_state_free(&s2);
}

/* ---------------------------------------------------------------- 2. capacity formula */
static void test_capacity(void) {
    const struct {
        float cf;
        int K;
        int64_t T;
        int E;
        int64_t want;
    } c[] = {
        {1.0f, 2, 4, 3, 3},        {1.1f, 2, 10, 22, 1},  /* 1.1f·20/22 = 1.0000000217 in float terms */
        {1.1f, 2, 10, 21, 2},      {0.3f, 1, 10, 3, 1},   /* 0.3f = 0.300000012 */
        {1.2f, 1, 10, 12, 1},      {1.25f, 2, 6, 3, 5},      {1.5f, 2, 4096, 64, 192},
        {1.0f, 8, 4096, 64, 512},  {1.0f, 1, 1, 1, 1},       {2.0f, 1, 1, 1, 2},
        {1e-6f, 1, 1, 64, 1},      {0.1f, 1, 30, 3, 1},      {1.1f, 1, 100, 11, 10},
        {1.15f, 2, 100, 23, 10},   {1.15f, 2, 101, 23, 11},  {0.7f, 4, 4096, 64, 180}, /* 179.2 -> 180 */
        {1.0f, 2, 0, 8, 0},        {1e30f, 8, 4096, 1, INT64_MAX},
        {0.0f, 2, 10, 4, INT64_MAX}, {-1.0f, 2, 10, 4, INT64_MAX},
    };
    for (size_t n = 0; n < sizeof c / sizeof c[0]; n++) {
        const int64_t got = moec_router_capacity(c[n].cf, c[n].K, c[n].T, c[n].E);
        check(got == c[n].want, "capacity: ceil(%g*%d*%lld/%d) = %lld (got %lld)", c[n].cf, c[n].K, (long long)c[n].T,
              c[n].E, (long long)c[n].want, (long long)got);
    }
    check(moec_router_capacity(NAN, 2, 10, 4) == INT64_MAX && moec_router_capacity(INFINITY, 2, 10, 4) == INT64_MAX,
          "capacity: NaN and Inf mean dropless");
}

/* ---------------------------------------------------------------- 3. finite-difference gradients */
typedef struct {
    int T, E, K;
    float lambda;
    int cf_num, cf_den; /* cf = cf_num/cf_den exactly; 0 = dropless */
    moec_aux_kind aux;
    float alpha, zc;
    int use_c;          /* 0: the w-term is off (c = 0) */
    uint64_t seed;
} fd_case;

static int64_t exact_capacity(const fd_case *f) {
    if (f->cf_num == 0) return INT64_MAX;
    const int64_t num = (int64_t)f->cf_num * f->K * f->T, den = (int64_t)f->cf_den * f->E;
    return (num + den - 1) / den;
}

/* Random logits (plus a bias toward the first experts when dropping should happen) and random dL/dw. */
static void make_inputs(const fd_case *f, float *z, float *cw) {
    rng_state = f->seed * 7919 + 17;
    for (int i = 0; i < f->T; i++)
        for (int j = 0; j < f->E; j++)
            z[i * f->E + j] = (float)(1.5 * rng_normal() + (f->cf_num && j < 2 ? 1.2 : 0.0));
    for (int n = 0; n < f->T * f->K; n++) cw[n] = f->use_c ? (float)rng_normal() : 0.0f;
}

static const char *case_name(const fd_case *f, char *buf, size_t n) {
    snprintf(buf, n, "T=%d E=%d K=%d lambda=%.1f cf=%s %s alpha=%.2f zc=%.2f c=%s seed=%llu", f->T, f->E, f->K,
             f->lambda, f->cf_num ? "1" : "0(dropless)", f->aux == MOEC_AUX_SWITCH ? "SWITCH" : "SQDEV", f->alpha,
             f->zc, f->use_c ? "rand" : "0", (unsigned long long)f->seed);
    return buf;
}

static void run_fd(const fd_case *f) {
    char name[200];
    case_name(f, name, sizeof name);
    const int T = f->T, E = f->E, K = f->K;
    float *z = malloc(sizeof(float) * T * E), *cw = malloc(sizeof(float) * T * K);
    float *dz = malloc(sizeof(float) * T * E), *dz2 = malloc(sizeof(float) * T * E);
    double *zd = malloc(sizeof(double) * T * E), *cwd = malloc(sizeof(double) * T * K);
    make_inputs(f, z, cw);
    for (int n = 0; n < T * E; n++) zd[n] = z[n];
    for (int n = 0; n < T * K; n++) cwd[n] = cw[n];

    const float cf = f->cf_num ? (float)f->cf_num / (float)f->cf_den : 0.0f;
    moec_moe_config mc = make_cfg(E, K, f->lambda, cf, f->aux, f->zc);
    moec_router_state s;
    if (moec_router_state_init(&s, T, E, K) != MOEC_OK) {
        check(0, "fd %s: state_init: %s", name, moec_error_message());
        return;
    }
    moec_router_forward(&s, z, T, &mc);
    moec_router_backward(dz, &s, z, cw, f->alpha, &mc);

    ref_cfg rc = {T, E, K, f->lambda, exact_capacity(f), f->aux, f->alpha, f->zc};
    ref_out base, pert;
    ref_alloc(&base, T, E, K);
    ref_alloc(&pert, T, E, K);
    ref_forward(&base, &rc, zd, cwd);

    /* forward agreement with the reference */
    int dec_ok = 1;
    double perr = 0, werr = 0;
    for (int n = 0; n < T * K; n++) {
        dec_ok &= s.topk_idx[n] == base.idx[n] && s.kept[n] == base.kept[n];
        werr = fmax(werr, fabs(s.topk_w[n] - base.w[n]));
    }
    for (int n = 0; n < T * E; n++) perr = fmax(perr, fabs(s.probs[n] - base.g[n]));
    check(dec_ok && s.capacity == rc.capacity && s.dropped == base.dropped && (f->cf_num == 0 || base.dropped > 0),
          "fd %s: selection/drops match reference (capacity %lld, dropped %lld)", name, (long long)s.capacity,
          (long long)s.dropped);
    check(perr < 2e-6 && werr < 2e-6 && near(s.aux_loss, base.aux, 1e-6 + 1e-5 * fabs(base.aux)) &&
              near(s.z_loss, base.zloss, 1e-5 * fabs(base.zloss) + 1e-6),
          "fd %s: forward values (probs err %.1e, w err %.1e, aux %.6g/%.6g, zloss %.6g/%.6g)", name, perr, werr,
          s.aux_loss, base.aux, s.z_loss, base.zloss);

    /* central differences of the reference L; compare with the float backward */
    const double h = 1e-4;
    double *fd = malloc(sizeof(double) * T * E);
    unsigned char *skip = calloc((size_t)T * E, 1);
    double max_fd = 0, max_err = 0, max_rel = 0;
    int skipped = 0, bad = 0;
    for (int n = 0; n < T * E; n++) {
        const double z0 = zd[n];
        zd[n] = z0 + h;
        ref_forward(&pert, &rc, zd, cwd);
        const double Lp = pert.L;
        skip[n] = !same_decisions(&base, &pert, T * K);
        zd[n] = z0 - h;
        ref_forward(&pert, &rc, zd, cwd);
        const double Lm = pert.L;
        skip[n] |= !same_decisions(&base, &pert, T * K);
        zd[n] = z0;
        skipped += skip[n];
        fd[n] = (Lp - Lm) / (2 * h);
        if (!skip[n]) max_fd = fmax(max_fd, fabs(fd[n]));
    }
    /* |a − fd| <= 1e-2·|fd| + guard, the guard scaled to the gradient's size (float cancellation) */
    const double guard = 1e-4 * max_fd + 1e-7;
    for (int n = 0; n < T * E; n++) {
        if (skip[n]) continue;
        const double err = fabs(dz[n] - fd[n]);
        max_err = fmax(max_err, err);
        if (fabs(fd[n]) > guard) max_rel = fmax(max_rel, err / fabs(fd[n]));
        if (err > 1e-2 * fabs(fd[n]) + guard) bad++;
    }
    free(fd);
    free(skip);
    check(bad == 0 && skipped < T * E / 4 && max_fd > 0,
          "fd %s: dL/dz vs FD: max|fd| %.3e max abs err %.2e max rel err %.2e, %d bad, %d skipped of %d", name,
          max_fd, max_err, max_rel, bad, skipped, T * E);

    /* dL/dw of dropped slots must be ignored, even when it is NaN or huge */
    if (s.dropped > 0) {
        float *cw2 = malloc(sizeof(float) * T * K);
        for (int n = 0; n < T * K; n++) cw2[n] = s.kept[n] ? cw[n] : (n % 2 ? NAN : 1e30f);
        moec_router_backward(dz2, &s, z, cw2, f->alpha, &mc);
        check(memcmp(dz, dz2, sizeof(float) * T * E) == 0, "fd %s: dropped slots' dL/dw ignored", name);
        free(cw2);
    }
    ref_free(&base);
    ref_free(&pert);
    moec_router_state_free(&s);
    free(z);
    free(cw);
    free(dz);
    free(dz2);
    free(zd);
    free(cwd);
}

static const int shapes[3][3] = {{24, 6, 2}, {16, 8, 3}, {20, 4, 1}}; /* T, E, K per seed */

static void test_fd(void) {
    const float lams[3] = {0.0f, 1.0f, 2.5f};
    for (int seed = 0; seed < 3; seed++)
        for (int l = 0; l < 3; l++)
            for (int drop = 0; drop < 2; drop++)
                for (int aux = 0; aux < 2; aux++) {
                    fd_case f = {shapes[seed][0], shapes[seed][1], shapes[seed][2], lams[l], drop, 1,
                                 (moec_aux_kind)aux, 0.5f, 0.2f, 1, (uint64_t)seed + 1};
                    run_fd(&f);
                }
    /* each term alone, so a small error in one cannot hide under a larger other */
    for (int l = 0; l < 3; l++)
        for (int aux = 0; aux < 2; aux++) {
            fd_case f = {24, 6, 2, lams[l], 1, 1, (moec_aux_kind)aux, 1.0f, 0.0f, 0, 11};
            run_fd(&f); /* aux only */
        }
    for (int l = 0; l < 3; l++) {
        fd_case a = {24, 6, 2, lams[l], 1, 1, MOEC_AUX_SQDEV, 0.0f, 1.0f, 0, 12};
        run_fd(&a); /* z-loss only */
        fd_case b = {24, 6, 2, lams[l], 1, 1, MOEC_AUX_SQDEV, 0.0f, 0.0f, 1, 13};
        run_fd(&b); /* w-term only */
    }
}

/* ---------------------------------------------------------------- 4. a large batch: invariants and speed */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void test_large(void) {
    const int64_t T = 4096;
    const int E = 64, K = 8;
    moec_router_state s;
    if (moec_router_state_init(&s, T, E, K) != MOEC_OK) {
        check(0, "large: state_init: %s", moec_error_message());
        return;
    }
    float *z = malloc(sizeof(float) * T * E), *dw = malloc(sizeof(float) * T * K), *dz = malloc(sizeof(float) * T * E);
    rng_state = 99;
    for (int64_t n = 0; n < T * E; n++) z[n] = (float)(rng_normal() + 0.03 * (n % E));
    for (int64_t n = 0; n < T * K; n++) dw[n] = (float)rng_normal();
    moec_moe_config mc = make_cfg(E, K, 1.0f, 1.0f, MOEC_AUX_SQDEV, 1e-3f);
    const int reps = 10;
    double t0 = now_s();
    for (int r = 0; r < reps; r++) moec_router_forward(&s, z, T, &mc);
    double t1 = now_s();
    for (int r = 0; r < reps; r++) moec_router_backward(dz, &s, z, dw, 0.01f, &mc);
    double t2 = now_s();
    printf("info large: T=%lld E=%d K=%d forward %.3f ms, backward %.3f ms, drop rate %.4f, max1/max2 %.3f\n",
           (long long)T, E, K, 1e3 * (t1 - t0) / reps, 1e3 * (t2 - t1) / reps, s.drop_rate, s.max1_over_max2);
    /* per expert: at most capacity kept, and every kept g >= every dropped g */
    int ok = s.capacity == 512 && s.dropped > 0;
    int64_t kept_total = 0;
    for (int j = 0; j < E && ok; j++) {
        float min_kept = INFINITY, max_drop = -INFINITY;
        int64_t nk = 0, nd = 0;
        for (int64_t n = 0; n < T * K; n++) {
            if (s.topk_idx[n] != j) continue;
            const float g = s.probs[(n / K) * E + j];
            if (s.kept[n]) {
                nk++;
                min_kept = fminf(min_kept, g);
            } else {
                nd++;
                max_drop = fmaxf(max_drop, g);
            }
        }
        ok &= nk == s.expert_count[j] && nk + nd == s.expert_demand[j] && nk <= s.capacity &&
              (nd == 0 || (nk == s.capacity && min_kept >= max_drop));
        kept_total += nk;
    }
    check(ok && kept_total == K * T - s.dropped, "large: kept <= capacity, score priority holds, counts add up");
    int sorted = 1, finite = 1;
    for (int64_t i = 0; i < T; i++)
        for (int k = 1; k < K; k++) sorted &= s.probs[i * E + s.topk_idx[i * K + k - 1]] >= s.probs[i * E + s.topk_idx[i * K + k]];
    for (int64_t n = 0; n < T * E; n++) finite &= isfinite(dz[n]);
    check(sorted && finite, "large: top-K descending per token, gradient finite");
    free(z);
    free(dw);
    free(dz);
    moec_router_state_free(&s);
}

/* ---------------------------------------------------------------- 5. adaptive α */
static void test_alpha(void) {
    moec_moe_config mc = make_cfg(8, 2, 1.0f, 1.0f, MOEC_AUX_SQDEV, 0.0f);
    mc.adaptive_alpha = 1;
    /* α0 = 0.001, β = .99, ξ = .2, α_max = .01; d = .1, .02, 0, .5:
     *   α1 = .99·.001 + .01·min(.02, .01)      = .00109
     *   α2 = .99·.00109 + .01·.004               = .0011191
     *   α3 = .99·.0011191 + 0                    = .001107909
     *   α4 = .99·.001107909 + .01·.01            = .00119682991 */
    const float d[4] = {0.1f, 0.02f, 0.0f, 0.5f};
    const double want[4] = {0.00109, 0.0011191, 0.001107909, 0.00119682991};
    float a = mc.alpha_fixed;
    for (int t = 0; t < 4; t++) {
        a = moec_alpha_next(a, d[t], &mc);
        check(near(a, want[t], 1e-6 * want[t]), "alpha: step %d drop %.2f -> %.9f (want %.9f)", t + 1, d[t], a,
              want[t]);
    }
    mc.adaptive_alpha = 0;
    check(moec_alpha_next(0.5f, 0.3f, &mc) == mc.alpha_fixed, "alpha: fixed when not adaptive");
}

/* ---------------------------------------------------------------- 6. PyTorch cross-check */
static void test_torch(void) {
    char py[1024], script[1024], in_path[] = "/tmp/moec_router_oracle_XXXXXX";
    const char *env = getenv("MOEC_PYTHON");
    if (env) snprintf(py, sizeof py, "%s", env);
    else snprintf(py, sizeof py, "%s/.cache/moec/venv/bin/python", getenv("HOME") ? getenv("HOME") : "");
    /* the script sits next to this file; __FILE__ is the path the compiler was given */
    const char *slash = strrchr(__FILE__, '/');
    snprintf(script, sizeof script, "%.*srouter_oracle.py", slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__);
    if (access(script, R_OK) != 0) snprintf(script, sizeof script, "tests/router_oracle.py");
    if (access(py, X_OK) != 0 || access(script, R_OK) != 0) {
        printf("SKIP torch: no python at %s or no %s\n", py, script);
        return;
    }
    int fd = mkstemp(in_path);
    if (fd < 0) {
        printf("SKIP torch: mkstemp failed\n");
        return;
    }
    FILE *in = fdopen(fd, "w");
    const float lams[3] = {0.0f, 1.0f, 2.5f};
    fd_case cases[24];
    int nc = 0;
    for (int seed = 0; seed < 2; seed++)
        for (int l = 0; l < 3; l++)
            for (int drop = 0; drop < 2; drop++)
                for (int aux = 0; aux < 2; aux++)
                    cases[nc++] = (fd_case){shapes[seed][0], shapes[seed][1], shapes[seed][2], lams[l], drop, 1,
                                            (moec_aux_kind)aux, 0.5f, 0.2f, 1, (uint64_t)seed + 1};
    fprintf(in, "%d\n", nc);
    for (int c = 0; c < nc; c++) {
        const fd_case *f = &cases[c];
        const float cf = f->cf_num ? (float)f->cf_num / (float)f->cf_den : 0.0f;
        float *z = malloc(sizeof(float) * f->T * f->E), *cw = malloc(sizeof(float) * f->T * f->K);
        make_inputs(f, z, cw);
        fprintf(in, "%d %d %d %.9g %.9g %d %.9g %.9g\n", f->T, f->E, f->K, f->lambda, cf, (int)f->aux, f->zc,
                f->alpha);
        for (int n = 0; n < f->T * f->E; n++) fprintf(in, "%.9g ", z[n]);
        fprintf(in, "\n");
        for (int n = 0; n < f->T * f->K; n++) fprintf(in, "%.9g ", cw[n]);
        fprintf(in, "\n");
        free(z);
        free(cw);
    }
    fclose(in);
    char cmd[3200];
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", py, script, in_path);
    FILE *out = popen(cmd, "r");
    char word[64] = "";
    if (!out || fscanf(out, "%63s", word) != 1 || strcmp(word, "OK") != 0) {
        char why[256] = "";
        if (out && strcmp(word, "SKIP") == 0 && fgets(why, sizeof why, out)) printf("SKIP torch:%s", why);
        else check(0, "torch: oracle script failed (%s)", cmd);
        if (out) pclose(out);
        unlink(in_path);
        return;
    }
    for (int c = 0; c < nc; c++) {
        const fd_case *f = &cases[c];
        const int T = f->T, E = f->E, K = f->K;
        char name[200];
        case_name(f, name, sizeof name);
        float *z = malloc(sizeof(float) * T * E), *cw = malloc(sizeof(float) * T * K), *dz = malloc(sizeof(float) * T * E);
        make_inputs(f, z, cw);
        const float cf = f->cf_num ? (float)f->cf_num / (float)f->cf_den : 0.0f;
        moec_moe_config mc = make_cfg(E, K, f->lambda, cf, f->aux, f->zc);
        moec_router_state s;
        moec_router_state_init(&s, T, E, K);
        moec_router_forward(&s, z, T, &mc);
        moec_router_backward(dz, &s, z, cw, f->alpha, &mc);
        long long cap = 0, dropped = 0;
        int ok = fscanf(out, "%lld %lld", &cap, &dropped) == 2;
        double perr = 0, werr = 0, gerr = 0, gmax = 0, aux = 0, zl = 0, v;
        int dec_ok = 1, iv;
        for (int n = 0; n < T * E; n++) ok &= fscanf(out, "%lf", &v) == 1, perr = fmax(perr, fabs(v - s.probs[n]));
        for (int n = 0; n < T * K; n++) ok &= fscanf(out, "%d", &iv) == 1, dec_ok &= iv == s.topk_idx[n];
        for (int n = 0; n < T * K; n++) ok &= fscanf(out, "%d", &iv) == 1, dec_ok &= iv == s.kept[n];
        for (int n = 0; n < T * K; n++) ok &= fscanf(out, "%lf", &v) == 1, werr = fmax(werr, fabs(v - s.topk_w[n]));
        ok &= fscanf(out, "%lf %lf", &aux, &zl) == 2;
        double *tg = malloc(sizeof(double) * T * E);
        for (int n = 0; n < T * E; n++) ok &= fscanf(out, "%lf", &tg[n]) == 1, gmax = fmax(gmax, fabs(tg[n]));
        for (int n = 0; n < T * E; n++) gerr = fmax(gerr, fabs(tg[n] - dz[n]) / (fabs(tg[n]) + 1e-3 * gmax + 1e-7));
        free(tg);
        check(ok && cap == (s.capacity == INT64_MAX ? -1 : s.capacity) && dropped == s.dropped && dec_ok,
              "torch %s: capacity %lld, dropped %lld, selection and kept match", name, cap, dropped);
        check(ok && perr < 2e-6 && werr < 2e-6 && near(aux, s.aux_loss, 1e-5 * fabs(aux) + 1e-7) &&
                  near(zl, s.z_loss, 1e-5 * fabs(zl) + 1e-7) && gerr < 1e-3,
              "torch %s: probs err %.1e, w err %.1e, aux %.1e, zloss %.1e, dL/dz rel err %.1e", name, perr, werr,
              fabs(aux - s.aux_loss), fabs(zl - s.z_loss), gerr);
        moec_router_state_free(&s);
        free(z);
        free(cw);
        free(dz);
    }
    pclose(out);
    unlink(in_path);
}

int main(void) {
    test_hand_main();
    test_hand_norm();
    test_hand_ties();
    test_capacity();
    test_fd();
    test_large();
    test_alpha();
    test_torch();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
