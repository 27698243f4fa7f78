/* quantize.h — `moec quantize`: rewrite a model directory with narrower weights.
 *
 * --to fp8: every 2-D weight except the MoE router gate (embedding, q/k/v/o, dense and expert w1/w3/w2, lm_head)
 *   becomes F8_E4M3 with one F32 scale per output row, stored as the tensor "X.weight_scale" of shape [rows, 1]
 *   next to "X.weight" — the layout of Hugging Face's channel-wise FP8 checkpoints (compressed-tensors
 *   "float-quantized" with strategy "channel", and fbgemm_fp8), and config.json gets a matching
 *   "quantization_config". Dequantised weight = weight_scale[row] · e4m3(weight[row, col]); scale = max|row|/448.
 * --to bf16 / f16: the same tensors become BF16 / F16 (IEEE half) (round to nearest even). f16 has 3 more mantissa
 *   bits than bf16 but tops out at 65504: a weight beyond that is refused, not turned into an infinity.
 * Norm weights, biases and the router gate stay F32: they are tiny, and routing decisions are sensitive to them.
 *
 * The input may be any model directory moec reads (F32/F16/BF16, or already quantised). A weight that is not
 * finite is refused (it would poison its whole row). OUT must not exist; it is built as OUT.tmp-<pid> and renamed
 * when complete, so a failure leaves nothing behind. tokenizer.json is copied.
 */
#ifndef MOEC_INFER_QUANTIZE_H
#define MOEC_INFER_QUANTIZE_H

#include "core/error.h"
#include "kernels/cpu/qmatmul.h"

moec_status moec_quantize_model(const char *in_dir, const char *out_dir, moec_qtype to);

#endif
