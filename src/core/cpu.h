/* cpu.h — which SIMD instruction sets the kernels may use on this CPU, and how big its last cache is.
 *
 * The build has no global -march: each kernel family compiles its SIMD bodies with function target attributes and
 * picks one at run time through these two questions, so one binary runs on AVX-512, AVX2 or plain x86-64.
 *
 * A build with -DMOEC_EMULATE_AVX512 answers yes to moec_cpu_has_avx512 on any CPU: its AVX-512 kernels
 * are compiled against portable implementations of the intrinsics (kernels/cpu/avx512.h), so the test suite can run
 * them on a machine without AVX-512 (scripts/test.sh, the "avx512-emulated" pass).
 */
#ifndef MOEC_CORE_CPU_H
#define MOEC_CORE_CPU_H

/* AVX2 + FMA + F16C (every CPU with AVX2 that moec knows of has all three). */
int moec_cpu_has_avx2(void);

/* AVX-512 F + BW + VL, and the AVX2 set above. */
int moec_cpu_has_avx512(void);

/* moec_cpu_has_avx512() and AVX-512 VNNI (vpdpbusd: Ice Lake, Zen 4 and later). */
int moec_cpu_has_avx512_vnni(void);

/* The last-level cache of CPU 0 in bytes, as Linux describes it (/sys/devices/system/cpu/cpu0/cache: the highest
 * level's unified cache), or `fallback` when it cannot be read. (glibc's sysconf(_SC_LEVEL3_CACHE_SIZE) said 320 MB
 * for a 32 MB L3 in the VM the benchmarks ran in.) */
long long moec_cpu_llc_bytes(long long fallback);

#endif
