/* qmatmul.c — y = x · Wᵀ over f32 / bf16 / f16 / E4M3 / Q8_0 (and ggml's other block types, qmatmul_blocks.c)
 * weights: regime choice, threading, scratch, the portable kernels.
 *
 * The SIMD kernels live in qmatmul_avx2.c and qmatmul_avx512.c; this file splits the work over the output rows and
 * picks the kernel table (see qmatmul.h for the contract and the two regimes).
 *
 * Crossover (measured with bench_qmatmul --sweep on the 2-core Zen 3 development VM, 1024² and 4096², noisy): the
 * decode path streams each weight once per call and is bound by memory bandwidth at T = 1; its cost grows with T
 * once the FMAs dominate. The prefill path pays a fixed cost per call (writing and re-reading an fp32 copy of W,
 * packing it inside moec_gemm — about 20 ms for 4096² here, more than decode at T = 1..24) and then runs the GEMM
 * at near its peak. Decode was faster up to T = 24 for every type and up to T = 32 for bf16 / E4M3; the two were
 * about even at T = 48. DECODE_MAX_* are set from that.
 *
 * Scratch for the prefill path: one fp32 buffer per thread (thread-local, grown on demand, never shrunk), holding one
 * block of dequantised weight rows. Every buffer is also linked into a global list so that moec_qmat_release can
 * free the buffers of all threads, the pool's workers included; a generation counter tells each thread that its
 * buffer was freed behind its back. If a buffer cannot be grown the block is computed by the decode kernel instead.
 */
#include "kernels/cpu/qmatmul.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/threads.h"
#include "io/ggml_quants.h"
#include "io/safetensors.h"
#include "kernels/cpu/qmatmul_bf16p.h"
#include "kernels/cpu/qmatmul_kernels.h"

#define DECODE_MAX_F32 24
#define DECODE_MAX_BF16 32 /* f16 and q8_0 too (not measured separately) */
#define DECODE_MAX_F8 32

/* Prefill block: as many rows as fit PREFILL_BLOCK_BYTES of fp32 (a multiple of 16 rows, 16..256). Each block costs
 * a repacking of X inside moec_gemm, so blocks should be large; they should also fit in L3 with room to spare.
 * f32 weights take the same path without the copy (moec_gemm on the block in place): measured 1.05-1.5x faster than
 * one moec_gemm over the whole matrix at T = 128..512 on 4096², whose packed B panel outgrows L2 at small M. */
#define PREFILL_BLOCK_BYTES (2u << 20)
#define PREFILL_BLOCK_MIN 16
#define PREFILL_BLOCK_MAX 256

/* Decode work below this many weight bytes per chunk stays on one thread (waking the pool costs microseconds). */
#define DECODE_GRAIN_BYTES (64u << 10)
/* Decode runs as a balanced loop (moec_parallel_for_balanced): each thread streams its share in pieces of about
 * this many weight bytes, and a thread that finishes first takes pieces off the end of the other's share. Before,
 * with a fixed split, the caller waited 26 us on average at the end of each of the ~60 loops of a moe-1b fp8 decode
 * step (measured: ~8 % of the step), because the two threads' share of memory bandwidth varies from moment to
 * moment. A piece of 32 KB is ~2.5 us of streaming, so that is the most one thread can now wait for the other. */
#define DECODE_PIECE_BYTES (32u << 10)

const char *moec_qtype_name(moec_qtype t) {
    switch (t) {
    case MOEC_QT_F32: return "f32";
    case MOEC_QT_BF16: return "bf16";
    case MOEC_QT_F8E4M3: return "fp8";
    case MOEC_QT_F16: return "f16";
    case MOEC_QT_Q8_0: return "q8_0";
    case MOEC_QT_Q4_0: return "q4_0";
    case MOEC_QT_Q4_1: return "q4_1";
    case MOEC_QT_Q5_0: return "q5_0";
    case MOEC_QT_Q5_1: return "q5_1";
    case MOEC_QT_Q2_K: return "q2_k";
    case MOEC_QT_Q3_K: return "q3_k";
    case MOEC_QT_Q4_K: return "q4_k";
    case MOEC_QT_Q5_K: return "q5_k";
    case MOEC_QT_Q6_K: return "q6_k";
    case MOEC_QT_BF16P: return "bf16p";
    }
    return "?";
}

moec_status moec_qmat_check(const moec_qmat *W) {
    if ((unsigned)W->type >= MOEC_QT_COUNT) return MOEC_ERR(MOEC_ERR_ARG, "qmat: unknown weight type %d", (int)W->type);
    /* the alignment wanted: the element size; Q8_0's kernels read its f16 scale as 2 bytes, the other block
     * types' decoders read bytes */
    const size_t es = W->type == MOEC_QT_Q8_0                                      ? 2
                      : moec_qtype_ggml(W->type) >= 0 || W->type == MOEC_QT_BF16P ? 1
                                                                                  : moec_qtype_size(W->type);
    const int64_t block = moec_qtype_block(W->type);
    if (W->cols % block)
        return MOEC_ERR(MOEC_ERR_ARG, "qmat: %s rows of %lld values are not whole blocks of %lld",
                        moec_qtype_name(W->type), (long long)W->cols, (long long)block);
    if (W->rows <= 0 || W->cols <= 0)
        return MOEC_ERR(MOEC_ERR_ARG, "qmat: %lld x %lld matrix", (long long)W->rows, (long long)W->cols);
    if (W->type == MOEC_QT_BF16P && !moec_bf16p_cols_ok(W->cols))
        return MOEC_ERR(MOEC_ERR_ARG, "qmat: bf16p rows of %lld values (need a multiple of 128, at most %d)",
                        (long long)W->cols, MOEC_BF16P_MAX_COLS);
    if (!W->data) return MOEC_ERR(MOEC_ERR_ARG, "qmat: no data");
    if ((uintptr_t)W->data % es) return MOEC_ERR(MOEC_ERR_ARG, "qmat: %s data not %zu-byte aligned",
                                                 moec_qtype_name(W->type), es);
    if ((W->type == MOEC_QT_F8E4M3) != (W->scale != NULL))
        return MOEC_ERR(MOEC_ERR_ARG, "qmat: %s weights %s a scale", moec_qtype_name(W->type),
                        W->scale ? "must not have" : "need");
    return MOEC_OK;
}

static _Atomic int64_t decode_max_override[MOEC_QT_COUNT]; /* the override + 1; 0: none */

int64_t moec_qmat_decode_max(moec_qtype t) {
    if ((unsigned)t < MOEC_QT_COUNT) {
        int64_t n = atomic_load_explicit(&decode_max_override[t], memory_order_relaxed);
        if (n > 0) return n - 1;
    }
    return t == MOEC_QT_F32 ? DECODE_MAX_F32 : t == MOEC_QT_F8E4M3 ? DECODE_MAX_F8 : DECODE_MAX_BF16;
}

static _Atomic int activations = MOEC_QACT_Q8;

void moec_qmat_set_activations(moec_qact a) {
    atomic_store_explicit(&activations, a == MOEC_QACT_F32 ? MOEC_QACT_F32 : MOEC_QACT_Q8, memory_order_relaxed);
}

moec_qact moec_qmat_activations(void) { return (moec_qact)atomic_load_explicit(&activations, memory_order_relaxed); }

void moec_qmat_set_decode_max(moec_qtype t, int64_t n) {
    if ((unsigned)t < MOEC_QT_COUNT)
        atomic_store_explicit(&decode_max_override[t], n < 0 ? 0 : n + 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Portable kernels. E4M3 goes through the same half-precision bit trick as the SIMD kernels (qmatmul_avx2.c), so
 * every instruction set gives E4M3 codes the same values; a 256-entry table makes it cheap. */

static float e4m3_div256[256];
static pthread_once_t e4m3_once = PTHREAD_ONCE_INIT;

static void e4m3_table_init(void) {
    for (int b = 0; b < 256; b++) e4m3_div256[b] = moec_f16_to_f32((uint16_t)(((b & 0x80) << 8) | ((b & 0x7f) << 7)));
}

/* Weight row o, element i; E4M3 divided by 256. */
static inline float elem(const moec_qmat *W, int64_t o, int64_t i) {
    size_t k = (size_t)o * (size_t)W->cols + (size_t)i;
    switch (W->type) {
    case MOEC_QT_F32: return ((const float *)W->data)[k];
    case MOEC_QT_BF16: return moec_bf16_to_f32(((const uint16_t *)W->data)[k]);
    case MOEC_QT_F16: return moec_f16_to_f32(((const uint16_t *)W->data)[k]);
    default: return e4m3_div256[((const uint8_t *)W->data)[k]];
    }
}

static float factor(const moec_qmat *W, int64_t o) { return W->type == MOEC_QT_F8E4M3 ? W->scale[o] * 256.0f : 1.0f; }

/* Q8_0 row o's block b: its scale d, and its 32 values at *q. */
static inline float q8_block(const moec_qmat *W, int64_t o, int64_t b, const int8_t **q) {
    const uint8_t *p = (const uint8_t *)W->data + (size_t)moec_qtype_row_bytes(MOEC_QT_Q8_0, W->cols) * (size_t)o +
                       (size_t)b * MOEC_Q8_0_BLOCK_BYTES;
    *q = (const int8_t *)(p + 2);
    return moec_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Q8_0: per block, the 32 products summed in four chains, then times d. */
static void dot_q8_scalar(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                          float *Y, int64_t ldy) {
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * ldx;
            float sum = 0;
            for (int64_t b = 0; b < W->cols / MOEC_Q8_0_BLOCK; b++) {
                const int8_t *q;
                const float d = q8_block(W, o, b, &q);
                const float *xb = x + b * MOEC_Q8_0_BLOCK;
                float s[4] = {0, 0, 0, 0};
                for (int i = 0; i < MOEC_Q8_0_BLOCK; i += 4)
                    for (int k = 0; k < 4; k++) s[k] += xb[i + k] * (float)q[i + k];
                sum += d * ((s[0] + s[1]) + (s[2] + s[3]));
            }
            Y[t * ldy + o] = sum;
        }
}

static void dot_scalar(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                       int64_t ldy) {
    if (W->type == MOEC_QT_Q8_0) {
        dot_q8_scalar(W, o0, o1, X, ldx, T, Y, ldy);
        return;
    }
    pthread_once(&e4m3_once, e4m3_table_init);
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * ldx;
            float s[4] = {0, 0, 0, 0}; /* four chains, so the adds are not one long dependency */
            int64_t i = 0;
            for (; i + 4 <= W->cols; i += 4)
                for (int k = 0; k < 4; k++) s[k] += x[i + k] * elem(W, o, i + k);
            for (; i < W->cols; i++) s[0] += x[i] * elem(W, o, i);
            Y[t * ldy + o] = ((s[0] + s[1]) + (s[2] + s[3])) * factor(W, o);
        }
}

static void dequant_scalar(const moec_qmat *W, int64_t o0, int64_t n, float *out) {
    if (W->type == MOEC_QT_Q8_0) {
        for (int64_t r = 0; r < n; r++) moec_qmat_row(out + r * W->cols, W, o0 + r);
        return;
    }
    pthread_once(&e4m3_once, e4m3_table_init);
    for (int64_t r = 0; r < n; r++, out += W->cols) {
        float f = factor(W, o0 + r);
        for (int64_t i = 0; i < W->cols; i++) out[i] = elem(W, o0 + r, i) * f;
    }
}

const qmat_kernels moec_qmat_kernels_scalar = {
    .isa = MOEC_GEMM_ISA_SCALAR, .name = "scalar", .dot = dot_scalar, .dequant = dequant_scalar,
};

/* ---------------------------------------------------------------------------------------------------------------
 * Instruction set */

static _Atomic(const qmat_kernels *) current;

static const qmat_kernels *best(void) {
    return moec_cpu_has_avx512() ? &moec_qmat_kernels_avx512 : moec_cpu_has_avx2() ? &moec_qmat_kernels_avx2
                                                                          : &moec_qmat_kernels_scalar;
}

static const qmat_kernels *kernels(void) {
    const qmat_kernels *k = atomic_load_explicit(&current, memory_order_acquire);
    if (!k) {
        k = best();
        atomic_store_explicit(&current, k, memory_order_release);
    }
    return k;
}

moec_status moec_qmat_set_isa(moec_gemm_isa isa) {
    const qmat_kernels *k;
    switch (isa) {
    case MOEC_GEMM_ISA_AUTO: k = best(); break;
    case MOEC_GEMM_ISA_SCALAR: k = &moec_qmat_kernels_scalar; break;
    case MOEC_GEMM_ISA_AVX2:
        if (!moec_cpu_has_avx2()) return MOEC_ERR(MOEC_ERR_ARG, "moec_qmat_set_isa: this CPU lacks AVX2+FMA+F16C");
        k = &moec_qmat_kernels_avx2;
        break;
    case MOEC_GEMM_ISA_AVX512:
        if (!moec_cpu_has_avx512()) return MOEC_ERR(MOEC_ERR_ARG, "moec_qmat_set_isa: this CPU lacks AVX-512 F/BW/VL");
        k = &moec_qmat_kernels_avx512;
        break;
    default: return MOEC_ERR(MOEC_ERR_ARG, "moec_qmat_set_isa: unknown instruction set %d", (int)isa);
    }
    atomic_store_explicit(&current, k, memory_order_release);
    return MOEC_OK;
}

const char *moec_qmat_isa_name(void) { return kernels()->name; }

const qmat_kernels *moec_qmat_kernels_active(void) { return kernels(); }

/* Q8_0 rows up to this wide take the int8-activation kernels (when on): ref-moe-small's Q8_0 file (rows of 512 and
 * 1408) decoded 13-16 % faster through them; moe-1b's (2048) measured 4-9 % slower in three A/Bs and 1 % in a
 * fourth (README, GGUF), so wider rows keep the exact kernel until that is understood. */
#ifndef Q8_0_INT8_MAX_COLS
#define Q8_0_INT8_MAX_COLS 1536
#endif

/* The kernels for W: k, or for ggml's block types (other than Q8_0) the decoding wrapper around k, or bf16p's.
 * Q8_0 goes to the block types' int8-activation kernels too when those are on (MOEC_QACT_Q8, a SIMD table);
 * they hand its prefill dequantisation (and a decode without scratch) back to k. */
static const qmat_kernels *kernels_for(const qmat_kernels *k, const moec_qmat *W) {
    if (W->type == MOEC_QT_Q8_0)
        return k->isa != MOEC_GEMM_ISA_SCALAR && moec_qmat_activations() == MOEC_QACT_Q8 && W->cols <= Q8_0_INT8_MAX_COLS
                   ? &moec_qmat_kernels_blocks
                   : k;
    return W->type == MOEC_QT_BF16P ? &moec_qmat_kernels_bf16p : W->type > MOEC_QT_Q8_0 ? &moec_qmat_kernels_blocks : k;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Scratch (see the top of the file) */

#define SCRATCH_SLOTS 3

typedef struct scratch_node {
    float *data[SCRATCH_SLOTS];
    size_t cap[SCRATCH_SLOTS]; /* floats */
    struct scratch_node *next;
} scratch_node;

static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static scratch_node *scratch_list;          /* every live node, of every thread */
static _Atomic unsigned scratch_generation; /* bumped by moec_qmat_release */
static _Thread_local scratch_node *tls_node;
static _Thread_local unsigned tls_generation;

float *moec_qmat_scratch(int slot, size_t floats) {
    unsigned gen = atomic_load(&scratch_generation);
    if (tls_generation != gen) { /* released since this thread last looked: the node is gone */
        tls_node = NULL;
        tls_generation = gen;
    }
    if (tls_node && tls_node->cap[slot] >= floats) return tls_node->data[slot];
    float *p = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    if (!p) return NULL;
    if (!tls_node) {
        scratch_node *n = calloc(1, sizeof *n);
        if (!n) {
            free(p);
            return NULL;
        }
        pthread_mutex_lock(&scratch_lock);
        n->next = scratch_list;
        scratch_list = n;
        pthread_mutex_unlock(&scratch_lock);
        tls_node = n;
    }
    free(tls_node->data[slot]); /* only this thread touches its node's buffers outside moec_qmat_release */
    tls_node->data[slot] = p;
    tls_node->cap[slot] = floats;
    return p;
}

void moec_qmat_release(void) {
    pthread_mutex_lock(&scratch_lock);
    for (scratch_node *n = scratch_list, *next; n; n = next) {
        next = n->next;
        for (int k = 0; k < SCRATCH_SLOTS; k++) free(n->data[k]);
        free(n);
    }
    scratch_list = NULL;
    atomic_fetch_add(&scratch_generation, 1);
    pthread_mutex_unlock(&scratch_lock);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Driver */

typedef struct {
    const qmat_kernels *k;
    const moec_qmat *W;
    const float *X;
    float *Y;
    int64_t ldx, ldy, T;
    int64_t block;    /* weight rows per block */
    const float *xa;  /* X packed once for the GEMM (moec_gemm_pack_a), or NULL */
} qmat_job;

static void prefill_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const qmat_job *j = ctx;
    const moec_qmat *W = j->W;
    for (int64_t b = begin; b < end; b++) {
        int64_t o0 = b * j->block, n = W->rows - o0 < j->block ? W->rows - o0 : j->block;
        const float *w = (const float *)W->data + o0 * W->cols; /* f32: the GEMM reads W in place */
        if (W->type != MOEC_QT_F32) {
            const qmat_kernels *k = kernels_for(j->k, W);
            float *buf = moec_qmat_scratch(0, (size_t)(n * W->cols));
            if (!buf) { /* out of memory: slower but correct */
                k->dot(W, o0, o0 + n, j->X, j->ldx, j->T, j->Y, j->ldy);
                continue;
            }
            k->dequant(W, o0, n, buf);
            w = buf;
        }
        /* Inside the pool's loop this runs single-threaded on this thread, as wanted; when this is the only block
         * (the loop ran inline) it may use the whole pool. */
        if (!j->xa || moec_gemm_nt_packed_a(j->T, n, W->cols, j->xa, w, W->cols, j->Y + o0, j->ldy) != 0)
            moec_gemm(0, 1, j->T, n, W->cols, 1.0f, j->X, j->ldx, w, W->cols, 0.0f, j->Y + o0, j->ldy);
    }
}

/* Floats of prepared X the kernels want for W and T rows (0: none). */
static int64_t prep_floats(const qmat_kernels *k, const moec_qmat *W, int64_t T) {
    return k->prep_floats ? k->prep_floats(W, T) : 0;
}

#define MANY_MAX 64

typedef struct {
    const qmat_kernels *k;
    const moec_qmat_op *ops;
    int n;
    int64_t first[MANY_MAX + 1]; /* ops[i] owns global groups first[i] .. first[i+1] */
    const float *xs[MANY_MAX];   /* ops[i]'s prepared X, or NULL (dot prepares its own) */
} many_job;

static void many_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const many_job *j = ctx;
    for (int i = 0; i < j->n && begin < end; i++) {
        const int64_t g0 = j->first[i], g1 = j->first[i + 1];
        if (end <= g0 || begin >= g1) continue;
        const int64_t a = (begin > g0 ? begin : g0) - g0, b = (end < g1 ? end : g1) - g0;
        const moec_qmat_op *op = &j->ops[i];
        const int64_t o1 = b * QMAT_DECODE_ROWS < op->W->rows ? b * QMAT_DECODE_ROWS : op->W->rows;
        const qmat_kernels *k = kernels_for(j->k, op->W);
        if (j->xs[i]) k->dot_prepared(op->W, a * QMAT_DECODE_ROWS, o1, j->xs[i], op->T, op->Y, op->ldy);
        else k->dot(op->W, a * QMAT_DECODE_ROWS, o1, op->X, op->ldx, op->T, op->Y, op->ldy);
    }
}

/* Prepared X for every op that wants one, in one scratch buffer; ops that read the same X with the same type and
 * width (q, k and v; an expert's gate and up), or through the block types' kernels with the same width, share one
 * copy. */
static void many_prepare(many_job *j) {
    const moec_qmat_op *ops = j->ops;
    int64_t at[MANY_MAX], total = 0;
    int same[MANY_MAX];
    for (int i = 0; i < j->n; i++) {
        same[i] = -1;
        at[i] = -1;
        const qmat_kernels *ki = kernels_for(j->k, ops[i].W);
        const int64_t nx = prep_floats(ki, ops[i].W, ops[i].T);
        if (nx <= 0) continue;
        for (int e = 0; e < i && same[i] < 0; e++)
            if (at[e] >= 0 && ops[e].X == ops[i].X && ops[e].ldx == ops[i].ldx && ops[e].T == ops[i].T &&
                ops[e].W->cols == ops[i].W->cols &&
                (ops[e].W->type == ops[i].W->type ||
                 /* the block types' int8 rounding of X depends on its width only (a Q4_K q and Q8_0 k / v) */
                 (ki == &moec_qmat_kernels_blocks && kernels_for(j->k, ops[e].W) == ki)))
                same[i] = e;
        if (same[i] < 0) at[i] = total, total += nx;
    }
    float *buf = total > 0 ? moec_qmat_scratch(2, (size_t)total) : NULL;
    if (!buf) return; /* nothing wanted, or out of memory: each piece's dot prepares its own copy */
    for (int i = 0; i < j->n; i++) {
        if (at[i] >= 0) {
            kernels_for(j->k, ops[i].W)->prepare(ops[i].W, ops[i].X, ops[i].ldx, ops[i].T, buf + at[i]);
            j->xs[i] = buf + at[i];
        } else if (same[i] >= 0) {
            j->xs[i] = j->xs[same[i]];
        }
    }
}

/* The decode path of n products at once (n <= MANY_MAX, every one with T <= its decode_max): one balanced loop over
 * all their groups of QMAT_DECODE_ROWS weight rows, each op's X prepared once beforehand. */
static void decode_ops(const moec_qmat_op *ops, int n) {
    if (n <= 0) return;
    many_job j = {.k = kernels(), .ops = ops, .n = n};
    int64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        j.first[i + 1] = j.first[i] + (ops[i].W->rows + QMAT_DECODE_ROWS - 1) / QMAT_DECODE_ROWS;
        bytes += ops[i].W->rows * moec_qtype_row_bytes(ops[i].W->type, ops[i].W->cols) * ops[i].T;
    }
    many_prepare(&j);
    const int64_t groups = j.first[n], per_group = bytes / groups > 1 ? bytes / groups : 1;
    const int64_t grain = DECODE_GRAIN_BYTES / per_group, piece = DECODE_PIECE_BYTES / per_group;
    moec_parallel_for_guided(groups, grain > 1 ? grain : 1, piece > 1 ? piece : 1, many_task, &j);
}

void moec_qmat_matmul(float *Y, int64_t ldy, const float *X, int64_t ldx, int64_t T, const moec_qmat *W) {
    if (T <= 0 || W->rows <= 0) return;
    if (W->cols <= 0) { /* an empty sum (moec_qmat_check rejects such a matrix; stay defined anyway) */
        for (int64_t t = 0; t < T; t++) memset(Y + t * ldy, 0, sizeof(float) * (size_t)W->rows);
        return;
    }
    if (T <= moec_qmat_decode_max(W->type)) {
        decode_ops(&(moec_qmat_op){Y, ldy, X, ldx, T, W}, 1);
        return;
    }
    qmat_job j = {.k = kernels(), .W = W, .X = X, .Y = Y, .ldx = ldx, .ldy = ldy, .T = T};
    const int threads = moec_threads_count();
    int64_t block = (int64_t)(PREFILL_BLOCK_BYTES / sizeof(float)) / W->cols / 16 * 16;
    if (block > PREFILL_BLOCK_MAX) block = PREFILL_BLOCK_MAX;
    /* At least two blocks per thread, so that uneven blocks balance, unless that makes them too small. */
    while (block > PREFILL_BLOCK_MIN && (W->rows + block - 1) / block < 2 * threads) block /= 2;
    if (block < PREFILL_BLOCK_MIN) block = PREFILL_BLOCK_MIN;
    j.block = block;
    const int64_t blocks = (W->rows + block - 1) / block;
    /* Each block's GEMM would pack X again (perf, moe-1b prefill: ~11 % of the time, X coming from L3): with a
     * block per thread or more, X is packed once, by all threads, into the shared scratch slot 2. (A single block
     * keeps moec_gemm, which then splits its own work over the pool.) */
    if (blocks >= 2 && blocks >= threads) {
        float *xa = moec_qmat_scratch(2, (size_t)moec_gemm_packed_a_floats(T, W->cols));
        if (xa) {
            moec_gemm_pack_a(T, W->cols, X, ldx, xa);
            j.xa = xa;
        }
    }
    moec_parallel_for(blocks, 1, prefill_task, &j);
}

void moec_qmat_matmul_many(const moec_qmat_op *ops, int n) {
    int all_decode = n <= MANY_MAX;
    for (int i = 0; i < n && all_decode; i++)
        all_decode = ops[i].T > 0 && ops[i].W->rows > 0 && ops[i].W->cols > 0 &&
                     ops[i].T <= moec_qmat_decode_max(ops[i].W->type);
    if (!all_decode) {
        for (int i = 0; i < n; i++) moec_qmat_matmul(ops[i].Y, ops[i].ldy, ops[i].X, ops[i].ldx, ops[i].T, ops[i].W);
        return;
    }
    decode_ops(ops, n);
}

void moec_qmat_row(float *out, const moec_qmat *W, int64_t r) {
    size_t k = (size_t)r * (size_t)W->cols;
    switch (W->type) {
    case MOEC_QT_F32: memcpy(out, (const float *)W->data + k, (size_t)W->cols * sizeof(float)); break;
    case MOEC_QT_BF16:
        for (int64_t i = 0; i < W->cols; i++) out[i] = moec_bf16_to_f32(((const uint16_t *)W->data)[k + i]);
        break;
    case MOEC_QT_F8E4M3:
        for (int64_t i = 0; i < W->cols; i++) out[i] = W->scale[r] * moec_f8e4m3_to_f32(((const uint8_t *)W->data)[k + i]);
        break;
    case MOEC_QT_F16:
        for (int64_t i = 0; i < W->cols; i++) out[i] = moec_f16_to_f32(((const uint16_t *)W->data)[k + i]);
        break;
    case MOEC_QT_BF16P: moec_bf16p_qmat_row(out, W, r); break;
    default: /* Q8_0 and the other block types: ggml's decoders (io/ggml_quants.h) */
        moec_ggml_dequantize((moec_ggml_type)moec_qtype_ggml(W->type),
                             (const uint8_t *)W->data + (size_t)(r * moec_qtype_row_bytes(W->type, W->cols)), W->cols,
                             out);
        break;
    }
}
