/* cpu.c — see cpu.h. */
#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* F16C from CPUID leaf 1 (clang's __builtin_cpu_supports does not know "f16c"; the fuzzers are built with clang) */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

int moec_cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
#else
    return 0;
#endif
}

int moec_cpu_has_avx512(void) {
#if defined(MOEC_EMULATE_AVX512)
    return 1; /* the emulated kernels are plain C: they run on any CPU */
#elif defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return moec_cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}
