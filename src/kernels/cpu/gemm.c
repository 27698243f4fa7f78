/* gemm.c — moec's fp32 GEMM: packing, cache blocking, threading and the register-blocked micro-kernels.
 *
 * Structure (the classic Goto/BLIS loop nest; see gemm.h for the contract):
 *   for jc in N step NC                       B panel  op(B)[pc:pc+KC, jc:jc+NC]  packed once, shared (L3)
 *     for pc in K step KC                     (the first K block applies the caller's beta, later ones add)
 *       pack the B panel into NR-wide slivers                         — parallel over slivers
 *       split the MR-row slivers of C × the NR-column slivers over the threads (a tm × tn grid)
 *         for ic in the thread's rows step MC  A block  op(A)[ic:ic+MC, pc:pc+KC]  packed per thread (L2)
 *           for jr in the thread's columns     B sliver KC × NR stays in L1 while ...
 *             for ir in the A block            ... the MR × KC A slivers stream through from L2
 *               micro-kernel: C[MR,NR] = alpha · Σ_k a[k,:]ᵀ b[k,:] + beta · C
 * Packing turns all four transpose cases into the same two layouts, so there is one micro-kernel per instruction
 * set: packed A is [KC][MR] (column k of the sliver contiguous), packed B is [KC][NR]. Slivers that run past the
 * edge of C are zero-padded and their tile goes through a small buffer, so the micro-kernels only ever see full
 * tiles and stay branch-free; the edge logic lives in plain C here and is exercised by every instruction set.
 *
 * Scratch: each calling thread owns one buffer (thread-local, grown on demand, freed when the thread exits) that
 * holds the packed B panel and one A block per pool thread. Nothing is allocated inside the loops or on the
 * workers; if the buffer cannot be grown, the call falls back to moec_gemm_ref.
 */
#include "kernels/cpu/gemm.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/threads.h"
#include "kernels/cpu/gemm_kernels.h"

/* ---------------------------------------------------------------------------------------------------------------
 * Reference */

void moec_gemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double sum = 0;
            if (alpha != 0)
                for (int64_t k = 0; k < K; k++) {
                    double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                    double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                    sum += a * b;
                }
            double r = (double)alpha * sum;
            if (beta != 0) r += (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (float)r;
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Micro-kernels. Each computes one full MR × NR tile of C from kc steps of packed A ([kc][MR]) and packed B
 * ([kc][NR], 64-byte aligned): C = alpha · acc + beta · C, where beta == 0 stores without reading C. */

typedef void (*micro_kernel_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                float beta);

/* AVX-512: 14 rows × 2 zmm, in gemm_avx512.c (a file of its own so that the avx512-emulated test build can compile
 * it against portable intrinsics, see avx512.h). */

/* AVX2: 6 rows × 2 ymm. 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 registers. */
#define AVX2_MR 6
#define AVX2_NR 16

__attribute__((target("avx2,fma")))
static void kernel_avx2_6x16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                             float beta) {
    __m256 acc[AVX2_MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < AVX2_MR; i++) {
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        __builtin_prefetch(c + i * ldc, 1, 3); /* see the AVX-512 kernel (gemm_avx512.c) */
        __builtin_prefetch(c + i * ldc + AVX2_NR - 1, 1, 3);
    }
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < AVX2_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += AVX2_MR;
        b += AVX2_NR;
    }
    __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0) {
#pragma GCC unroll 6
        for (int i = 0; i < AVX2_MR; i++) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
        }
    } else {
        __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int i = 0; i < AVX2_MR; i++) {
            float *ci = c + i * ldc;
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), _mm256_mul_ps(va, acc[i][0])));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), _mm256_mul_ps(va, acc[i][1])));
        }
    }
}

/* Portable C: 4 × 8, which a baseline x86-64 compiler turns into SSE2 (two 4-wide registers per row). Products
 * and sums are kept separate statements so the result does not depend on whether the compiler contracts them. */
#define SCALAR_MR 4
#define SCALAR_NR 8

static void kernel_scalar_4x8(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                              float beta) {
    float acc[SCALAR_MR][SCALAR_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < SCALAR_MR; i++)
            for (int j = 0; j < SCALAR_NR; j++) {
                float p = a[i] * b[j];
                acc[i][j] += p;
            }
        a += SCALAR_MR;
        b += SCALAR_NR;
    }
    for (int i = 0; i < SCALAR_MR; i++)
        for (int j = 0; j < SCALAR_NR; j++)
            c[i * ldc + j] = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

/* ---------------------------------------------------------------------------------------------------------------
 * Per-instruction-set blocking. KC × NR floats (the B sliver) should fill about half of L1 and MC × KC (the A
 * block) a third to a half of L2; NC × KC (the shared B panel) lives in L3. MC is a multiple of MR, NC of NR.
 * kc_one_pass: a K up to this is done in one K block even though it exceeds KC, because each extra K block
 * costs a read-modify-write pass over C; measured on Zen 3 (32 KB L1), K = 512 in one block beats two blocks
 * of 256 by ~8%, while larger K is better split into blocks of <= KC. The AVX-512 sliver is twice as wide, so
 * there KC already fills most of L1 and no extension is made (unmeasured: no AVX-512 machine was at hand). */

typedef struct {
    moec_gemm_isa isa;
    const char *name;
    int64_t mr, nr, mc, kc, nc, kc_one_pass;
    micro_kernel_fn kernel;
} gemm_arch;

static const gemm_arch arch_avx512 = {MOEC_GEMM_ISA_AVX512, "avx512", AVX512_MR, AVX512_NR, 14 * 16, 256, 4096, 256,
                                      moec_gemm_kernel_avx512_14x32};
static const gemm_arch arch_avx2 = {MOEC_GEMM_ISA_AVX2, "avx2", AVX2_MR, AVX2_NR, 6 * 24, 256, 4096, 512,
                                    kernel_avx2_6x16};
static const gemm_arch arch_scalar = {MOEC_GEMM_ISA_SCALAR, "scalar", SCALAR_MR, SCALAR_NR, 4 * 32, 256, 2048, 256,
                                      kernel_scalar_4x8};

static _Atomic(const gemm_arch *) current_arch;

static const gemm_arch *best_arch(void) {
    return moec_cpu_has_avx512() ? &arch_avx512 : moec_cpu_has_avx2() ? &arch_avx2 : &arch_scalar;
}

static const gemm_arch *get_arch(void) {
    const gemm_arch *a = atomic_load_explicit(&current_arch, memory_order_acquire);
    if (!a) {
        a = best_arch();
        atomic_store_explicit(&current_arch, a, memory_order_release);
    }
    return a;
}

moec_status moec_gemm_set_isa(moec_gemm_isa isa) {
    const gemm_arch *a = NULL;
    switch (isa) {
    case MOEC_GEMM_ISA_AUTO: a = best_arch(); break;
    case MOEC_GEMM_ISA_SCALAR: a = &arch_scalar; break;
    case MOEC_GEMM_ISA_AVX2:
        if (!moec_cpu_has_avx2()) return MOEC_ERR(MOEC_ERR_ARG, "moec_gemm_set_isa: this CPU lacks AVX2+FMA+F16C");
        a = &arch_avx2;
        break;
    case MOEC_GEMM_ISA_AVX512:
        if (!moec_cpu_has_avx512()) return MOEC_ERR(MOEC_ERR_ARG, "moec_gemm_set_isa: this CPU lacks AVX-512 F/BW/VL");
        a = &arch_avx512;
        break;
    default: return MOEC_ERR(MOEC_ERR_ARG, "moec_gemm_set_isa: unknown instruction set %d", (int)isa);
    }
    atomic_store_explicit(&current_arch, a, memory_order_release);
    return MOEC_OK;
}

const char *moec_gemm_isa_name(void) { return get_arch()->name; }

/* ---------------------------------------------------------------------------------------------------------------
 * Packing */

typedef struct {
    const gemm_arch *arch;
    int trans_a, trans_b;
    int64_t M, N, K;
    float alpha;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;

    /* The current (jc, pc) block. */
    int64_t jc, nc, pc, kc;
    float beta;            /* the caller's beta for the first K block, then 1 */
    int64_t m_slivers;     /* ceil(M / MR) */
    int64_t n_slivers;     /* ceil(nc / NR) */
    int tm, tn;            /* thread grid over (m_slivers, n_slivers) */
    float *b_pack;         /* n_slivers × [kc][NR] */
    float *a_pack;         /* per thread index: MC × KC floats, a_stride apart */
    int64_t a_stride;
    const float *a_packed; /* or all of A packed beforehand (moec_gemm_pack_a): K block pc at pc · m_slivers · MR */
} gemm_job;

/* Copies kc rows of w floats (src rows lda apart) to dst rows w apart: the packing of a full A sliver when A is
 * transposed, or of a full B sliver when B is not. Called with a constant w (see copy_rows) so that each row's
 * memcpy becomes a few inline moves instead of a library call or an element loop. */
static inline __attribute__((always_inline)) void copy_rows_w(const float *src, int64_t lda, int64_t kc, int64_t w,
                                                              float *dst) {
    for (int64_t k = 0; k < kc; k++, src += lda, dst += w) memcpy(dst, src, (size_t)w * sizeof(float));
}

static void copy_rows(const float *src, int64_t lda, int64_t kc, int64_t w, float *dst) {
    switch (w) { /* the MR and NR values of the kernels above */
    case 4: copy_rows_w(src, lda, kc, 4, dst); break;
    case 6: copy_rows_w(src, lda, kc, 6, dst); break;
    case 8: copy_rows_w(src, lda, kc, 8, dst); break;
    case 14: copy_rows_w(src, lda, kc, 14, dst); break;
    case 16: copy_rows_w(src, lda, kc, 16, dst); break;
    case 32: copy_rows_w(src, lda, kc, 32, dst); break;
    default: copy_rows_w(src, lda, kc, w, dst); break;
    }
}

/* dst[k·w + r] = src[r·lds + k] for k < kc, r < w, rows past `rows` as zeros: the transposing copy that packs a B
 * sliver from B stored [N,K] (every forward product y = x·Wᵀ; w = NR, a multiple of 8). Element by element that is
 * kc·w scalar loads and strided stores (perf, moe-1b bf16 prefill: pack_b_task 12.5 % of the time); with AVX2, 8
 * rows × 8 columns at a time through an in-register 8 × 8 transpose (8 loads, 24 shuffles, 8 stores): 5.4 %.
 * (The A slivers, MR = 6 wide, gained nothing from it: their packing waits on X coming from L3.) */
__attribute__((target("avx2,fma"))) static void transpose_pack_avx2(const float *src, int64_t lds, int64_t rows,
                                                                    int64_t kc, int64_t w, float *dst) {
    const int64_t k8 = kc / 8 * 8;
    for (int64_t r0 = 0; r0 < w; r0 += 8) {
        const int64_t have = rows - r0 < 0 ? 0 : rows - r0 > 8 ? 8 : rows - r0;
        for (int64_t k0 = 0; k0 < k8; k0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = i < have ? _mm256_loadu_ps(src + (r0 + i) * lds + k0) : _mm256_setzero_ps();
            const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]),
                         t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]),
                         t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
                         t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
            const __m256 u[8] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee),
                                 _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee),
                                 _mm256_shuffle_ps(t4, t6, 0x44), _mm256_shuffle_ps(t4, t6, 0xee),
                                 _mm256_shuffle_ps(t5, t7, 0x44), _mm256_shuffle_ps(t5, t7, 0xee)};
            for (int j = 0; j < 8; j++) { /* column k0 + j: rows r0..r0+3 from u[j % 4]'s lane j / 4, 4..7 from u[4 + j % 4] */
                const __m256 col = j < 4 ? _mm256_permute2f128_ps(u[j], u[4 + j], 0x20)
                                         : _mm256_permute2f128_ps(u[j - 4], u[j], 0x31);
                _mm256_storeu_ps(dst + (k0 + j) * w + r0, col);
            }
        }
        for (int64_t k = k8; k < kc; k++)
            for (int64_t i = 0; i < 8; i++) dst[k * w + r0 + i] = i < have ? src[(r0 + i) * lds + k] : 0.0f;
    }
}

/* The same for any w, in plain C unless AVX2 can do it. */
static void transpose_pack(const float *src, int64_t lds, int64_t rows, int64_t kc, int64_t w, float *dst) {
    if (w % 8 == 0 && moec_cpu_has_avx2()) {
        transpose_pack_avx2(src, lds, rows, kc, w, dst);
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < kc; k++) dst[k * w + r] = src[r * lds + k];
    for (int64_t r = rows; r < w; r++)
        for (int64_t k = 0; k < kc; k++) dst[k * w + r] = 0;
}

/* Packs op(A)[i0:i0+m, p0:p0+kc] into ceil(m/MR) slivers of [kc][MR], zero-padding rows past m. */
static void pack_a(const gemm_job *g, int64_t i0, int64_t m, float *dst) {
    const int64_t mr = g->arch->mr, kc = g->kc, p0 = g->pc, lda = g->lda;
    for (int64_t s = 0; s < m; s += mr, dst += kc * mr) {
        int64_t rows = m - s < mr ? m - s : mr;
        if (g->trans_a) {
            /* A is [K,M]: each k gives `rows` contiguous floats. (Walking each row of A once across all slivers
             * instead measured slower: the lines read for one sliver are still in L1 for the next.) */
            if (rows == mr) {
                copy_rows(g->A + p0 * lda + i0 + s, lda, kc, mr, dst);
                continue;
            }
            for (int64_t k = 0; k < kc; k++) {
                const float *src = g->A + (p0 + k) * lda + i0 + s;
                float *d = dst + k * mr;
                for (int64_t r = 0; r < rows; r++) d[r] = src[r];
                for (int64_t r = rows; r < mr; r++) d[r] = 0;
            }
            continue;
        }
        /* A is [M,K]: read each row contiguously, write it with stride MR. Each row contributes only KC floats
         * before we jump lda ahead, too short a run for the hardware prefetcher when A comes from DRAM (the
         * K = 8192 products): fetch the next sliver's rows now. */
        int64_t next_rows = m - s - mr < mr ? m - s - mr : mr;
        for (int64_t r = 0; r < next_rows; r++) {
            const char *src = (const char *)(g->A + (i0 + s + mr + r) * lda + p0);
            for (int64_t off = 0; off < kc * (int64_t)sizeof(float); off += 64) __builtin_prefetch(src + off, 0, 2);
        }
        for (int64_t r = 0; r < rows; r++) {
            const float *src = g->A + (i0 + s + r) * lda + p0;
            for (int64_t k = 0; k < kc; k++) dst[k * mr + r] = src[k];
        }
        for (int64_t r = rows; r < mr; r++)
            for (int64_t k = 0; k < kc; k++) dst[k * mr + r] = 0;
    }
}

/* Packs op(B)[p0:p0+kc, j0:j0+n] (n <= NR) into one sliver [kc][NR], zero-padding columns past n. */
static void pack_b_sliver(const gemm_job *g, int64_t j0, int64_t n, float *dst) {
    const int64_t nr = g->arch->nr, kc = g->kc, p0 = g->pc, ldb = g->ldb;
    if (!g->trans_b) { /* B is [K,N]: each k gives n contiguous floats */
        if (n == nr) {
            copy_rows(g->B + p0 * ldb + j0, ldb, kc, nr, dst);
            return;
        }
        for (int64_t k = 0; k < kc; k++) {
            const float *src = g->B + (p0 + k) * ldb + j0;
            float *d = dst + k * nr;
            memcpy(d, src, (size_t)n * sizeof *d);
            for (int64_t c = n; c < nr; c++) d[c] = 0;
        }
    } else { /* B is [N,K]: each row of B becomes a column of the sliver */
        transpose_pack(g->B + j0 * ldb + p0, ldb, n, kc, nr, dst);
    }
}

static void pack_b_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const gemm_job *g = ctx;
    const int64_t nr = g->arch->nr;
    for (int64_t s = begin; s < end; s++) {
        int64_t j0 = g->jc + s * nr, n = g->jc + g->nc - j0;
        pack_b_sliver(g, j0, n < nr ? n : nr, g->b_pack + s * g->kc * nr);
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Compute */

/* Splits `count` items into `parts` contiguous ranges the way moec_parallel_for does, and returns range `p`. */
static void split_range(int64_t count, int64_t parts, int64_t p, int64_t *begin, int64_t *end) {
    int64_t base = count / parts, rem = count % parts;
    *begin = p * base + (p < rem ? p : rem);
    *end = *begin + base + (p < rem ? 1 : 0);
}

/* One MR × NR tile at sliver (is, js). Edge tiles go through a buffer so the kernel always writes a full tile. */
static void compute_tile(const gemm_job *g, const float *a, const float *b, int64_t row, int64_t col) {
    const gemm_arch *ar = g->arch;
    int64_t rows = g->M - row, cols = g->jc + g->nc - col;
    float *c = g->C + row * g->ldc + col;
    if (rows >= ar->mr && cols >= ar->nr) {
        ar->kernel(g->kc, a, b, c, g->ldc, g->alpha, g->beta);
        return;
    }
    _Alignas(64) float tile[AVX512_MR * AVX512_NR]; /* the largest tile of any kernel */
    ar->kernel(g->kc, a, b, tile, ar->nr, g->alpha, 0);
    if (rows > ar->mr) rows = ar->mr;
    if (cols > ar->nr) cols = ar->nr;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float *cij = c + i * g->ldc + j;
            *cij = g->beta == 0 ? tile[i * ar->nr + j] : tile[i * ar->nr + j] + g->beta * *cij;
        }
}

/* Task t of the tm × tn grid: its rows of C (in MR slivers) by its columns of the current panel (in NR slivers). */
static void compute_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const gemm_job *g = ctx;
    const gemm_arch *ar = g->arch;
    float *a_pack = g->a_packed ? NULL : g->a_pack + thread_index * g->a_stride;
    const int64_t mc_slivers = ar->mc / ar->mr;
    for (int64_t t = begin; t < end; t++) {
        int64_t ms0, ms1, ns0, ns1;
        split_range(g->m_slivers, g->tm, t / g->tn, &ms0, &ms1);
        split_range(g->n_slivers, g->tn, t % g->tn, &ns0, &ns1);
        for (int64_t ib = ms0; ib < ms1; ib += mc_slivers) {
            int64_t ie = ib + mc_slivers < ms1 ? ib + mc_slivers : ms1;
            int64_t row0 = ib * ar->mr, rows = ie * ar->mr < g->M ? ie * ar->mr - row0 : g->M - row0;
            if (g->a_packed) a_pack = (float *)g->a_packed + (g->pc * g->m_slivers + ib * g->kc) * ar->mr;
            else pack_a(g, row0, rows, a_pack);
            for (int64_t js = ns0; js < ns1; js++) {
                const float *b = g->b_pack + js * g->kc * ar->nr;
                for (int64_t is = ib; is < ie; is++)
                    compute_tile(g, a_pack + (is - ib) * g->kc * ar->mr, b, is * ar->mr, g->jc + js * ar->nr);
            }
        }
    }
}

/* Chooses the tm × tn thread grid (tm · tn = threads) that minimises the largest number of tiles any thread
 * computes; ties go to more row splits, because threads that split columns each pack the same A rows. */
static void choose_grid(int64_t m_slivers, int64_t n_slivers, int threads, int *tm, int *tn) {
    int64_t best = -1;
    for (int r = threads; r >= 1; r--) {
        if (threads % r) continue;
        int c = threads / r;
        int64_t work = ((m_slivers + r - 1) / r) * ((n_slivers + c - 1) / c);
        if (best < 0 || work < best) {
            best = work;
            *tm = r;
            *tn = c;
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Scratch */

typedef struct {
    float *data;
    size_t cap; /* floats */
} gemm_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local gemm_scratch tls_scratch;

static void scratch_destroy(void *p) { free(p); }
static void scratch_key_init(void) { (void)pthread_key_create(&scratch_key, scratch_destroy); }

/* This thread's scratch, grown to at least `floats`; NULL if that allocation fails. */
static float *scratch_get(size_t floats) {
    if (tls_scratch.cap >= floats) return tls_scratch.data;
    pthread_once(&scratch_once, scratch_key_init);
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    free(tls_scratch.data);
    tls_scratch.data = p;
    tls_scratch.cap = floats;
    (void)pthread_setspecific(scratch_key, p); /* so the buffer is freed when the thread exits */
    return p;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Driver */

/* Below this many multiply-adds a call runs on one thread: waking the pool costs a few microseconds. */
#define GEMM_PARALLEL_MIN_MACS (64 * 64 * 64)

/* C = beta · C without reading C when beta == 0 (the K == 0 / alpha == 0 case). */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0.0f : beta * C[i * ldc + j];
}

static void round_up(int64_t *x, int64_t m) { *x = (*x + m - 1) / m * m; }

/* K blocks of equal size (a short last block would run the kernel at a poor load/FMA ratio): the block length. */
static int64_t k_block(const gemm_arch *ar, int64_t K) {
    if (K <= ar->kc_one_pass) return K;
    const int64_t blocks = (K + ar->kc - 1) / ar->kc;
    return (K + blocks - 1) / blocks;
}

void moec_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {
        if (beta != 1) scale_c(M, N, beta, C, ldc);
        return;
    }
    gemm_job g = {
        .arch = get_arch(), .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .alpha = alpha,
        .A = A, .B = B, .lda = lda, .ldb = ldb, .ldc = ldc, .C = C,
    };
    const gemm_arch *ar = g.arch;
    int threads = moec_threads_count();
    if ((double)M * (double)N * (double)K < GEMM_PARALLEL_MIN_MACS) threads = 1;

    /* Scratch: the B panel, then one A block per thread, each 64-byte aligned. */
    const int64_t kc_max = k_block(ar, K);
    int64_t nc_max = N < ar->nc ? N : ar->nc;
    round_up(&nc_max, ar->nr);
    int64_t mc_max = M < ar->mc ? M : ar->mc;
    round_up(&mc_max, ar->mr);
    int64_t b_floats = kc_max * nc_max, a_floats = kc_max * mc_max;
    round_up(&b_floats, 16);
    round_up(&a_floats, 16);
    float *scratch = scratch_get((size_t)(b_floats + threads * a_floats));
    if (!scratch) {
        moec_gemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    g.b_pack = scratch;
    g.a_pack = scratch + b_floats;
    g.a_stride = a_floats;
    g.m_slivers = (M + ar->mr - 1) / ar->mr;

    for (g.jc = 0; g.jc < N; g.jc += ar->nc) {
        g.nc = N - g.jc < ar->nc ? N - g.jc : ar->nc;
        g.n_slivers = (g.nc + ar->nr - 1) / ar->nr;
        choose_grid(g.m_slivers, g.n_slivers, threads, &g.tm, &g.tn);
        for (g.pc = 0; g.pc < K; g.pc += kc_max) {
            g.kc = K - g.pc < kc_max ? K - g.pc : kc_max;
            g.beta = g.pc == 0 ? beta : 1.0f;
            if (threads == 1) {
                pack_b_task(&g, 0, g.n_slivers, 0);
                compute_task(&g, 0, 1, 0);
            } else {
                moec_parallel_for(g.n_slivers, 1, pack_b_task, &g);
                moec_parallel_for(threads, 1, compute_task, &g);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * A packed once, for many products (see gemm.h) */

int64_t moec_gemm_packed_a_floats(int64_t M, int64_t K) {
    const gemm_arch *ar = get_arch();
    return (M + ar->mr - 1) / ar->mr * ar->mr * K;
}

typedef struct {
    gemm_job g;
    float *dst;
    int64_t per_block; /* slivers per K block */
} pack_all_job;

static void pack_all_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const pack_all_job *p = ctx;
    const gemm_arch *ar = p->g.arch;
    const int64_t kc_max = k_block(ar, p->g.K);
    for (int64_t i = begin; i < end; i++) { /* item i: K block i / per_block, sliver i % per_block */
        gemm_job g = p->g;
        g.pc = i / p->per_block * kc_max;
        g.kc = g.K - g.pc < kc_max ? g.K - g.pc : kc_max;
        const int64_t s = i % p->per_block, row0 = s * ar->mr, rows = g.M - row0 < ar->mr ? g.M - row0 : ar->mr;
        pack_a(&g, row0, rows, p->dst + (g.pc * p->per_block + s * g.kc) * ar->mr);
    }
}

void moec_gemm_pack_a(int64_t M, int64_t K, const float *A, int64_t lda, float *dst) {
    pack_all_job p = {.g = {.arch = get_arch(), .M = M, .K = K, .A = A, .lda = lda}, .dst = dst};
    const gemm_arch *ar = p.g.arch;
    p.per_block = (M + ar->mr - 1) / ar->mr;
    const int64_t kc_max = k_block(ar, K), items = (K + kc_max - 1) / kc_max * p.per_block;
    moec_parallel_for(items, (M * K < 65536 ? items : 1), pack_all_task, &p);
}

int moec_gemm_nt_packed_a(int64_t M, int64_t N, int64_t K, const float *a_packed, const float *B, int64_t ldb,
                          float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) {
        scale_c(M, N, 0, C, ldc);
        return 0;
    }
    gemm_job g = {.arch = get_arch(), .trans_b = 1, .M = M, .N = N, .K = K, .alpha = 1, .B = B, .ldb = ldb,
                  .ldc = ldc, .C = C, .a_packed = a_packed, .tm = 1, .tn = 1};
    const gemm_arch *ar = g.arch;
    const int64_t kc_max = k_block(ar, K);
    int64_t nc_max = N < ar->nc ? N : ar->nc;
    round_up(&nc_max, ar->nr);
    g.b_pack = scratch_get((size_t)(kc_max * nc_max));
    if (!g.b_pack) return -1;
    g.m_slivers = (M + ar->mr - 1) / ar->mr;
    for (g.jc = 0; g.jc < N; g.jc += ar->nc) {
        g.nc = N - g.jc < ar->nc ? N - g.jc : ar->nc;
        g.n_slivers = (g.nc + ar->nr - 1) / ar->nr;
        for (g.pc = 0; g.pc < K; g.pc += kc_max) {
            g.kc = K - g.pc < kc_max ? K - g.pc : kc_max;
            g.beta = g.pc == 0 ? 0.0f : 1.0f;
            pack_b_task(&g, 0, g.n_slivers, 0);
            compute_task(&g, 0, 1, 0);
        }
    }
    return 0;
}
