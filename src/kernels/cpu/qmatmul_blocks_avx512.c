/* qmatmul_blocks_avx512.c — the int8-activation kernels for ggml's block types (qmatmul_q8.h) compiled for
 * AVX-512 VL + VNNI: vpdpbusd for the code × activation sums, mask and ternary-logic instructions for Q5 fifth bits,
 * 32 vector registers. qmatmul_blocks.c calls moec_q8_dot_avx512_vnni when the AVX-512 kernels are active and the CPU
 * has VNNI (moec_cpu_has_avx512_vnni); the emulated build (avx512.h) runs it through SIMDe on any CPU. */
#include "kernels/cpu/avx512.h"

#ifndef MOEC_EMULATE_AVX512
#define Q8_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#else
#define Q8_TARGET
#endif
#define Q8_VNNI 1
#include "kernels/cpu/qmatmul_q8.h"

void moec_q8_dot_avx512_vnni(const moec_qmat *W, int64_t o0, int64_t o1, const float *xs, int64_t T, float *Y,
                             int64_t ldy) {
    q8_dot(W, o0, o1, xs, T, Y, ldy);
}
