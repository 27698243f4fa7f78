/* test_attn_decode.c — one decode row's attention over a KV cache (kernels/cpu/attn_decode.h), both the dispatched
 * kernel (AVX2 where the CPU has it) and the portable one, against softmax(scale · q Kᵀ) V computed in double
 * precision the textbook way (max subtracted, exp, normalise, weighted sum):
 *   - key counts around the 32-key blocks of the online softmax (1, 3, 4, 31, 32, 33, 64, 100, 257) and 1..5 query
 *     heads per KV head, Dh 8, 16, 128 and 12 (not a multiple of 8: the portable path);
 *   - scores whose maximum first appears late (increasing keys: the output is rescaled at every block), early
 *     (decreasing) and large (|score| ~ 80: exp of the raw scores would overflow a float);
 *   - the last cache row past nkeys is poisoned with NaN: it must not be read;
 *   - both cache types: fp32, and IEEE halves (the reference then uses the halves' exact values, so the tolerance is
 *     the same: widening a half is exact).
 * Tolerance (|v| < 1): 5e-7 + 8e-8 · max over keys of scale · Σ_d |q_d k_d| — the fp32 scores' rounding error, which
 * goes into the exponent, grows with the sum of the magnitudes of their terms (a wrong block maximum, rescale or
 * value row gives errors of 1e-3 and more). 8e-8 is under one fp32 ulp of that sum (the worst case of the few
 * roundings a score takes is several); the fp32 data reach 0.41 of it, the same data rounded to halves 0.71 (they
 * were at 1.32 of the 4e-8 this test used before the half cache, with the f16 kernel's output equal bit for bit to
 * the fp32 kernel's on those values, checked below: the data, not the kernel). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "kernels/cpu/attn_decode.h"
#include "test_check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static int f16_differs; /* f16 cases whose output differs from the fp32 kernel's on the same (widened) values */

/* kind 0: random keys; 1: scores increasing with the position; 2: decreasing; 3: random, scaled to |score| ~ 80 */
/* Returns max |o - ref| / tolerance. */
static double run_case(int portable, moec_kv_dtype kv, int64_t nkeys, int64_t QH, int64_t Dh, int kind) {
    const float scale = 1.0f / sqrtf((float)Dh);
    float *q = malloc(sizeof(float) * (size_t)(QH * Dh)), *k = malloc(sizeof(float) * (size_t)((nkeys + 1) * Dh)),
          *v = malloc(sizeof(float) * (size_t)((nkeys + 1) * Dh)), *o = malloc(sizeof(float) * (size_t)(QH * Dh)),
          *scratch = malloc(sizeof(float) * (size_t)(QH * MOEC_ATTN_DECODE_KEYS));
    for (int64_t i = 0; i < QH * Dh; i++) q[i] = urand();
    for (int64_t j = 0; j < nkeys; j++)
        for (int64_t d = 0; d < Dh; d++) {
            float x = urand();
            if (kind == 1) x = 0.05f * urand() + (float)j / (float)nkeys * q[d % Dh]; /* head 0's score grows */
            if (kind == 2) x = 0.05f * urand() + (1.0f - (float)j / (float)nkeys) * q[d % Dh];
            if (kind == 3) x *= 80.0f / sqrtf((float)Dh) * 2.0f;
            k[j * Dh + d] = x;
            v[j * Dh + d] = urand();
        }
    for (int64_t d = 0; d < Dh; d++) k[nkeys * Dh + d] = v[nkeys * Dh + d] = NAN; /* one row past the end */
    const int64_t n = (nkeys + 1) * Dh;
    uint16_t *kh = malloc(sizeof(uint16_t) * (size_t)n), *vh = malloc(sizeof(uint16_t) * (size_t)n);
    if (kv == MOEC_KV_F16) { /* the halves, and the reference's inputs are their values */
        moec_kv_from_f32(kh, k, MOEC_KV_F16, n);
        moec_kv_from_f32(vh, v, MOEC_KV_F16, n);
        moec_kv_to_f32(k, kh, MOEC_KV_F16, n);
        moec_kv_to_f32(v, vh, MOEC_KV_F16, n);
    }
    const void *kc = kv == MOEC_KV_F16 ? (const void *)kh : k, *vc = kv == MOEC_KV_F16 ? (const void *)vh : v;
    if (portable) moec_attn_decode_portable(q, kc, vc, kv, nkeys, QH, Dh, scale, scratch, o);
    else moec_attn_decode(q, kc, vc, kv, nkeys, QH, Dh, scale, scratch, o);
    if (kv == MOEC_KV_F16) { /* the fp32 kernel on the widened halves: the same arithmetic, so the same bits */
        float *o32 = malloc(sizeof(float) * (size_t)(QH * Dh));
        if (portable) moec_attn_decode_portable(q, k, v, MOEC_KV_F32, nkeys, QH, Dh, scale, scratch, o32);
        else moec_attn_decode(q, k, v, MOEC_KV_F32, nkeys, QH, Dh, scale, scratch, o32);
        f16_differs += memcmp(o, o32, sizeof(float) * (size_t)(QH * Dh)) != 0;
        free(o32);
    }
    free(kh), free(vh);
    double worst = 0, smax = 0;
    double *p = malloc(sizeof(double) * (size_t)nkeys);
    for (int64_t h = 0; h < QH; h++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < nkeys; j++) {
            double s = 0, a = 0;
            for (int64_t d = 0; d < Dh; d++) {
                s += (double)q[h * Dh + d] * k[j * Dh + d];
                a += fabs((double)q[h * Dh + d] * k[j * Dh + d]);
            }
            p[j] = s * scale;
            mx = p[j] > mx ? p[j] : mx;
            smax = a * scale > smax ? a * scale : smax;
        }
        for (int64_t j = 0; j < nkeys; j++) sum += (p[j] = exp(p[j] - mx));
        for (int64_t d = 0; d < Dh; d++) {
            double ref = 0;
            for (int64_t j = 0; j < nkeys; j++) ref += p[j] / sum * v[j * Dh + d];
            const double err = fabs(o[h * Dh + d] - ref);
            worst = err > worst || isnan(err) ? (isnan(err) ? INFINITY : err) : worst;
        }
    }
    free(p), free(q), free(k), free(v), free(o), free(scratch);
    return worst / (5e-7 + 8e-8 * smax);
}

/* The cache's conversions (F16C where the CPU has it) against the library's exact scalar ones (core/dtype.h, tested
 * on every edge value by test_dtype): every half widened; narrowed, every half's value, the midpoints between
 * neighbours (ties: to even), values past 65504 (to ±inf), subnormals, ±0, ±inf, NaN (a NaN either way), and
 * random floats over the whole range. Lengths not a multiple of 8 take the vector loop and the scalar tail. */
static void test_conversions(void) {
    const int64_t n = 65536;
    uint16_t *h = malloc(sizeof *h * (size_t)n), *h2 = malloc(sizeof *h2 * 4 * (size_t)n);
    float *f = malloc(sizeof *f * 4 * (size_t)n);
    for (int64_t i = 0; i < n; i++) h[i] = (uint16_t)i;
    moec_kv_to_f32(f, h, MOEC_KV_F16, n - 3);
    int64_t bad = 0;
    for (int64_t i = 0; i < n - 3; i++) {
        const float want = moec_f16_to_f32(h[i]);
        bad += isnan(want) ? !isnan(f[i]) : memcmp(&want, &f[i], 4) != 0;
    }
    check(bad == 0, "kv_to_f32: all 65533 halves widened as moec_f16_to_f32 (%lld differ)", (long long)bad);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const float a = moec_f16_to_f32((uint16_t)i), b = moec_f16_to_f32((uint16_t)(i + 1));
        f[m++] = a;
        if (isfinite(a) && isfinite(b) && ((i + 1) & 0x7fff) != 0) f[m++] = 0.5f * a + 0.5f * b; /* exact midpoint */
    }
    const float extra[] = {65504.0f, 65519.99f, 65520.0f, 1e5f, -1e5f, 3.4e38f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-10f,
                           -0.0f, INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) f[m++] = extra[i];
    for (int64_t i = 0; i < 100000 && m < 4 * n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        const uint32_t u = (uint32_t)(rng >> 32);
        memcpy(&f[m++], &u, 4);
    }
    moec_kv_from_f32(h2, f, MOEC_KV_F16, m);
    bad = 0;
    for (int64_t i = 0; i < m; i++) {
        const uint16_t want = moec_f32_to_f16(f[i]);
        const int nan_want = (want & 0x7c00) == 0x7c00 && (want & 0x3ff), nan_got = (h2[i] & 0x7c00) == 0x7c00 && (h2[i] & 0x3ff);
        bad += nan_want ? !nan_got : h2[i] != want;
    }
    check(bad == 0, "kv_from_f32: %lld floats (every half, midpoints, overflow, subnormals, random) narrowed as "
          "moec_f32_to_f16 (%lld differ)", (long long)m, (long long)bad);
    free(h), free(h2), free(f);
}

int main(void) {
    test_conversions();
    const int64_t keys[] = {1, 3, 4, 31, 32, 33, 64, 100, 257}, dims[] = {8, 16, 128, 12};
    for (int kvi = 0; kvi < 2; kvi++)
    for (int portable = 0; portable < 2; portable++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (int kind = 0; kind < 4; kind++) {
                double worst = 0;
                int64_t at_keys = 0, at_heads = 0;
                for (size_t ki = 0; ki < sizeof keys / sizeof keys[0]; ki++)
                    for (int64_t QH = 1; QH <= 5; QH++) {
                        const double e = run_case(portable, kvi ? MOEC_KV_F16 : MOEC_KV_F32, keys[ki], QH, dims[di], kind);
                        if (!(e <= worst)) worst = e, at_keys = keys[ki], at_heads = QH;
                    }
                static const char *kinds[] = {"random", "max last", "max first", "scores ~80"};
                check(worst <= 1.0, "%s, %s cache, Dh %lld, %s keys: max |o - ref| / tolerance %.3f over 1..257 keys x 1..5 heads "
                      "(worst at %lld keys, %lld heads)", portable ? "portable" : "dispatched", kvi ? "f16" : "f32", (long long)dims[di], kinds[kind], worst,
                      (long long)at_keys, (long long)at_heads);
            }
    check(f16_differs == 0, "the f16 kernels' outputs == the fp32 kernels' on the widened values, bit for bit (%d of "
          "%d cases differ)", f16_differs, 2 * 4 * 4 * 9 * 5);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
