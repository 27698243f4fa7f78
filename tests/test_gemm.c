/* test_gemm.c — moec_gemm and the thread pool against independent oracles.
 *
 * GEMM: every instruction set this CPU runs × 1 and 2 threads × all four transpose cases × shapes chosen to hit
 * tile edges, cache-block edges (K > KC, N > NC, M > MC), K = 1 and 1×1×1, with padded leading dimensions (the
 * padding must come back untouched) and several alpha/beta pairs, including beta = 0 over a NaN-filled C. The
 * oracle is a triple loop in double precision written here, not moec_gemm_ref (which is tested against it too).
 * Error bound per element: (K + 2) · 2⁻²³ · (|alpha| Σ|a·b| + |beta·c|), the worst case for fp32 summation.
 *
 * Thread pool: every index of [0, n) is visited exactly once for many n and grains, thread indices stay in range,
 * nested loops run, resizing works, and two application threads may call moec_gemm at the same time.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threads.h"
#include "kernels/cpu/gemm.h"

#include "test_check.h"

static _Thread_local uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

/* ---------------------------------------------------------------------------------------------------------------
 * GEMM */

typedef void (*gemm_fn)(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                        float, float *, int64_t);

/* Runs one case and returns the largest error divided by its bound (<= 1 passes; NAN if something is NaN or the
 * padding of C was touched). */
static double run_case(gemm_fn fn, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                       int64_t pad) {
    int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, lda = a_cols + pad;
    int64_t b_rows = tb ? N : K, b_cols = tb ? K : N, ldb = b_cols + pad;
    int64_t ldc = N + pad;
    float *A = malloc(sizeof(float) * (size_t)(a_rows * lda + 1));
    float *B = malloc(sizeof(float) * (size_t)(b_rows * ldb + 1));
    float *C = malloc(sizeof(float) * (size_t)(M * ldc + 1));
    float *C0 = malloc(sizeof(float) * (size_t)(M * ldc + 1));
    for (int64_t i = 0; i < a_rows * lda; i++) A[i] = (i % lda) < a_cols ? frand() : NAN; /* padding poisoned */
    for (int64_t i = 0; i < b_rows * ldb; i++) B[i] = (i % ldb) < b_cols ? frand() : NAN;
    for (int64_t i = 0; i < M * ldc; i++) C0[i] = (i % ldc) < N ? (beta == 0 ? NAN : frand()) : 12345.0f;
    memcpy(C, C0, sizeof(float) * (size_t)(M * ldc));

    fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);

    double worst = 0;
    for (int64_t i = 0; i < M && !isnan(worst); i++) {
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= N) { /* padding must be untouched */
                if (C[i * ldc + j] != 12345.0f) worst = NAN;
                continue;
            }
            double sum = 0, abs_sum = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                sum += a * b;
                abs_sum += fabs(a * b);
            }
            double ref = (double)alpha * sum, mag = fabs((double)alpha) * abs_sum;
            if (beta != 0) {
                ref += (double)beta * C0[i * ldc + j];
                mag += fabs((double)beta * C0[i * ldc + j]);
            }
            double bound = (double)(K + 2) * 0x1p-23 * mag + 1e-30;
            double err = fabs((double)C[i * ldc + j] - ref);
            if (isnan(C[i * ldc + j])) { worst = NAN; break; }
            if (err / bound > worst) worst = err / bound;
        }
    }
    free(A);
    free(B);
    free(C);
    free(C0);
    return worst;
}

static const int64_t shapes[][3] = {
    {1, 1, 1},     {17, 33, 5},   {300, 257, 129}, {6, 16, 256},  {14, 32, 300}, {1, 1000, 3}, {1000, 1, 7},
    {64, 64, 1},   {5, 4100, 3},  {2, 3, 600},     {145, 17, 70}, {229, 31, 9},  {33, 65, 513}, {7, 9, 11},
    {96, 128, 64}, {13, 40, 257},
};
static const float alpha_beta[][2] = {{1, 0}, {0.5f, 1}, {-2, 0.25f}, {1, 1}};

static void test_gemm_all(const char *label, gemm_fn fn) {
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t v = 0; v < sizeof alpha_beta / sizeof alpha_beta[0]; v++) {
            int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float alpha = alpha_beta[v][0], beta = alpha_beta[v][1];
            int64_t pad = (s + v) % 3 == 0 ? 0 : (int64_t)(s % 5) + 1;
            double worst = 0;
            for (int t = 0; t < 4; t++) {
                double w = run_case(fn, t >> 1, t & 1, M, N, K, alpha, beta, pad);
                if (isnan(w) || w > worst) worst = w;
                if (isnan(worst)) break;
            }
            check(!isnan(worst) && worst <= 1.0, "%s %ldx%ldx%ld alpha=%g beta=%g pad=%ld, all 4 transposes: "
                  "max err/bound %.3g", label, (long)M, (long)N, (long)K, alpha, beta, (long)pad, worst);
        }
    }
}

/* Special values: K = 0 and alpha = 0 must scale C by beta without reading A/B (NULL here); M or N = 0 is a no-op. */
static void test_gemm_degenerate(void) {
    float C[6] = {1, 2, 3, 4, 5, 6};
    moec_gemm(0, 0, 2, 3, 0, 1, NULL, 1, NULL, 3, 2, C, 3);
    check(C[0] == 2 && C[5] == 12, "K=0 scales C by beta");
    moec_gemm(1, 1, 2, 3, 4, 0, NULL, 2, NULL, 4, 0, C, 3);
    check(C[0] == 0 && C[5] == 0, "alpha=0, beta=0 zeroes C without reading A or B");
    moec_gemm(0, 0, 0, 3, 4, 1, NULL, 4, NULL, 3, 0, C, 3);
    moec_gemm(0, 0, 2, 0, 4, 1, NULL, 4, NULL, 3, 0, C, 3);
    check(1, "M=0 and N=0 return without touching anything");
}

/* ---------------------------------------------------------------------------------------------------------------
 * Thread pool */

typedef struct {
    _Atomic int *visits;
    _Atomic int bad_index;
    _Atomic int calls;
    int nested;
} visit_ctx;

static void visit_inner(void *ctx, int64_t begin, int64_t end, int thread_index) {
    visit_ctx *v = ctx;
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&v->visits[i], 1);
}

static void visit(void *ctx, int64_t begin, int64_t end, int thread_index) {
    visit_ctx *v = ctx;
    atomic_fetch_add(&v->calls, 1);
    if (thread_index < 0 || thread_index >= moec_threads_count()) atomic_store(&v->bad_index, 1);
    if (v->nested) { /* a loop started from inside a loop must run (inline) and cover its range */
        moec_parallel_for(end - begin, 1, visit_inner, &(visit_ctx){.visits = v->visits + begin});
        return;
    }
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&v->visits[i], 1);
}

static void test_parallel_for(int threads) {
    static const int64_t ns[] = {0, 1, 2, 3, 7, 100, 1000, 100003};
    static const int64_t grains[] = {1, 16, 1000};
    for (int nested = 0; nested < 2; nested++)
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t b = 0; b < sizeof grains / sizeof grains[0]; b++) {
                int64_t n = ns[a];
                visit_ctx v = {.visits = calloc((size_t)n + 1, sizeof(_Atomic int)), .nested = nested};
                for (int rep = 0; rep < 20; rep++) moec_parallel_for(n, grains[b], visit, &v);
                int ok = !atomic_load(&v.bad_index);
                for (int64_t i = 0; i < n; i++) ok &= atomic_load(&v.visits[i]) == 20;
                int calls = atomic_load(&v.calls);
                ok &= calls <= 20 * threads && (n == 0 ? calls == 0 : calls >= 20);
                check(ok, "parallel_for threads=%d n=%ld grain=%ld nested=%d: each index once per loop (%d chunks)",
                      threads, (long)n, (long)grains[b], nested, calls);
                free(v.visits);
            }
}

/* The balanced loop: the same coverage guarantees, for several piece sizes. */
static void test_parallel_for_balanced(int threads) {
    static const int64_t ns[] = {0, 1, 2, 3, 7, 100, 1000, 100003};
    static const int64_t grains[] = {1, 16, 1000}, pieces[] = {1, 7, 1000};
    for (int guided = 0; guided < 2; guided++)
    for (int nested = 0; nested < 2; nested++)
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t b = 0; b < sizeof grains / sizeof grains[0]; b++)
                for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
                    int64_t n = ns[a];
                    visit_ctx v = {.visits = calloc((size_t)n + 1, sizeof(_Atomic int)), .nested = nested};
                    for (int rep = 0; rep < 5; rep++)
                        (guided ? moec_parallel_for_guided : moec_parallel_for_balanced)(n, grains[b], pieces[p],
                                                                                          visit, &v);
                    int ok = !atomic_load(&v.bad_index);
                    for (int64_t i = 0; i < n; i++) ok &= atomic_load(&v.visits[i]) == 5;
                    ok &= atomic_load(&v.visits[n]) == 0;
                    check(ok, "parallel_for_%s threads=%d n=%ld grain=%ld piece=%ld nested=%d: each index once "
                          "per loop (%d calls)", guided ? "guided" : "balanced", threads, (long)n, (long)grains[b],
                          (long)pieces[p], nested, atomic_load(&v.calls));
                    free(v.visits);
                }
}

/* With thread 0 slowed down, the other threads must take pieces of thread 0's share (its first half, for 2). */
typedef struct {
    _Atomic int *visits;
    _Atomic int stolen; /* indices of chunk 0 run by another thread */
    int64_t chunk0_end;
} steal_ctx;

static void steal_visit(void *ctx, int64_t begin, int64_t end, int thread_index) {
    steal_ctx *v = ctx;
    if (thread_index == 0) nanosleep(&(struct timespec){0, 2000000}, NULL); /* 2 ms per piece */
    for (int64_t i = begin; i < end; i++) {
        atomic_fetch_add(&v->visits[i], 1);
        if (thread_index != 0 && i < v->chunk0_end) atomic_fetch_add(&v->stolen, 1);
    }
}

static void test_balanced_steals(int guided) {
    const int threads = moec_threads_count();
    const int64_t n = 64;
    steal_ctx v = {.visits = calloc((size_t)n, sizeof(_Atomic int)), .chunk0_end = n / threads + (n % threads > 0)};
    (guided ? moec_parallel_for_guided : moec_parallel_for_balanced)(n, 1, 1, steal_visit, &v);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= atomic_load(&v.visits[i]) == 1;
    /* thread 0 needs 2 ms per index: in the time it does a few, the others finish theirs and take the rest */
    const int stolen = atomic_load(&v.stolen);
    /* guided: thread 0's first claim is half of its chunk, in one call, so it keeps at least that half (the
     * balanced loop's thread 0 keeps one piece); the others take the rest */
    check(ok && stolen >= v.chunk0_end / 2 - (guided ? 1 : 0) &&
              (!guided || stolen <= v.chunk0_end - v.chunk0_end / 2),
          "parallel_for_%s, %d threads, thread 0 slow: every index once, %d of thread 0's %ld indices taken by "
          "others", guided ? "guided" : "balanced", threads, stolen, (long)v.chunk0_end);
    free(v.visits);
}

/* Two application threads calling moec_gemm at once: one gets the pool, the other runs inline; both correct. */
static void *concurrent_gemm(void *arg) {
    double *worst = arg;
    double w = 0;
    for (int rep = 0; rep < 4; rep++) {
        double r = run_case(moec_gemm, rep & 1, rep >> 1, 150, 140, 130, 1, 0.5f, 1);
        if (isnan(r) || r > w) w = r;
    }
    *worst = w;
    return NULL;
}

static void test_concurrent_callers(void) {
    pthread_t t[2];
    double worst[2] = {0, 0};
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, concurrent_gemm, &worst[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    check(!isnan(worst[0]) && !isnan(worst[1]) && worst[0] <= 1 && worst[1] <= 1,
          "two threads calling moec_gemm concurrently: max err/bound %.3g, %.3g", worst[0], worst[1]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* a hang or crash should show the last check that ran */
    /* Uninitialised pool: loops and GEMM run single-threaded. */
    check(moec_threads_count() == 1, "uninitialised pool reports 1 thread");
    test_parallel_for(1);
    test_parallel_for_balanced(1);
    test_gemm_degenerate();

    static const moec_gemm_isa isas[] = {MOEC_GEMM_ISA_SCALAR, MOEC_GEMM_ISA_AVX2, MOEC_GEMM_ISA_AVX512};
    for (int threads = 1; threads <= 2; threads++) {
        moec_status st = moec_threads_init(threads);
        check(st == MOEC_OK && moec_threads_count() == threads, "moec_threads_init(%d)", threads);
        test_parallel_for(threads);
        test_parallel_for_balanced(threads);
        if (threads > 1) test_balanced_steals(0), test_balanced_steals(1);
        for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
            if (moec_gemm_set_isa(isas[i]) != MOEC_OK) {
                printf("skip %s micro-kernel: %s\n", i == 1 ? "avx2" : "avx512", moec_error_message());
                continue;
            }
            char label[64];
            snprintf(label, sizeof label, "%s/%dt", moec_gemm_isa_name(), threads);
            test_gemm_all(label, moec_gemm);
        }
        moec_gemm_set_isa(MOEC_GEMM_ISA_AUTO);
        test_concurrent_callers();
    }
    test_gemm_all("ref", moec_gemm_ref);

    /* Resizing and shutdown. */
    check(moec_threads_init(0) == MOEC_OK && moec_threads_count() >= 1, "moec_threads_init(0) uses the online CPUs (%d)",
          moec_threads_count());
    test_parallel_for(moec_threads_count());
    test_parallel_for_balanced(moec_threads_count());
    check(moec_threads_init(-1) != MOEC_OK, "moec_threads_init(-1) is rejected: %s", moec_error_message());
    moec_threads_shutdown();
    check(moec_threads_count() == 1, "after shutdown the pool reports 1 thread");
    test_parallel_for(1);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
