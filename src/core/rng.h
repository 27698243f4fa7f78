/* rng.h — moec's one pseudo-random generator: splitmix64 (Steele, Lea, Flood 2014), tiny, fast, with a 64-bit
 * state that is trivially saved in a checkpoint. Randomness is always passed in as a state pointer, never
 * global, so every run is reproducible from its seed. */
#ifndef MOEC_CORE_RNG_H
#define MOEC_CORE_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t moec_rand_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double moec_rand_uniform(uint64_t *state) { return (double)(moec_rand_u64(state) >> 11) * 0x1p-53; }

/* Standard normal (Box–Muller; one value per call, the pair's twin is discarded for simplicity). */
static inline double moec_rand_normal(uint64_t *state) {
    double u1 = moec_rand_uniform(state), u2 = moec_rand_uniform(state);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
