/* router.c — Skywork-MoE routing for one MoE layer: gate-logit normalisation, softmax, top-K, capacity
 * dropping by gate score, load-balance aux loss, z-loss; forward next to backward. The contract (every
 * formula) is in router.h; this file only says how and why.
 *
 * It decides which (token, slot) goes to which expert and with what weight; it does not move activations.
 * Dimensions: T tokens, E experts, K top-k. Rows are tokens: logits/zn/probs are [T,E], topk_* are [T,K].
 *
 * Precision: per-token statistics (mean, std, softmax sum, logsumexp) and the sums over tokens (P_j, z-loss,
 * Max1/Max2) are accumulated in double; everything stored is float. No allocation after state_init.
 */
#include "moe/router.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An assignment in an over-full expert's queue is one uint64 key: high 32 bits ~bits(g_ij), low 32 bits
 * pos = i*K + k. g >= 0, and the bit patterns of non-negative floats order like their values, so ascending keys
 * are descending g, then ascending pos, which within one expert is ascending token (a token picks an expert at
 * most once). Keys are unique, so "the first capacity keys" is well defined. */
static uint64_t slot_key(float g, int64_t pos) {
    uint32_t bits;
    memcpy(&bits, &g, sizeof bits);
    return ((uint64_t)~bits << 32) | (uint64_t)pos;
}

/* Rearranges a[0..n) so that a[0..k) holds its k smallest keys (quickselect, median-of-three, O(n) expected).
 * Why not qsort: only the kept/dropped split is needed, not the order, and this is ~5x faster at T·K = 32768. */
static void select_smallest(uint64_t *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    const int64_t t = k - 1; /* the index that must end up holding the k-th smallest */
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        uint64_t x = a[lo], y = a[mid], z = a[hi], pivot;
        if (x < y) pivot = y < z ? y : (x < z ? z : x);
        else pivot = x < z ? x : (y < z ? z : y);
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                const uint64_t tmp = a[i];
                a[i++] = a[j];
                a[j--] = tmp;
            }
        }
        /* now a[lo..j] <= pivot <= a[i..hi], and a[j+1..i-1] == pivot */
        if (t <= j) hi = j;
        else if (t >= i) lo = i;
        else break;
    }
}

typedef struct {
    uint64_t *queue;   /* [T_max*K] keys (slot_key) of over-full experts' assignments, bucketed by expert */
    int64_t *start;    /* [E+1]     bucket j is queue[start[j] .. start[j+1]) */
    int64_t *fill;     /* [E]       next free entry of bucket j while filling */
    double *P;         /* [E]       P_j = (1/T) Σ_i g_ij of the last forward, needed by the aux backward */
} router_scratch;

moec_status moec_router_state_init(moec_router_state *s, int64_t T_max, int E, int K) {
    memset(s, 0, sizeof *s);
    if (T_max < 0) return MOEC_ERR(MOEC_ERR_ARG, "router: T_max = %lld is negative", (long long)T_max);
    if (E < 1 || E > MOEC_MAX_EXPERTS)
        return MOEC_ERR(MOEC_ERR_ARG, "router: E = %d experts is outside [1, %d]", E, MOEC_MAX_EXPERTS);
    if (K < 1 || K > E) return MOEC_ERR(MOEC_ERR_ARG, "router: top_k = %d is outside [1, E = %d]", K, E);
    if (T_max * K > UINT32_MAX) /* slot_key keeps i*K + k in 32 bits */
        return MOEC_ERR(MOEC_ERR_ARG, "router: T_max·K = %lld·%d exceeds 2^32 assignments", (long long)T_max, K);
    s->T_max = T_max;
    s->E = E;
    s->K = K;
    s->capacity = INT64_MAX;
    s->max1_over_max2 = 1.0f;
    const size_t TE = (size_t)(T_max * E), TK = (size_t)(T_max * K);
    /* +1 everywhere so T_max == 0 still gets non-NULL pointers */
    s->zn = malloc((TE + 1) * sizeof(float));
    s->probs = malloc((TE + 1) * sizeof(float));
    s->inv_sigma = malloc(((size_t)T_max + 1) * sizeof(float));
    s->topk_idx = malloc((TK + 1) * sizeof(int32_t));
    s->topk_w = malloc((TK + 1) * sizeof(float));
    s->kept = malloc(TK + 1);
    s->expert_demand = calloc((size_t)E, sizeof(int64_t));
    s->expert_count = calloc((size_t)E, sizeof(int64_t));
    router_scratch *sc = calloc(1, sizeof *sc);
    s->scratch = sc;
    if (sc) {
        sc->queue = malloc((TK + 1) * sizeof(uint64_t));
        sc->start = malloc(((size_t)E + 1) * sizeof(int64_t));
        sc->fill = malloc((size_t)E * sizeof(int64_t));
        sc->P = calloc((size_t)E, sizeof(double));
    }
    if (!s->zn || !s->probs || !s->inv_sigma || !s->topk_idx || !s->topk_w || !s->kept || !s->expert_demand ||
        !s->expert_count || !sc || !sc->queue || !sc->start || !sc->fill || !sc->P) {
        moec_router_state_free(s);
        return MOEC_ERR(MOEC_ERR_NOMEM, "router: cannot allocate state for T_max = %lld, E = %d, K = %d",
                        (long long)T_max, E, K);
    }
    return MOEC_OK;
}

void moec_router_state_free(moec_router_state *s) {
    router_scratch *sc = s->scratch;
    if (sc) {
        free(sc->P);
        free(sc->fill);
        free(sc->start);
        free(sc->queue);
        free(sc);
    }
    free(s->expert_count);
    free(s->expert_demand);
    free(s->kept);
    free(s->topk_w);
    free(s->topk_idx);
    free(s->inv_sigma);
    free(s->probs);
    free(s->zn);
    memset(s, 0, sizeof *s);
}

/* Why decimal: cf arrives as a float parsed from a decimal ("1.1"), and the float is a hair away from it
 * (1.1f = 1.10000002384). Taking the float literally turns a capacity that is exactly an integer into the
 * next integer. The shortest decimal that reads back as the same float is the value the user wrote; with it
 * as M·10^q the ceiling is done in exact integer arithmetic. Falls back to double when that would overflow. */
int64_t moec_router_capacity(float cf, int K, int64_t T, int E) {
    if (!(cf > 0.0f) || isinf(cf)) return INT64_MAX;
    if (T <= 0) return 0;
    char buf[40];
    int prec = 1;
    for (; prec <= 9; prec++) { /* 9 significant digits always round-trip a float */
        snprintf(buf, sizeof buf, "%.*e", prec - 1, (double)cf);
        if (strtof(buf, NULL) == cf) break;
    }
    if (prec > 9) prec = 9;
    int64_t M = 0;
    const char *p = buf;
    for (; *p && *p != 'e' && *p != 'E'; p++)
        if (*p >= '0' && *p <= '9') M = M * 10 + (*p - '0');
    int q = (*p ? atoi(p + 1) : 0) - (prec - 1); /* cf = M · 10^q */
    int64_t num = 0, den = E;
    int ok = !__builtin_mul_overflow(M, (int64_t)K, &num) && !__builtin_mul_overflow(num, T, &num);
    for (; ok && q > 0; q--) ok = !__builtin_mul_overflow(num, (int64_t)10, &num);
    for (; ok && q < 0; q++) ok = !__builtin_mul_overflow(den, (int64_t)10, &den);
    if (ok) return num / den + (num % den != 0);
    double x = ceil((double)cf * K * (double)T / E);
    return x >= 9.2e18 ? INT64_MAX : (int64_t)x;
}

void moec_router_forward(moec_router_state *s, const float *logits, int64_t T, const moec_moe_config *mc) {
    assert(T >= 0 && T <= s->T_max);
    const int E = s->E, K = s->K;
    router_scratch *sc = s->scratch;
    const float lambda = mc->gate_lambda;
    s->T = T;
    for (int j = 0; j < E; j++) {
        s->expert_demand[j] = 0;
        sc->P[j] = 0.0;
    }
    double zloss_sum = 0.0, ratio_sum = 0.0;

    for (int64_t i = 0; i < T; i++) {
        const float *z = logits + i * E; /* [E] */
        float *zn = s->zn + i * E;       /* [E] */
        float *g = s->probs + i * E;     /* [E] */
        int32_t *idx = s->topk_idx + i * K;
        float *wrow = s->topk_w + i * K; /* holds the selected g until the weights are known */

        /* zn = λ (z − mean z) / (std z + eps), std unbiased; zn = z when λ == 0 */
        if (lambda > 0.0f) {
            double mu = 0.0, ss = 0.0;
            for (int j = 0; j < E; j++) mu += z[j];
            mu /= E;
            for (int j = 0; j < E; j++) ss += ((double)z[j] - mu) * ((double)z[j] - mu);
            const double sigma = E > 1 ? sqrt(ss / (E - 1)) : 0.0; /* E == 1: z − μ is 0 anyway */
            const double r = 1.0 / (sigma + (double)MOEC_ROUTER_STD_EPS);
            s->inv_sigma[i] = (float)r;
            for (int j = 0; j < E; j++) zn[j] = (float)(lambda * ((double)z[j] - mu) * r);
        } else {
            s->inv_sigma[i] = 1.0f;
            memcpy(zn, z, (size_t)E * sizeof(float));
        }

        /* g = softmax(zn) */
        float m1 = zn[0];
        for (int j = 1; j < E; j++) m1 = zn[j] > m1 ? zn[j] : m1;
        double sum = 0.0;
        for (int j = 0; j < E; j++) {
            g[j] = expf(zn[j] - m1);
            sum += g[j];
        }
        const float inv_sum = (float)(1.0 / sum);
        for (int j = 0; j < E; j++) g[j] *= inv_sum;
        /* z-loss term: (logsumexp_j z_ij)² on the raw logits (the same numbers as above when λ == 0) */
        double lse;
        if (lambda > 0.0f) {
            float mz = z[0];
            for (int j = 1; j < E; j++)
                if (z[j] > mz) mz = z[j];
            double sz = 0.0;
            for (int j = 0; j < E; j++) sz += expf(z[j] - mz);
            lse = mz + log(sz);
        } else {
            lse = m1 + log(sum);
        }
        zloss_sum += lse * lse;

        /* top-K by g, descending, by insertion into a local sorted list. Scanning j upward and moving an entry
         * ahead only on strictly greater g leaves ties in ascending expert order. O(E·K) worst case. */
        float bg[MOEC_MAX_EXPERTS];
        int32_t bi[MOEC_MAX_EXPERTS];
        for (int j = 0; j < E; j++) {
            const float gj = g[j];
            int at;
            if (j < K) at = j;
            else if (gj > bg[K - 1]) at = K - 1;
            else continue;
            while (at > 0 && gj > bg[at - 1]) {
                bg[at] = bg[at - 1];
                bi[at] = bi[at - 1];
                at--;
            }
            bg[at] = gj;
            bi[at] = j;
        }
        for (int k = 0; k < K; k++) {
            idx[k] = bi[k];
            wrow[k] = bg[k];
            s->expert_demand[bi[k]]++;
        }
        /* Max1/Max2: g_(1)/g_(2) = exp(zn_(1) − zn_(2)), finite where g_(2) itself would underflow to 0 */
        if (E > 1) {
            float m2 = -INFINITY;
            if (K > 1) m2 = zn[bi[1]];
            else
                for (int j = 0; j < E; j++)
                    if (j != bi[0] && zn[j] > m2) m2 = zn[j];
            ratio_sum += exp((double)zn[bi[0]] - (double)m2);
        } else {
            ratio_sum += 1.0;
        }
        for (int j = 0; j < E; j++) sc->P[j] += g[j];
    }

    /* capacity: an over-full expert keeps its highest-g assignments (ties: lower token) */
    s->capacity = moec_router_capacity(mc->capacity_factor, K, T, E);
    const int64_t cap = s->capacity;
    memset(s->kept, 1, (size_t)(T * K));
    int any_over = 0;
    for (int j = 0; j < E; j++) any_over |= s->expert_demand[j] > cap;
    if (any_over) {
        /* bucket the assignments of over-full experts only, in token order */
        sc->start[0] = 0;
        for (int j = 0; j < E; j++) {
            sc->fill[j] = sc->start[j];
            sc->start[j + 1] = sc->start[j] + (s->expert_demand[j] > cap ? s->expert_demand[j] : 0);
        }
        for (int64_t pos = 0; pos < T * K; pos++) {
            const int j = s->topk_idx[pos];
            if (s->expert_demand[j] > cap) sc->queue[sc->fill[j]++] = slot_key(s->probs[(pos / K) * E + j], pos);
        }
        for (int j = 0; j < E; j++) {
            if (s->expert_demand[j] <= cap) continue;
            uint64_t *q = sc->queue + sc->start[j];
            const int64_t n = s->expert_demand[j];
            select_smallest(q, n, cap);
            for (int64_t r = cap; r < n; r++) s->kept[q[r] & 0xffffffffu] = 0;
        }
    }
    int64_t dropped = 0;
    for (int j = 0; j < E; j++) {
        const int64_t d = s->expert_demand[j];
        s->expert_count[j] = d > cap ? cap : d;
        dropped += d - s->expert_count[j];
    }
    s->dropped = dropped;
    s->drop_rate = T > 0 ? (float)((double)dropped / ((double)K * (double)T)) : 0.0f;

    /* w_ik = g_ik / s_i for a kept slot, 0 for a dropped one; s_i sums all K selected, dropped included */
    for (int64_t i = 0; i < T; i++) {
        const float *g = s->probs + i * E;
        const int32_t *idx = s->topk_idx + i * K;
        double ssum = 0.0;
        for (int k = 0; k < K; k++) ssum += g[idx[k]];
        const double inv_s = 1.0 / ssum;
        for (int k = 0; k < K; k++)
            s->topk_w[i * K + k] = s->kept[i * K + k] ? (float)(g[idx[k]] * inv_s) : 0.0f;
    }

    /* aux, z-loss, Max1/Max2 */
    if (T > 0) {
        double aux = 0.0;
        for (int j = 0; j < E; j++) sc->P[j] /= (double)T;
        if (mc->aux_kind == MOEC_AUX_SWITCH) {
            for (int j = 0; j < E; j++) aux += (double)s->expert_demand[j] / ((double)K * (double)T) * sc->P[j];
            aux *= E;
        } else {
            for (int j = 0; j < E; j++) aux += (1.0 / E - sc->P[j]) * (1.0 / E - sc->P[j]);
        }
        s->aux_loss = (float)aux;
        s->z_loss = (float)(zloss_sum / (double)T);
        s->max1_over_max2 = (float)(ratio_sum / (double)T);
    } else {
        s->aux_loss = 0.0f;
        s->z_loss = 0.0f;
        s->max1_over_max2 = 1.0f;
    }
}

void moec_router_backward(float *dlogits, const moec_router_state *s, const float *logits, const float *dtopk_w,
                          float aux_coef, const moec_moe_config *mc) {
    const int64_t T = s->T;
    const int E = s->E, K = s->K;
    const router_scratch *sc = s->scratch;
    const float lambda = mc->gate_lambda;
    if (T == 0) return;

    /* α·∂aux/∂g_ij does not depend on i:
     *   SQDEV  "aux = Σ_j (1/E − P_j)², P_j = (1/T) Σ_i g_ij"  ->  2 (P_j − 1/E) / T
     *   SWITCH "aux = E · Σ_j f_j · P_j" (f_j constant)        ->  E f_j / T */
    float daux[MOEC_MAX_EXPERTS];
    for (int j = 0; j < E; j++) {
        double d;
        if (mc->aux_kind == MOEC_AUX_SWITCH)
            d = (double)E * ((double)s->expert_demand[j] / ((double)K * (double)T)) / (double)T;
        else
            d = 2.0 * (sc->P[j] - 1.0 / E) / (double)T;
        daux[j] = (float)(aux_coef * d);
    }
    /* "z-loss = (1/T) Σ_i (lse_i)²"  ->  ∂/∂z_ij = (2/T) lse_i softmax(z_i)_j */
    const double zscale = 2.0 * (double)mc->z_loss_coef / (double)T;

    float dg[MOEC_MAX_EXPERTS];
    for (int64_t i = 0; i < T; i++) {
        const float *z = logits + i * E;      /* [E] */
        const float *g = s->probs + i * E;    /* [E] */
        const int32_t *idx = s->topk_idx + i * K;
        const float *w = s->topk_w + i * K;
        const uint8_t *kept = s->kept + i * K;
        const float *dw = dtopk_w + i * K;
        float *dz = dlogits + i * E;          /* [E] */

        for (int j = 0; j < E; j++) dg[j] = daux[j];

        /* "w_ik = g_ik / s_i" (kept), s_i = Σ_{k'} g_ik' over all K selected:
         *   ∂L/∂g_ik = [kept] dw_ik / s_i − (Σ_{kept k'} dw_ik' w_ik') / s_i   for every selected k.
         * Dropped slots' dw is never read: their w is the constant 0. */
        double ssum = 0.0, cw = 0.0;
        for (int k = 0; k < K; k++) {
            ssum += g[idx[k]];
            if (kept[k]) cw += (double)dw[k] * w[k];
        }
        const double inv_s = 1.0 / ssum;
        for (int k = 0; k < K; k++) dg[idx[k]] += (float)(((kept[k] ? (double)dw[k] : 0.0) - cw) * inv_s);

        /* "g = softmax(zn)":  dzn_j = g_j (dg_j − Σ_l g_l dg_l); kept in dz until the normalisation */
        double dot = 0.0;
        for (int j = 0; j < E; j++) dot += (double)g[j] * dg[j];
        for (int j = 0; j < E; j++) dz[j] = (float)(g[j] * (dg[j] - dot));

        /* "zn = λ (z − μ) r, r = 1/(σ+eps), σ = sqrt(Σ(z−μ)²/(E−1))", with d = z − μ:
         *   through d directly:  λ r (dzn_j − mean_l dzn_l)          (μ is the mean, so ∂d_l/∂z_j = δ_lj − 1/E;
         *                        mean dzn is 0 up to rounding, as softmax's input gradient sums to 0, but it is
         *                        kept so this stays correct for any upstream gradient)
         *   through r:           ∂L/∂r = λ Σ_l d_l dzn_l,  ∂r/∂σ = −r²,  ∂σ/∂z_j = d_j / ((E−1) σ)
         * σ = 0 (all logits equal, or E == 1): d = 0, and the σ path is taken as 0 (its subgradient). */
        if (lambda > 0.0f) {
            double mu = 0.0, ss = 0.0;
            for (int j = 0; j < E; j++) mu += z[j];
            mu /= E;
            for (int j = 0; j < E; j++) ss += ((double)z[j] - mu) * ((double)z[j] - mu);
            const double sigma = E > 1 ? sqrt(ss / (E - 1)) : 0.0;
            const double r = 1.0 / (sigma + (double)MOEC_ROUTER_STD_EPS);
            double mean_dzn = 0.0, a = 0.0;
            for (int j = 0; j < E; j++) {
                mean_dzn += dz[j];
                a += ((double)z[j] - mu) * dz[j];
            }
            mean_dzn /= E;
            const double lr = lambda * r;
            const double c_sigma = sigma > 0.0 ? -lambda * a * r * r / ((E - 1) * sigma) : 0.0;
            for (int j = 0; j < E; j++) dz[j] = (float)(lr * (dz[j] - mean_dzn) + c_sigma * ((double)z[j] - mu));
        }

        if (zscale != 0.0) {
            float mz = z[0];
            for (int j = 1; j < E; j++)
                if (z[j] > mz) mz = z[j];
            double sz = 0.0;
            for (int j = 0; j < E; j++) sz += expf(z[j] - mz);
            const double lse = mz + log(sz);
            const double c = zscale * lse / sz;
            for (int j = 0; j < E; j++) dz[j] += (float)(c * expf(z[j] - mz));
        }
    }
}

float moec_alpha_next(float alpha, float drop_rate, const moec_moe_config *mc) {
    if (!mc->adaptive_alpha) return mc->alpha_fixed;
    /* α̂ = min(ξ·d, α_max);  α ← β·α + (1−β)·α̂ */
    float target = mc->alpha_xi * drop_rate;
    if (target > mc->alpha_max) target = mc->alpha_max;
    return mc->alpha_beta * alpha + (1.0f - mc->alpha_beta) * target;
}
