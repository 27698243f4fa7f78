/* ops.c — forward/backward of RMSNorm, RoPE, SwiGLU, embedding and cross-entropy (see ops.h).
 * Plain C written so the compiler vectorises the inner loops; each op parallelises over rows. These are
 * memory-bound, a small share of the step time next to the GEMMs. */
#include "kernels/cpu/ops.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "core/threads.h"

/* ---------------------------------------------------------------- RMSNorm */
typedef struct {
    float *y, *rstd, *dx, *dw;
    const float *x, *w, *dy;
    int64_t T, D;
    float eps;
    int accumulate;
} rmsnorm_args;

static void rmsnorm_fwd_rows(void *p, int64_t r0, int64_t r1, int thread) {
    const rmsnorm_args *a = p;
    const int64_t D = a->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = a->x + r * D;
        float *y = a->y + r * D;
        double ss = 0;
        for (int64_t i = 0; i < D; i++) ss += (double)x[i] * x[i];
        float rs = (float)(1.0 / sqrt(ss / (double)D + a->eps));
        a->rstd[r] = rs;
        for (int64_t i = 0; i < D; i++) y[i] = x[i] * rs * a->w[i];
    }
}

void moec_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int64_t T, int64_t D, float eps) {
    rmsnorm_args a = {.y = y, .rstd = rstd, .x = x, .w = w, .D = D, .eps = eps};
    moec_parallel_for(T, 16, rmsnorm_fwd_rows, &a);
}

/* y = n·w with n = x·rstd:  dn = dy·w,  dx = rstd·(dn − n·mean(dn·n)),  dw += Σ_t dy·n. */
static void rmsnorm_bwd_rows(void *p, int64_t r0, int64_t r1, int thread) {
    const rmsnorm_args *a = p;
    const int64_t D = a->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = a->x + r * D, *dy = a->dy + r * D;
        float *dx = a->dx + r * D;
        const float rs = a->rstd[r];
        double dot = 0;
        for (int64_t i = 0; i < D; i++) dot += (double)dy[i] * a->w[i] * x[i] * rs;
        const float m = (float)(dot / (double)D);
        for (int64_t i = 0; i < D; i++) {
            float n = x[i] * rs;
            float g = rs * (dy[i] * a->w[i] - n * m);
            dx[i] = a->accumulate ? dx[i] + g : g;
        }
    }
}

/* dw is reduced over rows: parallelise over columns so no two threads write the same dw[i]. */
static void rmsnorm_bwd_dw_cols(void *p, int64_t c0, int64_t c1, int thread) {
    const rmsnorm_args *a = p;
    const int64_t D = a->D;
    for (int64_t r = 0; r < a->T; r++) {
        const float rs = a->rstd[r];
        const float *x = a->x + r * D, *dy = a->dy + r * D;
        for (int64_t i = c0; i < c1; i++) a->dw[i] += dy[i] * x[i] * rs;
    }
}

void moec_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                           int64_t T, int64_t D, int accumulate) {
    rmsnorm_args a = {.dx = dx, .dw = dw, .dy = dy, .x = x, .rstd = (float *)rstd, .w = w, .T = T, .D = D,
                      .accumulate = accumulate};
    moec_parallel_for(T, 16, rmsnorm_bwd_rows, &a);
    moec_parallel_for(D, 16, rmsnorm_bwd_dw_cols, &a);
}

/* ---------------------------------------------------------------- RoPE */
void moec_rope_tables(float *cos_t, float *sin_t, int64_t S_max, int64_t Dh, float theta) {
    const int64_t half = Dh / 2;
    for (int64_t i = 0; i < half; i++) {
        /* computed in double: positions up to tens of thousands times small frequencies */
        double inv_freq = pow((double)theta, -2.0 * (double)i / (double)Dh);
        for (int64_t p = 0; p < S_max; p++) {
            double ang = (double)p * (double)(float)inv_freq; /* HF computes inv_freq in fp32 */
            cos_t[p * half + i] = (float)cos(ang);
            sin_t[p * half + i] = (float)sin(ang);
        }
    }
}

typedef struct {
    float *x;
    const float *cos_t, *sin_t;
    int64_t S, n_heads, Dh;
    int inverse;
} rope_args;

static void rope_rows(void *p, int64_t r0, int64_t r1, int thread) {
    const rope_args *a = p;
    const int64_t half = a->Dh / 2, W = a->n_heads * a->Dh;
    const float sgn = a->inverse ? -1.0f : 1.0f;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t pos = r % a->S;
        const float *c = a->cos_t + pos * half, *s = a->sin_t + pos * half;
        for (int64_t h = 0; h < a->n_heads; h++) {
            float *v = a->x + r * W + h * a->Dh;
            for (int64_t i = 0; i < half; i++) {
                float x0 = v[i], x1 = v[i + half], sn = sgn * s[i];
                v[i] = x0 * c[i] - x1 * sn;
                v[i + half] = x1 * c[i] + x0 * sn;
            }
        }
    }
}

void moec_rope_apply(float *x, const float *cos_t, const float *sin_t, int64_t B, int64_t S, int64_t n_heads,
                     int64_t Dh, int inverse) {
    rope_args a = {.x = x, .cos_t = cos_t, .sin_t = sin_t, .S = S, .n_heads = n_heads, .Dh = Dh, .inverse = inverse};
    moec_parallel_for(B * S, 16, rope_rows, &a);
}

/* ---------------------------------------------------------------- SwiGLU */
typedef struct {
    float *out0, *out1;
    const float *h1, *h3, *dact;
} swiglu_args;

static void swiglu_fwd_range(void *p, int64_t i0, int64_t i1, int thread) {
    const swiglu_args *a = p;
    for (int64_t i = i0; i < i1; i++) {
        float g = a->h1[i];
        a->out0[i] = g / (1.0f + expf(-g)) * a->h3[i];
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

/* e^x for 8 floats, to a few ulp on [-87.3, 88] (tests/test_layers_grad.c holds the SwiGLU built on it to 8 ulp of
 * double precision; measured worst 3.8): x = n·ln 2 + r with |r| <= ln 2 / 2, e^r by a degree-7 polynomial (the
 * Cephes expf coefficients, published minimax values for this interval), times 2^n built in the exponent field. Inputs are clamped to
 * [-87.3, 88] first (so 2^n stays a normal number: e^x saturates at 1.6e38 and bottoms out at 1.2e-38 instead of
 * reaching inf and 0); a NaN stays NaN (min/max return their second operand, x, when it is NaN). */
AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.33f), _mm256_min_ps(_mm256_set1_ps(88.0f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x); /* ln 2 in two parts: the first is exact */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* The same formula 8 at a time: decode runs it on one thread for one token's chosen experts (a few thousand
 * values per layer), where scalar expf cost ~20 cycles a value while the other threads waited. */
AVX2 static void swiglu_fwd_range_avx2(void *p, int64_t i0, int64_t i1, int thread) {
    const swiglu_args *a = p;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 g = _mm256_loadu_ps(a->h1 + i);
        const __m256 den = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), g)));
        _mm256_storeu_ps(a->out0 + i, _mm256_mul_ps(_mm256_div_ps(g, den), _mm256_loadu_ps(a->h3 + i)));
    }
    if (i < i1) swiglu_fwd_range(p, i, i1, thread);
}

static moec_task_fn swiglu_fwd_for_cpu(void) {
    return moec_cpu_has_avx2() ? swiglu_fwd_range_avx2 : swiglu_fwd_range;
}

/* Attention's softmax numerators 8 at a time (decode computes one per cached position, head and layer: ~110 000
 * per moe-1b token at 576 positions, at ~20 cycles each as scalar expf). The sum is kept in double, as the scalar
 * loop's. */
AVX2 static double softmax_numerators_avx2(float *r, int64_t n, float mx) {
    const __m256 m = _mm256_set1_ps(mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(r + j), m));
        _mm256_storeu_ps(r + j, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double sum[4];
    _mm256_storeu_pd(sum, _mm256_add_pd(s0, s1));
    double total = (sum[0] + sum[1]) + (sum[2] + sum[3]);
    for (; j < n; j++) total += (r[j] = expf(r[j] - mx));
    return total;
}
#else
static moec_task_fn swiglu_fwd_for_cpu(void) { return swiglu_fwd_range; }
#endif

double moec_softmax_numerators(float *r, int64_t n, float mx) {
#if defined(__x86_64__)
    if (moec_cpu_has_avx2()) return softmax_numerators_avx2(r, n, mx);
#endif
    double total = 0;
    for (int64_t j = 0; j < n; j++) total += (r[j] = expf(r[j] - mx));
    return total;
}

void moec_swiglu_forward(float *act, const float *h1, const float *h3, int64_t T, int64_t F) {
    swiglu_args a = {.out0 = act, .h1 = h1, .h3 = h3};
    moec_parallel_for(T * F, 4096, swiglu_fwd_for_cpu(), &a);
}

/* act = silu(g)·u:  du = dact·silu(g),  dg = dact·u·σ(g)·(1 + g·(1 − σ(g))). */
static void swiglu_bwd_range(void *p, int64_t i0, int64_t i1, int thread) {
    const swiglu_args *a = p;
    for (int64_t i = i0; i < i1; i++) {
        float g = a->h1[i], u = a->h3[i], d = a->dact[i];
        float sg = 1.0f / (1.0f + expf(-g));
        a->out1[i] = d * g * sg;
        a->out0[i] = d * u * sg * (1.0f + g * (1.0f - sg));
    }
}

void moec_swiglu_backward(float *dh1, float *dh3, const float *dact, const float *h1, const float *h3, int64_t T,
                          int64_t F) {
    swiglu_args a = {.out0 = dh1, .out1 = dh3, .h1 = h1, .h3 = h3, .dact = dact};
    moec_parallel_for(T * F, 4096, swiglu_bwd_range, &a);
}

/* ---------------------------------------------------------------- embedding */
void moec_embedding_forward(float *x, const int32_t *ids, const float *emb, int64_t T, int64_t D) {
    for (int64_t t = 0; t < T; t++) memcpy(x + t * D, emb + (int64_t)ids[t] * D, (size_t)D * sizeof(float));
}

typedef struct {
    float *demb;
    const float *dx;
    const int32_t *ids;
    int64_t T, D;
} emb_bwd_args;

static void emb_bwd_cols(void *p, int64_t c0, int64_t c1, int thread) {
    const emb_bwd_args *a = p;
    for (int64_t t = 0; t < a->T; t++) {
        float *dst = a->demb + (int64_t)a->ids[t] * a->D;
        const float *src = a->dx + t * a->D;
        for (int64_t i = c0; i < c1; i++) dst[i] += src[i];
    }
}

void moec_embedding_backward(float *demb, const float *dx, const int32_t *ids, int64_t T, int64_t D) {
    emb_bwd_args a = {.demb = demb, .dx = dx, .ids = ids, .T = T, .D = D};
    moec_parallel_for(D, 16, emb_bwd_cols, &a);
}

/* ---------------------------------------------------------------- cross-entropy */
typedef struct {
    float *dlogits, *losses;
    const float *logits;
    const int32_t *targets;
    int64_t V;
    float dscale_over_n;
} ce_args;

static void ce_rows(void *p, int64_t r0, int64_t r1, int thread) {
    const ce_args *a = p;
    const int64_t V = a->V;
    for (int64_t r = r0; r < r1; r++) {
        const float *z = a->logits + r * V;
        const int32_t tgt = a->targets[r];
        float mx = -INFINITY;
        for (int64_t j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
        double sum = 0;
        /* each term is in (0, 1]: float exp is exact enough, the sum is kept in double */
        for (int64_t j = 0; j < V; j++) sum += expf(z[j] - mx);
        const double lse = (double)mx + log(sum);
        a->losses[r] = tgt >= 0 ? (float)(lse - z[tgt]) : 0.0f;
        if (a->dlogits) {
            float *dz = a->dlogits + r * V;
            if (tgt < 0) {
                memset(dz, 0, (size_t)V * sizeof(float));
                continue;
            }
            /* dz may alias z: each element is read before it is overwritten */
            const float s = a->dscale_over_n, inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < V; j++) dz[j] = s * expf(z[j] - mx) * inv;
            dz[tgt] -= s;
        }
    }
}

double moec_cross_entropy(float *dlogits, float *losses, int64_t *n_counted, const float *logits,
                          const int32_t *targets, int64_t T, int64_t V, float dscale) {
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) n += targets[t] >= 0;
    ce_args a = {.dlogits = dlogits, .losses = losses, .logits = logits, .targets = targets, .V = V,
                 .dscale_over_n = n > 0 ? dscale / (float)n : 0.0f};
    moec_parallel_for(T, 4, ce_rows, &a);
    double total = 0;
    for (int64_t t = 0; t < T; t++) total += losses[t];
    if (n_counted) *n_counted = n;
    return n > 0 ? total / (double)n : 0.0;
}

typedef struct {
    float *y;
    const float *x;
} add_args;
static void add_range(void *p, int64_t i0, int64_t i1, int thread) {
    const add_args *a = p;
    for (int64_t i = i0; i < i1; i++) a->y[i] += a->x[i];
}
void moec_add_inplace(float *y, const float *x, int64_t n) {
    add_args a = {.y = y, .x = x};
    moec_parallel_for(n, 8192, add_range, &a);
}
