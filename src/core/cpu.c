/* cpu.c — see cpu.h. */
#include "core/cpu.h"

#include <stdio.h>
#include <string.h>

#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* F16C from CPUID leaf 1 (clang's __builtin_cpu_supports does not know "f16c"; the fuzzers are built with clang) */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static int detect_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
#else
    return 0;
#endif
}

static int detect_avx512(void) {
#if defined(MOEC_EMULATE_AVX512)
    return 1; /* the emulated kernels are plain C: they run on any CPU */
#elif defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return detect_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int detect_avx512_vnni(void) {
#if defined(MOEC_EMULATE_AVX512)
    return 1;
#elif defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return detect_avx512() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11)); /* CPUID.7.0:ECX.11 */
#else
    return 0;
#endif
}

/* The answers are asked for on every attention and SwiGLU call of a decode step, and CPUID traps to the hypervisor
 * in a virtual machine (measured: 3 % of a ref-moe-small decode step's samples in moec_cpu_has_avx2), so each is
 * found once and kept: 0 = not yet known, 1 = no, 2 = yes. (Two threads asking at once both compute the same.) */
static _Atomic int known_avx2, known_avx512, known_avx512_vnni;

static int cached(_Atomic int *known, int (*detect)(void)) {
    int v = atomic_load_explicit(known, memory_order_relaxed);
    if (!v) {
        v = detect() ? 2 : 1;
        atomic_store_explicit(known, v, memory_order_relaxed);
    }
    return v == 2;
}

int moec_cpu_has_avx2(void) { return cached(&known_avx2, detect_avx2); }

int moec_cpu_has_avx512(void) { return cached(&known_avx512, detect_avx512); }

int moec_cpu_has_avx512_vnni(void) { return cached(&known_avx512_vnni, detect_avx512_vnni); }

long long moec_cpu_llc_bytes(long long fallback) {
    long long best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; i++) {
        char path[96], buf[64];
        int level = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f) break;
        const int ok = fscanf(f, "%d", &level) == 1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!ok || !(f = fopen(path, "r"))) continue;
        const int unified = fgets(buf, sizeof buf, f) && !strncmp(buf, "Unified", 7);
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (!unified || level <= best_level || !(f = fopen(path, "r"))) continue;
        long long n = 0;
        char unit = 0;
        const int got = fscanf(f, "%lld%c", &n, &unit);
        fclose(f);
        if (got < 1 || n <= 0 || n > (1ll << 40)) continue;
        best = unit == 'K' ? n << 10 : unit == 'M' ? n << 20 : unit == 'G' ? n << 30 : n;
        best_level = level;
    }
    return best > 0 ? best : fallback;
}
