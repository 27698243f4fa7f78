#!/usr/bin/env python3
"""make_bench_model.py — random-weight Mixtral-layout model directories for the inference benchmark
(bench/run_infer_bench.sh): config.json, model.safetensors, tokenizer.json, readable by moec and by
llama.cpp's convert_hf_to_gguf.py.

  make_bench_model.py ref-moe-small OUT   the training benchmark's model (bench/bench_train.c): V 8192, D 512,
                                          8 layers, 8 heads / 4 KV heads of 64, 8 experts of 1408, top-2,
                                          untied; λ = 0 here (Mixtral routing, which llama.cpp runs)
  make_bench_model.py moe-1b OUT          ~1B parameters: V 16384, D 2048, 12 layers, 16 heads / 8 KV heads of
                                          128, 8 experts of 1408, top-2, untied
  options: --dtype f32|bf16 (default f32 for ref-moe-small, bf16 for moe-1b: half the disk), --seed S
Prints one JSON line: total, active (all but the unused E - K experts per layer) and read-per-token (active
without the embedding table, plus one row of it) parameter counts.

Weights: linear W ~ N(0, 1/fan_in) (logits O(1), no inf/NaN anywhere), norms 1. The safetensors file is
streamed one tensor at a time, so making the 1B model needs ~one expert's memory, not the model's.
The tokenizer is a synthetic but valid byte-level BPE of exactly V ids (256 bytes, V - 257 merges of existing
tokens, one special "<|endoftext|>"): the benchmark never tokenises text, but converters want a vocabulary.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

CONFIGS = {
    "ref-moe-small": dict(vocab_size=8192, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                          num_key_value_heads=4, head_dim=64, intermediate_size=1408, num_local_experts=8,
                          num_experts_per_tok=2),
    "moe-1b": dict(vocab_size=16384, hidden_size=2048, num_hidden_layers=12, num_attention_heads=16,
                   num_key_value_heads=8, head_dim=128, intermediate_size=1408, num_local_experts=8,
                   num_experts_per_tok=2),
}


def tensor_shapes(c):
    """(name, shape, fan_in or 0 for a norm) in the Mixtral checkpoint layout; linear weights are [out, in]."""
    D, V, F, E = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["num_local_experts"]
    HD, GD = c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
    out = [("model.embed_tokens.weight", (V, D), D)]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (D,), 0), (p + "post_attention_layernorm.weight", (D,), 0),
                (p + "self_attn.q_proj.weight", (HD, D), D), (p + "self_attn.k_proj.weight", (GD, D), D),
                (p + "self_attn.v_proj.weight", (GD, D), D), (p + "self_attn.o_proj.weight", (D, HD), HD),
                (p + "block_sparse_moe.gate.weight", (E, D), D)]
        for e in range(E):
            q = f"{p}block_sparse_moe.experts.{e}."
            out += [(q + "w1.weight", (F, D), D), (q + "w3.weight", (F, D), D), (q + "w2.weight", (D, F), F)]
    out += [("model.norm.weight", (D,), 0), ("lm_head.weight", (V, D), D)]
    return out


def param_counts(c):
    """total; active (the usual MoE convention: all but the E - K experts a token does not use, embedding table
    included); read per token (active minus the embedding table plus the one row a token looks up: the weights
    one decode step must stream from memory)."""
    D, V, F, E, K, L = (c[k] for k in ("hidden_size", "vocab_size", "intermediate_size", "num_local_experts",
                                       "num_experts_per_tok", "num_hidden_layers"))
    total = sum(int(np.prod(s)) for _, s, _ in tensor_shapes(c))
    active = total - L * (E - K) * 3 * D * F
    return total, active, active - V * D + D


def to_bf16_bytes(a):
    """float32 -> bfloat16 with round-to-nearest-even (the weights are finite)."""
    u = a.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()


def write_safetensors(path, c, dtype, seed):
    shapes = tensor_shapes(c)
    esize = 4 if dtype == "f32" else 2
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in shapes:
        n = int(np.prod(shape)) * esize
        header[name] = {"dtype": "F32" if dtype == "f32" else "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    rng = np.random.default_rng(seed)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape, fan_in in shapes:
            a = np.ones(shape, np.float32) if fan_in == 0 else \
                rng.standard_normal(shape, dtype=np.float32) * np.float32(fan_in ** -0.5)
            f.write(a.tobytes() if dtype == "f32" else to_bf16_bytes(a))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def bytes_to_unicode():
    """GPT-2's printable stand-ins for the 256 bytes (how byte-level BPE files spell tokens)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def write_tokenizer(path, vocab_size):
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    seen, merges = set(tokens), []
    # merge a common letter/space byte with an existing token; every merged string is new, so ids stay dense
    letters = [b2u[b] for b in b" etaoinshrdlucmfwypvbgk"]
    i = 0
    while len(tokens) < vocab_size - 1:
        a, b = letters[i % len(letters)], tokens[(i // len(letters)) % len(tokens)]
        i += 1
        if a + b in seen:
            continue
        seen.add(a + b)
        merges.append(f"{a} {b}")
        tokens.append(a + b)
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": vocab_size - 1, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True}],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": {**{t: i for i, t in enumerate(tokens)}, "<|endoftext|>": vocab_size - 1},
                     "merges": merges}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=sorted(CONFIGS))
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=("f32", "bf16"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    c = dict(CONFIGS[a.model])
    dtype = a.dtype or ("bf16" if a.model == "moe-1b" else "f32")
    V = c["vocab_size"]
    config = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", **c, "max_position_embeddings": 4096,
              "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "hidden_act": "silu",
              "bos_token_id": V - 1, "eos_token_id": V - 1, "sliding_window": None,
              "torch_dtype": "float32" if dtype == "f32" else "bfloat16",
              "moe_use_logits_norm": False, "capacity_factor": 0}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    write_tokenizer(os.path.join(a.out, "tokenizer.json"), V)
    write_safetensors(os.path.join(a.out, "model.safetensors"), c, dtype, a.seed)
    total, active, read = param_counts(c)
    print(json.dumps({"model": a.model, "params": total, "active_params": active, "read_params_per_token": read,
                      "dtype": dtype}))


if __name__ == "__main__":
    sys.exit(main())
