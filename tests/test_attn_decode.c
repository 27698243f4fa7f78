/* test_attn_decode.c — one decode row's attention over a KV cache (kernels/cpu/attn_decode.h), both the dispatched
 * kernel (AVX2 where the CPU has it) and the portable one, against softmax(scale · q Kᵀ) V computed in double
 * precision the textbook way (max subtracted, exp, normalise, weighted sum):
 *   - key counts around the 32-key blocks of the online softmax (1, 3, 4, 31, 32, 33, 64, 100, 257) and 1..5 query
 *     heads per KV head, Dh 8, 16, 128 and 12 (not a multiple of 8: the portable path);
 *   - scores whose maximum first appears late (increasing keys: the output is rescaled at every block), early
 *     (decreasing) and large (|score| ~ 80: exp of the raw scores would overflow a float);
 *   - the last cache row past nkeys is poisoned with NaN: it must not be read.
 * Tolerance (|v| < 1): 5e-7 + 4e-8 · max over keys of scale · Σ_d |q_d k_d| — the fp32 scores' rounding error, which
 * goes into the exponent, grows with the sum of the magnitudes of their terms (a wrong block maximum, rescale or
 * value row gives errors of 1e-3 and more). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/attn_decode.h"
#include "test_check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* kind 0: random keys; 1: scores increasing with the position; 2: decreasing; 3: random, scaled to |score| ~ 80 */
/* Returns max |o - ref| / tolerance. */
static double run_case(int portable, int64_t nkeys, int64_t QH, int64_t Dh, int kind) {
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
    if (portable) moec_attn_decode_portable(q, k, v, nkeys, QH, Dh, scale, scratch, o);
    else moec_attn_decode(q, k, v, nkeys, QH, Dh, scale, scratch, o);
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
    return worst / (5e-7 + 4e-8 * smax);
}

int main(void) {
    const int64_t keys[] = {1, 3, 4, 31, 32, 33, 64, 100, 257}, dims[] = {8, 16, 128, 12};
    for (int portable = 0; portable < 2; portable++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (int kind = 0; kind < 4; kind++) {
                double worst = 0;
                int64_t at_keys = 0, at_heads = 0;
                for (size_t ki = 0; ki < sizeof keys / sizeof keys[0]; ki++)
                    for (int64_t QH = 1; QH <= 5; QH++) {
                        const double e = run_case(portable, keys[ki], QH, dims[di], kind);
                        if (!(e <= worst)) worst = e, at_keys = keys[ki], at_heads = QH;
                    }
                static const char *kinds[] = {"random", "max last", "max first", "scores ~80"};
                check(worst <= 1.0, "%s, Dh %lld, %s keys: max |o - ref| / tolerance %.3f over 1..257 keys x 1..5 heads "
                      "(worst at %lld keys, %lld heads)", portable ? "portable" : "dispatched", (long long)dims[di], kinds[kind], worst,
                      (long long)at_keys, (long long)at_heads);
            }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
