/* avx512.h — what a file of AVX-512 kernels includes instead of <immintrin.h>, and the target attribute its
 * kernels are compiled for (AVX512_TARGET).
 *
 * Normal builds: the compiler's intrinsics, and kernels compiled for AVX-512 F + BW + VL (+ the AVX2 set); they run
 * only where moec_cpu_has_avx512() says the CPU has them.
 *
 * -DMOEC_EMULATE_AVX512: the same source compiled against SIMDe (Debian's libsimde-dev), which implements each
 * intrinsic in portable C with the result the instruction set reference defines, and no target attribute. The test
 * suite's "avx512-emulated" pass builds moec this way, so that every AVX-512 kernel is run and checked on a
 * machine without AVX-512: it checks the kernels' logic (lane order, masks, shifts, tails, tiling, reduction order),
 * not their speed. SIMDe 0.7 lacks six intrinsics the kernels use; they are defined below, the reduction in the
 * order GCC's <avx512fintrin.h> sums (halves, then quarters, then pairs), so sums round as on the hardware.
 */
#ifndef MOEC_KERNELS_CPU_AVX512_H
#define MOEC_KERNELS_CPU_AVX512_H

#ifndef MOEC_EMULATE_AVX512

#include <immintrin.h>
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

#else

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <stdint.h>
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>
#define AVX512_TARGET

/* vcvtph2ps zmm: 16 halves -> 16 floats */
static inline simde__m512 moec_emu_mm512_cvtph_ps(simde__m256i h) {
    float f[16];
    simde_mm256_storeu_ps(f, simde_mm256_cvtph_ps(simde_mm256_castsi256_si128(h)));
    simde_mm256_storeu_ps(f + 8, simde_mm256_cvtph_ps(simde_mm256_extracti128_si256(h, 1)));
    return simde_mm512_loadu_ps(f);
}
#define _mm512_cvtph_ps(h) moec_emu_mm512_cvtph_ps(h)

/* vpmovzxwd zmm: 16 uint16 -> 16 uint32 */
static inline simde__m512i moec_emu_mm512_cvtepu16_epi32(simde__m256i h) {
    uint16_t in[16];
    uint32_t out[16];
    simde_mm256_storeu_si256((simde__m256i *)in, h);
    for (int i = 0; i < 16; i++) out[i] = in[i];
    return simde_mm512_loadu_si512(out);
}
#define _mm512_cvtepu16_epi32(h) moec_emu_mm512_cvtepu16_epi32(h)

/* vpmovsxbd zmm: 16 int8 -> 16 int32 */
static inline simde__m512i moec_emu_mm512_cvtepi8_epi32(simde__m128i b) {
    int8_t in[16];
    int32_t out[16];
    simde_mm_storeu_si128((simde__m128i *)in, b);
    for (int i = 0; i < 16; i++) out[i] = in[i];
    return simde_mm512_loadu_si512(out);
}
#define _mm512_cvtepi8_epi32(b) moec_emu_mm512_cvtepi8_epi32(b)

/* vcvtdq2ps zmm: 16 int32 -> 16 floats (round to nearest even: exact below 2^24) */
static inline simde__m512 moec_emu_mm512_cvtepi32_ps(simde__m512i v) {
    int32_t in[16];
    float out[16];
    simde_mm512_storeu_si512(in, v);
    for (int i = 0; i < 16; i++) out[i] = (float)in[i];
    return simde_mm512_loadu_ps(out);
}
#define _mm512_cvtepi32_ps(v) moec_emu_mm512_cvtepi32_ps(v)

/* vcvtph2ps of one half (F16C's scalar form) */
static inline float moec_emu_cvtsh_ss(unsigned short h) {
    float f[4];
    simde_mm_storeu_ps(f, simde_mm_cvtph_ps(simde_mm_cvtsi32_si128(h)));
    return f[0];
}
#define _cvtsh_ss(h) moec_emu_cvtsh_ss(h)

static inline float moec_emu_mm512_reduce_add_ps(simde__m512 v) {
    float a[16];
    simde_mm512_storeu_ps(a, v);
    for (int i = 0; i < 8; i++) a[i] += a[i + 8];
    for (int i = 0; i < 4; i++) a[i] += a[i + 4];
    for (int i = 0; i < 2; i++) a[i] += a[i + 2];
    return a[0] + a[1];
}
#define _mm512_reduce_add_ps(v) moec_emu_mm512_reduce_add_ps(v)

#endif

#endif
