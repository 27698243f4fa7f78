/* bench_util.h — what every moec benchmark needs (header-only: each bench is one translation unit): a monotonic
 * clock, medians, and the machine's measured read bandwidth (the bound of every weight-streaming kernel). */
#ifndef MOEC_BENCH_UTIL_H
#define MOEC_BENCH_UTIL_H

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "core/threads.h"

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    const float *buf;
    int64_t chunk; /* floats per task index */
    float sums[64];
} bench_stream_job;

/* A plain streaming sum: 8 independent AVX2 accumulators, loads only — the fastest way to read memory. */
__attribute__((target("avx2"))) static float bench_stream_sum(const float *p, int64_t n) {
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i + 64 <= n; i += 64)
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) a[k] = _mm256_add_ps(a[k], _mm256_loadu_ps(p + i + 8 * k));
    for (int k = 1; k < 8; k++) a[0] = _mm256_add_ps(a[0], a[k]);
    float out[8];
    _mm256_storeu_ps(out, a[0]);
    return out[0] + out[7];
}

static void bench_stream_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    bench_stream_job *j = ctx;
    float s = 0;
    for (int64_t c = begin; c < end; c++) s += bench_stream_sum(j->buf + c * j->chunk, j->chunk);
    j->sums[thread_index & 63] += s;
}

/* GB/s of a streaming read over buf[0..bytes) with the pool's threads (or one), median of reps after a warm-up;
 * *best (may be NULL) receives the fastest rep. */
static inline double bench_read_bandwidth(const float *buf, int64_t bytes, int one_thread, int reps, double *best) {
    bench_stream_job j = {.buf = buf, .chunk = 1 << 16};
    const int64_t chunks = bytes / 4 / j.chunk;
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        double t0 = bench_now();
        if (one_thread) bench_stream_task(&j, 0, chunks, 0);
        else moec_parallel_for(chunks, 1, bench_stream_task, &j);
        if (r >= 0) t[r] = bench_now() - t0;
    }
    const double gb = (double)(chunks * j.chunk * 4) * 1e-9;
    const double med = gb / bench_median(t, reps); /* sorts t: t[0] is the fastest */
    if (best) *best = gb / t[0];
    return med;
}

#endif
