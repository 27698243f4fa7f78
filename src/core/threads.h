/* threads.h — moec's one thread pool: persistent workers that every CPU kernel shares.
 *
 * The pool is created once (moec_threads_init) and then reused by every parallel loop, so a parallel loop costs a
 * couple of atomic operations rather than thread creation. Workers spin for a short while after each loop (the next
 * loop of a training step usually follows within microseconds) and then sleep on a condition variable, so an idle
 * process does not burn CPU. Workers are pinned to distinct CPUs when the process may use at least that many.
 *
 * The thread calling moec_parallel_for always does its share of the work (thread_index 0), so a pool of n threads
 * has n-1 workers. The pool runs one loop at a time: a loop started while another is in flight (a nested call from
 * inside a task, or a second application thread) simply runs inline on its caller, single-threaded. That keeps
 * nesting and concurrent callers correct, at the price of parallelism for the nested loop.
 *
 * Not thread-safe against itself: moec_threads_init and moec_threads_shutdown must not run while a parallel loop is
 * in flight.
 */
#ifndef MOEC_CORE_THREADS_H
#define MOEC_CORE_THREADS_H

#include <stdint.h>
#include "core/error.h"

/* Creates (or re-creates with a new size) the pool with n threads in total, the caller included.
 * n == 0 means one per online CPU; n == 1 means no workers (every loop runs inline). */
moec_status moec_threads_init(int n);

/* Threads a parallel loop uses (1 when the pool was never initialised or has been shut down). */
int moec_threads_count(void);

/* One chunk of a parallel loop: process indices [begin, end). thread_index is in [0, moec_threads_count()) and
 * distinct among the chunks of one moec_parallel_for call, so it may select per-thread scratch; chunks of two
 * different calls running at the same time (see above) may share an index, so scratch that must survive that
 * belongs in _Thread_local storage instead. */
typedef void (*moec_task_fn)(void *ctx, int64_t begin, int64_t end, int thread_index);

/* Splits [0, n) into at most moec_threads_count() contiguous chunks of at least `grain` indices (except when n
 * itself is smaller) and runs fn on each, the calling thread taking the first chunk; returns when all are done.
 * Runs fn(ctx, 0, n, 0) inline when n <= grain, when the pool has one thread, when it was never initialised, or
 * when the pool is busy with another loop. Chunk boundaries depend only on n, grain and the thread count. */
void moec_parallel_for(int64_t n, int64_t grain, moec_task_fn fn, void *ctx);

/* As moec_parallel_for (the same chunks to start with, the same inline cases), but a thread that finishes its chunk
 * early takes work from the others: each thread runs its own chunk front to back in pieces of at most `piece`
 * indices, and then claims pieces off the back of the other chunks until nothing is left. Every index is still
 * visited exactly once, but the split (and so the number of fn calls, and which thread gets an index) depends on
 * timing. For loops whose pieces take unpredictable time, e.g. streaming weights from memory on a machine where the
 * threads' bandwidth differs from moment to moment: the last thread no longer keeps everybody waiting, and each
 * thread still reads its share as one sequential stream. */
void moec_parallel_for_balanced(int64_t n, int64_t grain, int64_t piece, moec_task_fn fn, void *ctx);

/* As moec_parallel_for_balanced, but a thread takes half of what is left of its own chunk at a time (at least
 * `piece`; pieces taken off the back of other chunks stay at most `piece`): few large calls while there is much to
 * do, and small ones at the end, where a thread that finished first helps the others. For decode kernels that
 * split the range they get into streams (qmatmul's E4M3 tiles read one row from each quarter of it). */
void moec_parallel_for_guided(int64_t n, int64_t grain, int64_t piece, moec_task_fn fn, void *ctx);

/* Stops and joins the workers; afterwards loops run single-threaded until the next moec_threads_init. */
void moec_threads_shutdown(void);

#endif
