/* ffn.c — SwiGLU block (see ffn.h): three GEMMs and the element-wise gate, each side by side with its backward. */
#include "model/ffn.h"

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"

void moec_ffn_forward(float *y, float *h1, float *h3, float *act, const float *x, const float *w1, const float *w3,
                      const float *w2, int64_t n, int64_t D, int64_t F) {
    if (n == 0) return;
    moec_gemm(0, 1, n, F, D, 1.0f, x, D, w1, D, 0.0f, h1, F); /* h1 = x·W1ᵀ */
    moec_gemm(0, 1, n, F, D, 1.0f, x, D, w3, D, 0.0f, h3, F); /* h3 = x·W3ᵀ */
    moec_swiglu_forward(act, h1, h3, n, F);                   /* act = silu(h1)·h3 */
    moec_gemm(0, 1, n, D, F, 1.0f, act, F, w2, F, 0.0f, y, D); /* y = act·W2ᵀ */
}

void moec_ffn_backward(float *dx, float *dw1, float *dw3, float *dw2, float *scratch, const float *dy,
                       const float *x, const float *h1, const float *h3, const float *act, const float *w1,
                       const float *w3, const float *w2, int64_t n, int64_t D, int64_t F) {
    if (n == 0) return;
    float *dact = scratch, *dh1 = scratch + n * F, *dh3 = scratch + 2 * n * F;
    /* y = act·W2ᵀ */
    moec_gemm(1, 0, D, F, n, 1.0f, dy, D, act, F, 1.0f, dw2, F); /* dW2 += dyᵀ·act */
    moec_gemm(0, 0, n, F, D, 1.0f, dy, D, w2, F, 0.0f, dact, F); /* dact = dy·W2 */
    /* act = silu(h1)·h3 */
    moec_swiglu_backward(dh1, dh3, dact, h1, h3, n, F);
    /* h1 = x·W1ᵀ, h3 = x·W3ᵀ */
    moec_gemm(1, 0, F, D, n, 1.0f, dh1, F, x, D, 1.0f, dw1, D); /* dW1 += dh1ᵀ·x */
    moec_gemm(1, 0, F, D, n, 1.0f, dh3, F, x, D, 1.0f, dw3, D); /* dW3 += dh3ᵀ·x */
    moec_gemm(0, 0, n, D, F, 1.0f, dh1, F, w1, D, 0.0f, dx, D); /* dx = dh1·W1 + dh3·W3 */
    moec_gemm(0, 0, n, D, F, 1.0f, dh3, F, w3, D, 1.0f, dx, D);
}
