/* sampler.c — next-token choice: repetition penalty, temperature, top-k, top-p, min-p, seeded draw.
 * The steps and the exact draw are specified in sampler.h; this file follows them in order. */
#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/rng.h"

/* A nucleus prefix counts as reaching p when its mass is within this relative slack of p (see sampler.h). */
#define TOP_P_SLACK 1e-6

moec_sampler_params moec_sampler_params_default(void) {
    return (moec_sampler_params){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                                 .repetition_penalty = 1.0f, .repetition_window = 0, .seed = 0};
}

moec_status moec_sampler_params_validate(const moec_sampler_params *p) {
    /* Written so that NaN fails every test. */
    if (!(p->temperature >= 0.0f && isfinite(p->temperature)))
        return MOEC_ERR(MOEC_ERR_ARG, "sampler: temperature %g must be finite and >= 0 (0 = greedy)",
                        (double)p->temperature);
    if (p->top_k < 0) return MOEC_ERR(MOEC_ERR_ARG, "sampler: top_k %d must be >= 0 (0 = off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return MOEC_ERR(MOEC_ERR_ARG, "sampler: top_p %g must be in (0, 1] (1 = off)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return MOEC_ERR(MOEC_ERR_ARG, "sampler: min_p %g must be in [0, 1] (0 = off)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty)))
        return MOEC_ERR(MOEC_ERR_ARG, "sampler: repetition_penalty %g must be finite and > 0 (1 = off)",
                        (double)p->repetition_penalty);
    if (p->repetition_window < 0)
        return MOEC_ERR(MOEC_ERR_ARG, "sampler: repetition_window %d must be >= 0 (0 = whole context)",
                        p->repetition_window);
    return MOEC_OK;
}

/* splitmix64's output function: a bijection of 64-bit words with mix(0) = 0. */
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

moec_status moec_sampler_init_stream(moec_sampler *s, int vocab, const moec_sampler_params *params, uint64_t stream) {
    memset(s, 0, sizeof *s);
    MOEC_TRY(moec_sampler_params_validate(params));
    if (vocab < 1) return MOEC_ERR(MOEC_ERR_ARG, "sampler: vocabulary size %d must be >= 1", vocab);
    s->params = *params;
    s->vocab = vocab;
    s->rng = params->seed ^ mix(stream);
    s->weight = malloc((size_t)vocab * sizeof *s->weight);
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    s->seen = calloc((size_t)vocab, sizeof *s->seen);
    if (!s->weight || !s->cand || !s->seen) {
        moec_sampler_free(s);
        return MOEC_ERR(MOEC_ERR_NOMEM, "sampler: cannot allocate scratch for a vocabulary of %d", vocab);
    }
    return MOEC_OK;
}

moec_status moec_sampler_init(moec_sampler *s, int vocab, const moec_sampler_params *params) {
    return moec_sampler_init_stream(s, vocab, params, 0);
}

void moec_sampler_free(moec_sampler *s) {
    free(s->weight);
    free(s->cand);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

/* Step 1: each distinct id of the last `window` context tokens penalised once. */
static moec_status apply_penalty(moec_sampler *s, float *l, const int32_t *context, int64_t n_context) {
    float pen = s->params.repetition_penalty;
    if (pen == 1.0f || n_context <= 0) return MOEC_OK;
    int64_t w = s->params.repetition_window, start = w > 0 && n_context > w ? n_context - w : 0;
    if (++s->stamp == 0) { /* the stamp wrapped: forget every mark (once per 2^32 tokens) */
        memset(s->seen, 0, (size_t)s->vocab * sizeof *s->seen);
        s->stamp = 1;
    }
    for (int64_t i = start; i < n_context; i++) {
        int32_t id = context[i];
        if (id < 0 || id >= s->vocab)
            return MOEC_ERR(MOEC_ERR_ARG, "sampler: context token %lld is id %d, outside the vocabulary [0, %d)",
                            (long long)i, id, s->vocab);
        if (s->seen[id] == s->stamp) continue;
        s->seen[id] = s->stamp;
        l[id] = l[id] > 0.0f ? l[id] / pen : l[id] * pen;
    }
    return MOEC_OK;
}

/* The probability order: larger logit first, ties -> lower id first. */
static int better(const float *l, int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); }

/* Binary heap h[0..n) whose root is the worst element (best_root 0: for keeping the k best) or the best one
 * (best_root 1: for taking the best one at a time): restore it below position i. */
static void sift_down(const float *l, int32_t *h, int64_t n, int64_t i, int best_root) {
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && better(l, h[c + 1], h[c]) == best_root) c++; /* the child that belongs higher */
        if (better(l, h[c], h[i]) != best_root) return;
        int32_t t = h[i]; h[i] = h[c]; h[c] = t;
        i = c;
    }
}

static void heapify(const float *l, int32_t *h, int64_t n, int best_root) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down(l, h, n, i, best_root);
}

/* Step 3: the k best ids of [0, V) into h[0..k), best first; O(V log k). */
static void select_top_k(const float *l, int32_t V, int32_t *h, int32_t k) {
    for (int32_t i = 0; i < k; i++) h[i] = i;
    heapify(l, h, k, 0);
    for (int32_t i = k; i < V; i++)
        if (better(l, i, h[0])) {
            h[0] = i;
            sift_down(l, h, k, 0, 0);
        }
    for (int64_t end = k - 1; end > 0; end--) { /* worst to the back, one at a time: best first */
        int32_t t = h[0]; h[0] = h[end]; h[end] = t;
        sift_down(l, h, end, 0, 0);
    }
}

static int by_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Step 4 on c[0..n), sorted best first, of total weight `total`: the length of the nucleus. */
static int64_t nucleus_sorted(const float *w, const int32_t *c, int64_t n, double total, double top_p) {
    double target = top_p * total * (1.0 - TOP_P_SLACK), cum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        cum += w[c[i]];
        if (cum >= target) return i + 1;
    }
    return n;
}

/* Step 4 on c[0..n) in any order: take the best remaining one at a time from a heap (O(n + m log n) for a
 * nucleus of m tokens, instead of sorting all n); the nucleus ends up in c[0..m), in no particular order. */
static int64_t nucleus_unsorted(const float *l, const float *w, int32_t *c, int64_t n, double total, double top_p) {
    double target = top_p * total * (1.0 - TOP_P_SLACK), cum = 0.0;
    int64_t end = n;
    heapify(l, c, n, 1);
    while (end > 0) {
        int32_t top = c[0];
        c[0] = c[end - 1];
        c[--end] = top; /* the taken tokens collect at the back, best last */
        sift_down(l, c, end, 0, 1);
        cum += w[top];
        if (cum >= target) break;
    }
    int64_t m = n - end;
    memmove(c, c + end, (size_t)m * sizeof *c);
    return m;
}

moec_status moec_sampler_sample(moec_sampler *s, float *logits, const int32_t *context, int64_t n_context,
                                int32_t *token) {
    const moec_sampler_params *p = &s->params;
    const int32_t V = s->vocab;
    MOEC_TRY(apply_penalty(s, logits, context, n_context));

    int32_t best = -1;
    float lbest = -INFINITY;
    for (int32_t i = 0; i < V; i++) {
        float l = logits[i];
        if (!(l < INFINITY)) return MOEC_ERR(MOEC_ERR_NUMERIC, "sampler: logit of token %d is %g", i, (double)l);
        if (l > lbest) { /* strictly greater: ties keep the lowest id */
            lbest = l;
            best = i;
        }
    }
    if (best < 0) return MOEC_ERR(MOEC_ERR_NUMERIC, "sampler: every one of the %d logits is -inf", V);
    if (p->temperature == 0.0f || V == 1) { /* step 2, greedy */
        *token = best;
        return MOEC_OK;
    }

    /* Step 2: weights. The candidates are c[0..n) when `listed`, else every id 0..V-1 in order. */
    const double T = p->temperature, lmax = logits[best];
    float *w = s->weight;
    int32_t *c = s->cand;
    int64_t n = V;
    int listed = 0, id_order = 1;
    double total = 0.0;
    if (p->top_k > 0 && p->top_k < V) { /* step 3 */
        n = p->top_k;
        select_top_k(logits, V, c, (int32_t)n);
        listed = 1;
        id_order = 0;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t id = listed ? c[i] : (int32_t)i;
        w[id] = (float)exp(((double)logits[id] - lmax) / T);
        total += w[id];
    }

    if (p->top_p < 1.0f) { /* step 4 */
        if (!listed) { /* set aside the tokens that cannot be in the nucleus, sort the rest */
            double floor_w = (1.0 - p->top_p) / (V - 1) * total;
            n = 0;
            for (int32_t i = 0; i < V; i++)
                if (w[i] >= floor_w) c[n++] = i;
            n = nucleus_unsorted(logits, w, c, n, total, p->top_p);
            listed = 1;
        } else {
            n = nucleus_sorted(w, c, n, total, p->top_p);
        }
        id_order = 0;
    }

    if (p->min_p > 0.0f) { /* step 5; the best token's weight is exp(0) = 1 */
        const float floor_w = p->min_p;
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            int32_t id = listed ? c[i] : (int32_t)i;
            if (w[id] >= floor_w) c[m++] = id;
        }
        n = m;
        listed = 1;
    }

    /* Step 6: ascending ids, running sum in double, first to exceed u * total. */
    if (listed && !id_order) qsort(c, (size_t)n, sizeof *c, by_id);
    total = 0.0;
    for (int64_t i = 0; i < n; i++) total += w[listed ? c[i] : i];
    const double target = moec_rand_uniform(&s->rng) * total;
    double cum = 0.0;
    int32_t chosen = -1;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = listed ? c[i] : (int32_t)i;
        if (w[id] <= 0.0f) continue;
        chosen = id; /* the last positive-weight token, if rounding leaves the sum short of target */
        cum += w[id];
        if (cum > target) break;
    }
    *token = chosen >= 0 ? chosen : best;
    return MOEC_OK;
}
