/* attention.c — causal GQA attention (see attention.h).
 *
 * Per (batch, head) the score and value products are GEMMs on strided views of q/k/v (the head's columns of
 * the [T, heads·Dh] matrices), so the packed SIMD micro-kernels do the arithmetic; the masked upper triangle is
 * computed and discarded, which at training lengths costs less than a scalar triangular loop saves.
 * Forward parallelises over (batch, query head); backward over (batch, KV head), so the query heads sharing one
 * KV head accumulate dk/dv in one thread, race-free. The GEMMs inside a task run on that task's thread (the pool
 * runs nested loops inline). */
#include "kernels/cpu/attention.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "kernels/cpu/gemm.h"

typedef struct {
    float *out, *probs, *dq, *dk, *dv;
    const float *saved_probs; /* backward reads what forward wrote into probs */
    const float *q, *k, *v, *dout;
    int64_t B, S, H, G, Dh;
} attn_args;

/* Per-thread [S,S] scratch for dP, grown once per shape and reused; a thread-specific key frees it when the
 * thread exits (pool resize/shutdown). */
static _Thread_local float *tls_dp;
static _Thread_local size_t tls_dp_cap;
static pthread_key_t dp_key;
static pthread_once_t dp_once = PTHREAD_ONCE_INIT;
static void dp_key_init(void) { (void)pthread_key_create(&dp_key, free); }
static float *dp_scratch(size_t n) {
    if (tls_dp_cap < n) {
        pthread_once(&dp_once, dp_key_init);
        free(tls_dp);
        tls_dp = malloc(n * sizeof(float));
        tls_dp_cap = tls_dp ? n : 0;
        (void)pthread_setspecific(dp_key, tls_dp);
    }
    return tls_dp;
}

static void attn_fwd_task(void *p, int64_t i0, int64_t i1, int thread) {
    const attn_args *a = p;
    const int64_t S = a->S, H = a->H, G = a->G, Dh = a->Dh, qw = H * Dh, kw = G * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    for (int64_t bh = i0; bh < i1; bh++) {
        const int64_t b = bh / H, h = bh % H, g = h / (H / G);
        float *P = a->probs + bh * S * S;
        const float *qb = a->q + b * S * qw + h * Dh, *kb = a->k + b * S * kw + g * Dh,
                    *vb = a->v + b * S * kw + g * Dh;
        /* P = scale · Q Kᵀ, then a causal softmax per row */
        moec_gemm(0, 1, S, S, Dh, scale, qb, qw, kb, kw, 0.0f, P, S);
        for (int64_t t = 0; t < S; t++) {
            float *pr = P + t * S;
            float mx = -INFINITY;
            for (int64_t s = 0; s <= t; s++) mx = pr[s] > mx ? pr[s] : mx;
            float sum = 0;
            for (int64_t s = 0; s <= t; s++) {
                pr[s] = expf(pr[s] - mx);
                sum += pr[s];
            }
            const float inv = 1.0f / sum;
            for (int64_t s = 0; s <= t; s++) pr[s] *= inv;
            for (int64_t s = t + 1; s < S; s++) pr[s] = 0.0f;
        }
        /* O = P V */
        moec_gemm(0, 0, S, Dh, S, 1.0f, P, S, vb, kw, 0.0f, a->out + b * S * qw + h * Dh, qw);
    }
}

void moec_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int64_t B,
                            int64_t S, int64_t H, int64_t G, int64_t Dh) {
    attn_args a = {.out = out, .probs = probs, .q = q, .k = k, .v = v, .B = B, .S = S, .H = H, .G = G, .Dh = Dh};
    moec_parallel_for(B * H, 1, attn_fwd_task, &a);
}

/* For one head, with P = softmax(scale·Q Kᵀ) and O = P V:
 *   dV += Pᵀ dO;  dP = dO Vᵀ;  dS = P ∘ (dP − rowsum(P ∘ dP));  dQ = scale·dS K;  dK += scale·dSᵀ Q. */
static void attn_bwd_task(void *p, int64_t i0, int64_t i1, int thread) {
    const attn_args *a = p;
    const int64_t S = a->S, H = a->H, G = a->G, Dh = a->Dh, qw = H * Dh, kw = G * Dh, rep = H / G;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *dP = dp_scratch((size_t)(S * S));
    if (!dP) return; /* cannot happen in practice: S*S floats; the caller's results would be garbage */
    for (int64_t bg = i0; bg < i1; bg++) {
        const int64_t b = bg / G, g = bg % G;
        const float *kb = a->k + b * S * kw + g * Dh, *vb = a->v + b * S * kw + g * Dh;
        float *dkb = a->dk + b * S * kw + g * Dh, *dvb = a->dv + b * S * kw + g * Dh;
        for (int64_t h = g * rep; h < (g + 1) * rep; h++) {
            const float *P = a->saved_probs + (b * H + h) * S * S;
            const float *dob = a->dout + b * S * qw + h * Dh, *qb = a->q + b * S * qw + h * Dh;
            float *dqb = a->dq + b * S * qw + h * Dh;
            const float first = h == g * rep ? 0.0f : 1.0f; /* the group's first head overwrites dk/dv */
            moec_gemm(1, 0, S, Dh, S, 1.0f, P, S, dob, qw, first, dvb, kw); /* dV (+)= Pᵀ dO */
            moec_gemm(0, 1, S, S, Dh, 1.0f, dob, qw, vb, kw, 0.0f, dP, S);   /* dP = dO Vᵀ */
            for (int64_t t = 0; t < S; t++) {
                const float *pr = P + t * S;
                float *dr = dP + t * S;
                float rowdot = 0;
                for (int64_t s = 0; s <= t; s++) rowdot += pr[s] * dr[s];
                for (int64_t s = 0; s <= t; s++) dr[s] = pr[s] * (dr[s] - rowdot);
                for (int64_t s = t + 1; s < S; s++) dr[s] = 0.0f;
            }
            moec_gemm(0, 0, S, Dh, S, scale, dP, S, kb, kw, 0.0f, dqb, qw);  /* dQ = scale·dS K */
            moec_gemm(1, 0, S, Dh, S, scale, dP, S, qb, qw, first, dkb, kw); /* dK (+)= scale·dSᵀ Q */
        }
    }
}

void moec_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                             const float *k, const float *v, int64_t B, int64_t S, int64_t H, int64_t G, int64_t Dh) {
    attn_args a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .saved_probs = probs, .q = q, .k = k, .v = v,
                   .B = B, .S = S, .H = H, .G = G, .Dh = Dh};
    moec_parallel_for(B * G, 1, attn_bwd_task, &a);
}
