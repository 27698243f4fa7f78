/* qmatmul.h — the inference engine's linear layer, y = x · Wᵀ, with W stored as fp32, bf16, IEEE half (f16), FP8
 * E4M3, ggml's Q8_0 (and its other block types), or bf16p (bf16 in 12 bits, lossless: core/bf16p.h).
 *
 * Legend: T input rows (tokens), I = cols (input features), O = rows (output features).
 *   X [T, I] fp32, row stride ldx >= I;   W [O, I] in its storage type;   Y [T, O] fp32, row stride ldy >= O.
 * E4M3 weights carry one fp32 scale per output row: W[o][i] = scale[o] · e4m3(data[o·I + i]) (a per-tensor scale
 * is the same with every scale[o] equal). f32, bf16 and f16 have no scale; their elements convert to fp32 exactly.
 * Q8_0 (llama.cpp's 8-bit format, run in place from GGUF files) stores each row as cols/32 blocks of 34 bytes: an
 * f16 scale d, then 32 int8 q; W[o][i] = d · q exactly in fp32 (d has 11 significant bits, q 8). Each block's
 * products are summed, then multiplied by d (llama.cpp multiplies int8 activations instead: close, not equal).
 *
 * Two regimes, chosen by T:
 *   decode (few rows, T <= moec_qmat_decode_max(type)): every weight row is read from memory once and used for all
 *     T input rows while they sit in L1/L2 — the cost is the weight bytes, so narrow weights are faster;
 *   prefill (more rows): blocks of weight rows are dequantised into a per-thread fp32 buffer and multiplied with
 *     moec_gemm (fp32 weights go to moec_gemm directly) — the cost is the flops, as for fp32.
 * Both are multithreaded over output rows with moec_parallel_for; called from inside another parallel loop they
 * run inline on the calling thread. Results are deterministic for a given shape, type, T, thread count and
 * instruction set, but the two regimes (and the instruction sets) differ in the last bits.
 *
 * Thread safety: moec_qmat_matmul and moec_qmat_row may run concurrently from several application threads (each
 * thread uses its own scratch). moec_qmat_set_isa and moec_qmat_release must not run while any qmat call is in
 * flight.
 *
 * E4M3 NaN codes (0x7F/0xFF) are not supported as weights: moec_qmat_row decodes them as NaN, the SIMD kernels as
 * ±480·scale. moec_quantize_row_e4m3 (core/dtype.h) never produces them from finite weights.
 */
#ifndef MOEC_KERNELS_CPU_QMATMUL_H
#define MOEC_KERNELS_CPU_QMATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "core/bf16p.h"
#include "core/error.h"
#include "io/gguf.h"
#include "kernels/cpu/gemm.h"

/* Q8_0 and the types after it are ggml's block formats, stored as in a GGUF file (io/ggml_quants.h): a row is
 * cols / block blocks (cols must be a multiple of the block). Q8_0 has kernels of its own in each instruction set's
 * file; Q4_0 .. Q6_K ("the ggml block types") have qmatmul_blocks.c, which decodes them inside the dot product. */
typedef enum {
    MOEC_QT_F32 = 0, MOEC_QT_BF16 = 1, MOEC_QT_F8E4M3 = 2, MOEC_QT_F16 = 3, MOEC_QT_Q8_0 = 4,
    MOEC_QT_Q4_0 = 5, MOEC_QT_Q4_1 = 6, MOEC_QT_Q5_0 = 7, MOEC_QT_Q5_1 = 8,
    MOEC_QT_Q2_K = 9, MOEC_QT_Q3_K = 10, MOEC_QT_Q4_K = 11, MOEC_QT_Q5_K = 12, MOEC_QT_Q6_K = 13,
    MOEC_QT_BF16P = 14 /* bf16 stored losslessly in 12 bits per weight + a row header (core/bf16p.h) */
} moec_qtype;
#define MOEC_QT_COUNT 15 /* Q8_0's block size: MOEC_Q8_0_BLOCK(_BYTES), io/gguf.h */

typedef struct {
    moec_qtype type;
    int64_t rows, cols;   /* W is [rows = O, cols = I], row-major, row stride = cols elements */
    const void *data;     /* rows · row_bytes, aligned to the element size (Q8_0: 2, the
                           * other block types: 1); may point into a read-only mmap */
    const float *scale;   /* F8E4M3 only: [rows], W[o][i] = scale[o] · e4m3(data[o][i]); otherwise NULL */
    int streamed;         /* a hint: 1 when W comes from memory, not from cache, each time it is read (a model much
                           * larger than the last-level cache: moec_infer_model_bind sets it). E4M3 decode then reads
                           * its tiles' rows as four separate streams (qmatmul_kernels.h); the same values either way */
} moec_qmat;

/* Bytes per element: 4, 2, 1, 2 (0 for the block types and bf16p, whose elements are not whole bytes, and an unknown
 * type). Inline, so that inside a kernel instantiated for one type it is a compile-time constant. */
static inline size_t moec_qtype_size(moec_qtype t) {
    switch (t) {
    case MOEC_QT_F32: return 4;
    case MOEC_QT_BF16: return 2;
    case MOEC_QT_F8E4M3: return 1;
    case MOEC_QT_F16: return 2;
    default: return 0; /* the block types */
    }
}
/* The ggml type of a block type (Q8_0 .. Q6_K; its block size and bytes: moec_ggml_type_block), -1 for the others. */
static inline int moec_qtype_ggml(moec_qtype t) {
    static const signed char ggml[MOEC_QT_COUNT] = {-1, -1, -1, -1, MOEC_GGML_Q8_0, MOEC_GGML_Q4_0, MOEC_GGML_Q4_1,
                                                    MOEC_GGML_Q5_0, MOEC_GGML_Q5_1, MOEC_GGML_Q2_K, MOEC_GGML_Q3_K,
                                                    MOEC_GGML_Q4_K, MOEC_GGML_Q5_K, MOEC_GGML_Q6_K, -1};
    return (unsigned)t < MOEC_QT_COUNT ? ggml[t] : -1;
}
/* Values per block of a block type (1 for the others); the sizes are io/gguf.c's table of ggml's types. */
static inline int64_t moec_qtype_block(moec_qtype t) {
    if (t == MOEC_QT_Q8_0) return MOEC_Q8_0_BLOCK; /* a constant in the Q8_0 kernels */
    if (t == MOEC_QT_BF16P) return MOEC_BF16P_BLOCK; /* the layout's unit of 128 columns */
    const int g = moec_qtype_ggml(t);
    return g < 0 ? 1 : moec_ggml_type_block((moec_ggml_type)g, NULL);
}
/* Bytes of one row of cols elements (a block type: cols / block blocks; cols must be a multiple of the block). */
static inline int64_t moec_qtype_row_bytes(moec_qtype t, int64_t cols) {
    if (t == MOEC_QT_Q8_0) return cols / MOEC_Q8_0_BLOCK * MOEC_Q8_0_BLOCK_BYTES;
    if (t == MOEC_QT_BF16P) return moec_bf16p_row_bytes(cols);
    const int g = moec_qtype_ggml(t);
    if (g < 0) return cols * (int64_t)moec_qtype_size(t);
    size_t block_bytes = 0;
    const int block = moec_ggml_type_block((moec_ggml_type)g, &block_bytes);
    return cols / block * (int64_t)block_bytes;
}
/* "f32", "bf16", "fp8", "f16", "q8_0", "q4_0", ..., "q6_k", "bf16p" ("?" for an unknown type). */
const char *moec_qtype_name(moec_qtype t);

/* Checks that W describes a usable matrix (known type, positive dims, data, scale present iff E4M3, aligned data,
 * a block type: cols a multiple of its block);
 * the kernels trust their arguments, so loaders call this once per tensor. */
moec_status moec_qmat_check(const moec_qmat *W);

/* Y[t, o] = Σ_i X[t, i] · W[o, i] for t < T, o < O; Y is overwritten (never read). T == 0 does nothing. */
void moec_qmat_matmul(float *Y, int64_t ldy, const float *X, int64_t ldx, int64_t T, const moec_qmat *W);

/* Several independent products Y_i = X_i · W_iᵀ (each with its own T_i rows), e.g. q/k/v of one input, or the
 * gate/up projections of every expert chosen in a decode step. When every one takes the decode path they run as
 * ONE parallel loop over all their weight rows — one thread hand-off instead of n, and the threads stay busy
 * across matrix boundaries; otherwise they run one after the other. Results equal n moec_qmat_matmul calls. */
typedef struct {
    float *Y;
    int64_t ldy;
    const float *X;
    int64_t ldx;
    int64_t T;
    const moec_qmat *W;
} moec_qmat_op;
void moec_qmat_matmul_many(const moec_qmat_op *ops, int n);

/* Row r of W dequantised into out[cols] (the lookup of a quantised embedding table). Exact: out equals the
 * decoders of io/safetensors.h times the row's scale (one fp32 multiplication). */
void moec_qmat_row(float *out, const moec_qmat *W, int64_t r);

/* The largest T that takes the decode path for weights of type t (measured crossover, see qmatmul.c). */
int64_t moec_qmat_decode_max(moec_qtype t);
/* Overrides that crossover for later calls (benchmarks and tests force each regime with it); n < 0 restores the
 * default. Not while a qmat call is in flight. */
void moec_qmat_set_decode_max(moec_qtype t, int64_t n);

/* How decode (T <= decode_max) meets ggml's block types Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K .. Q6_K on an AVX2 CPU:
 *   MOEC_QACT_Q8 (the default)  each 32 input values rounded to int8 with one fp32 scale (max|x| / 127), then
 *       integer dot products with the weight codes (qmatmul_blocks.c) — what llama.cpp does with these files (it
 *       rounds per 32 or per 256), at a third of the instructions of exact arithmetic; each input moves by at most
 *       half a step, max|x| / 254 of its block;
 *   MOEC_QACT_F32  the weights as ggml decodes them times the fp32 inputs, exact up to fp32 summation.
 * Prefill, the other types (Q8_0 included: measured no faster with int8 at one row) and scalar CPUs always compute
 * exactly. Not while a qmat call is in flight. */
typedef enum { MOEC_QACT_Q8 = 0, MOEC_QACT_F32 = 1 } moec_qact;
void moec_qmat_set_activations(moec_qact a);
moec_qact moec_qmat_activations(void);

/* Selects the kernels' instruction set for later calls, as moec_gemm_set_isa does for moec_gemm (MOEC_ERR_ARG when
 * the CPU lacks it: AVX2 needs AVX2+FMA+F16C, AVX-512 needs F+BW+VL). The prefill path's fp32 GEMM follows
 * moec_gemm_set_isa, not this. */
moec_status moec_qmat_set_isa(moec_gemm_isa isa);
/* "avx512", "avx2" or "scalar". */
const char *moec_qmat_isa_name(void);

/* Frees the dequantisation buffers of every thread (they are grown once and then reused by later calls). Call at
 * shutdown, or to return memory; later calls simply allocate again. */
void moec_qmat_release(void);

#endif
