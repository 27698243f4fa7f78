/* bench_qmatmul.c — moec_qmat_matmul speed for f32 / bf16 / E4M3 weights, against the machine's measured limits.
 *
 * (a) Read bandwidth: a plain streaming sum (AVX2 loads, 8 accumulators) over a buffer far larger than L3, on one
 *     thread and on all pool threads. This is "100%" for the decode rows.
 * (b) Decode: T = 1 (and 2, 4, 8) on a weight matrix larger than L3 (default 16384 × 4096: 256 / 128 / 64 MB);
 *     GB/s of weight bytes streamed and the percentage of (a).
 * (c) Prefill: T = 128 and 512 on square matrices; GFLOP/s (2·T·O·I per call) against fp32 moec_gemm on the same
 *     shape (Y = X · Wᵀ with W fp32).
 * (d) With --sweep N: the decode / prefill crossover on N × N, T = 1..48 with each regime forced
 *     (moec_qmat_set_decode_max). --skip-main skips (a)-(c).
 * (e) With --f8-streams-ab PAIRS: E4M3 decode at T = 1 with the four-stream tiles on and off, alternating call by
 *     call (moec_qmat.streamed), so that both see the same moments of a shared machine's memory.
 * Every number is the median of --reps runs after a warm-up.
 *
 * Usage: bench_qmatmul [--threads N] [--reps R] [--rows O] [--cols I] [--sweep N] [--skip-main]
 *                      [--isa scalar|avx2|avx512]
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "core/dtype.h"
#include "core/threads.h"
#include "io/gguf.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/qmatmul.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static int reps = 15;

/* ---------------------------------------------------------------------------------------------------------------
 * (a) Read bandwidth */

/* GB/s of a streaming read over `bytes` with the pool's threads (or 1). */
static double read_bandwidth(const float *buf, int64_t bytes, int one_thread) {
    return bench_read_bandwidth(buf, bytes, one_thread, reps, NULL);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Weights */

typedef struct {
    moec_qmat m;
    void *data;
    float *scale;
} bench_mat;

static void mat_make(bench_mat *b, moec_qtype type, int64_t O, int64_t I) {
    b->data = aligned_alloc(64, ((size_t)(O * moec_qtype_row_bytes(type, I)) + 63) / 64 * 64);
    b->scale = type == MOEC_QT_F8E4M3 ? malloc(sizeof(float) * (size_t)O) : NULL;
    float *row = malloc(sizeof(float) * (size_t)I);
    for (int64_t o = 0; o < O; o++) {
        for (int64_t i = 0; i < I; i++) row[i] = 0.05f * frand();
        switch (type) {
        case MOEC_QT_F32: memcpy((float *)b->data + o * I, row, sizeof(float) * (size_t)I); break;
        case MOEC_QT_BF16:
            for (int64_t i = 0; i < I; i++) ((uint16_t *)b->data)[o * I + i] = moec_f32_to_bf16(row[i]);
            break;
        case MOEC_QT_F8E4M3: moec_quantize_row_e4m3(row, I, (uint8_t *)b->data + o * I, &b->scale[o]); break;
        case MOEC_QT_F16:
            for (int64_t i = 0; i < I; i++) ((uint16_t *)b->data)[o * I + i] = moec_f32_to_f16(row[i]);
            break;
        case MOEC_QT_Q8_0: moec_q8_0_quantize(row, I, (uint8_t *)b->data + o * moec_qtype_row_bytes(type, I)); break;
        case MOEC_QT_BF16P: {
            uint16_t *h = malloc(sizeof *h * (size_t)I);
            for (int64_t i = 0; i < I; i++) h[i] = moec_f32_to_bf16(row[i]);
            if (moec_bf16p_pack_row(h, I, (uint8_t *)b->data + o * moec_qtype_row_bytes(type, I)) < 0) abort();
            free(h);
            break;
        }
        default: break; /* ggml's other block types: not benchmarked here (no quantiser for them in moec) */
        }
    }
    free(row);
    b->m = (moec_qmat){.type = type, .rows = O, .cols = I, .data = b->data, .scale = b->scale};
}

static void mat_free(bench_mat *b) {
    free(b->data);
    free(b->scale);
}

/* Median seconds of moec_qmat_matmul (or, with W == NULL, fp32 moec_gemm on Wf) on T random rows. */
static double time_matmul(const moec_qmat *W, const float *Wf, int64_t O, int64_t I, int64_t T) {
    float *X = malloc(sizeof(float) * (size_t)(T * I)), *Y = malloc(sizeof(float) * (size_t)(T * O));
    for (int64_t k = 0; k < T * I; k++) X[k] = frand();
    double t[64];
    for (int r = -1; r < reps; r++) {
        double t0 = bench_now();
        if (W) moec_qmat_matmul(Y, O, X, I, T, W);
        else moec_gemm(0, 1, T, O, I, 1.0f, X, I, Wf, I, 0.0f, Y, O);
        if (r >= 0) t[r] = bench_now() - t0;
    }
    free(X);
    free(Y);
    return bench_median(t, reps);
}

static const moec_qtype types[] = {MOEC_QT_F32, MOEC_QT_BF16, MOEC_QT_F8E4M3};
/* decode also for f16 and q8_0 (their prefill is bf16's: dequantise, then the same GEMM) */
static const moec_qtype decode_types[] = {MOEC_QT_F32, MOEC_QT_BF16, MOEC_QT_BF16P, MOEC_QT_F16, MOEC_QT_Q8_0,
                                          MOEC_QT_F8E4M3};

int main(int argc, char **argv) {
    int threads = 0, sweep = 0, skip_main = 0, streams_ab = 0;
    int64_t O = 16384, I = 4096;
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--threads") && k + 1 < argc) threads = atoi(argv[++k]);
        else if (!strcmp(argv[k], "--reps") && k + 1 < argc) reps = atoi(argv[++k]);
        else if (!strcmp(argv[k], "--rows") && k + 1 < argc) O = atoll(argv[++k]);
        else if (!strcmp(argv[k], "--cols") && k + 1 < argc) I = atoll(argv[++k]);
        else if (!strcmp(argv[k], "--sweep") && k + 1 < argc) sweep = atoi(argv[++k]);
        else if (!strcmp(argv[k], "--skip-main")) skip_main = 1;
        else if (!strcmp(argv[k], "--f8-streams-ab") && k + 1 < argc) streams_ab = atoi(argv[++k]);
        else if (!strcmp(argv[k], "--isa") && k + 1 < argc) {
            const char *s = argv[++k];
            moec_gemm_isa isa = !strcmp(s, "scalar") ? MOEC_GEMM_ISA_SCALAR
                                : !strcmp(s, "avx2") ? MOEC_GEMM_ISA_AVX2
                                                     : MOEC_GEMM_ISA_AVX512;
            if (moec_qmat_set_isa(isa) != MOEC_OK || moec_gemm_set_isa(isa) != MOEC_OK) {
                fprintf(stderr, "bench_qmatmul: %s\n", moec_error_message());
                return 1;
            }
        } else {
            fprintf(stderr, "usage: bench_qmatmul [--threads N] [--reps R] [--rows O] [--cols I] [--sweep N] "
                            "[--skip-main] [--isa scalar|avx2|avx512] [--f8-streams-ab PAIRS]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    moec_threads_init(threads);
    threads = moec_threads_count();
    printf("qmatmul: %d thread(s), isa %s (gemm %s), median of %d\n", threads, moec_qmat_isa_name(),
           moec_gemm_isa_name(), reps);

    if (streams_ab > 0) { /* (e) */
        bench_mat b;
        mat_make(&b, MOEC_QT_F8E4M3, O, I);
        float *X = malloc(sizeof(float) * (size_t)I), *Y = malloc(sizeof(float) * (size_t)O);
        for (int64_t k = 0; k < I; k++) X[k] = frand();
        double on[256], off[256], ratio[256];
        if (streams_ab > 256) streams_ab = 256;
        for (int r = -1; r < streams_ab; r++)
            for (int s = 0; s < 2; s++) {
                b.m.streamed = s == (r & 1); /* alternate which goes first */
                double t0 = bench_now();
                moec_qmat_matmul(Y, O, X, I, 1, &b.m);
                const double dt = bench_now() - t0;
                if (r >= 0) *(s == (r & 1) ? &on[r] : &off[r]) = dt;
            }
        for (int r = 0; r < streams_ab; r++) ratio[r] = off[r] / on[r];
        const double gb = (double)(O * I) * 1e-9;
        printf("\n(e) E4M3 decode, W %lld x %lld, T = 1, %d pairs alternating: four streams %.1f GB/s, adjacent rows "
               "%.1f GB/s (medians); median of the pairs' speed ratios %.3f\n",
               (long long)O, (long long)I, streams_ab, gb / bench_median(on, streams_ab),
               gb / bench_median(off, streams_ab), bench_median(ratio, streams_ab));
        free(X);
        free(Y);
        mat_free(&b);
    }
    if (!skip_main) {
        /* (a) */
        int64_t bw_bytes = 512ll << 20;
        float *buf = aligned_alloc(64, (size_t)bw_bytes);
        for (int64_t k = 0; k < bw_bytes / 4; k++) buf[k] = 1.0f;
        double bw1 = read_bandwidth(buf, bw_bytes, 1), bw = read_bandwidth(buf, bw_bytes, 0);
        free(buf);
        printf("\n(a) read bandwidth, streaming sum over 512 MiB: %.1f GB/s on 1 thread, %.1f GB/s on %d\n", bw1, bw,
               threads);

        /* (b) Each T = 1 repetition is paired with a streaming read of as many bytes from a different buffer (both
         * larger than L3), so that "% bw" compares the two under the same load on a shared machine. */
        printf("\n(b) decode, W %lld x %lld; bw = streaming read of the same number of bytes, interleaved\n",
               (long long)O, (long long)I);
        printf("%-5s %7s %8s %10s %9s %7s %10s %10s %10s\n", "type", "MB", "T=1 ms", "T=1 GB/s", "bw GB/s", "% bw",
               "T=2 GB/s", "T=4 GB/s", "T=8 GB/s");
        for (size_t ti = 0; ti < sizeof decode_types / sizeof *decode_types; ti++) {
            bench_mat b;
            mat_make(&b, decode_types[ti], O, I);
            double bytes = (double)(O * moec_qtype_row_bytes(decode_types[ti], I));
            float *other = aligned_alloc(64, ((size_t)bytes + 63) / 64 * 64);
            memset(other, 0, (size_t)bytes);
            float *X = malloc(sizeof(float) * (size_t)I), *Y = malloc(sizeof(float) * (size_t)O);
            for (int64_t k = 0; k < I; k++) X[k] = frand();
            double td[64], ts[64];
            int save = reps;
            reps = 1;
            for (int r = -1; r < save; r++) {
                double t0 = bench_now();
                moec_qmat_matmul(Y, O, X, I, 1, &b.m);
                double t1 = bench_now(), gbs = read_bandwidth(other, (int64_t)bytes, 0);
                if (r >= 0) {
                    td[r] = t1 - t0;
                    ts[r] = bytes / gbs * 1e-9;
                }
            }
            reps = save;
            double t1 = bench_median(td, reps), tsm = bench_median(ts, reps);
            double t2 = time_matmul(&b.m, NULL, O, I, 2), t4 = time_matmul(&b.m, NULL, O, I, 4),
                   t8 = time_matmul(&b.m, NULL, O, I, 8);
            printf("%-5s %7.0f %8.2f %10.1f %9.1f %6.0f%% %10.1f %10.1f %10.1f\n", moec_qtype_name(decode_types[ti]),
                   bytes / 1e6, t1 * 1e3, bytes / t1 * 1e-9, bytes / tsm * 1e-9, 100 * tsm / t1, bytes / t2 * 1e-9,
                   bytes / t4 * 1e-9, bytes / t8 * 1e-9);
            free(other);
            free(X);
            free(Y);
            mat_free(&b);
        }

        /* (c) */
        printf("\n(c) prefill, GFLOP/s (2·T·O·I per call); ratio = qmat / fp32 moec_gemm on the same shape\n");
        printf("%-12s %5s %9s %9s %9s %9s %7s %7s %7s\n", "O x I", "T", "gemm", "f32", "bf16", "fp8", "f32", "bf16",
               "fp8");
        static const int64_t sq[] = {1024, 4096};
        static const int64_t Tp[] = {128, 512};
        for (size_t si = 0; si < 2; si++) {
            int64_t n = sq[si];
            bench_mat b[3];
            for (size_t ti = 0; ti < 3; ti++) mat_make(&b[ti], types[ti], n, n);
            for (size_t k = 0; k < 2; k++) {
                int64_t T = Tp[k];
                double flops = 2.0 * (double)T * (double)n * (double)n;
                double g = flops / time_matmul(NULL, b[0].data, n, n, T) * 1e-9, q[3];
                for (size_t ti = 0; ti < 3; ti++) q[ti] = flops / time_matmul(&b[ti].m, NULL, n, n, T) * 1e-9;
                printf("%5lld x %-5lld %5lld %9.1f %9.1f %9.1f %9.1f %6.0f%% %6.0f%% %6.0f%%\n", (long long)n,
                       (long long)n, (long long)T, g, q[0], q[1], q[2], 100 * q[0] / g, 100 * q[1] / g, 100 * q[2] / g);
            }
            for (size_t ti = 0; ti < 3; ti++) mat_free(&b[ti]);
        }
    }

    /* (d) */
    if (sweep) {
        int64_t n = sweep;
        printf("\n(d) crossover on %lld x %lld: ms per call, decode forced / prefill forced\n", (long long)n,
               (long long)n);
        printf("%4s", "T");
        for (size_t ti = 0; ti < 3; ti++) printf(" %9s-dec %9s-pre", moec_qtype_name(types[ti]), moec_qtype_name(types[ti]));
        printf("\n");
        bench_mat b[3];
        for (size_t ti = 0; ti < 3; ti++) mat_make(&b[ti], types[ti], n, n);
        static const int64_t sweep_T[] = {1, 2, 4, 8, 12, 16, 24, 32, 48};
        for (size_t k = 0; k < sizeof sweep_T / sizeof *sweep_T; k++) {
            int64_t T = sweep_T[k];
            printf("%4lld", (long long)T);
            for (size_t ti = 0; ti < 3; ti++) {
                moec_qmat_set_decode_max(types[ti], 1 << 30);
                double td = time_matmul(&b[ti].m, NULL, n, n, T);
                moec_qmat_set_decode_max(types[ti], 0);
                double tp = time_matmul(&b[ti].m, NULL, n, n, T);
                moec_qmat_set_decode_max(types[ti], -1);
                printf(" %13.3f %13.3f", td * 1e3, tp * 1e3);
            }
            printf("\n");
        }
        for (size_t ti = 0; ti < 3; ti++) mat_free(&b[ti]);
    }
    moec_threads_shutdown();
    moec_qmat_release();
    return 0;
}
