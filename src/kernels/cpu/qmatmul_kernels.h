/* qmatmul_kernels.h — the per-instruction-set kernels behind qmatmul.c (internal to moec).
 *
 * One table per instruction set (qmatmul.c: scalar; qmatmul_avx2.c; qmatmul_avx512.c). Each kernel handles every
 * type and shape; qmatmul.c only splits the work and picks the table.
 */
#ifndef MOEC_KERNELS_CPU_QMATMUL_KERNELS_H
#define MOEC_KERNELS_CPU_QMATMUL_KERNELS_H

#include "kernels/cpu/qmatmul.h"

/* Weight rows one decode kernel call reads together (each read once from memory for all T input rows). */
#define QMAT_DECODE_ROWS 4

/* Software prefetch of the weight stream in the decode kernels: how far ahead of the row being read (bytes), and
 * into which cache (__builtin_prefetch locality; 2 = prefetcht1, L2 only). The hardware prefetchers follow a
 * sequential stream but stop at each 4 KB page and restart only after a few misses; a prefetch 1 KB ahead keeps the
 * stream going across pages. Into L2, not L1: a prefetch into L1 holds one of L1's few miss buffers until its line
 * arrives, which caps the lines in flight per core. Measured on Zen 4, E4M3 decode (bench_qmatmul 16384 x 4096, one
 * thread) 14-15 GB/s into L1 -> 20-21 GB/s into L2; moe-1b fp8 decode (bench_infer, 2 threads) 52 -> 73-95
 * tokens/s with the AVX-512 kernels, 53 -> 72-78 with the AVX2 ones; Q8_0 through qmatmul_blocks.c unchanged. */
#ifndef QMAT_PREFETCH_BYTES
#define QMAT_PREFETCH_BYTES 1024
#endif
#ifndef QMAT_PREFETCH_LOCALITY
#define QMAT_PREFETCH_LOCALITY 2
#endif

/* The E4M3 decode tiles read QMAT_DECODE_ROWS rows side by side (4 streams a row apart) and prefetch, for each
 * 64 bytes consumed per row, the same columns of the rows a whole number of groups ahead: at least
 * QMAT_F8_PREFETCH_AHEAD bytes (16 KB), so that enough lines are in flight however short the rows. Measured on Zen 4
 * (bench_infer, 2 threads, alternating builds): with one group ahead (2 KB at 512 columns) ref-moe-small fp8 decoded
 * 472-535 tokens/s, with 8 KB 774-897, 16 KB 799-891; moe-1b (8 KB groups) 74-78 -> 79-81 with 16 KB. */
#ifndef QMAT_F8_PREFETCH_AHEAD
#define QMAT_F8_PREFETCH_AHEAD 16384
#endif
static inline size_t qmat_f8_prefetch_ahead(int64_t cols) {
    const size_t group = (size_t)QMAT_DECODE_ROWS * (size_t)cols;
    return group * ((QMAT_F8_PREFETCH_AHEAD + group - 1) / group);
}

/* E4M3 decode in four streams, for weights that come from memory (moec_qmat.streamed). The tiles above read 4
 * adjacent rows side by side, which the hardware prefetchers do not follow (without the software prefetch moe-1b
 * fp8 decoded at ~40 tok/s instead of ~70), and with it two threads streamed 30-31 GB/s where a plain sequential
 * read drew 33-35 (slow memory state) and 41-45 against 49-53 (fast; a standalone loop doing the E4M3 decode and
 * FMAs on 1 GiB). The same loop over 4 streams 64 KB or more apart with no software prefetch drew 33-35 and 46-50
 * (32 KB apart: no better than adjacent rows; a software prefetch per stream, 4 or 16 KB ahead, took the gain
 * away in moe-1b decoding). So a range of rows is cut into 4 quarters and each tile takes one row of each, when a
 * quarter is at least this many bytes; returns the quarter's rows, or 0 for adjacent tiles. For weights that
 * partly stay in the last-level cache the software prefetch pays instead (ref-moe-small, 45 MB per token against
 * 32 MB of L3: 0.91-0.97x with four streams), hence the hint. */
#ifndef QMAT_F8_STREAM_MIN_BYTES
#define QMAT_F8_STREAM_MIN_BYTES (64 << 10)
#endif
static inline int64_t qmat_f8_streams(const moec_qmat *W, int64_t rows) {
    const int64_t q = rows / QMAT_DECODE_ROWS;
    return W->streamed && q > 0 && q * W->cols >= QMAT_F8_STREAM_MIN_BYTES ? q : 0;
}

/* Input rows from which the f32 / bf16 / f16 decode kernels read QMAT_DECODE_ROWS weight rows side by side (wide
 * tiles: each X vector loaded once for all of them) instead of row by row (qmatmul_avx2.c's wide_tile). At T = 2
 * the two measured the same on Zen 3; on Zen 4 (bench_qmatmul 16384 x 4096, 2 threads, alternating builds) wide
 * tiles streamed 31-35 GB/s against 17-22 row by row, with AVX-512 and AVX2 alike, and moe-1b bf16 batched decoding
 * of 2 sequences (bench_infer --batch 2) went 57.8 / 58.1 -> 59.8 / 67.3 tokens/s. */
#define QMAT_WIDE_MIN_T 2

typedef struct {
    moec_gemm_isa isa;
    const char *name;
    /* Decode: Y[t·ldy + o] = Σ_i X[t·ldx + i] · W[o][i] for o0 <= o < o1, t < T (any T >= 1). Rows are taken
     * QMAT_DECODE_ROWS at a time, each group read once from memory while the X rows are walked in small blocks. */
    void (*dot)(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T, float *Y,
                int64_t ldy);
    /* Optional (NULL: dot reads X as given). A kernel that wants X in its own column order or scaling exposes the
     * step that makes that copy, so that a multithreaded call makes it once, not once per thread and piece:
     * prep_floats(W, T) is its size in floats (0: nothing to prepare for this type), prepare(W, X, ldx, T, xs)
     * fills it, and dot_prepared(W, o0, o1, xs, T, Y, ldy) then computes what dot computes, from any thread. */
    int64_t (*prep_floats)(const moec_qmat *W, int64_t T);
    void (*prepare)(const moec_qmat *W, const float *X, int64_t ldx, int64_t T, float *xs);
    void (*dot_prepared)(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T, float *Y,
                         int64_t ldy);
    /* Prefill: out[r·cols + i] = W[o0 + r][i] as fp32, scale applied, for r < n. */
    void (*dequant)(const moec_qmat *W, int64_t o0, int64_t n, float *out);
} qmat_kernels;

/* The calling thread's scratch buffer number `slot` (0: prefill's dequantised block, 1: a kernel's own use, 2: the
 * driver's prepared X, shared with the pool's threads for the duration of one call), at
 * least `floats` long and 64-byte aligned, kept for later calls; NULL if it cannot be had (the caller then falls
 * back to a path without scratch). */
float *moec_qmat_scratch(int slot, size_t floats);

/* The kernels moec_qmat_matmul uses now (moec_qmat_set_isa). Their dot on an F32 matrix uses no scratch. */
const qmat_kernels *moec_qmat_kernels_active(void);

extern const qmat_kernels moec_qmat_kernels_scalar;
/* ggml's block types Q4_0 .. Q6_K on any instruction set (qmatmul_blocks.c): decoding fused into AVX2 dot products,
 * or (scalar) rows decoded to fp32 in scratch slot 1 and then the active kernels' fp32 dot. */
extern const qmat_kernels moec_qmat_kernels_blocks;
/* qmatmul_blocks_avx512.c: moec_qmat_kernels_blocks' int8-activation dot_prepared compiled for AVX-512 VL + VNNI
 * (same results; call only where moec_cpu_has_avx512_vnni()). */
void moec_q8_dot_avx512_vnni(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T, float *Y,
                             int64_t ldy);
extern const qmat_kernels moec_qmat_kernels_avx2;
extern const qmat_kernels moec_qmat_kernels_avx512;

#endif
