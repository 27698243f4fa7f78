/* test_bf16p.c — bf16p (lossless 12-bit bf16, core/bf16p.h): the packing against its definition, and the qmatmul
 * kernels on bf16p weights against a double-precision oracle computed from the unpacked bf16 values.
 *
 * Packing: every finite bf16 bit pattern goes through pack + unpack unchanged (−0 comes back as +0): for each even
 * base exponent, a row holding every sign × exponent base..base+15 × mantissa the codes can express, plus the
 * patterns that must become escapes; Gaussian rows of several scales with zeros, subnormals and outliers; a row
 * with exactly as many escapes as the header holds, and one more (refused); NaN and infinity (refused). The row
 * check accepts every packed row and refuses corrupted headers.
 * Kernels: for each instruction set this CPU runs (scalar, AVX2, AVX-512; AVX-512 through SIMDe in the emulated
 * pass) × 1 and 2 threads × T in {1, 2, 3, 4, 5, 8, 9, 15, 16} (decode) and 40 (dequantise + GEMM): Y = X·Wᵀ within
 * (I + 4)·2⁻²³·Σ|x·w| of the double-precision sum over the unpacked weights, with rows that hold escapes; with
 * one-hot X rows both regimes must give every weight bit-exactly (escapes included), and moec_qmat_row too.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bf16p.h"
#include "core/dtype.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/qmatmul.h"

#include "test_check.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double gauss(void) { /* Box-Muller */
    double u = ((next() >> 11) + 1.0) / 9007199254740993.0, v = (next() >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* pack + unpack: returns 1 if every value came back (−0 as +0). */
static int roundtrip(const uint16_t *w, int64_t cols, int *n_esc) {
    uint8_t *row = malloc((size_t)moec_bf16p_row_bytes(cols));
    uint16_t *back = malloc(sizeof *back * (size_t)cols);
    int ok = 1;
    *n_esc = moec_bf16p_pack_row(w, cols, row);
    if (*n_esc < 0) ok = 0;
    else {
        ok = moec_bf16p_check_row(row, cols) == 0;
        moec_bf16p_unpack_row(row, cols, back);
        for (int64_t i = 0; i < cols && ok; i++) ok = back[i] == (w[i] == 0x8000 ? 0 : w[i]);
    }
    free(row);
    free(back);
    return ok;
}

static void shuffle(uint16_t *w, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(next() % (uint64_t)(i + 1));
        uint16_t t = w[i];
        w[i] = w[j];
        w[j] = t;
    }
}

static void test_packing(void) {
    /* every finite pattern: rows of 4096 (11 escapes fit) per window of 16 exponents */
    const int64_t cols = 4096;
    uint16_t *w = malloc(sizeof *w * (size_t)cols);
    int all_ok = 1, max_esc = 0;
    long covered = 0;
    for (int base = 0; base <= 238; base += 2) {
        /* codes: both signs × exponents base+2..base+15 (14·2·128 = 3584 values) + negatives at base, base+1 (256) */
        int64_t n = 0;
        for (int s = 0; s < 2; s++)
            for (int e = base; e <= base + 15; e++)
                for (int m = 0; m < 128; m++) {
                    if (!s && e < base + 2) continue;
                    if (e == 0 && m == 0) continue; /* the zeros: below */
                    w[n++] = (uint16_t)(s << 15 | e << 7 | m);
                }
        /* pad with zeros of both signs */
        while (n < cols) w[n] = n & 1 ? 0x8000 : 0, n++;
        shuffle(w, cols);
        int esc;
        all_ok &= roundtrip(w, cols, &esc);
        all_ok &= esc == 0;
        covered += 3584 + 256;
        /* the positives at base, base + 1 are escapes: 11 of them fit, the 12th does not */
        for (int k = 0; k < 11; k++) w[k * 300] = (uint16_t)((base + (k & 1)) << 7 | (k * 11));
        if (base > 0) {
            all_ok &= roundtrip(w, cols, &esc);
            all_ok &= esc == 11;
            if (esc > max_esc) max_esc = esc;
            w[4000] = (uint16_t)(base << 7 | 5);
            uint8_t *row = malloc((size_t)moec_bf16p_row_bytes(cols));
            all_ok &= moec_bf16p_pack_row(w, cols, row) == -2;
            free(row);
        }
    }
    check(all_ok && max_esc == 11 && moec_bf16p_escape_cap(cols) == 11,
          "pack/unpack: every finite bf16 pattern of every even window (%ld values), escapes up to the cap", covered);

    /* Gaussian rows, several widths and scales, with zeros, subnormals, tiny values and an outlier */
    const int64_t widths[] = {128, 256, 1408, 2048, 4224, 65536};
    int ok = 1, total_esc = 0;
    for (size_t k = 0; k < sizeof widths / sizeof *widths; k++) {
        const int64_t c = widths[k];
        uint16_t *g = malloc(sizeof *g * (size_t)c);
        for (int rep = 0; rep < 4; rep++) {
            const float scale = rep == 0 ? 0.02f : rep == 1 ? 1e-30f : rep == 2 ? 3e30f : 1.0f;
            for (int64_t i = 0; i < c; i++) g[i] = moec_f32_to_bf16((float)gauss() * scale);
            g[next() % (uint64_t)c] = 0;
            g[next() % (uint64_t)c] = 0x8000;
            if (rep == 1) g[next() % (uint64_t)c] = 0x0003; /* subnormal */
            if (rep == 3) g[next() % (uint64_t)c] = moec_f32_to_bf16(1e-20f);
            int esc;
            ok &= roundtrip(g, c, &esc);
            total_esc += esc;
        }
        free(g);
    }
    check(ok, "pack/unpack: Gaussian rows of 128..65536 columns, 4 scales (%d escapes in all)", total_esc);

    /* refused rows */
    uint16_t r[128] = {0};
    uint8_t row[256]; /* moec_bf16p_row_bytes(128) */
    r[7] = 0x7f80; /* +inf */
    int a = moec_bf16p_pack_row(r, 128, row);
    r[7] = 0xffc1; /* NaN */
    int b = moec_bf16p_pack_row(r, 128, row);
    r[7] = 0x7f00; /* 2^127: its lut entry would be 0x7f */
    int c = moec_bf16p_pack_row(r, 128, row);
    r[7] = 0x7e80; /* 2^126 is fine */
    int d = moec_bf16p_pack_row(r, 128, row);
    check(a == -1 && b == -1 && c == -1 && d == 0, "pack: inf, NaN, 2^127 refused; 2^126 packed");
    check(!moec_bf16p_cols_ok(0) && !moec_bf16p_cols_ok(64) && !moec_bf16p_cols_ok(192) && moec_bf16p_cols_ok(128) &&
              moec_bf16p_cols_ok(65536) && !moec_bf16p_cols_ok(65664) && moec_bf16p_row_bytes(2048) == 3136 &&
              moec_bf16p_row_bytes(4224) == 6464 && moec_bf16p_row_bytes(256) == 448,
          "sizes: cols multiple of 128 up to 65536; 2048 columns -> 3136 bytes");

    /* corrupted headers */
    for (int i = 0; i < 128; i++) r[i] = moec_f32_to_bf16((float)gauss());
    r[3] = moec_f32_to_bf16(1e-10f); /* one escape */
    int esc = moec_bf16p_pack_row(r, 128, row);
    int sound = moec_bf16p_check_row(row, 128) == 0;
    uint8_t bad[256];
    int refused = 0;
    memcpy(bad, row, sizeof bad), bad[0] = 1, refused += moec_bf16p_check_row(bad, 128) != 0;
    memcpy(bad, row, sizeof bad), bad[5] = 0x7f, refused += moec_bf16p_check_row(bad, 128) != 0;
    memcpy(bad, row, sizeof bad), bad[16] = 12, refused += moec_bf16p_check_row(bad, 128) != 0; /* cap is 11 */
    memcpy(bad, row, sizeof bad), bad[18] = 128, refused += moec_bf16p_check_row(bad, 128) != 0; /* column 128 */
    memcpy(bad, row, sizeof bad), bad[20] = 0x80, bad[21] = 0x7f, refused += moec_bf16p_check_row(bad, 128) != 0;
    check(esc == 1 && sound && refused == 5, "check_row: a sound row passes, 5 corruptions refused");
    free(w);
}

/* A bf16p matrix of random rows (with escapes in some) and its unpacked fp32 values. */
typedef struct {
    moec_qmat m;
    uint8_t *data;
    float *w;
} mat;

static mat make_mat(int64_t rows, int64_t cols) {
    mat a = {.m = {.type = MOEC_QT_BF16P, .rows = rows, .cols = cols}};
    a.data = malloc((size_t)(rows * moec_bf16p_row_bytes(cols)));
    a.w = malloc(sizeof(float) * (size_t)(rows * cols));
    uint16_t *b = malloc(sizeof *b * (size_t)cols), *u = malloc(sizeof *u * (size_t)cols);
    for (int64_t o = 0; o < rows; o++) {
        for (int64_t i = 0; i < cols; i++) b[i] = moec_f32_to_bf16((float)gauss() * (o % 3 ? 0.05f : 3.0f));
        if (o % 2) b[next() % (uint64_t)cols] = moec_f32_to_bf16(1e-12f); /* an escape */
        if (o % 4 == 1) b[next() % (uint64_t)cols] = moec_f32_to_bf16(-2e-9f);
        uint8_t *row = a.data + o * moec_bf16p_row_bytes(cols);
        if (moec_bf16p_pack_row(b, cols, row) < 0) abort();
        moec_bf16p_unpack_row(row, cols, u);
        for (int64_t i = 0; i < cols; i++) a.w[o * cols + i] = moec_bf16_to_f32(u[i]);
    }
    a.m.data = a.data;
    free(b);
    free(u);
    return a;
}

static void test_products(const char *isa, int threads) {
    const int64_t shapes[][2] = {{1, 128}, {7, 256}, {37, 1408}, {9, 2048}};
    const int64_t Ts[] = {1, 2, 3, 4, 5, 8, 9, 15, 16, 40};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t O = shapes[s][0], I = shapes[s][1];
        mat a = make_mat(O, I);
        int ok = moec_qmat_check(&a.m) == MOEC_OK;
        double worst = 0;
        for (size_t k = 0; k < sizeof Ts / sizeof *Ts; k++) {
            const int64_t T = Ts[k], ldx = I + 3, ldy = O + 2;
            float *X = malloc(sizeof(float) * (size_t)(T * ldx)), *Y = malloc(sizeof(float) * (size_t)(T * ldy));
            for (int64_t i = 0; i < T * ldx; i++) X[i] = i % ldx >= I ? NAN : (float)gauss();
            for (int64_t i = 0; i < T * ldy; i++) Y[i] = i % ldy >= O ? 12345.0f : NAN;
            moec_qmat_matmul(Y, ldy, X, ldx, T, &a.m);
            for (int64_t t = 0; t < T; t++)
                for (int64_t o = 0; o < ldy; o++) {
                    if (o >= O) {
                        ok &= Y[t * ldy + o] == 12345.0f;
                        continue;
                    }
                    double ref = 0, mag = 0;
                    for (int64_t i = 0; i < I; i++) {
                        double p = (double)X[t * ldx + i] * a.w[o * I + i];
                        ref += p;
                        mag += fabs(p);
                    }
                    const double err = fabs(Y[t * ldy + o] - ref), bound = (double)(I + 4) * 0x1p-23 * mag;
                    ok &= err <= bound;
                    if (bound > 0 && err / bound > worst) worst = err / bound;
                }
            free(X);
            free(Y);
        }
        check(ok, "%s, %d thread(s): %lld x %lld bf16p, T = 1..16 and 40 within the fp32 bound (worst %.2f of it)",
              isa, threads, (long long)O, (long long)I, worst);

        /* one-hot rows: each weight exactly, in both regimes and by moec_qmat_row */
        int exact = 1;
        const int64_t T = I < 64 ? I : 64;
        float *X = calloc((size_t)(T * I), sizeof(float)), *Y = malloc(sizeof(float) * (size_t)(T * O));
        float *row = malloc(sizeof(float) * (size_t)I);
        for (int64_t c0 = 0; c0 < I; c0 += T) {
            memset(X, 0, sizeof(float) * (size_t)(T * I));
            for (int64_t t = 0; t < T; t++) X[t * I + c0 + t] = 1.0f;
            for (int regime = 0; regime < 2; regime++) {
                moec_qmat_set_decode_max(MOEC_QT_BF16P, regime ? 0 : T); /* decode, then dequantise + GEMM */
                moec_qmat_matmul(Y, O, X, I, T, &a.m);
                for (int64_t t = 0; t < T; t++)
                    for (int64_t o = 0; o < O; o++) exact &= Y[t * O + o] == a.w[o * I + c0 + t];
            }
        }
        moec_qmat_set_decode_max(MOEC_QT_BF16P, -1);
        for (int64_t o = 0; o < O; o++) {
            moec_qmat_row(row, &a.m, o);
            exact &= memcmp(row, a.w + o * I, sizeof(float) * (size_t)I) == 0;
        }
        check(exact, "%s, %d thread(s): %lld x %lld bf16p one-hot products give every weight exactly (decode, "
              "prefill, qmat_row)", isa, threads, (long long)O, (long long)I);
        free(X);
        free(Y);
        free(row);
        free(a.data);
        free(a.w);
    }
}

int main(void) {
    test_packing();
    moec_qmat m = {.type = MOEC_QT_BF16P, .rows = 2, .cols = 96, .data = "x"};
    check(moec_qmat_check(&m) != MOEC_OK && strcmp(moec_qtype_name(MOEC_QT_BF16P), "bf16p") == 0 &&
              moec_qtype_row_bytes(MOEC_QT_BF16P, 2048) == 3136,
          "qmat: bf16p with 96 columns refused; name, row bytes");
    moec_qmat_set_activations(MOEC_QACT_F32);
    static const moec_gemm_isa isas[] = {MOEC_GEMM_ISA_SCALAR, MOEC_GEMM_ISA_AVX2, MOEC_GEMM_ISA_AVX512};
    for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
        if (moec_qmat_set_isa(isas[k]) != MOEC_OK) {
            printf("skip %s: %s\n", k == 2 ? "avx512" : "avx2", moec_error_message());
            continue;
        }
        moec_gemm_set_isa(isas[k]);
        for (int threads = 1; threads <= 2; threads++) {
            moec_threads_init(threads);
            test_products(moec_qmat_isa_name(), threads);
        }
    }
    moec_qmat_set_isa(MOEC_GEMM_ISA_AUTO);
    moec_gemm_set_isa(MOEC_GEMM_ISA_AUTO);
    moec_threads_shutdown();
    moec_qmat_release();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
