/* threads.c — the persistent worker pool behind moec_parallel_for (see threads.h).
 *
 * Protocol. The caller publishes a loop by writing the job fields (fn, ctx, n, grain) and then storing one atomic
 * word that packs a generation counter with the number of chunks. A worker that sees a new generation decides from
 * that same word alone whether it has a chunk; only then does it read the job fields. The caller does not touch the
 * job fields again until every participating worker has decremented `remaining`, so a slow worker can never read a
 * half-written job, and a worker without a chunk never reads the job at all (it may lag by several generations
 * without harm).
 *
 * Sleeping. Workers spin on the word for SPIN_NS, then register in `sleepers` and wait on a condition variable.
 * The caller stores the word and then reads `sleepers` (both sequentially consistent), and the worker increments
 * `sleepers` and then rereads the word: at least one of them sees the other's write, so no wakeup is lost, and
 * the caller only touches the mutex when somebody actually sleeps.
 */
#include "core/threads.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker spins before sleeping. A training step issues parallel loops back to back, microseconds
 * apart, and a futex wakeup costs tens of microseconds, so a few hundred microseconds of spinning pays for itself;
 * an idle process still goes quiet within a millisecond. */
#define SPIN_NS 300000

/* The job word: generation << CHUNK_BITS | number of chunks. */
#define CHUNK_BITS 16
#define MAX_THREADS 1024

static struct {
    int nthreads;           /* total, the caller included; 0 = not initialised */
    uint64_t start_gen;     /* the generation when the workers were created: they wait for the next one */
    pthread_t *workers;     /* nthreads - 1 of them; worker i (1-based) runs chunk i */

    /* The job in flight: written by the caller before it publishes `word`. */
    moec_task_fn fn;
    void *ctx;
    int64_t n;

    _Atomic uint64_t word;  /* generation << CHUNK_BITS | chunks */
    _Atomic int remaining;  /* participating workers that have not finished the current job */
    _Atomic int busy;       /* 1 while a loop is in flight: other loops then run inline */
    _Atomic int sleepers;   /* workers waiting (or about to wait) on cond */
    _Atomic int stop;       /* set by shutdown before it publishes a final generation */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
} pool = { .mutex = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Chunk c of nchunks over [0, n): the first n % nchunks chunks get one extra index. Written without c * n so that
 * no product can overflow for any n. */
static void chunk_range(int64_t n, int nchunks, int c, int64_t *begin, int64_t *end) {
    int64_t base = n / nchunks, rem = n % nchunks;
    *begin = c * base + (c < rem ? c : rem);
    *end = *begin + base + (c < rem ? 1 : 0);
}

/* Returns the first job word whose generation differs from seen_gen: spins first, then sleeps. */
static uint64_t wait_for_new_job(uint64_t seen_gen) {
    int64_t deadline = 0;
    for (uint64_t spins = 0;; spins++) {
        uint64_t w = atomic_load_explicit(&pool.word, memory_order_acquire);
        if ((w >> CHUNK_BITS) != seen_gen) return w;
        cpu_relax();
        if ((spins & 255) == 0) { /* reading the clock costs ~20 ns; do it now and then */
            int64_t t = now_ns();
            if (deadline == 0) deadline = t + SPIN_NS;
            else if (t > deadline) break;
        }
    }
    pthread_mutex_lock(&pool.mutex);
    atomic_fetch_add(&pool.sleepers, 1);
    uint64_t w;
    while (((w = atomic_load(&pool.word)) >> CHUNK_BITS) == seen_gen) pthread_cond_wait(&pool.cond, &pool.mutex);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.mutex);
    return w;
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg;
    /* Not a fresh read of pool.word: the caller may already have published its first loop before this thread
     * got to run, and that loop must not be mistaken for one already seen. */
    uint64_t seen_gen = pool.start_gen;
    for (;;) {
        uint64_t w = wait_for_new_job(seen_gen);
        seen_gen = w >> CHUNK_BITS;
        if (atomic_load(&pool.stop)) break;
        int nchunks = (int)(w & ((1u << CHUNK_BITS) - 1));
        if (index >= nchunks) continue; /* no chunk for us: do not read the job, the caller is not waiting */
        int64_t begin, end;
        chunk_range(pool.n, nchunks, index, &begin, &end);
        pool.fn(pool.ctx, begin, end, index);
        atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_release);
    }
    return NULL;
}

/* Publishes a new job word and wakes sleeping workers (see the file comment for why this cannot lose a wakeup). */
static void publish(int nchunks) {
    uint64_t gen = (atomic_load(&pool.word) >> CHUNK_BITS) + 1;
    atomic_store(&pool.word, gen << CHUNK_BITS | (uint64_t)nchunks);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mutex);
        pthread_cond_broadcast(&pool.cond);
        pthread_mutex_unlock(&pool.mutex);
    }
}

void moec_threads_shutdown(void) {
    if (pool.nthreads <= 1) {
        pool.nthreads = 0;
        return;
    }
    atomic_store(&pool.stop, 1);
    publish(0);
    for (int i = 1; i < pool.nthreads; i++) pthread_join(pool.workers[i - 1], NULL);
    free(pool.workers);
    pool.workers = NULL;
    pool.nthreads = 0;
    atomic_store(&pool.stop, 0);
}

/* Pins a worker to one CPU of the process's affinity mask. Failure is harmless (the thread just floats), so it
 * is not reported. */
static void pin_worker(pthread_t t, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(t, sizeof set, &set);
}

moec_status moec_threads_init(int n) {
    if (n < 0 || n > MAX_THREADS) return MOEC_ERR(MOEC_ERR_ARG, "moec_threads_init: thread count %d is not in [0, %d]", n, MAX_THREADS);
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online < 1 ? 1 : online > MAX_THREADS ? MAX_THREADS : (int)online;
    }
    moec_threads_shutdown();
    if (n == 1) {
        pool.nthreads = 1;
        return MOEC_OK;
    }

    /* The CPUs this process may run on, in order. Worker i goes to the i-th of them, leaving the first to the
     * (unpinned) calling thread; with fewer CPUs than threads nobody is pinned, since pinning two busy threads
     * to one CPU would serialise them for good. */
    cpu_set_t allowed;
    int cpus[MAX_THREADS], ncpus = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && ncpus < MAX_THREADS; c++)
            if (CPU_ISSET(c, &allowed)) cpus[ncpus++] = c;
    int pin = ncpus >= n;

    pool.workers = calloc((size_t)(n - 1), sizeof *pool.workers);
    if (!pool.workers) return MOEC_ERR(MOEC_ERR_NOMEM, "moec_threads_init: cannot allocate %d worker handles", n - 1);
    atomic_store(&pool.busy, 0);
    pool.start_gen = atomic_load(&pool.word) >> CHUNK_BITS;
    for (int i = 1; i < n; i++) {
        int rc = pthread_create(&pool.workers[i - 1], NULL, worker_main, (void *)(intptr_t)i);
        if (rc != 0) {
            pool.nthreads = i; /* shut down the i-1 workers already running */
            moec_threads_shutdown();
            return MOEC_ERR(MOEC_ERR_NOMEM, "moec_threads_init: pthread_create for worker %d of %d failed: %s", i, n - 1,
                            strerror(rc));
        }
        if (pin) pin_worker(pool.workers[i - 1], cpus[i]);
    }
    pool.nthreads = n;
    return MOEC_OK;
}

int moec_threads_count(void) { return pool.nthreads > 1 ? pool.nthreads : 1; }

/* Runs fn over chunk c = [c, c + 1) of [0, nchunks) on every participating thread (the caller takes chunk 0) and
 * waits for all of them. The caller holds pool.busy; this releases it. */
static void run_chunks(int64_t n, int nchunks, moec_task_fn fn, void *ctx) {
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    atomic_store_explicit(&pool.remaining, nchunks - 1, memory_order_relaxed);
    publish(nchunks);

    int64_t begin, end;
    chunk_range(n, nchunks, 0, &begin, &end);
    fn(ctx, begin, end, 0);

    /* Wait for the workers. Spin first (they usually finish within microseconds of us); if one is descheduled,
     * yield so that it can run on our CPU. */
    for (uint64_t spins = 0; atomic_load_explicit(&pool.remaining, memory_order_acquire) > 0; spins++) {
        if (spins < 4096) cpu_relax();
        else sched_yield();
    }
    atomic_store_explicit(&pool.busy, 0, memory_order_release);
}

/* Chunks of at least `grain` indices (grain < 1 counts as 1) that a loop over n indices splits into, at most
 * max_threads. */
static int chunk_count(int64_t n, int64_t grain, int max_threads) {
    const int64_t max_chunks = n / (grain < 1 ? 1 : grain);
    return max_chunks < max_threads ? (int)max_chunks : max_threads;
}

void moec_parallel_for(int64_t n, int64_t grain, moec_task_fn fn, void *ctx) {
    if (n <= 0) return;
    const int nchunks = chunk_count(n, grain, moec_threads_count());
    if (nchunks <= 1 || atomic_exchange_explicit(&pool.busy, 1, memory_order_acquire)) {
        fn(ctx, 0, n, 0);
        return;
    }
    run_chunks(n, nchunks, fn, ctx);
}

/* ---------------------------------------------------------------- balanced loop
 * Thread c owns the range ranges[c] = [front, back), packed into one word (front in the low 32 bits) so that its
 * owner (taking pieces off the front) and a thief (taking pieces off the back) claim with one compare-and-swap each
 * and can never both get an index. Each word sits on its own cache line: the owner's claims stay in its own cache
 * until somebody steals. */
#define BALANCED_MAX_THREADS 64

static struct {
    _Alignas(64) _Atomic uint64_t word;
} ranges[BALANCED_MAX_THREADS];

static struct {
    moec_task_fn fn;
    void *ctx;
    int64_t piece;
    int nchunks;
    int guided; /* the owner takes half of what is left of its range (at least piece) */
} balanced;

static inline uint64_t range_pack(int64_t front, int64_t back) { return (uint64_t)back << 32 | (uint64_t)front; }

/* Claims up to `piece` indices from the front (own range) or the back (someone else's); 0 when it is empty. With
 * `half`, a claim from the front takes half of what is left instead, when that is more. */
static int claim(int c, int from_back, int64_t piece, int half, int64_t *begin, int64_t *end) {
    uint64_t w = atomic_load_explicit(&ranges[c].word, memory_order_relaxed);
    for (;;) {
        const int64_t front = (int64_t)(w & 0xffffffffu), back = (int64_t)(w >> 32);
        if (front >= back) return 0;
        const int64_t want = half && !from_back && (back - front) / 2 > piece ? (back - front) / 2 : piece;
        const int64_t take = back - front < want ? back - front : want;
        const uint64_t next = from_back ? range_pack(front, back - take) : range_pack(front + take, back);
        if (atomic_compare_exchange_weak_explicit(&ranges[c].word, &w, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *begin = from_back ? back - take : front;
            *end = from_back ? back : front + take;
            return 1;
        }
    }
}

/* Chunk c of the pool's loop: own range first, front to back, then the others' ranges from their backs. */
static void balanced_chunk(void *unused, int64_t c0, int64_t c1, int thread_index) {
    (void)unused;
    const int c = (int)c0, n = balanced.nchunks;
    int64_t b, e;
    while (claim(c, 0, balanced.piece, balanced.guided, &b, &e)) balanced.fn(balanced.ctx, b, e, thread_index);
    for (int k = 1; k < n; k++)
        while (claim((c + k) % n, 1, balanced.piece, 0, &b, &e)) balanced.fn(balanced.ctx, b, e, thread_index);
}

static void balanced_loop(int64_t n, int64_t grain, int64_t piece, int guided, moec_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (piece < 1) piece = 1;
    const int threads = moec_threads_count();
    const int nchunks = chunk_count(n, grain, threads < BALANCED_MAX_THREADS ? threads : BALANCED_MAX_THREADS);
    if (nchunks <= 1 || n > INT32_MAX) {
        moec_parallel_for(n, grain, fn, ctx);
        return;
    }
    if (atomic_exchange_explicit(&pool.busy, 1, memory_order_acquire)) {
        fn(ctx, 0, n, 0);
        return;
    }
    for (int c = 0; c < nchunks; c++) {
        int64_t begin, end;
        chunk_range(n, nchunks, c, &begin, &end);
        atomic_store_explicit(&ranges[c].word, range_pack(begin, end), memory_order_relaxed);
    }
    balanced.fn = fn;
    balanced.ctx = ctx;
    balanced.piece = piece;
    balanced.nchunks = nchunks;
    balanced.guided = guided;
    /* publish() orders these plain and relaxed stores before the job word the workers acquire */
    run_chunks(nchunks, nchunks, balanced_chunk, NULL);
}

void moec_parallel_for_balanced(int64_t n, int64_t grain, int64_t piece, moec_task_fn fn, void *ctx) {
    balanced_loop(n, grain, piece, 0, fn, ctx);
}

void moec_parallel_for_guided(int64_t n, int64_t grain, int64_t piece, moec_task_fn fn, void *ctx) {
    balanced_loop(n, grain, piece, 1, fn, ctx);
}
