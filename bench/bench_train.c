/* bench_train.c — moec's training throughput on the reference config "ref-moe-small" (or a smaller one):
 * random token batches, each timed step = forward + backward + AdamW, exactly what `moec train` does per step.
 * Prints one JSON line like bench/train_torch.py so the two can be compared in the same run
 * (bench/run_train_bench.sh does that). FLOPs per token use the same convention as the PyTorch peer:
 * 6·N_active + 12·L·H·Dh·S (N_active: matmul parameters one token uses — attention, router, K experts, lm_head).
 *   usage: bench_train [--threads N] [--steps N] [--warmup N] [--small]  */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "core/threads.h"
#include "model/model.h"
#include "train/optim.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int threads = 2, steps = 5, warmup = 1, small = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--small")) small = 1;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--steps N] [--warmup N] [--small]\n", argv[0]);
            return 2;
        }
    }
    moec_config c;
    moec_config_defaults(&c);
    c.vocab_size = 8192, c.hidden = 512, c.n_layers = 8, c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 64;
    c.ffn_dim = 1408, c.max_seq = 256, c.rope_theta = 10000, c.norm_eps = 1e-5f, c.tie_embeddings = 0;
    c.moe.n_experts = 8, c.moe.top_k = 2, c.moe.ffn_dim = 1408, c.moe.gate_lambda = 1.0f;
    c.moe.capacity_factor = 1.25f, c.moe.alpha_fixed = 0.01f, c.moe.adaptive_alpha = 1;
    int64_t B = 8, S = 256;
    if (small) c.n_layers = 2, B = 2;
    for (int l = 0; l < c.n_layers; l++) c.is_moe_layer[l] = 1;
    if (moec_threads_init(threads) != MOEC_OK) return 1;
    moec_model m;
    if (moec_model_init(&m, &c) || moec_model_alloc_grads(&m) || moec_model_reserve(&m, B, S)) {
        fprintf(stderr, "bench_train: %s\n", moec_error_message());
        return 1;
    }
    moec_model_init_random(&m, 1);
    float *am = moec_alloc_floats(m.table.total), *av = moec_alloc_floats(m.table.total);
    int32_t *in = malloc((size_t)(B * S) * 4), *tg = malloc((size_t)(B * S) * 4);
    moec_optim_config o;
    moec_optim_defaults(&o);
    uint64_t rng = 7;
    double *times = calloc((size_t)steps, sizeof *times);
    float alpha[MOEC_MAX_LAYERS];
    for (int l = 0; l < c.n_layers; l++) alpha[l] = c.moe.alpha_fixed;
    for (int s = 0; s < warmup + steps; s++) {
        for (int64_t i = 0; i < B * S; i++) {
            in[i] = (int32_t)(moec_rand_u64(&rng) % (uint64_t)c.vocab_size);
            tg[i] = (int32_t)(moec_rand_u64(&rng) % (uint64_t)c.vocab_size);
        }
        double t0 = now_s();
        moec_forward_stats fs; /* gradients start at zero: alloc, then AdamW zeroes them as it consumes them */
        if (moec_model_forward(&m, in, tg, B, S, alpha, &fs) || moec_model_backward(&m, alpha, 1.0f)) {
            fprintf(stderr, "bench_train: %s\n", moec_error_message());
            return 1;
        }
        double gn = moec_grad_norm(m.grads, m.table.total);
        moec_adamw_step(m.params, am, av, m.grads, &m.table, &o, s + 1, 1e-4f, gn > 1 ? (float)(1 / gn) : 1.0f);
        double dt = now_s() - t0;
        if (s >= warmup) times[s - warmup] = dt;
        fprintf(stderr, "step %d: %.3f s, loss %.4f\n", s, dt, fs.ce_loss);
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    const double med = times[steps / 2];
    const double D = c.hidden, L = c.n_layers, HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const double n_active = L * (D * HD * 2 + D * GD * 2 + D * c.moe.n_experts + c.moe.top_k * 3.0 * D * c.moe.ffn_dim) +
                            (double)c.vocab_size * D;
    const double fpt = 6 * n_active + 12 * L * HD * (double)S;
    const double tok_s = (double)(B * S) / med;
    printf("{\"impl\": \"moec\", \"tokens_per_s\": %.1f, \"step_ms_median\": %.1f, \"threads\": %d, "
           "\"flops_per_token\": %.4e, \"achieved_gflops\": %.2f, \"layers\": %d, \"batch\": %lld}\n",
           tok_s, med * 1e3, threads, fpt, tok_s * fpt / 1e9, c.n_layers, (long long)B);
    moec_model_free(&m);
    moec_free(am), moec_free(av), free(in), free(tg), free(times);
    moec_threads_shutdown();
    return 0;
}
