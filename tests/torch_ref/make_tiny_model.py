#!/usr/bin/env python3
"""make_tiny_model.py DIR [options] — write a random tiny model directory (config.json + model.safetensors, F32)
for moec-vs-PyTorch tests.

Defaults (dense): vocab 97, hidden 32, 3 layers, heads 4, KV heads 2 (GQA), head_dim 8, intermediate 40, untied.
With --moe: layers 0 and 2 MoE (--moe-layers), layer 1 dense (dense_intermediate_size 40), E=4, K=2,
expert FFN 24 (intermediate_size, Mixtral convention), λ=1 (--lambda 0 disables logit normalisation),
capacity factor 1.0 (--cf 0 = dropless), aux sqdev (--aux switch), aux coef 0.01, z-loss 1e-3.
Weights are drawn large enough that routing is non-trivial (router std 1 by default).
--qkv-bias adds q/k/v_proj biases (N(0, 0.1^2)): a dense model is then written as Qwen2 (model_type qwen2,
Qwen2ForCausalLM), an MoE model as Mixtral plus moec's extra key "qkv_bias": true.
"""
import argparse
import json
import os
import sys

import torch


def build(a):
    qwen2 = a.qkv_bias and not a.moe
    cfg = {
        "architectures": ["MixtralForCausalLM" if a.moe else "Qwen2ForCausalLM" if qwen2 else "LlamaForCausalLM"],
        "model_type": "mixtral" if a.moe else "qwen2" if qwen2 else "llama",
        "vocab_size": a.vocab,
        "hidden_size": a.hidden,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "head_dim": a.head_dim,
        "intermediate_size": a.expert_ffn if a.moe else a.dense_ffn,
        "max_position_embeddings": a.max_seq,
        "rms_norm_eps": a.eps,
        "rope_theta": a.theta,
        "tie_word_embeddings": bool(a.tied),
        "hidden_act": "silu",
        "attention_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    if a.qkv_bias and a.moe:
        cfg["qkv_bias"] = True
    if qwen2:
        cfg["use_sliding_window"] = False
    if a.moe:
        moe_layers = [int(x) for x in a.moe_layers.split(",")] if a.moe_layers else list(range(a.layers))
        cfg.update({
            "num_local_experts": a.experts,
            "num_experts_per_tok": a.topk,
            "dense_intermediate_size": a.dense_ffn,
            "moe_layers": moe_layers,
            "moe_use_logits_norm": a.lam > 0,
            "moe_gate_norm_std": a.lam if a.lam > 0 else 1.0,
            "capacity_factor": a.cf,
            "router_aux_loss_type": a.aux,
            "router_aux_loss_coef": a.aux_coef,
            "router_z_loss_coef": a.zloss,
            "moe_adaptive_aux_coef": False,  # fixed α (a grad test sees only the initial α anyway)
            "output_router_logits": False,
        })
    return cfg


def init_weights(cfg, a):
    # import here so the file works from any cwd
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from moe_ref import Config, param_shapes

    c = Config(cfg)
    gen = torch.Generator().manual_seed(a.seed)
    out = {}
    for name, shape in param_shapes(c).items():
        if name.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # norms: around 1 so their gradients are non-trivial
            t = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif name.endswith("block_sparse_moe.gate.weight"):
            t = a.router_std * torch.randn(shape, generator=gen)
        elif name in ("model.embed_tokens.weight", "lm_head.weight"):
            t = torch.randn(shape, generator=gen) * (a.emb_std if name == "model.embed_tokens.weight" else shape[1] ** -0.5)
        else:  # linear [out, in]
            t = a.init_scale * torch.randn(shape, generator=gen) * shape[1] ** -0.5
        out[name] = t.float().contiguous()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--moe", action="store_true")
    ap.add_argument("--lambda", dest="lam", type=float, default=1.0)
    ap.add_argument("--cf", type=float, default=1.0)
    ap.add_argument("--aux", choices=["sqdev", "switch"], default="sqdev")
    ap.add_argument("--aux-coef", type=float, default=0.01)
    ap.add_argument("--zloss", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--qkv-bias", action="store_true", help="q/k/v_proj biases (dense: written as Qwen2)")
    ap.add_argument("--vocab", type=int, default=97)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--moe-layers", default="0,2", help="comma list; empty = all layers")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=8)
    ap.add_argument("--dense-ffn", type=int, default=40)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--topk", type=int, default=2)
    ap.add_argument("--expert-ffn", type=int, default=24)
    ap.add_argument("--max-seq", type=int, default=256)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--theta", type=float, default=10000.0)
    ap.add_argument("--router-std", type=float, default=1.0)
    ap.add_argument("--emb-std", type=float, default=0.4)
    ap.add_argument("--init-scale", type=float, default=1.0)
    a = ap.parse_args(argv)
    from safetensors.torch import save_file

    cfg = build(a)
    w = init_weights(cfg, a)
    os.makedirs(a.dir, exist_ok=True)
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file(w, os.path.join(a.dir, "model.safetensors"), metadata={"format": "pt"})
    n = sum(t.numel() for t in w.values())
    print(f"{a.dir}: {'MoE' if a.moe else 'dense'} {'tied' if a.tied else 'untied'}, {len(w)} tensors, {n} params")
    return 0


if __name__ == "__main__":
    sys.exit(main())
