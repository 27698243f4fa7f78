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
 * 2 MB pages (engine.c's alloc_cache) — ~21 GB/s of the ~33 the machine's memory gave then.
 *
 * The cache holds fp32 or IEEE halves (moec_kv_dtype). Each kernel body is written once over the type (inlined with
 * the type a constant, so there is no test in its loops); halves are widened as they are loaded, exactly (F16C), so
 * a half cache computes what the fp32 kernel computes on the widened values, bit for bit (tests/test_attn_decode.c),
 * from half the bytes: moe-1b fp8 decode after 512 positions 1.13x faster (bench_infer --kv ab). */
#include "kernels/cpu/attn_decode.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "core/dtype.h"
#include "io/safetensors.h" /* moec_f16_to_f32 */
#include "kernels/cpu/ops.h"

/* Heads handled per call (the per-head state lives on the stack); more are done in several calls by the caller. */
#define MAX_HEADS MOEC_ATTN_DECODE_MAX_HEADS
#define KB MOEC_ATTN_DECODE_KEYS

/* Prefetches key rows j .. j+n-1 of the next block and value rows j .. j+n-1 of this one (rows of Dh floats), into
 * L2 (prefetcht1) like the weight streams (qmatmul_kernels.h): measured on the Zen 4 (moe-1b fp8, 128 decode steps
 * after 512 positions, attention's time per step, medians of 5 alternating runs), L1 prefetches 2.96 ms, L2 2.67 ms
 * (with the cache in 2 MB pages); the keys 2 or 4 blocks ahead and the values 1 or 2 blocks ahead measured the
 * same as this (2.51-2.57 ms). */
static inline __attribute__((always_inline)) void prefetch_rows(const void *kc, const void *vc, int64_t j, int64_t n,
                                                                int64_t Dh, int64_t es) {
    const char *k = (const char *)kc + (j + KB) * Dh * es, *v = (const char *)vc + j * Dh * es;
    for (int64_t b = 0; b < n * Dh * es; b += 64) {
        __builtin_prefetch(k + b, 0, 2);
        __builtin_prefetch(v + b, 0, 2);
    }
}

/* Cached number i of a row of type kv (a constant where the callers are inlined, so each kernel is compiled once
 * per type with no test in its loops). */
static inline __attribute__((always_inline)) float ld1(const void *p, int64_t i, moec_kv_dtype kv) {
    return kv == MOEC_KV_F16 ? moec_f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
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
static inline __attribute__((always_inline)) float dot8(const float *a, const void *b, int64_t n, moec_kv_dtype kv) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * ld1(b, i + j, kv);
    float r = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) r += a[i] * ld1(b, i, kv);
    return r;
}

static inline __attribute__((always_inline)) void decode_portable(const float *q, const void *kc, const void *vc,
                                                                   moec_kv_dtype kv, int64_t nkeys, int64_t QH,
                                                                   int64_t Dh, float scale, float *sc, float *o) {
    const int64_t es = moec_kv_bytes(kv);
    float m[MAX_HEADS];
    double l[MAX_HEADS];
    for (int64_t h = 0; h < QH; h++) m[h] = -INFINITY, l[h] = 0.0;
    memset(o, 0, (size_t)(QH * Dh) * sizeof *o);
    for (int64_t j0 = 0; j0 < nkeys; j0 += KB) {
        const int64_t nb = nkeys - j0 < KB ? nkeys - j0 : KB;
        for (int64_t jj = 0; jj < nb; jj++) {
            prefetch_rows(kc, vc, j0 + jj, 1, Dh, es);
            const void *k = (const char *)kc + (j0 + jj) * Dh * es;
            for (int64_t h = 0; h < QH; h++) sc[h * KB + jj] = scale * dot8(q + h * Dh, k, Dh, kv);
        }
        for (int64_t h = 0; h < QH; h++) {
            float *r = sc + h * KB, *oh = o + h * Dh;
            online_softmax(r, nb, &m[h], &l[h], oh, Dh);
            for (int64_t jj = 0; jj < nb; jj++) {
                const void *v = (const char *)vc + (j0 + jj) * Dh * es;
                for (int64_t d = 0; d < Dh; d++) oh[d] += r[jj] * ld1(v, d, kv);
            }
        }
    }
    for (int64_t h = 0; h < QH; h++) {
        const float inv = (float)(1.0 / l[h]);
        for (int64_t d = 0; d < Dh; d++) o[h * Dh + d] *= inv;
    }
}

void moec_attn_decode_portable(const float *q, const void *kc, const void *vc, moec_kv_dtype kv, int64_t nkeys,
                               int64_t QH, int64_t Dh, float scale, float *sc, float *o) {
    if (kv == MOEC_KV_F16) decode_portable(q, kc, vc, MOEC_KV_F16, nkeys, QH, Dh, scale, sc, o);
    else decode_portable(q, kc, vc, MOEC_KV_F32, nkeys, QH, Dh, scale, sc, o);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* Cached numbers i .. i+7 of a row of type kv as 8 floats (F16C widens halves exactly). */
AVX2 static inline __attribute__((always_inline)) __m256 ld8(const void *p, int64_t i, moec_kv_dtype kv) {
    if (kv == MOEC_KV_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_loadu_ps((const float *)p + i);
}

/* The sums of 4 vectors' lanes, as one 4-vector. */
AVX2 static inline __m128 sum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* Dh a multiple of 8. Scores 4 keys at a time (4 independent FMA chains: one dot product alone is a chain of Dh/8
 * dependent FMAs, bound by their latency), values 4 keys per pass over the output. */
AVX2 static inline __attribute__((always_inline)) void decode_avx2(const float *q, const void *kc, const void *vc,
                                                                   moec_kv_dtype kv, int64_t nkeys, int64_t QH,
                                                                   int64_t Dh, float scale, float *sc, float *o) {
    const int64_t es = moec_kv_bytes(kv), row = Dh * es;
    float m[MAX_HEADS];
    double l[MAX_HEADS];
    for (int64_t h = 0; h < QH; h++) m[h] = -INFINITY, l[h] = 0.0;
    memset(o, 0, (size_t)(QH * Dh) * sizeof *o);
    const __m128 vscale = _mm_set1_ps(scale);
    for (int64_t j0 = 0; j0 < nkeys; j0 += KB) {
        const int64_t nb = nkeys - j0 < KB ? nkeys - j0 : KB;
        int64_t jj = 0;
        for (; jj + 4 <= nb; jj += 4) {
            prefetch_rows(kc, vc, j0 + jj, 4, Dh, es);
            const char *k0 = (const char *)kc + (j0 + jj) * row, *k1 = k0 + row, *k2 = k1 + row, *k3 = k2 + row;
            for (int64_t h = 0; h < QH; h++) {
                const float *qh = q + h * Dh;
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int64_t d = 0; d < Dh; d += 8) {
                    const __m256 x = _mm256_loadu_ps(qh + d);
                    a0 = _mm256_fmadd_ps(x, ld8(k0, d, kv), a0);
                    a1 = _mm256_fmadd_ps(x, ld8(k1, d, kv), a1);
                    a2 = _mm256_fmadd_ps(x, ld8(k2, d, kv), a2);
                    a3 = _mm256_fmadd_ps(x, ld8(k3, d, kv), a3);
                }
                _mm_storeu_ps(sc + h * KB + jj, _mm_mul_ps(vscale, sum4(a0, a1, a2, a3)));
            }
        }
        for (; jj < nb; jj++) {
            prefetch_rows(kc, vc, j0 + jj, 1, Dh, es);
            const char *k0 = (const char *)kc + (j0 + jj) * row;
            for (int64_t h = 0; h < QH; h++) {
                __m256 a0 = _mm256_setzero_ps();
                for (int64_t d = 0; d < Dh; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * Dh + d), ld8(k0, d, kv), a0);
                sc[h * KB + jj] = scale * _mm_cvtss_f32(sum4(a0, a0, a0, a0));
            }
        }
        for (int64_t h = 0; h < QH; h++) {
            float *r = sc + h * KB, *oh = o + h * Dh;
            online_softmax(r, nb, &m[h], &l[h], oh, Dh);
            const char *v = (const char *)vc + j0 * row;
            int64_t j = 0;
            for (; j + 4 <= nb; j += 4) {
                const __m256 p0 = _mm256_set1_ps(r[j]), p1 = _mm256_set1_ps(r[j + 1]), p2 = _mm256_set1_ps(r[j + 2]),
                             p3 = _mm256_set1_ps(r[j + 3]);
                const char *v0 = v + j * row, *v1 = v0 + row, *v2 = v1 + row, *v3 = v2 + row;
                for (int64_t d = 0; d < Dh; d += 8) {
                    __m256 acc = _mm256_loadu_ps(oh + d);
                    acc = _mm256_fmadd_ps(p0, ld8(v0, d, kv), acc);
                    acc = _mm256_fmadd_ps(p1, ld8(v1, d, kv), acc);
                    acc = _mm256_fmadd_ps(p2, ld8(v2, d, kv), acc);
                    acc = _mm256_fmadd_ps(p3, ld8(v3, d, kv), acc);
                    _mm256_storeu_ps(oh + d, acc);
                }
            }
            for (; j < nb; j++) {
                const __m256 p = _mm256_set1_ps(r[j]);
                for (int64_t d = 0; d < Dh; d += 8)
                    _mm256_storeu_ps(oh + d, _mm256_fmadd_ps(p, ld8(v + j * row, d, kv), _mm256_loadu_ps(oh + d)));
            }
        }
    }
    for (int64_t h = 0; h < QH; h++) {
        const __m256 inv = _mm256_set1_ps((float)(1.0 / l[h]));
        for (int64_t d = 0; d < Dh; d += 8) _mm256_storeu_ps(o + h * Dh + d, _mm256_mul_ps(inv, _mm256_loadu_ps(o + h * Dh + d)));
    }
}

AVX2 static void decode_avx2_f32(const float *q, const void *kc, const void *vc, int64_t nkeys, int64_t QH, int64_t Dh,
                                 float scale, float *sc, float *o) {
    decode_avx2(q, kc, vc, MOEC_KV_F32, nkeys, QH, Dh, scale, sc, o);
}
AVX2 static void decode_avx2_f16(const float *q, const void *kc, const void *vc, int64_t nkeys, int64_t QH, int64_t Dh,
                                 float scale, float *sc, float *o) {
    decode_avx2(q, kc, vc, MOEC_KV_F16, nkeys, QH, Dh, scale, sc, o);
}

/* F16C's vcvtps2ph rounds to nearest even as IEEE says, overflow to ±inf, as moec_f32_to_f16 (a call per number:
 * 20 µs per decoded token and layer of moe-1b's 2048 K and V numbers, 2.5 % of its decode step). */
AVX2 static void narrow_f16_avx2(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = moec_f32_to_f16(src[i]);
}

AVX2 static void widen_f16_avx2(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = moec_f16_to_f32(src[i]);
}
#endif

void moec_attn_decode(const float *q, const void *kc, const void *vc, moec_kv_dtype kv, int64_t nkeys, int64_t QH,
                      int64_t Dh, float scale, float *scratch, float *o) {
#if defined(__x86_64__)
    if (Dh % 8 == 0 && moec_cpu_has_avx2()) {
        (kv == MOEC_KV_F16 ? decode_avx2_f16 : decode_avx2_f32)(q, kc, vc, nkeys, QH, Dh, scale, scratch, o);
        return;
    }
#endif
    moec_attn_decode_portable(q, kc, vc, kv, nkeys, QH, Dh, scale, scratch, o);
}

void moec_kv_to_f32(float *dst, const void *src, moec_kv_dtype kv, int64_t n) {
    if (kv == MOEC_KV_F32) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
#if defined(__x86_64__)
    if (moec_cpu_has_avx2()) {
        widen_f16_avx2(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = moec_f16_to_f32(((const uint16_t *)src)[i]);
}

void moec_kv_from_f32(void *dst, const float *src, moec_kv_dtype kv, int64_t n) {
    if (kv == MOEC_KV_F32) {
        memcpy(dst, src, (size_t)n * sizeof *src);
        return;
    }
#if defined(__x86_64__)
    if (moec_cpu_has_avx2()) {
        narrow_f16_avx2(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = moec_f32_to_f16(src[i]);
}
