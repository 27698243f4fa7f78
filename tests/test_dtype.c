/* test_dtype.c — the encoders of core/dtype.h against independent oracles.
 *
 * E4M3: every code decodes (io/safetensors.h's decoder) and re-encodes to itself; a brute-force oracle written
 *   here (nearest of all 127 finite magnitudes, ties to the even code, saturation at 448) agrees on 500k
 *   values spread over every binade; every midpoint between adjacent values ties to the even code and its float
 *   neighbours go the right way; saturation, NaN, -0 and the underflow boundary by hand.
 * f16: the CPU's own F16C conversion (vcvtps2ph, round to nearest even) on every float whose low 13 bits are one of
 *   a set of rounding-critical patterns (all 2^19 high parts each), plus every half re-encoding to itself.
 * bf16: every bf16 re-encodes to itself; the rounding by a double-precision oracle (nearest of the two candidates).
 * PyTorch (tests/dtype_oracle.py): bf16, f16 and float8_e4m3fn conversions of 200k values, bit for bit
 *   (E4M3 only within ±448, where PyTorch's non-saturating conversion and ours must agree).
 * moec_quantize_row_e4m3: scale, the codes, the largest element mapping to ±448, the all-zero row.
 */
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "test_util.h"

#include "test_check.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint32_t rand32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---------------------------------------------------------------------------------------------------------------
 * E4M3 */

/* Brute-force oracle: the code of the finite E4M3 value nearest to x (ties: the even code), saturating. */
static float e4m3_values[0x7f];

static uint8_t e4m3_oracle(float x) {
    if (isnan(x)) return signbit(x) ? 0xff : 0x7f;
    double a = fabs((double)x);
    int best = 0;
    double best_d = INFINITY;
    for (int c = 0; c <= 0x7e; c++) {
        double d = fabs((double)e4m3_values[c] - a);
        if (d < best_d || (d == best_d && (c & 1) == 0)) {
            best = c;
            best_d = d;
        }
    }
    return (uint8_t)((signbit(x) ? 0x80 : 0) | best);
}

static void test_e4m3(void) {
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        float v = moec_f8e4m3_to_f32((uint8_t)c);
        uint8_t back = moec_f32_to_e4m3(v);
        int is_nan_code = (c & 0x7f) == 0x7f;
        if (is_nan_code ? back != c : back != c) bad++; /* NaN codes: -NaN -> 0xFF, NaN -> 0x7F, i.e. itself */
    }
    check(bad == 0, "e4m3: all 256 codes decode and re-encode to themselves (%d bad)", bad);

    /* Midpoints between adjacent values, both signs. Values have 4 significant bits, so the midpoint is exact. */
    int bad_mid = 0, bad_side = 0;
    for (int c = 0; c < 0x7e; c++) {
        float lo = moec_f8e4m3_to_f32((uint8_t)c), hi = moec_f8e4m3_to_f32((uint8_t)(c + 1));
        float mid = (lo + hi) / 2;
        uint8_t even = (uint8_t)((c & 1) ? c + 1 : c);
        for (int s = 0; s < 2; s++) {
            float sg = s ? -1.0f : 1.0f;
            uint8_t sb = s ? 0x80 : 0;
            if (moec_f32_to_e4m3(sg * mid) != (even | sb)) bad_mid++;
            if (moec_f32_to_e4m3(sg * nextafterf(mid, INFINITY)) != ((c + 1) | sb)) bad_side++;
            if (moec_f32_to_e4m3(sg * nextafterf(mid, 0)) != (c | sb)) bad_side++;
        }
    }
    check(bad_mid == 0, "e4m3: all 252 midpoints tie to the even code (%d bad)", bad_mid);
    check(bad_side == 0, "e4m3: one ulp above / below every midpoint rounds up / down (%d bad)", bad_side);

    static const float sat[] = {448, 449, 463.99f, 464, 464.0001f, 479, 480, 1e30f, INFINITY, FLT_MAX};
    int bad_sat = 0;
    for (size_t i = 0; i < sizeof sat / sizeof *sat; i++)
        if (moec_f32_to_e4m3(sat[i]) != 0x7e || moec_f32_to_e4m3(-sat[i]) != 0xfe) {
            printf("     %g -> 0x%02x, -%g -> 0x%02x\n", sat[i], moec_f32_to_e4m3(sat[i]), sat[i],
                   moec_f32_to_e4m3(-sat[i]));
            bad_sat++;
        }
    check(bad_sat == 0, "e4m3: 448 449 463.99 464 479 480 1e30 FLT_MAX inf saturate to +-448 (0x7e/0xfe)");
    check(moec_f32_to_e4m3(447) == 0x7e && moec_f32_to_e4m3(432) == 0x7e && moec_f32_to_e4m3(431.9f) == 0x7d,
          "e4m3: 447 -> 448, 432 ties to 448 (even), 431.9 -> 416");
    check(moec_f32_to_e4m3(NAN) == 0x7f && moec_f32_to_e4m3(-NAN) == 0xff, "e4m3: NaN -> 0x7f, -NaN -> 0xff");
    check(moec_f32_to_e4m3(0.0f) == 0x00 && moec_f32_to_e4m3(-0.0f) == 0x80, "e4m3: 0 -> 0x00, -0 -> 0x80");

    float two_m10 = 0x1p-10f;
    check(moec_f32_to_e4m3(two_m10) == 0x00 && moec_f32_to_e4m3(-two_m10) == 0x80,
          "e4m3: 2^-10 (half the smallest subnormal) ties to 0 (even), keeping the sign");
    check(moec_f32_to_e4m3(nextafterf(two_m10, 1)) == 0x01 && moec_f32_to_e4m3(-nextafterf(two_m10, 1)) == 0x81,
          "e4m3: just above 2^-10 -> 2^-9 (0x01)");
    check(moec_f32_to_e4m3(0x1p-9f) == 0x01 && moec_f32_to_e4m3(0x1.8p-9f) == 0x02 &&
              moec_f32_to_e4m3(0x1.4p-8f) == 0x02 && moec_f32_to_e4m3(0x1p-6f) == 0x08 &&
              moec_f32_to_e4m3(0x1.cp-7f) == 0x07 && moec_f32_to_e4m3(0x1.ep-7f) == 0x08,
          "e4m3: subnormals 2^-9, 1.5·2^-9 (tie -> 2), 2.5·2^-9 (tie -> 2), largest 7·2^-9, 7.5·2^-9 -> 2^-6");
    check(moec_f32_to_e4m3(1e-30f) == 0 && moec_f32_to_e4m3(0x1p-149f) == 0 && moec_f32_to_e4m3(-1e-30f) == 0x80,
          "e4m3: tiny and fp32-subnormal inputs -> +-0");

    /* Random values over every binade from 2^-12 to 2^10 against the brute-force oracle. */
    for (int c = 0; c <= 0x7e; c++) e4m3_values[c] = moec_f8e4m3_to_f32((uint8_t)c);
    int bad_rand = 0;
    for (int k = 0; k < 500000; k++) {
        uint32_t u = rand32();
        uint32_t e = 127 - 12 + (u >> 8) % 23; /* exponents 2^-12 .. 2^10 */
        float x = from_bits((u & 0x80000000u) | (e << 23) | (rand32() & 0x7fffffu));
        if (k % 4 == 0) x = from_bits(to_bits(x) & 0xfff80000u); /* 4 fraction bits: exact values and ties */
        if (moec_f32_to_e4m3(x) != e4m3_oracle(x) && bad_rand++ < 5)
            printf("     %a -> 0x%02x, oracle 0x%02x\n", x, moec_f32_to_e4m3(x), e4m3_oracle(x));
    }
    check(bad_rand == 0, "e4m3: 500k random values (a quarter of them exact ties) equal the brute-force oracle (%d bad)",
          bad_rand);
}

/* ---------------------------------------------------------------------------------------------------------------
 * f16 */

__attribute__((target("f16c"))) static uint16_t f16_hw(float x) {
    return (uint16_t)_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

static void test_f16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float v = moec_f16_to_f32((uint16_t)h);
        uint16_t back = moec_f32_to_f16(v);
        if (isnan(v) ? !((back & 0x7c00) == 0x7c00 && (back & 0x3ff) && (back & 0x8000) == (h & 0x8000)) : back != h)
            bad++;
    }
    check(bad == 0, "f16: all 65536 halves decode and re-encode to themselves (NaN to a NaN of its sign; %d bad)", bad);

    check(moec_f32_to_f16(65504) == 0x7bff && moec_f32_to_f16(65519.99f) == 0x7bff &&
              moec_f32_to_f16(65520) == 0x7c00 && moec_f32_to_f16(-1e10f) == 0xfc00 &&
              moec_f32_to_f16(INFINITY) == 0x7c00 && moec_f32_to_f16(-INFINITY) == 0xfc00,
          "f16: 65504 stays, 65520 (the tie above it) -> inf, overflow and inf -> inf");
    check(moec_f32_to_f16(0x1p-25f) == 0 && moec_f32_to_f16(nextafterf(0x1p-25f, 1)) == 1 &&
              moec_f32_to_f16(0x1.8p-24f) == 2 && moec_f32_to_f16(-0.0f) == 0x8000 &&
              moec_f32_to_f16(0x1.ffcp-15f) == 0x0400,
          "f16: 2^-25 ties to 0, just above -> 2^-24, 1.5·2^-24 ties to 2, -0, largest subnormal rounds up to 2^-14");
    uint16_t qn = moec_f32_to_f16(from_bits(0x7f800001u)), nn = moec_f32_to_f16(-NAN);
    check((qn & 0x7e00) == 0x7e00 && !(qn & 0x8000) && (nn & 0xfe00) == 0xfe00,
          "f16: a signalling NaN becomes a quiet NaN (0x%04x), -NaN keeps its sign (0x%04x)", qn, nn);

    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c")) {
        printf("skip f16: this CPU has no F16C for the hardware oracle\n");
        return;
    }
    /* Rounding-critical low 13 bits (the bits the conversion drops): 0, 1, just below / at / above the half, all
     * ones, and for subnormal results every high part too (the dropped bits then include higher ones). */
    static const uint32_t lows[] = {0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x0800, 0x17ff};
    int bad_hw = 0;
    int64_t n = 0;
    for (uint32_t hi = 0; hi < (1u << 19); hi++)
        for (size_t k = 0; k < sizeof lows / sizeof *lows; k++) {
            float x = from_bits(hi << 13 | lows[k]);
            if (isnan(x)) continue;
            n++;
            if (moec_f32_to_f16(x) != f16_hw(x) && bad_hw++ < 5)
                printf("     %a -> 0x%04x, F16C 0x%04x\n", x, moec_f32_to_f16(x), f16_hw(x));
        }
    for (int k = 0; k < 2000000; k++) {
        float x = from_bits(rand32());
        if (isnan(x)) continue;
        n++;
        if (moec_f32_to_f16(x) != f16_hw(x) && bad_hw++ < 5)
            printf("     %a -> 0x%04x, F16C 0x%04x\n", x, moec_f32_to_f16(x), f16_hw(x));
    }
    check(bad_hw == 0, "f16: %lld floats (every exponent x 8 rounding-critical low parts, 2M random) equal F16C (%d bad)",
          (long long)n, bad_hw);
}

/* ---------------------------------------------------------------------------------------------------------------
 * bf16 */

/* Oracle in double: the nearer of the two bf16 values around x (ties: even), inf beyond. */
static uint16_t bf16_oracle(float x) {
    uint32_t u = to_bits(x);
    uint16_t down = (uint16_t)(u >> 16), up = (uint16_t)(down + 1); /* magnitudes: truncation and the next one */
    /* Past the largest finite bf16 the next value is 2^128 (inf): rounding compares with it, not with inf. */
    double up_v = (up & 0x7fff) == 0x7f80 ? 0x1p128 : fabs((double)moec_bf16_to_f32(up));
    double a = fabs((double)x), dd = a - fabs((double)moec_bf16_to_f32(down)), du = up_v - a;
    if ((u & 0xffff) == 0) return down;
    if (dd < du) return down;
    if (du < dd) return up;
    return (down & 1) ? up : down;
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float v = moec_bf16_to_f32((uint16_t)h);
        uint16_t back = moec_f32_to_bf16(v);
        if (isnan(v) ? !(isnan(moec_bf16_to_f32(back)) && (back & 0x8000) == (h & 0x8000)) : back != h) bad++;
    }
    check(bad == 0, "bf16: all 65536 values re-encode to themselves (NaN to a NaN of its sign; %d bad)", bad);

    check(moec_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80 && moec_f32_to_bf16(1.0f + 0x3p-8f) == 0x3f82 &&
              moec_f32_to_bf16(nextafterf(1.0f + 0x1p-8f, 2)) == 0x3f81,
          "bf16: 1 + 2^-8 ties down to 1 (even), 1 + 3·2^-8 ties up to 1 + 2^-6, just above a tie rounds up");
    check(moec_f32_to_bf16(FLT_MAX) == 0x7f80 && moec_f32_to_bf16(-INFINITY) == 0xff80 &&
              moec_f32_to_bf16(from_bits(0x7f7f7fffu)) == 0x7f7f,
          "bf16: FLT_MAX rounds to inf, -inf stays, just below the top tie stays finite");
    uint16_t sn = moec_f32_to_bf16(from_bits(0x7f800001u)), nn = moec_f32_to_bf16(from_bits(0xffc00000u));
    check(isnan(moec_bf16_to_f32(sn)) && !(sn & 0x8000) && isnan(moec_bf16_to_f32(nn)) && (nn & 0x8000),
          "bf16: a signalling NaN with only low payload bits stays NaN (0x%04x, not inf), -NaN keeps its sign", sn);

    int bad_rand = 0;
    for (int k = 0; k < 2000000; k++) {
        float x = from_bits(rand32());
        if (k % 4 == 0) x = from_bits(to_bits(x) & 0xffff8000u); /* exact ties */
        if (isnan(x) || isinf(x)) continue;
        if (moec_f32_to_bf16(x) != bf16_oracle(x) && bad_rand++ < 5)
            printf("     %a -> 0x%04x, oracle 0x%04x\n", x, moec_f32_to_bf16(x), bf16_oracle(x));
    }
    check(bad_rand == 0, "bf16: 2M random floats (a quarter exact ties) equal the double-precision oracle (%d bad)",
          bad_rand);
}

/* ---------------------------------------------------------------------------------------------------------------
 * PyTorch */

static void test_torch(void) {
    enum { N = 200000 };
    float *x = malloc(N * sizeof(float));
    for (int k = 0; k < N; k++) {
        uint32_t u = rand32();
        if (k % 2) { /* E4M3 and f16 ranges, with exact ties often */
            uint32_t e = 127 - 26 + (u >> 8) % 42;
            u = (u & 0x80000000u) | (e << 23) | (rand32() & (k % 3 ? 0x7fffffu : 0x7f0000u));
        }
        x[k] = from_bits(u);
        if (isnan(x[k])) x[k] = 1.0f;
    }
    char dir[] = "/tmp/moec_test_dtype_XXXXXX", in[64], out[64], cmd[2048];
    if (!mkdtemp(dir)) {
        check(0, "torch: mkdtemp");
        free(x);
        return;
    }
    snprintf(in, sizeof in, "%s/x.f32", dir);
    snprintf(out, sizeof out, "%s/y.bin", dir);
    write_all(in, x, N * sizeof(float));
    snprintf(cmd, sizeof cmd, "'%s' tests/dtype_oracle.py %s %s", python(), in, out);
    int rc = system(cmd);
    size_t n = 0;
    unsigned char *y = rc == 0 ? (unsigned char *)read_all(out, &n) : NULL;
    check(y && n == (size_t)N * 5, "torch: oracle ran (%s)", cmd);
    if (y && n == (size_t)N * 5) {
        int bad_bf = 0, bad_h = 0, bad_8 = 0, in_range = 0;
        for (int k = 0; k < N; k++) {
            uint16_t tb, th;
            memcpy(&tb, y + 2 * k, 2);
            memcpy(&th, y + 2 * N + 2 * k, 2);
            uint8_t t8 = y[4 * N + k];
            if (moec_f32_to_bf16(x[k]) != tb) bad_bf++;
            if (moec_f32_to_f16(x[k]) != th) bad_h++;
            if (fabsf(x[k]) <= 448) {
                in_range++;
                if (moec_f32_to_e4m3(x[k]) != t8 && bad_8++ < 5)
                    printf("     %a -> 0x%02x, torch 0x%02x\n", x[k], moec_f32_to_e4m3(x[k]), t8);
            }
        }
        check(bad_bf == 0, "torch: bf16 of %d values bit-identical to torch.bfloat16 (%d differ)", N, bad_bf);
        check(bad_h == 0, "torch: f16 of %d values bit-identical to torch.float16 (%d differ)", N, bad_h);
        check(bad_8 == 0 && in_range > N / 3,
              "torch: e4m3 of the %d values within +-448 bit-identical to torch.float8_e4m3fn (%d differ)", in_range,
              bad_8);
    }
    free(y);
    free(x);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Row quantisation */

static void test_quantize_row(void) {
    enum { N = 1000 };
    float w[N];
    uint8_t q[N];
    float scale;
    for (int i = 0; i < N; i++) w[i] = (float)(rand32() >> 8) / (1 << 24) * 0.2f - 0.1f;
    w[17] = -0.3f; /* the largest magnitude, negative */
    moec_quantize_row_e4m3(w, N, q, &scale);
    check(scale == 0.3f / 448.0f, "quantize: scale = max|w| / 448 (%g)", scale);
    check(q[17] == 0xfe, "quantize: the largest element maps to -448 (0x%02x)", q[17]);
    int bad_code = 0, bad_err = 0;
    for (int i = 0; i < N; i++) {
        if (q[i] != moec_f32_to_e4m3(w[i] / scale)) bad_code++;
        /* E4M3 keeps 3 fraction bits: a rounding error of at most 2^-4 relative for normals, and half the
         * subnormal step 2^-10 (times the scale) below 2^-6. */
        double deq = (double)scale * moec_f8e4m3_to_f32(q[i]);
        if (fabs(deq - w[i]) > fmax(0x1p-4 * fabs(w[i]), 0x1p-10 * scale) * (1 + 1e-6)) bad_err++;
    }
    check(bad_code == 0, "quantize: every code is e4m3(w / scale) (%d bad)", bad_code);
    check(bad_err == 0, "quantize: dequantised values within the E4M3 rounding bound (%d bad)", bad_err);

    float z[5] = {0, -0.0f, 0, 0, 0};
    uint8_t qz[5];
    moec_quantize_row_e4m3(z, 5, qz, &scale);
    check(scale == 1.0f && qz[0] == 0 && qz[1] == 0x80 && qz[4] == 0, "quantize: an all-zero row gets scale 1");
    float tiny[1] = {1e-44f}; /* 7 · 2^-149 */
    moec_quantize_row_e4m3(tiny, 1, qz, &scale);
    check(scale == 0x1p-149f && scale * moec_f8e4m3_to_f32(qz[0]) == tiny[0],
          "quantize: a row whose scale underflows gets the smallest positive scale (%g), here still exact", scale);
}

int main(void) {
    test_e4m3();
    test_f16();
    test_bf16();
    test_torch();
    test_quantize_row();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
