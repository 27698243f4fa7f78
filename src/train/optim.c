/* optim.c — AdamW, LR schedule, gradient norm (see optim.h). */
#include "train/optim.h"

#include <math.h>

#include "core/threads.h"

void moec_optim_defaults(moec_optim_config *o) {
    *o = (moec_optim_config){.lr = 3e-3f, .min_lr = 3e-4f, .warmup = 20, .total = 1000, .beta1 = 0.9f,
                             .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .clip = 1.0f};
}

float moec_lr_at(const moec_optim_config *o, int64_t step) {
    if (o->warmup > 0 && step <= o->warmup) return o->lr * (float)step / (float)o->warmup;
    if (step >= o->total) return o->min_lr;
    const double span = (double)(o->total - o->warmup);
    const double progress = span > 0 ? (double)(step - o->warmup) / span : 1.0;
    return (float)(o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * progress)));
}

typedef struct {
    const float *g;
    double partial[64];
} norm_args;

static void norm_range(void *p, int64_t i0, int64_t i1, int thread) {
    norm_args *a = p;
    double s = 0;
    for (int64_t i = i0; i < i1; i++) s += (double)a->g[i] * a->g[i];
    a->partial[thread] = s;
}

double moec_grad_norm(const float *grads, int64_t n) {
    norm_args a = {.g = grads};
    moec_parallel_for(n, 1 << 16, norm_range, &a);
    double s = 0;
    for (int i = 0; i < 64; i++) s += a.partial[i];
    return sqrt(s);
}

typedef struct {
    float *p, *m, *v, *g;
    float lr, b1, b2, eps, wd, bc1, bc2, scale;
} adam_args;

static void adam_range(void *ctx, int64_t i0, int64_t i1, int thread) {
    const adam_args *a = ctx;
    /* restrict-qualified locals let the compiler vectorise the loop without run-time alias checks */
    float *restrict p = a->p, *restrict mm = a->m, *restrict vv = a->v, *restrict gg = a->g;
    const float b1 = a->b1, b2 = a->b2, lr = a->lr, wd = a->wd, eps = a->eps, scale = a->scale;
    const float inv_bc1 = 1.0f / a->bc1, inv_bc2 = 1.0f / a->bc2;
    for (int64_t i = i0; i < i1; i++) {
        const float g = gg[i] * scale;
        gg[i] = 0.0f;
        const float m = b1 * mm[i] + (1.0f - b1) * g;
        const float v = b2 * vv[i] + (1.0f - b2) * g * g;
        mm[i] = m;
        vv[i] = v;
        p[i] -= lr * ((m * inv_bc1) / (sqrtf(v * inv_bc2) + eps) + wd * p[i]);
    }
}

void moec_adamw_step(float *params, float *m, float *v, float *grads, const moec_param_table *t,
                     const moec_optim_config *o, int64_t step, float lr, float grad_scale) {
    const float bc1 = 1.0f - powf(o->beta1, (float)step), bc2 = 1.0f - powf(o->beta2, (float)step);
    for (int i = 0; i < t->count; i++) {
        const moec_param_info *pi = &t->items[i];
        adam_args a = {.p = params + pi->offset, .m = m + pi->offset, .v = v + pi->offset, .g = grads + pi->offset,
                       .lr = lr, .b1 = o->beta1, .b2 = o->beta2, .eps = o->eps,
                       .wd = pi->ndim == 2 ? o->weight_decay : 0.0f, .bc1 = bc1, .bc2 = bc2, .scale = grad_scale};
        moec_parallel_for(pi->numel, 1 << 14, adam_range, &a);
    }
}
