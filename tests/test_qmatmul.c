/* test_qmatmul.c — moec_qmat_matmul / moec_qmat_row against a double-precision oracle written here.
 *
 * For every weight type (f32, bf16, E4M3 with per-row scales) × every instruction set this CPU runs × 1 and 2
 * threads × T in {1,2,3,4,5,7,8,9,16,33,130} (both regimes: decode for small T, dequantise + GEMM for large) ×
 * shapes with odd rows, rows = 1, cols not a multiple of 8/16/32, and blocks that split unevenly over the threads:
 *   the oracle dequantises W with the decoders of io/safetensors.h (tested against PyTorch in test_safetensors)
 *   and sums Σ_i x·w in double. X and Y have padded rows: X's padding holds NaN (it must never be read) and Y's
 *   a sentinel (it must never be written); Y starts as NaN (it must be overwritten, never read).
 * Error bound per element: (I + 4) · 2⁻²³ · Σ_i |x_i · w_i|. Each output is one fp32 sum of I products: in any
 * summation order every product and every partial sum is rounded once (relative 2⁻²⁴ each, at most I + 1 such
 * roundings affecting any term), the E4M3 row factor and the dequantisation add one rounding each; 2⁻²³ instead of
 * 2⁻²⁴ leaves a factor 2 for second-order terms. (A lost or doubled term would exceed it by orders of magnitude.)
 * Exactness: a weight row holding every finite E4M3 code (subnormals and both signs), multiplied by one-hot inputs,
 * must give each weight bit-exactly in both regimes — this checks the half-precision decoding trick code by code.
 * Inputs spanning 2^-60 .. 1e35 check the E4M3 kernels' rescaling of X. Also: moec_qmat_row is exact; a call nested in a parallel loop equals a direct one; moec_qmat_release between
 * calls; moec_qmat_check rejects bad descriptors. The block types' int8-activation path (MOEC_QACT_Q8): see
 * test_q8_activations; every other check runs with exact products (MOEC_QACT_F32).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/threads.h"
#include "io/ggml_quants.h"
#include "io/ggml_unpack.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/cpu/gemm.h"
#include "core/cpu.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/qmatmul_kernels.h" /* qmat_f8_streams */

#include "test_check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 23)) - 1.0);
}

/* A weight matrix of the given type with random contents, plus its exact fp32 dequantisation (the oracle's view). */
typedef struct {
    moec_qmat m;
    void *data;
    float *scale;
    double *ref; /* [rows][cols] */
} test_mat;

static double decode(const moec_qmat *W, int64_t o, int64_t i) {
    size_t k = (size_t)o * (size_t)W->cols + (size_t)i;
    switch (W->type) {
    case MOEC_QT_F32: return ((const float *)W->data)[k];
    case MOEC_QT_BF16: return moec_bf16_to_f32(((const uint16_t *)W->data)[k]);
    case MOEC_QT_F16: return moec_f16_to_f32(((const uint16_t *)W->data)[k]);
    case MOEC_QT_F8E4M3: return (double)W->scale[o] * moec_f8e4m3_to_f32(((const uint8_t *)W->data)[k]);
    default: { /* Q8_0 and the other block types: io/ggml_quants.c's decoders (bit-identical to the gguf package's,
                * test_gguf_py.sh), the ones the GGUF reader converts with */
        const int64_t B = moec_qtype_block(W->type);
        float block[256];
        moec_ggml_dequantize((moec_ggml_type)moec_qtype_ggml(W->type),
                             (const uint8_t *)W->data + o * moec_qtype_row_bytes(W->type, W->cols) +
                                 i / B * moec_qtype_row_bytes(W->type, B),
                             B, block);
        return block[i % B];
    }
    }
}

/* The byte offsets of the f16 scales in one block of a ggml block type (other than Q8_0); -1 ends the list. */
static const int *half_fields(moec_qtype t) {
    static const int q4[] = {0, -1}, q41[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1}, q6k[] = {208, -1};
    switch (t) {
    case MOEC_QT_Q4_0: case MOEC_QT_Q5_0: return q4;
    case MOEC_QT_Q4_1: case MOEC_QT_Q5_1: case MOEC_QT_Q4_K: case MOEC_QT_Q5_K: return q41;
    case MOEC_QT_Q2_K: return q2k;
    case MOEC_QT_Q3_K: return q3k;
    default: return q6k;
    }
}

/* Block-type rows are whole blocks: cols is rounded up to a multiple of the block. The ggml block types other
 * than Q8_0 (no quantiser here) get random bytes, their f16 scales set to finite values that keep |w| below ~50
 * (so that the products with inputs up to 1e35 below stay finite) and 0 now and then. */
static void mat_make(test_mat *t, moec_qtype type, int64_t rows, int64_t cols) {
    memset(t, 0, sizeof *t);
    const int64_t B = moec_qtype_block(type);
    cols = (cols + B - 1) / B * B;
    t->data = malloc((size_t)(rows * moec_qtype_row_bytes(type, cols)));
    float *row = malloc(sizeof(float) * (size_t)cols);
    if (type == MOEC_QT_F8E4M3) t->scale = malloc(sizeof(float) * (size_t)rows);
    for (int64_t o = 0; o < rows; o++) {
        float mag = 0.01f + (float)(o % 7); /* rows of different magnitudes: different scales */
        for (int64_t i = 0; i < cols; i++) row[i] = mag * frand();
        if (o % 5 == 3) row[(o * 7) % cols] *= 40; /* an outlier: most of the row lands in E4M3's small values */
        switch (type) {
        case MOEC_QT_F32: memcpy((float *)t->data + o * cols, row, sizeof(float) * (size_t)cols); break;
        case MOEC_QT_BF16:
            for (int64_t i = 0; i < cols; i++) ((uint16_t *)t->data)[o * cols + i] = moec_f32_to_bf16(row[i]);
            break;
        case MOEC_QT_F8E4M3: moec_quantize_row_e4m3(row, cols, (uint8_t *)t->data + o * cols, &t->scale[o]); break;
        case MOEC_QT_F16:
            for (int64_t i = 0; i < cols; i++) ((uint16_t *)t->data)[o * cols + i] = moec_f32_to_f16(row[i]);
            break;
        case MOEC_QT_Q8_0: /* plus code −128, which ggml's quantiser never writes but a file may hold */
            moec_q8_0_quantize(row, cols, (uint8_t *)t->data + o * (cols / 32 * 34));
            for (int64_t b = 0; b < cols / 32 && o % 3 == 1; b++)
                ((uint8_t *)t->data)[o * (cols / 32 * 34) + b * 34 + 2 + (o + b) % 32] = 0x80;
            break;
        default: {
            const int64_t bb = moec_qtype_row_bytes(type, B);
            uint8_t *r = (uint8_t *)t->data + o * moec_qtype_row_bytes(type, cols);
            for (int64_t k = 0; k < cols / B * bb; k++) r[k] = (uint8_t)(frand() * 128 + 128);
            const float top = type >= MOEC_QT_Q2_K ? 0x1p-7f : 0.5f; /* K types: times 6-bit scales */
            for (int64_t b = 0; b < cols / B; b++)
                for (const int *f = half_fields(type); *f >= 0; f++) {
                    const uint16_t h = (b + o) % 11 == 5 ? 0 : moec_f32_to_f16(frand() * top * (0.1f + (float)(o % 3)));
                    r[b * bb + *f] = (uint8_t)h, r[b * bb + *f + 1] = (uint8_t)(h >> 8);
                }
            break;
        }
        }
    }
    free(row);
    t->m = (moec_qmat){.type = type, .rows = rows, .cols = cols, .data = t->data, .scale = t->scale};
    t->ref = malloc(sizeof(double) * (size_t)(rows * cols));
    for (int64_t o = 0; o < rows; o++)
        for (int64_t i = 0; i < cols; i++) t->ref[o * cols + i] = decode(&t->m, o, i);
}

static void mat_free(test_mat *t) {
    free(t->data);
    free(t->scale);
    free(t->ref);
}

#define Y_SENTINEL 4242.0f

/* One product; returns the worst error / bound (<= 1 passes; NAN on a NaN, a touched pad, or an unwritten Y). */
/* wide: X's first row is tiny (2^-60), its last reaches 1e35, the others span 2^-60 .. 2^60 (the AVX2 E4M3 kernel
 * rescales X per row). */
static double run_case(const test_mat *t, int64_t T, int64_t xpad, int64_t ypad, int wide) {
    const int64_t O = t->m.rows, I = t->m.cols, ldx = I + xpad, ldy = O + ypad;
    float *X = malloc(sizeof(float) * (size_t)(T * ldx));
    float *Y = malloc(sizeof(float) * (size_t)(T * ldy));
    for (int64_t k = 0; k < T * ldx; k++) {
        X[k] = k % ldx < I ? frand() : NAN;
        if (wide && k % ldx < I) /* row 0 all tiny, the last row huge, the others mixed */
            X[k] = ldexpf(X[k], k / ldx == T - 1 ? 116 : k / ldx == 0 ? -60 : (int)(k % 121) - 60);
    }
    for (int64_t k = 0; k < T * ldy; k++) Y[k] = k % ldy < O ? NAN : Y_SENTINEL;
    moec_qmat_matmul(Y, ldy, X, ldx, T, &t->m);
    double worst = 0;
    for (int64_t r = 0; r < T && !isnan(worst); r++) {
        for (int64_t o = O; o < ldy; o++)
            if (Y[r * ldy + o] != Y_SENTINEL) worst = NAN;
        for (int64_t o = 0; o < O && !isnan(worst); o++) {
            double sum = 0, abs_sum = 0;
            for (int64_t i = 0; i < I; i++) {
                double p = (double)X[r * ldx + i] * t->ref[o * I + i];
                sum += p;
                abs_sum += fabs(p);
            }
            double err = fabs((double)Y[r * ldy + o] - sum), bound = (double)(I + 4) * 0x1p-23 * abs_sum;
            if (isnan(Y[r * ldy + o])) worst = NAN;
            else if (err > 0) worst = fmax(worst, bound > 0 ? err / bound : INFINITY);
        }
    }
    free(X);
    free(Y);
    return worst;
}

static const moec_qtype types[] = {MOEC_QT_F32,  MOEC_QT_BF16, MOEC_QT_F8E4M3, MOEC_QT_F16,  MOEC_QT_Q8_0,
                                   MOEC_QT_Q4_0, MOEC_QT_Q4_1, MOEC_QT_Q5_0,   MOEC_QT_Q5_1, MOEC_QT_Q2_K,
                                   MOEC_QT_Q3_K, MOEC_QT_Q4_K, MOEC_QT_Q5_K,   MOEC_QT_Q6_K};
static const int64_t Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 33, 130};
static const int64_t shapes[][2] = {{1, 1}, {1, 37}, {5, 16}, {7, 33}, {13, 100}, {64, 64}, {33, 257}, {3, 1000},
                                    {130, 515}};

static void test_products(const char *isa, int threads) {
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            test_mat t;
            mat_make(&t, types[ti], shapes[si][0], shapes[si][1]);
            double worst = 0;
            int64_t worst_T = 0;
            for (size_t k = 0; k < sizeof Ts / sizeof *Ts; k++) {
                double w = run_case(&t, Ts[k], (int64_t)(k % 3) * 3, (int64_t)(k % 2) * 5, 0);
                if (isnan(w) || w > worst) {
                    worst = w;
                    worst_T = Ts[k];
                }
                if (isnan(w)) break;
            }
            check(!isnan(worst) && worst <= 1, "%s %d thread(s) %-4s %4lld x %-4lld T=1..130: worst error %.3g of "
                  "bound (at T=%lld)", isa, threads, moec_qtype_name(types[ti]), (long long)t.m.rows,
                  (long long)t.m.cols, worst, (long long)worst_T);
            mat_free(&t);
        }
    }
    /* Larger: decode spread over the threads, several uneven prefill blocks per thread. */
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        test_mat t;
        mat_make(&t, types[ti], 1100, 700);
        double w1 = run_case(&t, 1, 0, 0, 0), w8 = run_case(&t, 8, 4, 0, 0), w40 = run_case(&t, 40, 0, 3, 0);
        check(!isnan(w1 + w8 + w40) && w1 <= 1 && w8 <= 1 && w40 <= 1,
              "%s %d thread(s) %-4s 1100 x 700 T=1,8,40: worst error %.3g %.3g %.3g of bound", isa, threads,
              moec_qtype_name(types[ti]), w1, w8, w40);
        mat_free(&t);
    }
    /* Inputs over a huge range of magnitudes, up to 1e35. */
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        test_mat t;
        mat_make(&t, types[ti], 37, 300);
        double worst = 0;
        static const int64_t wide_T[] = {1, 3, 8, 20};
        for (size_t k = 0; k < 4; k++) {
            double w = run_case(&t, wide_T[k], 1, 0, 1);
            worst = isnan(w) || w > worst ? w : worst;
        }
        check(!isnan(worst) && worst <= 1, "%s %d thread(s) %-4s 37 x 300 T=1,3,8,20, x from 2^-60 to 1e35: worst "
              "error %.3g of bound", isa, threads, moec_qtype_name(types[ti]), worst);
        mat_free(&t);
    }
}

/* moec_qmat.streamed (the E4M3 tiles read one row of each quarter of a range, qmat_f8_streams) must not change a
 * single bit: each row's sum is the same chain of operations whichever rows share its tile. Rows not a multiple of
 * 4 (the rows left over), T = 1..5 (tiles of 2 input rows and 1), and the products also hold the oracle's bound. */
static void test_f8_streams(const char *isa, int threads) {
    test_mat t;
    mat_make(&t, MOEC_QT_F8E4M3, 2053, 1024);
    const int engaged = qmat_f8_streams(&(moec_qmat){.streamed = 1, .cols = 1024}, 2053) > 0 &&
                        qmat_f8_streams(&(moec_qmat){.streamed = 1, .cols = 1024}, 2053 / 2 / 2) > 0;
    int differ = 0;
    double worst = 0;
    for (int64_t T = 1; T <= 5; T++) {
        float *X = malloc(sizeof(float) * (size_t)(T * 1024)), *Y[2];
        for (int64_t k = 0; k < T * 1024; k++) X[k] = frand();
        for (int s = 0; s < 2; s++) {
            Y[s] = malloc(sizeof(float) * (size_t)(T * 2053));
            t.m.streamed = s;
            moec_qmat_matmul(Y[s], 2053, X, 1024, T, &t.m);
        }
        differ += memcmp(Y[0], Y[1], sizeof(float) * (size_t)(T * 2053)) != 0;
        free(X), free(Y[0]), free(Y[1]);
    }
    t.m.streamed = 1;
    for (int64_t T = 1; T <= 3; T += 2) {
        const double w = run_case(&t, T, T, 2, 0);
        worst = isnan(w) || w > worst ? w : worst;
    }
    check(engaged && differ == 0 && !isnan(worst) && worst <= 1,
          "%s %d thread(s) fp8 2053 x 1024 T=1..5: four-stream tiles (engaged: %d) == adjacent tiles bit for bit "
          "(%d T differ), worst error %.3g of bound", isa, threads, engaged, differ, worst);
    mat_free(&t);
}

/* Every finite E4M3 code as a weight, through one-hot inputs: each output must be exactly scale · e4m3(code). */
static void test_all_codes(const char *isa) {
    enum { C = 254, O = 3 };
    uint8_t *q = malloc(O * C);
    float scale[O] = {1.0f, 0.37f, 1e-3f};
    for (int o = 0; o < O; o++)
        for (int c = 0, k = 0; c < 256; c++)
            if ((c & 0x7f) != 0x7f) q[o * C + (k++ + 17 * o) % C] = (uint8_t)c; /* rows in different orders */
    moec_qmat W = {.type = MOEC_QT_F8E4M3, .rows = O, .cols = C, .data = q, .scale = scale};
    for (int pass = 0; pass < 2; pass++) {
        int64_t T = pass == 0 ? 8 : C; /* decode (8 one-hot rows at a time), then prefill (the identity at once) */
        float *X = calloc((size_t)(T * C), sizeof(float)), *Y = malloc(sizeof(float) * (size_t)(T * O));
        int bad = 0;
        for (int64_t c0 = 0; c0 < C; c0 += T) {
            int64_t n = C - c0 < T ? C - c0 : T;
            memset(X, 0, sizeof(float) * (size_t)(T * C));
            for (int64_t t = 0; t < n; t++) X[t * C + c0 + t] = 1;
            moec_qmat_matmul(Y, O, X, C, n, &W);
            for (int64_t t = 0; t < n; t++)
                for (int o = 0; o < O; o++) {
                    float want = scale[o] * moec_f8e4m3_to_f32(q[o * C + c0 + t]);
                    if (Y[t * O + o] != want && bad++ < 3) /* as values: -0 sums to +0 */
                        printf("     code 0x%02x scale %g: got %a want %a\n", q[o * C + c0 + t], scale[o],
                               Y[t * O + o], want);
                }
        }
        check(bad == 0, "%s e4m3: all 254 finite codes x 3 scales exact through one-hot inputs (%s, %d bad)", isa,
              pass == 0 ? "decode" : "prefill", bad);
        free(X);
        free(Y);
    }
    free(q);
}

/* E4M3 with huge inputs and a small row scale, so that the result is finite although x · w (unscaled) is not: every
 * column must be summed in the kernels' scaled units, the columns past the last full vector included (a version
 * summed those tails unscaled and returned inf). x = ±2^120, w = ±448 (code 0x7e / 0xfe), scale 2^-16; the exact
 * result is scale · Σ x·w, computed here in double. */
static void test_f8_huge_inputs(const char *isa) {
    static const int64_t cols[] = {40, 100, 127, 200};
    int bad = 0;
    for (size_t ci = 0; ci < sizeof cols / sizeof *cols; ci++) {
        const int64_t C = cols[ci], O = 5;
        uint8_t *q = malloc((size_t)(O * C));
        float scale[5];
        for (int64_t o = 0; o < O; o++) {
            scale[o] = 0x1p-16f;
            for (int64_t i = 0; i < C; i++) q[o * C + i] = (i * 7 + o) % 5 == 0 ? 0xfe : 0x7e; /* mostly +448 */
        }
        moec_qmat W = {.type = MOEC_QT_F8E4M3, .rows = O, .cols = C, .data = q, .scale = scale};
        for (int64_t T = 1; T <= 3; T++) {
            float *X = malloc(sizeof(float) * (size_t)(T * C)), *Y = malloc(sizeof(float) * (size_t)(T * O));
            for (int64_t k = 0; k < T * C; k++) X[k] = (k % 11 == 3) ? -0x1p120f : 0x1p120f;
            moec_qmat_matmul(Y, O, X, C, T, &W);
            for (int64_t t = 0; t < T; t++)
                for (int64_t o = 0; o < O; o++) {
                    double want = 0;
                    for (int64_t i = 0; i < C; i++) want += (double)X[t * C + i] * moec_f8e4m3_to_f32(q[o * C + i]);
                    want *= 0x1p-16;
                    const double got = Y[t * O + o];
                    if (!(fabs(got - want) <= 1e-6 * fabs(want)) && bad++ < 3)
                        printf("     cols %lld T %lld row %lld: got %g want %g\n", (long long)C, (long long)T,
                               (long long)o, got, want);
                }
            free(X);
            free(Y);
        }
        free(q);
    }
    check(bad == 0, "%s e4m3: inputs of 2^120 with scale 2^-16 give the finite exact result (cols 40/100/127/200, "
          "T 1-3; %d bad)", isa, bad);
}

/* Every finite f16 code (±0, the subnormals down to 2^-24, up to ±65504) as a weight: the 63,488 codes fill a
 * 992 × 64 matrix, multiplied by one-hot inputs of 1 and of 2^-20:
 * each output must be exactly x · f16(code). Decode in blocks of 8 one-hot rows, prefill with all 64 at once. */
static void test_all_f16_codes(const char *isa) {
    enum { C = 64 };
    int n = 0;
    uint16_t *q = malloc(sizeof(uint16_t) * 65536);
    for (int h = 0; h < 65536; h++)
        if ((h & 0x7c00) != 0x7c00) q[n++] = (uint16_t)h; /* inf and NaN left out: weights are finite */
    const int O = n / C;
    moec_qmat W = {.type = MOEC_QT_F16, .rows = O, .cols = C, .data = q};
    float *X = malloc(sizeof(float) * C * C), *Y = malloc(sizeof(float) * (size_t)(C * O));
    for (int pass = 0; pass < 4; pass++) {
        const int64_t T = pass % 2 == 0 ? 8 : C;
        const float x = pass < 2 ? 1.0f : 0x1p-20f;
        int bad = 0;
        for (int64_t c0 = 0; c0 < C; c0 += T) {
            memset(X, 0, sizeof(float) * C * C);
            for (int64_t t = 0; t < T; t++) X[t * C + c0 + t] = x;
            moec_qmat_matmul(Y, O, X, C, T, &W);
            for (int64_t t = 0; t < T; t++)
                for (int o = 0; o < O; o++) {
                    const float want = x * moec_f16_to_f32(q[o * C + c0 + t]);
                    if (Y[t * O + o] != want && bad++ < 3)
                        printf("     code 0x%04x x %g: got %a want %a\n", q[o * C + c0 + t], x, Y[t * O + o], want);
                }
        }
        check(bad == 0, "%s f16: all %d finite codes exact through one-hot inputs of %g (%s, %d bad)", isa, n, x,
              T == 8 ? "decode" : "prefill", bad);
    }
    free(X);
    free(Y);
    free(q);
}

/* Every int8 value under f16 scales from the smallest subnormal to 65504, through one-hot inputs: each output must be
 * exactly d · q (ggml's value), in decode and in prefill. */
static void test_all_q8_codes(const char *isa) {
    enum { C = 256 }; /* 8 blocks: each block holds 32 of the 256 int8 values */
    static const uint16_t ds[] = {0x0001, 0x03ff, 0x0400, 0x2e66, 0x3c00, 0x5640, 0x7bff, 0x8001, 0xbc00};
    enum { O = sizeof ds / sizeof *ds };
    uint8_t *w = malloc((size_t)O * C / 32 * 34);
    for (int o = 0; o < O; o++)
        for (int b = 0; b < C / 32; b++) {
            uint8_t *blk = w + (size_t)(o * (C / 32) + b) * 34;
            blk[0] = (uint8_t)(ds[o] & 0xff), blk[1] = (uint8_t)(ds[o] >> 8);
            for (int i = 0; i < 32; i++) blk[2 + i] = (uint8_t)((b * 32 + i + 37 * o) & 0xff); /* rows rotated */
        }
    moec_qmat W = {.type = MOEC_QT_Q8_0, .rows = O, .cols = C, .data = w};
    float *X = malloc(sizeof(float) * C * C), *Y = malloc(sizeof(float) * C * O);
    for (int pass = 0; pass < 2; pass++) {
        const int64_t T = pass == 0 ? 8 : C;
        int bad = 0;
        for (int64_t c0 = 0; c0 < C; c0 += T) {
            memset(X, 0, sizeof(float) * C * C);
            for (int64_t t = 0; t < T; t++) X[t * C + c0 + t] = 1;
            moec_qmat_matmul(Y, O, X, C, T, &W);
            for (int64_t t = 0; t < T; t++)
                for (int o = 0; o < O; o++) {
                    const int64_t i = c0 + t;
                    const int8_t q = (int8_t)w[(size_t)(o * (C / 32) + i / 32) * 34 + 2 + i % 32];
                    const float want = moec_f16_to_f32(ds[o]) * (float)q;
                    if (Y[t * O + o] != want && bad++ < 3)
                        printf("     d 0x%04x q %d: got %a want %a\n", ds[o], q, Y[t * O + o], want);
                }
        }
        check(bad == 0, "%s q8_0: all 256 int8 values x %d scales exact through one-hot inputs (%s, %d bad)", isa, O,
              T == 8 ? "decode" : "prefill", bad);
    }
    free(X);
    free(Y);
    free(w);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Int8 activations (MOEC_QACT_Q8) for the block types that have them. The oracle rounds X itself by the documented
 * rule (per 32 values dx = max|x| / 127, y = nearest-even(x · (127 / max|x|))) and sums (a·q + c)·dx·y in double
 * with the block's codes q and per-16 scale a / offset c (io/ggml_unpack.h, whose a·q + c equals ggml's decoding:
 * test_gguf). Bound: (I + 4)·2⁻²³·Σ(|a·q| + |c|)·|dx·y| — the kernels sum a·q and c separately, each product and
 * partial sum rounded once. Then, with no reimplementation at all: the result differs from the exact path's by at
 * most Σ|w|·dx/2 (each input moves by at most half a step) plus both paths' rounding. */
static const moec_qtype q8_types[] = {MOEC_QT_Q4_0, MOEC_QT_Q4_1, MOEC_QT_Q5_0, MOEC_QT_Q5_1, MOEC_QT_Q2_K,
                                      MOEC_QT_Q3_K, MOEC_QT_Q4_K, MOEC_QT_Q5_K, MOEC_QT_Q6_K, MOEC_QT_Q8_0};

static void q8_round(const float *x0, int64_t I, double *xh, double *step) {
    /* a row whose max |x| is below 2^-60 is first scaled by a power of two to a max in [0.5, 1) */
    float rmax = 0, *x = malloc(sizeof(float) * (size_t)I);
    for (int64_t i = 0; i < I; i++) rmax = fmaxf(rmax, fabsf(x0[i]));
    int e = 0;
    if (rmax > 0 && rmax < 0x1p-60f) (void)frexpf(rmax, &e);
    for (int64_t i = 0; i < I; i++) x[i] = (float)ldexp(x0[i], -e);
    for (int64_t b = 0; b < I / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
        /* (the documented rule; below 2^-60 x and max|x| are scaled by 2^64 first, so that 127 / max|x| is finite) */
        const float d = amax / 127.0f, up = amax < 0x1p-60f ? 0x1p64f : 1.0f,
                    inv = amax > 0 ? 127.0f / (amax * up) : 0.0f;
        for (int i = 0; i < 32; i++) xh[32 * b + i] = ldexp((double)d * nearbyintf(x[32 * b + i] * up * inv), e);
        step[b] = ldexp(d, e);
    }
    free(x);
}

/* Worst error / bound over T rows (NaN: a NaN output, a touched pad); *vs_exact: the worst distance to the exact
 * path's result / its bound. */
static double run_q8_case(const test_mat *t, int64_t T, int64_t xpad, int wide, double *vs_exact) {
    const int64_t O = t->m.rows, I = t->m.cols, ldx = I + xpad, ldy = O + 2, B = moec_qtype_block(t->m.type);
    const int64_t bb = moec_qtype_row_bytes(t->m.type, B);
    float *X = malloc(sizeof(float) * (size_t)(T * ldx)), *Y = malloc(sizeof(float) * (size_t)(T * ldy)),
          *E = malloc(sizeof(float) * (size_t)(T * ldy));
    double *xh = malloc(sizeof(double) * (size_t)I), *step = malloc(sizeof(double) * (size_t)(I / 32)),
           *aq = malloc(sizeof(double) * (size_t)(O * I)), *cc = malloc(sizeof(double) * (size_t)(O * I));
    for (int64_t o = 0; o < O; o++)
        for (int64_t b = 0; b < I / B; b++) {
            const uint8_t *blk = (const uint8_t *)t->m.data + o * moec_qtype_row_bytes(t->m.type, I) + b * bb;
            if (t->m.type == MOEC_QT_Q8_0) { /* d · (signed code), no offset (ggml_quants.h) */
                const double d = moec_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
                for (int64_t i = 0; i < B; i++) {
                    aq[o * I + b * B + i] = d * (int8_t)blk[2 + i];
                    cc[o * I + b * B + i] = 0;
                }
                continue;
            }
            uint8_t q[256];
            float a[16], c[16];
            moec_ggml_unpack((moec_ggml_type)moec_qtype_ggml(t->m.type), blk, q, a, c);
            for (int64_t i = 0; i < B; i++) {
                aq[o * I + b * B + i] = (double)a[i / 16] * q[i];
                cc[o * I + b * B + i] = c[i / 16];
            }
        }
    for (int64_t k = 0; k < T * ldx; k++) {
        X[k] = k % ldx < I ? frand() * (float)(1 + k / ldx % 3) : NAN;
        if (k % ldx < I && (k / 32) % 9 == 4) X[k] = 0; /* whole zero blocks now and then (max|x| = 0) */
        if (wide && k % ldx < I) /* per row: from 2^-140 (subnormal) to 2^100 */
            X[k] = ldexpf(X[k], (int)((k / ldx) * 240 / (T > 1 ? T - 1 : 1)) - 140);
    }
    for (int64_t k = 0; k < T * ldy; k++) Y[k] = E[k] = k % ldy < O ? NAN : Y_SENTINEL;
    moec_qmat_set_activations(MOEC_QACT_F32);
    moec_qmat_matmul(E, ldy, X, ldx, T, &t->m);
    moec_qmat_set_activations(MOEC_QACT_Q8);
    moec_qmat_matmul(Y, ldy, X, ldx, T, &t->m);
    double worst = 0;
    *vs_exact = 0;
    for (int64_t r = 0; r < T && !isnan(worst); r++) {
        q8_round(X + r * ldx, I, xh, step);
        for (int64_t o = O; o < ldy; o++)
            if (Y[r * ldy + o] != Y_SENTINEL) worst = NAN;
        for (int64_t o = 0; o < O && !isnan(worst); o++) {
            double sum = 0, abs_sum = 0, half_steps = 0, exact_abs = 0;
            for (int64_t i = 0; i < I; i++) {
                const double w = t->ref[o * I + i];
                sum += (aq[o * I + i] + cc[o * I + i]) * xh[i];
                abs_sum += (fabs(aq[o * I + i]) + fabs(cc[o * I + i])) * fabs(xh[i]);
                half_steps += fabs(w) * step[i / 32] / 2;
                exact_abs += fabs(w * X[r * ldx + i]);
            }
            /* plus the absolute rounding of subnormal results (a row of 2^-140 inputs): the kernel's one final
             * scaling, and the exact path's products */
            const double y = Y[r * ldy + o], err = fabs(y - sum),
                         bound = (double)(I + 4) * 0x1p-23 * abs_sum + 0x1p-148;
            if (isnan(y)) worst = NAN;
            else if (err > 0) worst = fmax(worst, bound > 0 ? err / bound : INFINITY);
            const double d = fabs(y - (double)E[r * ldy + o]),
                         db = half_steps + bound + (double)(I + 4) * (0x1p-23 * exact_abs + 0x1p-149);
            if (d > 0) *vs_exact = fmax(*vs_exact, db > 0 ? d / db : INFINITY);
        }
    }
    free(X), free(Y), free(E), free(xh), free(step), free(aq), free(cc);
    return worst;
}

static void test_q8_activations(const char *isa, int threads) {
    static const int64_t q8_shapes[][2] = {{1, 256}, {7, 512}, {13, 768}, {33, 256}, {130, 1024}};
    static const int64_t q8_Ts[] = {1, 2, 3, 4, 5, 8, 9, 16, 32};
    for (size_t ti = 0; ti < sizeof q8_types / sizeof *q8_types; ti++)
        for (size_t si = 0; si < sizeof q8_shapes / sizeof *q8_shapes; si++) {
            test_mat t;
            mat_make(&t, q8_types[ti], q8_shapes[si][0], q8_shapes[si][1]);
            double worst = 0, worst_exact = 0;
            for (size_t k = 0; k < sizeof q8_Ts / sizeof *q8_Ts && !isnan(worst); k++) {
                double ve, w = run_q8_case(&t, q8_Ts[k], (int64_t)(k % 3) * 5, 0, &ve);
                worst = isnan(w) || w > worst ? w : worst;
                worst_exact = fmax(worst_exact, ve);
            }
            check(!isnan(worst) && worst <= 1 && worst_exact <= 1,
                  "%s %d thread(s) %-4s %4lld x %-4lld T=1..32, int8 activations: worst error %.3g of bound; distance "
                  "to the exact path %.3g of bound", isa, threads, moec_qtype_name(q8_types[ti]),
                  (long long)t.m.rows, (long long)t.m.cols, worst, worst_exact);
            mat_free(&t);
        }
    /* Rows of inputs from 2^-140 (subnormal) to 2^100 (the weights stay below ~50: no product overflows). */
    for (size_t ti = 0; ti < sizeof q8_types / sizeof *q8_types; ti++) {
        test_mat t;
        mat_make(&t, q8_types[ti], 19, 512);
        double ve, w = run_q8_case(&t, 9, 3, 1, &ve);
        check(!isnan(w) && w <= 1 && ve <= 1, "%s %d thread(s) %-4s int8 activations, x from 2^-140 to 2^100: worst "
              "error %.3g of bound; distance to the exact path %.3g of bound", isa, threads,
              moec_qtype_name(q8_types[ti]), w, ve);
        mat_free(&t);
    }
    /* An inf or NaN input makes its row's outputs NaN (as exact arithmetic would: inf·0 and NaN propagate). */
    for (size_t ti = 0; ti < sizeof q8_types / sizeof *q8_types; ti++) {
        test_mat t;
        mat_make(&t, q8_types[ti], 9, 512);
        float X[3 * 512], Y[3 * 9];
        for (int i = 0; i < 3 * 512; i++) X[i] = frand();
        X[512 + 300] = NAN;
        X[1024 + 7] = INFINITY;
        moec_qmat_set_activations(MOEC_QACT_Q8);
        moec_qmat_matmul(Y, 9, X, 512, 3, &t.m);
        int ok = 1;
        for (int o = 0; o < 9; o++) ok &= isfinite(Y[o]) && isnan(Y[9 + o]) && isnan(Y[18 + o]);
        check(ok, "%s %-4s int8 activations: a NaN or inf input gives NaN outputs in its row only", isa,
              moec_qtype_name(q8_types[ti]));
        mat_free(&t);
    }
    /* Q8_0 rows wider than 1536 values keep the exact kernel (qmatmul.c: measured faster there): the same bits
     * with int8 activations on as off; rows of 512 take the int8 kernel (their results differ). */
    for (int wide_rows = 0; wide_rows < 2; wide_rows++) {
        test_mat t;
        const int64_t I = wide_rows ? 2048 : 512;
        mat_make(&t, MOEC_QT_Q8_0, 5, I);
        float *X = malloc(sizeof(float) * (size_t)(2 * I)), Y[2][10];
        for (int64_t i = 0; i < 2 * I; i++) X[i] = frand();
        moec_qmat_set_activations(MOEC_QACT_F32);
        moec_qmat_matmul(Y[0], 5, X, I, 2, &t.m);
        moec_qmat_set_activations(MOEC_QACT_Q8);
        moec_qmat_matmul(Y[1], 5, X, I, 2, &t.m);
        const int same = memcmp(Y[0], Y[1], sizeof Y[0]) == 0;
        check(wide_rows ? same : !same, "%s q8_0 rows of %lld with int8 activations on: %s", isa, (long long)I,
              wide_rows ? "the exact kernel's bits" : "the int8 kernel (not the exact bits)");
        free(X);
        mat_free(&t);
    }
    moec_qmat_set_activations(MOEC_QACT_F32);
}

/* The int8-activation kernels exist twice (qmatmul_q8.h: AVX2, and AVX-512 VL + VNNI), meant to give the same bits:
 * the same integer sums (vpdpbusd vs vpmaddubsw + vpmaddwd, whose int16 pairs cannot saturate on these codes) and
 * the same float operations in the same order. Checked on every block type, rows of 512 (paired on VNNI) and 768,
 * row counts that leave 1..3 rows for the last tile and T = 1..9. (Not in the emulated build: SIMDe's FMA there, without the instruction, rounds twice, so
 * only the error bounds of test_q8_activations hold, and they are checked.) */
static void test_q8_isas_agree(void) {
#ifdef MOEC_EMULATE_AVX512
    printf("skip int8 activations avx2 vs avx512-vnni bit for bit: the AVX-512 kernels are emulated\n");
    return;
#endif
    if (moec_qmat_set_isa(MOEC_GEMM_ISA_AVX512) != MOEC_OK || moec_qmat_set_isa(MOEC_GEMM_ISA_AVX2) != MOEC_OK ||
        !moec_cpu_has_avx512_vnni()) {
        printf("skip int8 activations avx2 vs avx512-vnni: this CPU lacks one of them\n");
        moec_qmat_set_isa(MOEC_GEMM_ISA_AUTO);
        return;
    }
    moec_qmat_set_activations(MOEC_QACT_Q8);
    for (size_t k = 0; k < 2 * sizeof q8_types / sizeof *q8_types; k++) {
        const size_t ti = k / 2;
        test_mat t;
        mat_make(&t, q8_types[ti], 19, k % 2 ? 768 : 512); /* 512: Q4_K / Q5_K rows go in pairs on VNNI */
        const int64_t O = t.m.rows, I = t.m.cols;
        float *X = malloc(sizeof(float) * (size_t)(9 * I)), *Y[2];
        for (int64_t k = 0; k < 9 * I; k++) X[k] = frand() * (float)(1 + k % 5);
        long bad = 0;
        for (int64_t T = 1; T <= 9; T++) {
            for (int v = 0; v < 2; v++) {
                Y[v] = malloc(sizeof(float) * (size_t)(T * O));
                moec_qmat_set_isa(v ? MOEC_GEMM_ISA_AVX512 : MOEC_GEMM_ISA_AVX2);
                moec_qmat_matmul(Y[v], O, X, I, T, &t.m);
            }
            bad += memcmp(Y[0], Y[1], sizeof(float) * (size_t)(T * O)) != 0;
            free(Y[0]), free(Y[1]);
        }
        check(bad == 0, "int8 activations %-4s 19 x %lld, T = 1..9: avx2 and avx512-vnni kernels give the same bits "
              "(%ld T differ)", moec_qtype_name(q8_types[ti]), (long long)I, bad);
        free(X);
        mat_free(&t);
    }
    moec_qmat_set_activations(MOEC_QACT_F32);
    moec_qmat_set_isa(MOEC_GEMM_ISA_AUTO);
}

static void test_row(void) {
    int bad = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        test_mat t;
        mat_make(&t, types[ti], 9, 77);
        const int64_t C = t.m.cols;
        float out[256];
        for (int64_t r = 0; r < 9; r++) {
            moec_qmat_row(out, &t.m, r);
            for (int i = 0; i < C; i++)
                if (out[i] != (float)t.ref[r * C + i]) bad++;
        }
        mat_free(&t);
    }
    uint8_t nan_code = 0x7f;
    float one = 1;
    moec_qmat nw = {.type = MOEC_QT_F8E4M3, .rows = 1, .cols = 1, .data = &nan_code, .scale = &one};
    float o;
    moec_qmat_row(&o, &nw, 0);
    check(bad == 0 && isnan(o), "row: every type's rows equal the reference decoders exactly (%d bad); a NaN code -> NaN",
          bad);
}

typedef struct {
    const moec_qmat *W;
    const float *X;
    float *Y;
    int64_t T;
} nested_ctx;

static void nested_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const nested_ctx *c = ctx;
    for (int64_t k = begin; k < end; k++) /* each call writes its own copy of Y */
        moec_qmat_matmul(c->Y + k * c->T * c->W->rows, c->W->rows, c->X, c->W->cols, c->T, c->W);
}

static void test_nested_and_release(void) {
    moec_threads_init(2);
    test_mat t;
    mat_make(&t, MOEC_QT_F8E4M3, 300, 260);
    for (int pass = 0; pass < 2; pass++) {
        int64_t T = pass ? 50 : 3, n = T * 300;
        float *X = malloc(sizeof(float) * (size_t)(T * 260)), *Y = malloc(sizeof(float) * (size_t)(4 * n));
        for (int64_t k = 0; k < T * 260; k++) X[k] = frand();
        nested_ctx c = {&t.m, X, Y, T};
        moec_parallel_for(4, 1, nested_task, &c);
        float *Y0 = malloc(sizeof(float) * (size_t)n);
        moec_qmat_release(); /* every thread's buffer freed: the next call must allocate afresh */
        moec_qmat_matmul(Y0, 300, X, 260, T, &t.m);
        int same = 1;
        for (int k = 0; k < 4; k++) same &= memcmp(Y + k * n, Y0, sizeof(float) * (size_t)n) == 0;
        check(same, "nested: 4 calls inside a parallel loop equal a direct call bit for bit (T=%lld), across a release",
              (long long)T);
        free(X);
        free(Y);
        free(Y0);
    }
    mat_free(&t);
}

/* moec_qmat_matmul_many == one moec_qmat_matmul per product, bit for bit: three types, different shapes and row
 * counts in one call (decode path), and one product past the decode threshold (sequential fallback). */
static void test_many(void) {
    test_mat m[6];
    mat_make(&m[0], MOEC_QT_F32, 37, 70);
    mat_make(&m[1], MOEC_QT_BF16, 130, 64);
    mat_make(&m[2], MOEC_QT_F8E4M3, 9, 300);
    mat_make(&m[3], MOEC_QT_F16, 40, 48);
    mat_make(&m[4], MOEC_QT_Q8_0, 21, 96);
    mat_make(&m[5], MOEC_QT_BF16, 50, 64);
    const int64_t T[6] = {1, 3, 2, 2, 4, moec_qmat_decode_max(MOEC_QT_BF16) + 5};
    float *X[6], *Y[6], *R[6];
    moec_qmat_op ops[6];
    for (int k = 0; k < 6; k++) {
        const int64_t n_x = T[k] * m[k].m.cols, n_y = T[k] * m[k].m.rows;
        X[k] = malloc(sizeof(float) * (size_t)n_x);
        Y[k] = malloc(sizeof(float) * (size_t)n_y);
        R[k] = malloc(sizeof(float) * (size_t)n_y);
        for (int64_t i = 0; i < n_x; i++) X[k][i] = frand();
        moec_qmat_matmul(R[k], m[k].m.rows, X[k], m[k].m.cols, T[k], &m[k].m);
        ops[k] = (moec_qmat_op){Y[k], m[k].m.rows, X[k], m[k].m.cols, T[k], &m[k].m};
    }
    for (int threads = 1; threads <= 2; threads++) {
        moec_threads_init(threads);
        int same = 1;
        moec_qmat_matmul_many(ops, 5);
        for (int k = 0; k < 5; k++) same &= !memcmp(Y[k], R[k], sizeof(float) * (size_t)(T[k] * m[k].m.rows));
        moec_qmat_matmul_many(ops, 6);
        for (int k = 0; k < 6; k++) same &= !memcmp(Y[k], R[k], sizeof(float) * (size_t)(T[k] * m[k].m.rows));
        check(same, "many: 5 products (f32/bf16/fp8/f16/q8_0, T 1/3/2/2/4) in one loop, and with a prefill-size one, == single "
                    "calls bit for bit (%d thread(s))", threads);
    }
    for (int k = 0; k < 6; k++) {
        free(X[k]);
        free(Y[k]);
        free(R[k]);
        mat_free(&m[k]);
    }
}

/* Int8 activations through moec_qmat_matmul_many: a Q4_K and a Q6_K product of one X and a Q5_0 one of another
 * (each quantises its X once, in the shared prepared buffer) equal single calls bit for bit. */
static void test_many_q8(void) {
    /* q4_k, q6_k and q8_0 read one X (their int8 rounding of it is shared: same width), q5_0 another, and a second
     * q4_k a third X of the same width (which must not take the first one's rounding) */
    enum { N = 5 };
    test_mat m[N];
    mat_make(&m[0], MOEC_QT_Q4_K, 20, 512);
    mat_make(&m[1], MOEC_QT_Q6_K, 12, 512);
    mat_make(&m[2], MOEC_QT_Q5_0, 9, 96);
    mat_make(&m[3], MOEC_QT_Q8_0, 7, 512);
    mat_make(&m[4], MOEC_QT_Q4_K, 6, 512);
    float X0[3 * 512], X1[3 * 96], X2[3 * 512], Y[N][3 * 20], R[N][3 * 20];
    for (int i = 0; i < 3 * 512; i++) X0[i] = frand(), X2[i] = frand();
    for (int i = 0; i < 3 * 96; i++) X1[i] = frand();
    const float *X[N] = {X0, X0, X1, X0, X2};
    moec_qmat_set_activations(MOEC_QACT_Q8);
    moec_qmat_op ops[N];
    for (int k = 0; k < N; k++) {
        moec_qmat_matmul(R[k], m[k].m.rows, X[k], m[k].m.cols, 3, &m[k].m);
        ops[k] = (moec_qmat_op){Y[k], m[k].m.rows, X[k], m[k].m.cols, 3, &m[k].m};
    }
    for (int threads = 1; threads <= 2; threads++) {
        moec_threads_init(threads);
        moec_qmat_matmul_many(ops, N);
        int same = 1;
        for (int k = 0; k < N; k++) same &= !memcmp(Y[k], R[k], sizeof(float) * (size_t)(3 * m[k].m.rows));
        check(same, "many, int8 activations: q4_k + q6_k + q8_0 on one X, q5_0 and q4_k on others == single calls (%d "
              "thread(s))", threads);
    }
    moec_qmat_set_activations(MOEC_QACT_F32);
    for (int k = 0; k < N; k++) mat_free(&m[k]);
}

static void test_check(void) {
    uint8_t q[4] = {0};
    float s = 1;
    moec_qmat ok = {.type = MOEC_QT_F8E4M3, .rows = 2, .cols = 2, .data = q, .scale = &s};
    moec_qmat no_scale = ok, bad_type = ok, bf_scale = ok, zero = ok, misaligned = ok;
    no_scale.scale = NULL;
    bad_type.type = (moec_qtype)7;
    bf_scale.type = MOEC_QT_BF16;
    zero.rows = 0;
    misaligned.type = MOEC_QT_F32;
    misaligned.scale = NULL;
    misaligned.data = q + 1;
    check(moec_qmat_check(&ok) == MOEC_OK && moec_qmat_check(&no_scale) == MOEC_ERR_ARG &&
              moec_qmat_check(&bad_type) == MOEC_ERR_ARG && moec_qmat_check(&bf_scale) == MOEC_ERR_ARG &&
              moec_qmat_check(&zero) == MOEC_ERR_ARG && moec_qmat_check(&misaligned) == MOEC_ERR_ARG,
          "check: rejects a missing / extra scale, unknown type, empty shape, misaligned data");
    check(moec_qtype_size(MOEC_QT_F32) == 4 && moec_qtype_size(MOEC_QT_BF16) == 2 &&
              moec_qtype_size(MOEC_QT_F8E4M3) == 1 && moec_qtype_size(MOEC_QT_F16) == 2 &&
              strcmp(moec_qtype_name(MOEC_QT_F8E4M3), "fp8") == 0 && strcmp(moec_qtype_name(MOEC_QT_BF16), "bf16") == 0 &&
              strcmp(moec_qtype_name(MOEC_QT_F16), "f16") == 0,
          "qtype: sizes 4/2/1/2, names");
}

int main(void) {
    static const moec_gemm_isa isas[] = {MOEC_GEMM_ISA_SCALAR, MOEC_GEMM_ISA_AVX2, MOEC_GEMM_ISA_AVX512};
    moec_qmat_set_activations(MOEC_QACT_F32); /* exact products, except in the int8-activation tests */
    test_check();
    test_row();
    for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
        if (moec_qmat_set_isa(isas[k]) != MOEC_OK) {
            printf("skip %s: %s\n", k == 2 ? "avx512" : "avx2", moec_error_message());
            continue;
        }
        moec_gemm_set_isa(isas[k]); /* the prefill GEMM on the same instruction set */
        const char *name = moec_qmat_isa_name();
        test_all_codes(name);
        test_f8_huge_inputs(name);
        test_all_f16_codes(name);
        test_all_q8_codes(name);
        for (int threads = 1; threads <= 2; threads++) {
            moec_threads_init(threads);
            moec_qmat_set_activations(MOEC_QACT_F32); /* exact: the bounds of test_products */
            test_products(name, threads);
            test_f8_streams(name, threads);
            if (isas[k] != MOEC_GEMM_ISA_SCALAR) test_q8_activations(name, threads);
        }
    }
    moec_qmat_set_isa(MOEC_GEMM_ISA_AUTO);
    moec_gemm_set_isa(MOEC_GEMM_ISA_AUTO);
    moec_qmat_set_activations(MOEC_QACT_F32);
    test_q8_isas_agree();
    test_nested_and_release();
    test_many();
    test_many_q8();
    moec_threads_shutdown();
    moec_qmat_release();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
