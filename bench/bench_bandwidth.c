/* bench_bandwidth.c — the machine's sustained read bandwidth: THREADS threads stream-sum a 1 GiB buffer (far
 * larger than any cache), 10 passes after a warm-up; prints the best pass in GB/s (the decode bound that
 * bench/run_infer_bench.sh divides by).   usage: bench_bandwidth [THREADS=2] */
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "model/params.h"

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || moec_threads_init(threads) != MOEC_OK) return 2;
    const int64_t bytes = (int64_t)1 << 30;
    float *buf = moec_alloc_floats(bytes / 4);
    if (!buf) return 1;
    for (int64_t i = 0; i < bytes / 4; i++) buf[i] = (float)(i & 7);
    double best;
    bench_read_bandwidth(buf, bytes, threads == 1, 10, &best);
    printf("%.2f\n", best);
    moec_free(buf);
    moec_threads_shutdown();
    return 0;
}
