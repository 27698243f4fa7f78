/* optim.h — AdamW with decoupled weight decay over moec's flat parameter buffer, the learning-rate schedule,
 * and the gradient checks that guard every update (global norm, clipping, non-finite detection). */
#ifndef MOEC_TRAIN_OPTIM_H
#define MOEC_TRAIN_OPTIM_H

#include <stdint.h>

#include "model/params.h"

typedef struct {
    float lr;           /* peak learning rate */
    float min_lr;       /* floor of the cosine decay */
    int64_t warmup;     /* linear warmup steps (from lr/warmup at step 1 to lr at step warmup) */
    int64_t total;      /* schedule length: cosine decay ends at this step */
    float beta1, beta2, eps;
    float weight_decay; /* decoupled (AdamW); applied to matrices only, never to norm weights */
    float clip;         /* max global grad norm; 0 = no clipping */
} moec_optim_config;

void moec_optim_defaults(moec_optim_config *o);

/* Learning rate for 1-based step: linear warmup to lr, then cosine from lr to min_lr at `total`, then min_lr. */
float moec_lr_at(const moec_optim_config *o, int64_t step);

/* Global L2 norm of the gradient, computed in double; NaN/Inf propagate (the caller checks isfinite). */
double moec_grad_norm(const float *grads, int64_t n);

/* One AdamW step at 1-based `step` with learning rate lr, on every tensor of the table. grads are scaled by
 * grad_scale first (clipping); m, v are the moments (same layout as params). The gradient is zeroed as it is
 * consumed (saving the separate memset pass over the buffer before the next accumulation). */
void moec_adamw_step(float *params, float *m, float *v, float *grads, const moec_param_table *t,
                     const moec_optim_config *o, int64_t step, float lr, float grad_scale);

#endif
