/* test_gguf.c — the GGUF container: element codecs against their definitions (exhaustive f16/bf16 round trips
 * and tie cases, hand-computed Q8_0 blocks), a write/read round trip of every KV type and of F32/F16/BF16/Q8_0
 * (and an opaque Q4_K) tensor, and hand-built malformed files — every truncation of a valid file, lying counts
 * and lengths, bad alignment, misplaced or overlapping data, unknown types, bad dims, duplicates — each of
 * which must give a clean error. The gguf Python package checks interoperability in test_gguf_py.sh.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ggml_quants.h"
#include "io/ggml_unpack.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/safetensors.h"
#include "test_util.h"

static int n_pass, n_fail;
#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (cond) { n_pass++; printf("ok    "); printf(__VA_ARGS__); printf("\n"); }                                 \
        else { n_fail++; printf("FAIL  "); printf(__VA_ARGS__); printf("  [%s:%d] last error: %s\n", __FILE__, __LINE__, moec_error_message()); } \
    } while (0)

static char tmpdir[256];
static const char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static float bits_f32(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }

/* ---- codecs ---- */
static void test_f16_bf16(void) {
    /* Every finite f16 / bf16 value converts back to itself. */
    int bad16 = 0, badbf = 0, badmid16 = 0, badmidbf = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float x = moec_f16_to_f32((uint16_t)h);
        if (!isnan(x) && moec_gguf_f32_to_f16(x) != h) bad16++;
        if (isnan(x) && !isnan(moec_f16_to_f32(moec_gguf_f32_to_f16(x)))) bad16++;
        float y = moec_bf16_to_f32((uint16_t)h);
        if (!isnan(y) && moec_gguf_f32_to_bf16(y) != h) badbf++;
        if (isnan(y) && !isnan(moec_bf16_to_f32(moec_gguf_f32_to_bf16(y)))) badbf++;
        /* The midpoint between h and h+1 (same sign, both finite) must round to whichever is even. */
        if ((h & 0x7fff) < 0x7bff) {
            double a = moec_f16_to_f32((uint16_t)h), b = moec_f16_to_f32((uint16_t)(h + 1));
            float mid = (float)((a + b) / 2); /* exact in float: f16 has 11 significant bits */
            uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (moec_gguf_f32_to_f16(mid) != want) badmid16++;
        }
        if ((h & 0x7fff) < 0x7f7f) {
            /* bf16 midpoint: the float with the next lower bit set */
            uint32_t mb = (h << 16) | 0x8000;
            uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (moec_gguf_f32_to_bf16(bits_f32(mb)) != want) badmidbf++;
        }
    }
    CHECK(bad16 == 0, "f16: all 65536 patterns round-trip (%d bad)", bad16);
    CHECK(badbf == 0, "bf16: all 65536 patterns round-trip (%d bad)", badbf);
    CHECK(badmid16 == 0, "f16: every midpoint rounds to the even neighbour (%d bad)", badmid16);
    CHECK(badmidbf == 0, "bf16: every midpoint rounds to the even neighbour (%d bad)", badmidbf);
    CHECK(moec_gguf_f32_to_f16(65519.0f) == 0x7bff && moec_gguf_f32_to_f16(65520.0f) == 0x7c00 &&
              moec_gguf_f32_to_f16(-1e9f) == 0xfc00 && moec_gguf_f32_to_f16(INFINITY) == 0x7c00,
          "f16: 65519 -> 65504, 65520 and beyond -> inf");
    CHECK(moec_gguf_f32_to_f16(ldexpf(1, -25)) == 0 && moec_gguf_f32_to_f16(ldexpf(3, -25)) == 2 &&
              moec_gguf_f32_to_f16(ldexpf(1.5f, -24)) == 2 && moec_gguf_f32_to_f16(ldexpf(1, -26)) == 0,
          "f16: subnormal ties round to even (2^-25 -> 0, 3*2^-25 -> 2 ulps)");
    CHECK(moec_gguf_f32_to_bf16(bits_f32(0x7f7fffffu)) == 0x7f80, "bf16: FLT_MAX rounds to inf");
}

/* io/ggml_unpack.h's claim: fmaf(a[i / 16], q[i], c[i / 16]) equals moec_ggml_dequantize's value (== : bit for bit,
 * except that a zero may differ in sign), for every block type, on random blocks whose f16 scales span
 * 2^-24 .. 2^15 of either sign (the rest random bytes). */
static void test_unpack(void) {
    static const struct { moec_ggml_type t; int halves[2]; } types[] = {
        {MOEC_GGML_Q4_0, {0, -1}}, {MOEC_GGML_Q4_1, {0, 2}},   {MOEC_GGML_Q5_0, {0, -1}}, {MOEC_GGML_Q5_1, {0, 2}},
        {MOEC_GGML_Q2_K, {80, 82}}, {MOEC_GGML_Q3_K, {108, -1}}, {MOEC_GGML_Q4_K, {0, 2}}, {MOEC_GGML_Q5_K, {0, 2}},
        {MOEC_GGML_Q6_K, {208, -1}}};
    uint32_t r = 12345;
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        size_t bb = 0;
        const int B = moec_ggml_type_block(types[k].t, &bb);
        uint8_t blk[256], q[256];
        float a[16], c[16], want[256];
        long bad = 0, n = 0;
        for (int rep = 0; rep < 2000; rep++) {
            for (size_t i = 0; i < bb; i++) r = r * 1103515245u + 12345u, blk[i] = (uint8_t)(r >> 16);
            for (int h = 0; h < 2 && types[k].halves[h] >= 0; h++) { /* finite: exponent field below 31 */
                r = r * 1103515245u + 12345u;
                const uint16_t v = (uint16_t)((r >> 8) % (31u << 10)) | (uint16_t)((r >> 30) & 1) << 15;
                blk[types[k].halves[h]] = (uint8_t)v, blk[types[k].halves[h] + 1] = (uint8_t)(v >> 8);
            }
            moec_ggml_dequantize(types[k].t, blk, B, want);
            moec_ggml_unpack(types[k].t, blk, q, a, c);
            for (int i = 0; i < B; i++, n++) {
                const float got = fmaf(a[i / 16], (float)q[i], c[i / 16]);
                if (!(got == want[i]) || q[i] > 63) bad++;
            }
        }
        CHECK(bad == 0, "%s: unpacked codes and scales give the decoded values (%ld of %ld differ)",
              moec_ggml_type_name(types[k].t), bad, n);
    }
}

static void test_q8_0(void) {
    float x[64] = {0};
    /* block 0: amax 127 so d = 1 exactly and q = round-half-away-from-zero(x) */
    x[0] = 127, x[1] = 0.5f, x[2] = -0.5f, x[3] = 2.5f, x[4] = -1.5f, x[5] = 0.49f, x[6] = -126.6f, x[7] = 3;
    /* block 1 all zero: d = 0, q = 0 */
    uint8_t q[68];
    moec_q8_0_quantize(x, 64, q);
    int8_t want[8] = {127, 1, -1, 3, -2, 0, -127, 3};
    uint16_t d0, d1;
    memcpy(&d0, q, 2);
    memcpy(&d1, q + 34, 2);
    int ok = d0 == 0x3c00 && d1 == 0;
    for (int j = 0; j < 8; j++) ok &= (int8_t)q[2 + j] == want[j];
    for (int j = 8; j < 32; j++) ok &= q[2 + j] == 0;
    for (int j = 0; j < 32; j++) ok &= q[36 + j] == 0;
    CHECK(ok, "q8_0: hand-computed block (d = 1.0 = 0x3c00, halves away from zero) and a zero block");
    float y[64];
    moec_q8_0_dequantize(q, 64, y);
    ok = 1;
    for (int j = 0; j < 8; j++) ok &= y[j] == (float)want[j];
    for (int j = 32; j < 64; j++) ok &= y[j] == 0.0f;
    CHECK(ok, "q8_0: dequantize gives d * q");
    /* a scale that is not a power of two: amax 1 -> d = 1/127 (fp16 0x2008), q = round(x * 127) */
    float z[32] = {1.0f, -1.0f, 0.25f};
    moec_q8_0_quantize(z, 32, q);
    memcpy(&d0, q, 2);
    CHECK(d0 == moec_gguf_f32_to_f16(1.0f / 127.0f) && (int8_t)q[2] == 127 && (int8_t)q[3] == -127 &&
              (int8_t)q[4] == 32, "q8_0: amax 1 -> d = fp16(1/127), 0.25 -> q = round(31.75) = 32");
}

/* ---- round trip ---- */
static const uint8_t u8v = 200;
static const int8_t i8v = -100;
static const uint16_t u16v = 60000;
static const int16_t i16v = -30000;
static const uint32_t u32v = 4000000000u;
static const int32_t i32v = -2000000000;
static const float f32v = 3.25f;
static const uint64_t u64v = 0xfedcba9876543210ull;
static const int64_t i64v = -0x123456789abcdefll;
static const double f64v = -2.5e300;

static int write_sample(const char *path, uint32_t alignment) {
    moec_gguf_writer *w;
    if (moec_gguf_writer_begin(&w, path) != MOEC_OK) return 0;
    int ok = 1;
#define T(x) ok &= (x) == MOEC_OK
    if (alignment) T(moec_gguf_writer_set_alignment(w, alignment));
    T(moec_gguf_writer_kv_str(w, "general.architecture", "test"));
    T(moec_gguf_writer_kv(w, "k.u8", MOEC_GGUF_KV_U8, &u8v));
    T(moec_gguf_writer_kv(w, "k.i8", MOEC_GGUF_KV_I8, &i8v));
    T(moec_gguf_writer_kv(w, "k.u16", MOEC_GGUF_KV_U16, &u16v));
    T(moec_gguf_writer_kv(w, "k.i16", MOEC_GGUF_KV_I16, &i16v));
    T(moec_gguf_writer_kv_u32(w, "k.u32", u32v));
    T(moec_gguf_writer_kv_i32(w, "k.i32", i32v));
    T(moec_gguf_writer_kv_f32(w, "k.f32", f32v));
    T(moec_gguf_writer_kv_bool(w, "k.bool", 1));
    T(moec_gguf_writer_kv(w, "k.u64", MOEC_GGUF_KV_U64, &u64v));
    T(moec_gguf_writer_kv(w, "k.i64", MOEC_GGUF_KV_I64, &i64v));
    T(moec_gguf_writer_kv(w, "k.f64", MOEC_GGUF_KV_F64, &f64v));
    T(moec_gguf_writer_kv_strn(w, "k.str", "a\0b\xc3\xa9", 5)); /* embedded NUL and UTF-8 */
    const int32_t ia[3] = {-1, 0, 7};
    const float fa[2] = {0.5f, -1e-30f};
    const uint8_t ba[3] = {1, 0, 1};
    const double da[1] = {1e-300};
    const char *sa[4] = {"", "Ġthe", "<0x0A>", "▁hi"};
    T(moec_gguf_writer_kv_arr(w, "a.i32", MOEC_GGUF_KV_I32, ia, 3));
    T(moec_gguf_writer_kv_arr(w, "a.f32", MOEC_GGUF_KV_F32, fa, 2));
    T(moec_gguf_writer_kv_arr(w, "a.bool", MOEC_GGUF_KV_BOOL, ba, 3));
    T(moec_gguf_writer_kv_arr(w, "a.f64", MOEC_GGUF_KV_F64, da, 1));
    T(moec_gguf_writer_kv_arr(w, "a.empty", MOEC_GGUF_KV_U64, NULL, 0));
    T(moec_gguf_writer_kv_arr_str(w, "a.str", sa, NULL, 4));
    const int64_t ne_a[2] = {3, 2}, ne_b[1] = {5}, ne_q[2] = {64, 3}, ne_c[3] = {2, 1, 2}, ne_k[1] = {256};
    T(moec_gguf_writer_add_tensor(w, "t.f32", MOEC_GGML_F32, 2, ne_a));
    T(moec_gguf_writer_add_tensor(w, "t.f16", MOEC_GGML_F16, 1, ne_b));
    T(moec_gguf_writer_add_tensor(w, "t.bf16", MOEC_GGML_BF16, 3, ne_c));
    T(moec_gguf_writer_add_tensor(w, "t.q8_0", MOEC_GGML_Q8_0, 2, ne_q));
    T(moec_gguf_writer_add_tensor(w, "t.q4_k", MOEC_GGML_Q4_K, 1, ne_k));
    /* errors while declaring */
    ok &= moec_gguf_writer_kv_u32(w, "k.u32", 1) == MOEC_ERR_ARG;
    ok &= moec_gguf_writer_add_tensor(w, "t.f16", MOEC_GGML_F16, 1, ne_b) == MOEC_ERR_ARG;
    ok &= moec_gguf_writer_add_tensor(w, "t.bad", MOEC_GGML_Q8_0, 1, ne_b) == MOEC_ERR_ARG; /* 5 % 32 */
    ok &= moec_gguf_writer_add_tensor(w, "a_name_that_is_much_too_long_for_ggml_which_keeps_names_in_64_bytes",
                                      MOEC_GGML_F32, 1, ne_b) == MOEC_ERR_ARG;
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[5] = {0.5f, -2, 65504, 1e-7f, 3.14159f}, c[4] = {1.5f, -0.0f, 3e38f, 7};
    float q[192];
    for (int i = 0; i < 192; i++) q[i] = sinf((float)i) * (float)(i % 7);
    T(moec_gguf_writer_put_f32(w, a, 6));
    T(moec_gguf_writer_put_f32(w, b, 2)); /* in pieces */
    T(moec_gguf_writer_put_f32(w, b + 2, 3));
    T(moec_gguf_writer_put_f32(w, c, 4));
    ok &= moec_gguf_writer_put_f32(w, q, 33) == MOEC_ERR_ARG; /* not whole Q8_0 blocks */
    T(moec_gguf_writer_put_f32(w, q, 192));
    uint8_t raw[144];
    for (int i = 0; i < 144; i++) raw[i] = (uint8_t)(i * 7);
    T(moec_gguf_writer_put(w, raw, 100)); /* raw bytes in any chunking */
    T(moec_gguf_writer_put(w, raw + 100, 44));
    ok &= moec_gguf_writer_put(w, raw, 1) == MOEC_ERR_ARG; /* past the end */
#undef T
    if (!ok) {
        moec_gguf_writer_abort(w);
        return 0;
    }
    return moec_gguf_writer_finish(w) == MOEC_OK;
}

static int check_sample(const char *path, uint32_t alignment) {
    moec_gguf_file *f;
    if (moec_gguf_open(&f, path) != MOEC_OK) return 0;
    int ok = moec_gguf_version(f) == 3 && moec_gguf_alignment(f) == (alignment ? alignment : 32);
    ok &= moec_gguf_kv_count(f) == 19 + (alignment != 0) && moec_gguf_tensor_count(f) == 5;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f32;
    int bo;
    const char *s;
    size_t len;
    ok &= moec_gguf_get_u32(f, "k.u32", &u32) == MOEC_OK && u32 == u32v;
    ok &= moec_gguf_get_u32(f, "k.u8", &u32) == MOEC_OK && u32 == u8v; /* a narrower integer is fine */
    ok &= moec_gguf_get_i32(f, "k.i32", &i32) == MOEC_OK && i32 == i32v;
    ok &= moec_gguf_get_i32(f, "k.i8", &i32) == MOEC_OK && i32 == i8v;
    ok &= moec_gguf_get_i32(f, "k.i16", &i32) == MOEC_OK && i32 == i16v;
    ok &= moec_gguf_get_u32(f, "k.u16", &u32) == MOEC_OK && u32 == u16v;
    ok &= moec_gguf_get_u64(f, "k.u64", &u64) == MOEC_OK && u64 == u64v;
    ok &= moec_gguf_get_f32(f, "k.f32", &f32) == MOEC_OK && f32 == f32v;
    ok &= moec_gguf_get_bool(f, "k.bool", &bo) == MOEC_OK && bo == 1;
    const moec_gguf_kv *kv = moec_gguf_find_kv(f, "k.i64");
    int64_t i64 = 0;
    double f64 = 0;
    if (kv) memcpy(&i64, kv->data, 8);
    ok &= kv && kv->type == MOEC_GGUF_KV_I64 && i64 == i64v;
    kv = moec_gguf_find_kv(f, "k.f64");
    if (kv) memcpy(&f64, kv->data, 8);
    ok &= kv && kv->type == MOEC_GGUF_KV_F64 && f64 == f64v;
    ok &= moec_gguf_get_str(f, "k.str", &s, &len) == MOEC_OK && len == 5 && memcmp(s, "a\0b\xc3\xa9", 5) == 0;
    ok &= moec_gguf_get_str(f, "general.architecture", &s, &len) == MOEC_OK && len == 4 && !memcmp(s, "test", 4);
    /* typed-getter refusals */
    ok &= moec_gguf_get_u32(f, "k.i8", &u32) == MOEC_ERR_FORMAT;   /* negative */
    ok &= moec_gguf_get_i32(f, "k.u32", &i32) == MOEC_ERR_FORMAT;  /* too large */
    ok &= moec_gguf_get_u32(f, "k.str", &u32) == MOEC_ERR_FORMAT;
    ok &= moec_gguf_get_f32(f, "k.u32", &f32) == MOEC_ERR_FORMAT;
    ok &= moec_gguf_get_u32(f, "missing", &u32) == MOEC_ERR_FORMAT;
    const moec_gguf_kv *arr;
    ok &= moec_gguf_get_arr(f, "a.i32", MOEC_GGUF_KV_I32, &arr) == MOEC_OK && arr->n == 3 &&
          moec_gguf_kv_arr_num(arr, 0) == -1 && moec_gguf_kv_arr_num(arr, 2) == 7;
    ok &= moec_gguf_get_arr(f, "a.i32", MOEC_GGUF_KV_F32, &arr) == MOEC_ERR_FORMAT;
    ok &= moec_gguf_get_arr(f, "a.f32", MOEC_GGUF_KV_F32, &arr) == MOEC_OK && arr->n == 2 &&
          moec_gguf_kv_arr_num(arr, 0) == 0.5 && (float)moec_gguf_kv_arr_num(arr, 1) == -1e-30f;
    ok &= moec_gguf_get_arr(f, "a.bool", MOEC_GGUF_KV_BOOL, &arr) == MOEC_OK && arr->n == 3 &&
          moec_gguf_kv_arr_num(arr, 1) == 0 && moec_gguf_kv_arr_num(arr, 2) == 1;
    ok &= moec_gguf_get_arr(f, "a.f64", MOEC_GGUF_KV_F64, &arr) == MOEC_OK && moec_gguf_kv_arr_num(arr, 0) == 1e-300;
    ok &= moec_gguf_get_arr(f, "a.empty", MOEC_GGUF_KV_U64, &arr) == MOEC_OK && arr->n == 0;
    ok &= moec_gguf_get_arr(f, "a.str", MOEC_GGUF_KV_STRING, &arr) == MOEC_OK && arr->n == 4;
    const char *want[4] = {"", "Ġthe", "<0x0A>", "▁hi"};
    for (int i = 0; ok && i < 4; i++) {
        s = moec_gguf_kv_arr_str(f, arr, (uint64_t)i, &len);
        ok &= s && len == strlen(want[i]) && memcmp(s, want[i], len) == 0;
    }
    ok &= moec_gguf_kv_arr_str(f, arr, 4, &len) == NULL;
    /* file order of KVs is declaration order */
    ok &= strcmp(moec_gguf_kv_at(f, alignment ? 1 : 0)->key, "general.architecture") == 0;
    /* tensors */
    const moec_gguf_tensor *t = moec_gguf_find_tensor(f, "t.f32");
    float out[256];
    ok &= t && t->type == MOEC_GGML_F32 && t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 2 && t->ne[2] == 1 &&
          t->nbytes == 24 && t->offset == 0;
    ok &= t && moec_gguf_tensor_read_f32(t, out, 6) == MOEC_OK && out[0] == 1 && out[5] == 6;
    t = moec_gguf_find_tensor(f, "t.f16");
    const float b16[5] = {0.5f, -2, 65504, moec_f16_to_f32(moec_gguf_f32_to_f16(1e-7f)),
                          moec_f16_to_f32(moec_gguf_f32_to_f16(3.14159f))};
    ok &= t && t->type == MOEC_GGML_F16 && t->nbytes == 10 && t->offset % moec_gguf_alignment(f) == 0 &&
          moec_gguf_tensor_read_f32(t, out, 5) == MOEC_OK && !memcmp(out, b16, sizeof b16);
    ok &= b16[4] == 3.140625f; /* hand value: nearest f16 to 3.14159 */
    t = moec_gguf_find_tensor(f, "t.bf16");
    ok &= t && t->type == MOEC_GGML_BF16 && t->n_dims == 3 && moec_gguf_tensor_read_f32(t, out, 4) == MOEC_OK &&
          out[0] == 1.5f && out[1] == 0.0f && signbit(out[1]) && out[2] == moec_bf16_to_f32(0x7f62) && out[3] == 7;
    t = moec_gguf_find_tensor(f, "t.q8_0");
    float q[192], qq[192];
    uint8_t enc[6 * 34];
    for (int i = 0; i < 192; i++) q[i] = sinf((float)i) * (float)(i % 7);
    moec_q8_0_quantize(q, 192, enc);
    moec_q8_0_dequantize(enc, 192, qq);
    ok &= t && t->type == MOEC_GGML_Q8_0 && t->nbytes == 6 * 34 && !memcmp(t->data, enc, sizeof enc) &&
          moec_gguf_tensor_read_f32(t, out, 192) == MOEC_OK && !memcmp(out, qq, sizeof qq);
    t = moec_gguf_find_tensor(f, "t.q4_k");
    ok &= t && t->type == MOEC_GGML_Q4_K && t->nbytes == 144 && ((const uint8_t *)t->data)[143] == (uint8_t)(143 * 7);
    ok &= t && moec_gguf_tensor_read_f32(t, out, 256) == MOEC_OK; /* decoded (values: test_gguf_py.sh) */
    if (t) { /* a type moec does not decode opens, but converting it is refused */
        moec_gguf_tensor iq = *t;
        iq.type = MOEC_GGML_IQ4_NL; /* 32-value blocks of 18 bytes: 144 bytes are 256 values, as Q4_K */
        ok &= moec_gguf_tensor_read_f32(&iq, out, 256) == MOEC_ERR_FORMAT;
    }
    for (int64_t i = 0; i < moec_gguf_tensor_count(f); i++)
        ok &= ((uintptr_t)moec_gguf_tensor_at(f, i)->data % moec_gguf_alignment(f)) == 0;
    moec_gguf_close(f);
    return ok;
}

/* ---- malformed files ---- */
typedef struct { uint8_t b[4096]; size_t n; } buf;
static void put(buf *x, const void *p, size_t n) { memcpy(x->b + x->n, p, n); x->n += n; }
static void u32(buf *x, uint32_t v) { put(x, &v, 4); }
static void u64(buf *x, uint64_t v) { put(x, &v, 8); }
static void str(buf *x, const char *s) { u64(x, strlen(s)); put(x, s, strlen(s)); }
static void head(buf *x, uint64_t nt, uint64_t nkv) { x->n = 0; put(x, "GGUF", 4); u32(x, 3); u64(x, nt); u64(x, nkv); }
static void tinfo(buf *x, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    str(x, name);
    u32(x, nd);
    for (uint32_t d = 0; d < nd; d++) u64(x, ne[d]);
    u32(x, type);
    u64(x, off);
}
static void pad_data(buf *x, size_t data_bytes) {
    while (x->n % 32) x->b[x->n++] = 0;
    memset(x->b + x->n, 0, data_bytes);
    x->n += data_bytes;
}
static int refused(const buf *x, const char *what) {
    moec_gguf_file *f = NULL;
    moec_status s = moec_gguf_open_memory(&f, x->b, x->n, "malformed");
    if (s == MOEC_OK) moec_gguf_close(f);
    CHECK(s == MOEC_ERR_FORMAT && f == NULL, "refused: %s (%s)", what, moec_error_message());
    return s != MOEC_OK;
}

static void test_malformed(void) {
    buf x;
    const uint64_t ne4[1] = {4}, ne0[1] = {0}, ne5[5] = {1, 1, 1, 1, 1}, ne_big[2] = {1ull << 62, 8};
    /* a valid baseline */
    head(&x, 2, 1);
    str(&x, "general.architecture"); u32(&x, MOEC_GGUF_KV_STRING); str(&x, "llama");
    tinfo(&x, "a", 1, ne4, MOEC_GGML_F32, 0);
    tinfo(&x, "b", 1, ne4, MOEC_GGML_F32, 32);
    pad_data(&x, 48);
    moec_gguf_file *f = NULL;
    CHECK(moec_gguf_open_memory(&f, x.b, x.n, "valid") == MOEC_OK, "hand-built valid file opens");
    moec_gguf_close(f);
    /* every truncation of it (the last tensor's 16 data bytes end the file) */
    int bad = 0;
    for (size_t n = 0; n < x.n; n++) {
        f = NULL;
        moec_status s = moec_gguf_open_memory(&f, x.b, n, "truncated");
        if (s != MOEC_ERR_FORMAT || f) bad++;
        if (s == MOEC_OK) moec_gguf_close(f);
    }
    CHECK(bad == 0, "all %zu truncations of a valid file are refused (%d accepted)", x.n, bad);

    buf v;
    v = x; memcpy(v.b, "GGUG", 4); refused(&v, "bad magic");
    v = x; v.b[4] = 1; refused(&v, "version 1");
    v = x; v.b[4] = 0; v.b[7] = 3; refused(&v, "big-endian version");
    head(&x, 0, 1ull << 60); refused(&x, "huge KV count");
    head(&x, UINT64_MAX, 0); refused(&x, "huge tensor count");
    head(&x, 0, 1); u64(&x, 1ull << 40); put(&x, "abcdefghijklmnop", 16); refused(&x, "key length past EOF");
    head(&x, 0, 1); str(&x, "k"); u32(&x, MOEC_GGUF_KV_STRING); u64(&x, 100); put(&x, "abc", 3);
    refused(&x, "string value length past EOF");
    head(&x, 0, 1); str(&x, "k"); u32(&x, 13); u32(&x, 0); refused(&x, "unknown KV type");
    head(&x, 0, 1); str(&x, "k"); u32(&x, MOEC_GGUF_KV_ARRAY); u32(&x, MOEC_GGUF_KV_ARRAY); u64(&x, 0);
    refused(&x, "nested array");
    head(&x, 0, 1); str(&x, "k"); u32(&x, MOEC_GGUF_KV_ARRAY); u32(&x, MOEC_GGUF_KV_U64); u64(&x, 1ull << 61);
    u64(&x, 0); refused(&x, "array length x element size past EOF (and overflowing)");
    head(&x, 0, 1); str(&x, "k"); u32(&x, MOEC_GGUF_KV_ARRAY); u32(&x, MOEC_GGUF_KV_STRING); u64(&x, 3);
    str(&x, "a"); str(&x, "b"); refused(&x, "string array shorter than its count");
    head(&x, 0, 2); str(&x, "k"); u32(&x, MOEC_GGUF_KV_U8); put(&x, "\1", 1); str(&x, "k"); u32(&x, MOEC_GGUF_KV_U8);
    put(&x, "\2", 1); refused(&x, "duplicate key");
    head(&x, 0, 1); u64(&x, 2); put(&x, "a\0", 2); u32(&x, MOEC_GGUF_KV_U8); put(&x, "\1", 1);
    refused(&x, "key with a NUL byte");
    head(&x, 0, 1); str(&x, ""); u32(&x, MOEC_GGUF_KV_U8); put(&x, "\1\0\0\0\0\0\0\0", 8); refused(&x, "empty key");
    head(&x, 1, 1); str(&x, "general.alignment"); u32(&x, MOEC_GGUF_KV_U32); u32(&x, 24);
    tinfo(&x, "a", 1, ne4, 0, 0); pad_data(&x, 64); refused(&x, "alignment not a power of two");
    head(&x, 1, 1); str(&x, "general.alignment"); u32(&x, MOEC_GGUF_KV_U32); u32(&x, 0);
    tinfo(&x, "a", 1, ne4, 0, 0); pad_data(&x, 64); refused(&x, "alignment 0");
    head(&x, 1, 1); str(&x, "general.alignment"); u32(&x, MOEC_GGUF_KV_U64); u64(&x, 32);
    tinfo(&x, "a", 1, ne4, 0, 0); pad_data(&x, 64); refused(&x, "alignment of type u64");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, 0, 16); pad_data(&x, 64); refused(&x, "misaligned tensor offset");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, 0, 64); pad_data(&x, 64); refused(&x, "tensor data past the end");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, 0, 1ull << 63); pad_data(&x, 64); refused(&x, "huge tensor offset");
    head(&x, 2, 0); tinfo(&x, "a", 1, ne4, 0, 0); tinfo(&x, "b", 1, ne4, 0, 0); pad_data(&x, 64);
    refused(&x, "two tensors at the same offset");
    const uint64_t ne16[1] = {16};
    head(&x, 2, 0); tinfo(&x, "a", 1, ne16, 0, 32); tinfo(&x, "b", 1, ne16, 0, 0); pad_data(&x, 128);
    refused(&x, "overlapping tensors (64 bytes at 0 and at 32)");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, 99, 0); pad_data(&x, 64); refused(&x, "unknown tensor type 99");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, 4, 0); pad_data(&x, 64); refused(&x, "removed tensor type 4 (Q4_2)");
    head(&x, 1, 0); tinfo(&x, "a", 0, ne4, 0, 0); pad_data(&x, 64); refused(&x, "0 dims");
    head(&x, 1, 0); tinfo(&x, "a", 5, ne5, 0, 0); pad_data(&x, 64); refused(&x, "5 dims");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne0, 0, 0); pad_data(&x, 64); refused(&x, "a zero dim");
    head(&x, 1, 0); tinfo(&x, "a", 2, ne_big, 0, 0); pad_data(&x, 64); refused(&x, "element count overflows");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, MOEC_GGML_Q8_0, 0); pad_data(&x, 64); refused(&x, "Q8_0 with ne[0] = 4");
    head(&x, 2, 0); tinfo(&x, "a", 1, ne4, 0, 0); tinfo(&x, "a", 1, ne4, 0, 32); pad_data(&x, 64);
    refused(&x, "duplicate tensor name");
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, 0, 0); refused(&x, "data region missing");
    /* accepted corner cases */
    head(&x, 0, 0);
    f = NULL;
    CHECK(moec_gguf_open_memory(&f, x.b, x.n, "empty") == MOEC_OK && moec_gguf_tensor_count(f) == 0,
          "a file with no KVs and no tensors opens");
    moec_gguf_close(f);
    head(&x, 1, 0); tinfo(&x, "a", 1, ne4, 0, 0); pad_data(&x, 16); x.b[5] = 0; x.b[4] = 2;
    f = NULL;
    CHECK(moec_gguf_open_memory(&f, x.b, x.n, "v2") == MOEC_OK && moec_gguf_version(f) == 2,
          "version 2 opens (same layout as 3)");
    moec_gguf_close(f);
}

static void test_writer_atomic(void) {
    moec_gguf_writer *w;
    const char *p = tpath("partial.gguf");
    const int64_t ne[1] = {8};
    int ok = moec_gguf_writer_begin(&w, p) == MOEC_OK && moec_gguf_writer_add_tensor(w, "x", MOEC_GGML_F32, 1, ne) == MOEC_OK;
    const float v[4] = {0};
    ok &= moec_gguf_writer_put_f32(w, v, 4) == MOEC_OK;
    ok &= moec_gguf_writer_finish(w) == MOEC_ERR_ARG; /* 4 of 8 values */
    CHECK(ok && access(p, F_OK) != 0, "finish with missing data fails and leaves no file");
}

/* ---- helper modes for tests/test_gguf_py.sh ----
 *   test_gguf write-sample PATH   the round-trip sample file above
 *   test_gguf dump PATH           every KV and tensor, one per line: strings and names in hex (any bytes),
 *                                 numbers with 17 significant digits, tensor values converted to fp32 */
static void hex(const char *s, size_t n) {
    if (n == 0) printf("-");
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
}
static int dump(const char *path) {
    moec_gguf_file *f;
    if (moec_gguf_open(&f, path) != MOEC_OK) {
        fprintf(stderr, "error: %s\n", moec_error_message());
        return 1;
    }
    printf("version %u alignment %u\n", moec_gguf_version(f), moec_gguf_alignment(f));
    for (int64_t i = 0; i < moec_gguf_kv_count(f); i++) {
        const moec_gguf_kv *kv = moec_gguf_kv_at(f, i);
        size_t len;
        printf("kv ");
        hex(kv->key, strlen(kv->key));
        printf(" %s %s %llu", moec_gguf_kv_type_name(kv->type), moec_gguf_kv_type_name(kv->arr_type),
               (unsigned long long)kv->n);
        if (kv->type == MOEC_GGUF_KV_STRING) {
            const char *s = moec_gguf_kv_str(f, kv, &len);
            printf(" ");
            hex(s, len);
        } else if (kv->type == MOEC_GGUF_KV_ARRAY && kv->arr_type == MOEC_GGUF_KV_STRING) {
            for (uint64_t j = 0; j < kv->n; j++) {
                const char *s = moec_gguf_kv_arr_str(f, kv, j, &len);
                printf(" ");
                hex(s, len);
            }
        } else if (kv->type == MOEC_GGUF_KV_ARRAY) {
            for (uint64_t j = 0; j < kv->n; j++) printf(" %.17g", moec_gguf_kv_arr_num(kv, j));
        } else if (kv->type == MOEC_GGUF_KV_U64 || kv->type == MOEC_GGUF_KV_I64) {
            uint64_t u; /* exact: doubles lose 64-bit integers */
            memcpy(&u, kv->data, 8);
            printf(kv->type == MOEC_GGUF_KV_U64 ? " %llu" : " %lld", (unsigned long long)u);
        } else {
            moec_gguf_kv one = *kv;
            one.type = MOEC_GGUF_KV_ARRAY, one.arr_type = kv->type, one.n = 1;
            printf(" %.17g", moec_gguf_kv_arr_num(&one, 0));
        }
        printf("\n");
    }
    for (int64_t i = 0; i < moec_gguf_tensor_count(f); i++) {
        const moec_gguf_tensor *t = moec_gguf_tensor_at(f, i);
        printf("tensor ");
        hex(t->name, strlen(t->name));
        printf(" %s %d", moec_ggml_type_name(t->type), t->n_dims);
        for (int d = 0; d < t->n_dims; d++) printf(" %lld", (long long)t->ne[d]);
        int64_t n = moec_gguf_tensor_numel(t);
        float *v = malloc((size_t)n * sizeof *v);
        if (v && moec_gguf_tensor_read_f32(t, v, n) == MOEC_OK)
            for (int64_t j = 0; j < n; j++) printf(" %.9g", v[j]);
        else
            printf(" opaque");
        free(v);
        printf("\n");
    }
    moec_gguf_close(f);
    return 0;
}

/* requant IN OUT: every F32 tensor of IN written to OUT as NAME.f16, NAME.bf16 and (whole blocks) NAME.q8_0 by
 * moec's encoders, for comparison with the gguf package's. */
static int requant(const char *in, const char *out) {
    moec_gguf_file *f;
    moec_gguf_writer *w;
    if (moec_gguf_open(&f, in) != MOEC_OK || moec_gguf_writer_begin(&w, out) != MOEC_OK) return 1;
    static const moec_ggml_type types[3] = {MOEC_GGML_F16, MOEC_GGML_BF16, MOEC_GGML_Q8_0};
    static const char *suffix[3] = {"f16", "bf16", "q8_0"};
    int ok = 1;
    for (int pass = 0; pass < 2 && ok; pass++)
        for (int64_t i = 0; i < moec_gguf_tensor_count(f) && ok; i++) {
            const moec_gguf_tensor *t = moec_gguf_tensor_at(f, i);
            if (t->type != MOEC_GGML_F32) continue;
            int64_t n = moec_gguf_tensor_numel(t);
            float *v = malloc((size_t)n * sizeof *v);
            ok &= v && moec_gguf_tensor_read_f32(t, v, n) == MOEC_OK;
            for (int k = 0; k < 3 && ok; k++) {
                if (types[k] == MOEC_GGML_Q8_0 && t->ne[0] % 32) continue;
                char name[80];
                snprintf(name, sizeof name, "%s.%s", t->name, suffix[k]);
                ok &= (pass == 0 ? moec_gguf_writer_add_tensor(w, name, types[k], t->n_dims, t->ne)
                                 : moec_gguf_writer_put_f32(w, v, n)) == MOEC_OK;
            }
            free(v);
        }
    moec_gguf_close(f);
    if (!ok) {
        fprintf(stderr, "error: %s\n", moec_error_message());
        moec_gguf_writer_abort(w);
        return 1;
    }
    return moec_gguf_writer_finish(w) != MOEC_OK;
}

/* dequant TYPE IN OUT: IN holds whole blocks of ggml type TYPE (its name, e.g. Q4_K); OUT receives their fp32
 * values through moec_ggml_dequantize (compared with the gguf package by test_gguf_py.sh). */
static int dequant(const char *type, const char *in, const char *out) {
    int t = -1;
    for (int k = 0; k < MOEC_GGML_TYPE_LIMIT; k++)
        if (moec_ggml_type_name((moec_ggml_type)k) && !strcmp(moec_ggml_type_name((moec_ggml_type)k), type)) t = k;
    size_t bb = 0;
    const int block = t >= 0 ? moec_ggml_type_block((moec_ggml_type)t, &bb) : 0;
    if (t < 0 || !moec_ggml_can_dequantize((moec_ggml_type)t)) {
        fprintf(stderr, "dequant: cannot decode type %s\n", type);
        return 1;
    }
    FILE *f = fopen(in, "rb");
    if (!f) return 1;
    uint8_t *b = malloc(1 << 24);
    const size_t n = fread(b, 1, 1 << 24, f);
    fclose(f);
    const int64_t values = (int64_t)(n / bb) * block;
    float *y = malloc((size_t)values * 4 + 4);
    moec_ggml_dequantize((moec_ggml_type)t, b, values, y);
    f = fopen(out, "wb");
    const int ok = f && fwrite(y, 4, (size_t)values, f) == (size_t)values;
    if (f) fclose(f);
    free(b);
    free(y);
    return !ok;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "write-sample") == 0) return !write_sample(argv[2], 0);
    if (argc == 4 && strcmp(argv[1], "requant") == 0) return requant(argv[2], argv[3]);
    /* export MODEL_DIR OUT.gguf f32|f16|bf16|q8_0 [inexact] / import IN.gguf OUT_DIR (until the CLI has them) */
    moec_gguf_wtype wt;
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "export") == 0 && moec_gguf_wtype_parse(argv[4], &wt) == 0) {
        if (moec_gguf_export(argv[2], argv[3], wt, argc == 6 && !strcmp(argv[5], "inexact")) == MOEC_OK) return 0;
        fprintf(stderr, "moec: error: %s\n", moec_error_message());
        return 1;
    }
    if (argc == 4 && strcmp(argv[1], "import") == 0) {
        if (moec_gguf_import(argv[2], argv[3]) == MOEC_OK) return 0;
        fprintf(stderr, "moec: error: %s\n", moec_error_message());
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2]);
    if (argc == 5 && strcmp(argv[1], "dequant") == 0) return dequant(argv[2], argv[3], argv[4]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/moec_test_gguf_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0) return 1;
    test_f16_bf16();
    test_q8_0();
    test_unpack();
    CHECK(write_sample(tpath("a.gguf"), 0), "write every KV type and F32/F16/BF16/Q8_0/Q4_K tensors");
    CHECK(check_sample(tpath("a.gguf"), 0), "read back every KV and tensor (default alignment 32)");
    CHECK(write_sample(tpath("b.gguf"), 64), "write with general.alignment = 64");
    CHECK(check_sample(tpath("b.gguf"), 64), "read back with alignment 64 (offsets and pointers aligned)");
    size_t n = 0;
    char *bytes = read_all(tpath("a.gguf"), &n);
    moec_gguf_file *f = NULL;
    CHECK(bytes && moec_gguf_open_memory(&f, bytes, n, "a.gguf in memory") == MOEC_OK &&
              moec_gguf_tensor_count(f) == 5, "open_memory on the same bytes");
    /* Cut anywhere before the last tensor's last byte: refused; cut in the trailing padding: still valid. */
    size_t end = 0;
    if (f) {
        const moec_gguf_tensor *last = moec_gguf_find_tensor(f, "t.q4_k");
        end = (size_t)((const char *)last->data - bytes) + last->nbytes;
    }
    moec_gguf_close(f);
    int bad = 0;
    for (size_t k = 0; bytes && k < n; k++) {
        f = NULL;
        moec_status s = moec_gguf_open_memory(&f, bytes, k, "truncated");
        if ((s == MOEC_OK) != (k >= end)) bad++;
        if (s == MOEC_OK) moec_gguf_close(f);
    }
    CHECK(bytes && end > 0 && bad == 0, "every truncation of the written file before byte %zu is refused, "
          "the %zu padding bytes after it are optional", end, n - end);
    free(bytes);
    test_malformed();
    test_writer_atomic();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
