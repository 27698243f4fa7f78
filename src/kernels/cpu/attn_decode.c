/* attn_decode.c — one decode row's attention over a KV cache, per KV head (see attn_decode.h).
 *
 * One pass over the cache in blocks of MOEC_ATTN_DECODE_KEYS keys with an online softmax: the block's scores for
 * every query head sharing the KV head, the block's maximum, the running sum and output rescaled when the maximum
 * grows, then the block's values accumulated into each head's output. Each key and value row is read from memory
 * once for all the heads (the cache was evicted by the weights every decode step streams, so these reads are what
 * attention costs), and the next block's keys and this block's values are prefetched while the scores are
 * computed. Measured on the Zen 4 (moe-1b fp8, 128 decode steps after 512 positions, attention's time per step
 * with a timer around it, medians of 5 alternating runs): the previous per-query-head dot products with L1
 * prefetches, cache in 4 KB pages, 3.12 ms; this kernel with L2 prefetches 2.96 ms, and 2.67 ms with the cache in
 * 2 MB pages (engine.c's alloc_cache) — ~21 GB/s of the ~33 the machine's memory gave then. */
#include "kernels/cpu/attn_decode.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "kernels/cpu/ops.h"

/* Heads handled per call (the per-head state lives on the stack); more are done in several calls by the caller. */
#define MAX_HEADS MOEC_ATTN_DECODE_MAX_HEADS
#define KB MOEC_ATTN_DECODE_KEYS

/* Prefetches key rows j .. j+n-1 of the next block and value rows j .. j+n-1 of this one (rows of Dh floats), into
 * L2 (prefetcht1) like the weight streams (qmatmul_kernels.h): measured on the Zen 4 (moe-1b fp8, 128 decode steps
 * after 512 positions, attention's time per step, medians of 5 alternating runs), L1 prefetches 2.96 ms, L2 2.67 ms
 * (with the cache in 2 MB pages); the keys 2 or 4 blocks ahead and the values 1 or 2 blocks ahead measured the
 * same as this (2.51-2.57 ms). */
static inline __attribute__((always_inline)) void prefetch_rows(const float *kc, const float *vc, int64_t j, int64_t n,
                                                                int64_t Dh) {
    for (int64_t u = 0; u < n; u++)
        for (int64_t d = 0; d < Dh; d += 16) {
            __builtin_prefetch(kc + (j + u + KB) * Dh + d, 0, 2);
            __builtin_prefetch(vc + (j + u) * Dh + d, 0, 2);
        }
}

/* The block's softmax step for one head: r[0..nb) scores in, numerators out; m and l the running max and sum, o
 * the head's output so far (rescaled if the max grows). */
static inline __attribute__((always_inline)) void online_softmax(float *r, int64_t nb, float *m, double *l, float *o,
                                                                 int64_t Dh) {
    float mx = *m;
    for (int64_t j = 0; j < nb; j++) mx = r[j] > mx ? r[j] : mx;
    if (mx > *m) { /* exp(-inf) = 0 on the first block: o and l are still 0 */
        const float c = expf(*m - mx);
        *l *= c;
        for (int64_t d = 0; d < Dh; d++) o[d] *= c;
        *m = mx;
    }
    *l += moec_softmax_numerators(r, nb, mx);
}

/* dot of two n-vectors with 8 independent partial sums, which the compiler vectorises without reassociating */
static inline float dot8(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float r = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

void moec_attn_decode_portable(const float *q, const float *kc, const float *vc, int64_t nkeys, int64_t QH, int64_t Dh,
                           float scale, float *sc, float *o) {
    float m[MAX_HEADS];
    double l[MAX_HEADS];
    for (int64_t h = 0; h < QH; h++) m[h] = -INFINITY, l[h] = 0.0;
    memset(o, 0, (size_t)(QH * Dh) * sizeof *o);
    for (int64_t j0 = 0; j0 < nkeys; j0 += KB) {
        const int64_t nb = nkeys - j0 < KB ? nkeys - j0 : KB;
        for (int64_t jj = 0; jj < nb; jj++) {
            prefetch_rows(kc, vc, j0 + jj, 1, Dh);
            for (int64_t h = 0; h < QH; h++) sc[h * KB + jj] = scale * dot8(q + h * Dh, kc + (j0 + jj) * Dh, Dh);
        }
        for (int64_t h = 0; h < QH; h++) {
            float *r = sc + h * KB, *oh = o + h * Dh;
            online_softmax(r, nb, &m[h], &l[h], oh, Dh);
            const float *v = vc + j0 * Dh;
            for (int64_t jj = 0; jj < nb; jj++)
                for (int64_t d = 0; d < Dh; d++) oh[d] += r[jj] * v[jj * Dh + d];
        }
    }
    for (int64_t h = 0; h < QH; h++) {
        const float inv = (float)(1.0 / l[h]);
        for (int64_t d = 0; d < Dh; d++) o[h * Dh + d] *= inv;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

/* The sums of 4 vectors' lanes, as one 4-vector. */
AVX2 static inline __m128 sum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* Dh a multiple of 8. Scores 4 keys at a time (4 independent FMA chains: one dot product alone is a chain of Dh/8
 * dependent FMAs, bound by their latency), values 4 keys per pass over the output. */
AVX2 static void decode_avx2(const float *q, const float *kc, const float *vc, int64_t nkeys, int64_t QH, int64_t Dh,
                             float scale, float *sc, float *o) {
    float m[MAX_HEADS];
    double l[MAX_HEADS];
    for (int64_t h = 0; h < QH; h++) m[h] = -INFINITY, l[h] = 0.0;
    memset(o, 0, (size_t)(QH * Dh) * sizeof *o);
    const __m128 vscale = _mm_set1_ps(scale);
    for (int64_t j0 = 0; j0 < nkeys; j0 += KB) {
        const int64_t nb = nkeys - j0 < KB ? nkeys - j0 : KB;
        int64_t jj = 0;
        for (; jj + 4 <= nb; jj += 4) {
            prefetch_rows(kc, vc, j0 + jj, 4, Dh);
            const float *k0 = kc + (j0 + jj) * Dh, *k1 = k0 + Dh, *k2 = k1 + Dh, *k3 = k2 + Dh;
            for (int64_t h = 0; h < QH; h++) {
                const float *qh = q + h * Dh;
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int64_t d = 0; d < Dh; d += 8) {
                    const __m256 x = _mm256_loadu_ps(qh + d);
                    a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + d), a0);
                    a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + d), a1);
                    a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + d), a2);
                    a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + d), a3);
                }
                _mm_storeu_ps(sc + h * KB + jj, _mm_mul_ps(vscale, sum4(a0, a1, a2, a3)));
            }
        }
        for (; jj < nb; jj++) {
            prefetch_rows(kc, vc, j0 + jj, 1, Dh);
            const float *k0 = kc + (j0 + jj) * Dh;
            for (int64_t h = 0; h < QH; h++) {
                __m256 a0 = _mm256_setzero_ps();
                for (int64_t d = 0; d < Dh; d += 8)
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * Dh + d), _mm256_loadu_ps(k0 + d), a0);
                sc[h * KB + jj] = scale * _mm_cvtss_f32(sum4(a0, a0, a0, a0));
            }
        }
        for (int64_t h = 0; h < QH; h++) {
            float *r = sc + h * KB, *oh = o + h * Dh;
            online_softmax(r, nb, &m[h], &l[h], oh, Dh);
            const float *v = vc + j0 * Dh;
            int64_t j = 0;
            for (; j + 4 <= nb; j += 4) {
                const __m256 p0 = _mm256_set1_ps(r[j]), p1 = _mm256_set1_ps(r[j + 1]), p2 = _mm256_set1_ps(r[j + 2]),
                             p3 = _mm256_set1_ps(r[j + 3]);
                const float *v0 = v + j * Dh, *v1 = v0 + Dh, *v2 = v1 + Dh, *v3 = v2 + Dh;
                for (int64_t d = 0; d < Dh; d += 8) {
                    __m256 acc = _mm256_loadu_ps(oh + d);
                    acc = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + d), acc);
                    acc = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + d), acc);
                    acc = _mm256_fmadd_ps(p2, _mm256_loadu_ps(v2 + d), acc);
                    acc = _mm256_fmadd_ps(p3, _mm256_loadu_ps(v3 + d), acc);
                    _mm256_storeu_ps(oh + d, acc);
                }
            }
            for (; j < nb; j++) {
                const __m256 p = _mm256_set1_ps(r[j]);
                for (int64_t d = 0; d < Dh; d += 8)
                    _mm256_storeu_ps(oh + d, _mm256_fmadd_ps(p, _mm256_loadu_ps(v + j * Dh + d), _mm256_loadu_ps(oh + d)));
            }
        }
    }
    for (int64_t h = 0; h < QH; h++) {
        const __m256 inv = _mm256_set1_ps((float)(1.0 / l[h]));
        for (int64_t d = 0; d < Dh; d += 8) _mm256_storeu_ps(o + h * Dh + d, _mm256_mul_ps(inv, _mm256_loadu_ps(o + h * Dh + d)));
    }
}
#endif

void moec_attn_decode(const float *q, const float *kc, const float *vc, int64_t nkeys, int64_t QH, int64_t Dh,
                      float scale, float *scratch, float *o) {
#if defined(__x86_64__)
    if (Dh % 8 == 0 && moec_cpu_has_avx2()) {
        decode_avx2(q, kc, vc, nkeys, QH, Dh, scale, scratch, o);
        return;
    }
#endif
    moec_attn_decode_portable(q, kc, vc, nkeys, QH, Dh, scale, scratch, o);
}
