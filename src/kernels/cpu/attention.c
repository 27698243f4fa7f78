/* attention.c — causal GQA attention (see attention.h). Forward parallelises over (batch, query head);
 * backward over (batch, KV head) so that the heads sharing one KV head accumulate dk/dv in one thread, race-free.
 * Scores are kept in full [S,S] per head: at training lengths (S <= a few thousand) this is simple and the
 * FLOPs are a small share of an MoE layer's. */
#include "kernels/cpu/attention.h"

#include <math.h>
#include <string.h>

#include "core/threads.h"

typedef struct {
    float *out, *probs, *dq, *dk, *dv;
    const float *saved_probs; /* backward reads what forward wrote into probs */
    const float *q, *k, *v, *dout;
    int64_t B, S, H, G, Dh;
} attn_args;

static inline float dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void attn_fwd_task(void *p, int64_t i0, int64_t i1, int thread) {
    const attn_args *a = p;
    const int64_t S = a->S, H = a->H, G = a->G, Dh = a->Dh, qw = H * Dh, kw = G * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    for (int64_t bh = i0; bh < i1; bh++) {
        const int64_t b = bh / H, h = bh % H, g = h / (H / G);
        float *P = a->probs + bh * S * S;
        for (int64_t t = 0; t < S; t++) {
            const float *qt = a->q + (b * S + t) * qw + h * Dh;
            float *pr = P + t * S;
            float mx = -INFINITY;
            for (int64_t s = 0; s <= t; s++) {
                pr[s] = dot(qt, a->k + (b * S + s) * kw + g * Dh, Dh) * scale;
                mx = pr[s] > mx ? pr[s] : mx;
            }
            float sum = 0;
            for (int64_t s = 0; s <= t; s++) {
                pr[s] = expf(pr[s] - mx);
                sum += pr[s];
            }
            const float inv = 1.0f / sum;
            float *o = a->out + (b * S + t) * qw + h * Dh;
            memset(o, 0, (size_t)Dh * sizeof(float));
            for (int64_t s = 0; s <= t; s++) {
                pr[s] *= inv;
                const float *vs = a->v + (b * S + s) * kw + g * Dh;
                const float ps = pr[s];
                for (int64_t i = 0; i < Dh; i++) o[i] += ps * vs[i];
            }
            for (int64_t s = t + 1; s < S; s++) pr[s] = 0.0f;
        }
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
    for (int64_t bg = i0; bg < i1; bg++) {
        const int64_t b = bg / G, g = bg % G;
        for (int64_t t = 0; t < S; t++) {
            memset(a->dk + (b * S + t) * kw + g * Dh, 0, (size_t)Dh * sizeof(float));
            memset(a->dv + (b * S + t) * kw + g * Dh, 0, (size_t)Dh * sizeof(float));
        }
        for (int64_t h = g * rep; h < (g + 1) * rep; h++) {
            const float *P = a->saved_probs + (b * H + h) * S * S;
            for (int64_t t = 0; t < S; t++) {
                const float *pr = P + t * S;
                const float *dot_ = a->dout + (b * S + t) * qw + h * Dh;
                const float *qt = a->q + (b * S + t) * qw + h * Dh;
                float *dqt = a->dq + (b * S + t) * qw + h * Dh;
                /* dP[s] = dO_t · V_s, and the row sum Σ P∘dP */
                float rowdot = 0;
                for (int64_t s = 0; s <= t; s++) rowdot += pr[s] * dot(dot_, a->v + (b * S + s) * kw + g * Dh, Dh);
                memset(dqt, 0, (size_t)Dh * sizeof(float));
                for (int64_t s = 0; s <= t; s++) {
                    const float *vs = a->v + (b * S + s) * kw + g * Dh;
                    const float *ks = a->k + (b * S + s) * kw + g * Dh;
                    float *dks = a->dk + (b * S + s) * kw + g * Dh;
                    float *dvs = a->dv + (b * S + s) * kw + g * Dh;
                    const float ps = pr[s];
                    const float ds = ps * (dot(dot_, vs, Dh) - rowdot) * scale;
                    for (int64_t i = 0; i < Dh; i++) {
                        dvs[i] += ps * dot_[i];
                        dqt[i] += ds * ks[i];
                        dks[i] += ds * qt[i];
                    }
                }
            }
        }
    }
}

void moec_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                             const float *k, const float *v, int64_t B, int64_t S, int64_t H, int64_t G, int64_t Dh) {
    attn_args a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .saved_probs = probs, .q = q, .k = k, .v = v,
                   .B = B, .S = S, .H = H, .G = G, .Dh = Dh};
    moec_parallel_for(B * G, 1, attn_bwd_task, &a);
}
