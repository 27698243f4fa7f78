/* bench_gemm.c — moec_gemm speed on the reference model's training shapes, against the machine's measured peak.
 *
 * (a) Peak: an FMA-throughput loop (independent accumulators, no memory traffic) in the widest vector width the
 *     CPU has, on one thread and on all pool threads at once. This is what "100%" means below, measured rather than
 *     taken from a data sheet, so clock boost and a shared machine count against the peak as well as the GEMM.
 * (b) GEMM: the forward, input-grad (NN) and weight-grad (TN, beta = 1) products of the reference model:
 *     hidden D = 512, T = 2048 tokens (batch 8 × seq 256), expert FFN F = 1408, 8 experts top-2 (~512 tokens per
 *     expert), vocabulary 8192. Each shape runs --reps times after a warm-up; the table shows the median.
 *
 * Usage: bench_gemm [--threads N] [--reps R] [--isa scalar|avx2|avx512] [--only SUBSTRING-OF-SHAPE-NAME]
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threads.h"
#include "kernels/cpu/gemm.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---------------------------------------------------------------------------------------------------------------
 * FMA peak. 16 independent accumulators cover FMA latency (4-5 cycles) × 2-4 pipes on current x86 cores. */

#define PEAK_ITERS 20000000

static volatile float peak_sink;

__attribute__((target("avx512f"))) static double fma_loop_avx512(int64_t iters) {
    __m512 acc[16], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, acc[i]);
    peak_sink = _mm512_reduce_add_ps(s);
    return (double)iters * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double fma_loop_avx2(int64_t iters) {
    __m256 acc[12], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    }
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    peak_sink = out[0] + out[7];
    return (double)iters * 12 * 8 * 2;
}

static int use_avx512;

static double fma_loop(int64_t iters) { return use_avx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters); }

static void peak_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    double *flops = ctx;
    for (int64_t t = begin; t < end; t++) flops[t] = fma_loop(PEAK_ITERS / 4);
}

/* Best of 5 runs: flop/s of one thread, and of `threads` threads together. */
static void measure_peak(int threads, double *one, double *all) {
    *one = *all = 0;
    double flops[1024];
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s(), f = fma_loop(PEAK_ITERS / 4), t1 = now_s();
        if (f / (t1 - t0) > *one) *one = f / (t1 - t0);
        t0 = now_s();
        moec_parallel_for(threads, 1, peak_task, flops);
        t1 = now_s();
        double total = 0;
        for (int t = 0; t < threads; t++) total += flops[t];
        if (total / (t1 - t0) > *all) *all = total / (t1 - t0);
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * GEMM shapes */

typedef struct {
    const char *name;
    int ta, tb;
    int64_t M, N, K;
    float beta;
} shape;

enum { T = 2048, D = 512, F = 1408, TE = 512, V = 8192 };

static const shape shapes[] = {
    {"attn proj fwd   Y=X.W^T", 0, 1, T, D, D, 0},
    {"attn proj dX    dY.W", 0, 0, T, D, D, 0},
    {"attn proj dW    dY^T.X", 1, 0, D, D, T, 1},
    {"expert w1 fwd   H=X.W1^T", 0, 1, TE, F, D, 0},
    {"expert w1 dX    dH.W1", 0, 0, TE, D, F, 0},
    {"expert w1 dW    dH^T.X", 1, 0, F, D, TE, 1},
    {"expert w2 fwd   Y=H.W2^T", 0, 1, TE, D, F, 0},
    {"expert w2 dH    dY.W2", 0, 0, TE, F, D, 0},
    {"expert w2 dW    dY^T.H", 1, 0, D, F, TE, 1},
    {"lm head fwd     L=X.Wv^T", 0, 1, T, V, D, 0},
    {"lm head dX      dL.Wv", 0, 0, T, D, V, 0},
    {"lm head dW      dL^T.X", 1, 0, V, D, T, 1},
};

static float *random_matrix(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory for %ld floats\n", (long)n);
        exit(1);
    }
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) * (1.0f / (1 << 24)) - 0.5f;
    }
    return p;
}

int main(int argc, char **argv) {
    int threads = 0, reps = 7;
    const char *only = NULL;
    moec_gemm_isa isa = MOEC_GEMM_ISA_AUTO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *s = argv[++i];
            isa = !strcmp(s, "scalar") ? MOEC_GEMM_ISA_SCALAR : !strcmp(s, "avx2") ? MOEC_GEMM_ISA_AVX2
                : !strcmp(s, "avx512") ? MOEC_GEMM_ISA_AVX512 : (moec_gemm_isa)-1;
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--reps R] [--isa scalar|avx2|avx512] [--only NAME]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (moec_threads_init(threads) != MOEC_OK || moec_gemm_set_isa(isa) != MOEC_OK) {
        fprintf(stderr, "bench_gemm: %s (%s)\n", moec_error_message(), moec_error_where());
        return 1;
    }
    threads = moec_threads_count();
    __builtin_cpu_init();
    use_avx512 = __builtin_cpu_supports("avx512f");
    if (!use_avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        fprintf(stderr, "bench_gemm: the peak loop needs AVX2+FMA or AVX-512\n");
        return 1;
    }

    double peak_one, peak_all;
    measure_peak(threads, &peak_one, &peak_all);
    printf("fp32 FMA peak (%s loop): %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads\n",
           use_avx512 ? "zmm" : "ymm", peak_one * 1e-9, peak_all * 1e-9, threads);
    printf("moec_gemm micro-kernel: %s, threads: %d, median of %d runs\n\n", moec_gemm_isa_name(), threads, reps);
    printf("%-26s %2s %6s %6s %6s %9s %9s %7s\n", "shape", "op", "M", "N", "K", "ms", "GFLOP/s", "% peak");

    double *times = malloc(sizeof(double) * (size_t)reps);
    double sum_flops = 0, sum_time = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        if (only && !strstr(sh->name, only)) continue;
        int64_t lda = sh->ta ? sh->M : sh->K, ldb = sh->tb ? sh->K : sh->N;
        float *A = random_matrix(sh->M * sh->K), *B = random_matrix(sh->K * sh->N), *C = random_matrix(sh->M * sh->N);
        moec_gemm(sh->ta, sh->tb, sh->M, sh->N, sh->K, 1, A, lda, B, ldb, sh->beta, C, sh->N); /* warm-up */
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            moec_gemm(sh->ta, sh->tb, sh->M, sh->N, sh->K, 1, A, lda, B, ldb, sh->beta, C, sh->N);
            times[r] = now_s() - t0;
        }
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        double t = times[reps / 2], flops = 2.0 * (double)sh->M * (double)sh->N * (double)sh->K;
        sum_flops += flops;
        sum_time += t;
        printf("%-26s %c%c %6ld %6ld %6ld %9.3f %9.1f %6.1f%%\n", sh->name, sh->ta ? 'T' : 'N', sh->tb ? 'T' : 'N',
               (long)sh->M, (long)sh->N, (long)sh->K, t * 1e3, flops / t * 1e-9, 100 * flops / t / peak_all);
        free(A);
        free(B);
        free(C);
    }
    printf("%-26s %2s %6s %6s %6s %9.3f %9.1f %6.1f%%\n", "all shapes (time-weighted)", "", "", "", "", sum_time * 1e3,
           sum_flops / sum_time * 1e-9, 100 * sum_flops / sum_time / peak_all);
    free(times);
    moec_threads_shutdown();
    return 0;
}
