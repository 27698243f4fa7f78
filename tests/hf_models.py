#!/usr/bin/env python3
"""hf_models.py — helper of tests/test_hf_models.sh: checkpoints written by Hugging Face transformers itself.

  hf_models.py make OUT     for every case, OUT/<case>/ holds a tiny random model saved by the real transformers
                            class (save_pretrained, safetensors) plus ids.txt and ref.npy: the logits transformers
                            computes in float32 from the saved weights (f16/bf16 checkpoints are upcast on loading,
                            exactly what moec does). Also writes the bad-input directories OUT/bad_<what>/.
                            Prints one line per case: "<case>" (good) or "bad <case> <keyword>" (bad input; the
                            keyword must appear in moec's error).
  hf_models.py compare OURS.npy REF.npy
                            exit 0 when shapes agree and max|ours - ref| <= 1e-4 * max(1, max|ref|).

Weights are re-drawn at a scale where logits are O(1) (transformers' own init, N(0, 0.02), gives logits so
small that nearly any bug would pass): linear W ~ N(0, 1/fan_in), norms 1 + N(0, 0.2^2), biases N(0, 0.1^2).
Mixtral uses num_local_experts 4, top-2 (moec reads it as dropless, λ = 0: the same routing).
transformers 5 holds Mixtral experts fused in memory (mlp.experts.gate_up_proj) but save_pretrained converts
them back to the per-expert block_sparse_moe.experts.E.w{1,2,3} names, which is what moec reads.
"""
import json
import os
import shutil
import sys

import numpy as np


def make_model(family, tied, seed):
    import torch
    import transformers as tf

    common = dict(vocab_size=96, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tied, rms_norm_eps=1e-5)
    if family == "llama":
        cfg, cls = tf.LlamaConfig(**common), tf.LlamaForCausalLM
    elif family == "mistral":
        cfg, cls = tf.MistralConfig(**common), tf.MistralForCausalLM  # sliding_window 4096 > context: inactive
    elif family == "qwen2":
        cfg, cls = tf.Qwen2Config(**common), tf.Qwen2ForCausalLM
    elif family == "mixtral":
        common["intermediate_size"] = 24
        cfg = tf.MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **common)
        cls = tf.MixtralForCausalLM
    else:
        raise ValueError(family)
    torch.manual_seed(seed)
    m = cls(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * p.shape[-1] ** -0.5)
    return m, cls


def reference_logits(cls, d, ids):
    import torch

    kw = dict(dtype=torch.float32, attn_implementation="eager")
    try:
        m = cls.from_pretrained(d, experts_implementation="eager", **kw) if "Mixtral" in cls.__name__ else \
            cls.from_pretrained(d, **kw)
    except TypeError:
        m = cls.from_pretrained(d, **kw)
    with torch.no_grad():
        return m.eval()(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def make(out):
    import torch

    torch.set_num_threads(2)
    dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    cases = []
    for fam in ("llama", "mistral", "qwen2", "mixtral"):
        cases += [(fam, "f32", False, None), (fam, "f32", True, None), (fam, "f16", False, None),
                  (fam, "bf16", True, None), (fam, "bf16", False, None)]
    cases += [("llama", "f32", False, "8KB"), ("qwen2", "bf16", True, "4KB"), ("mixtral", "f16", False, "6KB")]
    rng = np.random.default_rng(0)
    for i, (fam, dt, tied, shard) in enumerate(cases):
        name = f"{fam}_{dt}_{'tied' if tied else 'untied'}" + ("_sharded" if shard else "")
        d = os.path.join(out, name)
        m, cls = make_model(fam, tied, seed=100 + i)
        kw = {"max_shard_size": shard} if shard else {}
        m.to(dtypes[dt]).save_pretrained(d, safe_serialization=True, **kw)
        if shard and not os.path.exists(os.path.join(d, "model.safetensors.index.json")):
            raise SystemExit(f"{name}: save_pretrained wrote no index.json")
        ids = [int(x) for x in rng.integers(0, 96, size=16)]
        with open(os.path.join(d, "ids.txt"), "w") as f:
            f.write(" ".join(map(str, ids)))
        np.save(os.path.join(d, "ref.npy"), reference_logits(cls, d, ids))
        print(name)
    make_bad(out)


def make_bad(out):
    from safetensors.numpy import load_file, save_file

    src = os.path.join(out, "llama_f32_untied")

    def clone(what):
        d = os.path.join(out, "bad_" + what)
        shutil.copytree(src, d)
        return d

    def edit_config(d, **kv):
        p = os.path.join(d, "config.json")
        c = json.load(open(p))
        c.update(kv)
        json.dump(c, open(p, "w"))

    d = clone("gpt2")  # an architecture moec does not compute
    edit_config(d, model_type="gpt2", architectures=["GPT2LMHeadModel"])
    print("bad bad_gpt2 gpt2")
    # a shard the index names is missing
    d = os.path.join(out, "bad_missing_shard")
    shutil.copytree(os.path.join(out, "llama_f32_untied_sharded"), d)
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    victim = sorted(set(idx["weight_map"].values()))[-1]
    os.remove(os.path.join(d, victim))
    print(f"bad bad_missing_shard {victim}")
    # a weight stored as I8 (a dtype moec cannot convert to float)
    d = clone("i8")
    t = load_file(os.path.join(d, "model.safetensors"))
    t["model.layers.0.self_attn.q_proj.weight"] = np.zeros(t["model.layers.0.self_attn.q_proj.weight"].shape, np.int8)
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    print("bad bad_i8 I8")
    # config.json disagrees with the tensors' shapes
    d = clone("shape")
    edit_config(d, intermediate_size=48)
    print("bad bad_shape shape")


def compare(ours, ref):
    a, b = np.load(ours), np.load(ref)
    if a.shape != b.shape:
        print(f"shape {a.shape} != reference {b.shape}")
        return 1
    diff = float(np.abs(a.astype(np.float64) - b).max())
    tol = 1e-4 * max(1.0, float(np.abs(b).max()))
    print(f"max|dlogits| {diff:.2e} (tol {tol:.1e}, max|ref| {float(np.abs(b).max()):.2f})")
    return 0 if diff <= tol else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    sys.exit(__doc__)
