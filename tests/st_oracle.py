#!/usr/bin/env python3
"""Independent oracle for moec's file-format tests (tests/test_safetensors.c, tests/test_model_dir.c).

Uses the reference `safetensors` package, NumPy and PyTorch, never moec's code. Subcommands:
  verify ST [--meta k=v]... [name:DTYPE:d0,d1:raw.bin]...   a file moec wrote: every listed tensor has this
                                                            dtype, shape and exactly these bytes; metadata matches
  npy NPY raw.bin d0,d1                                     a .npy moec wrote loads with numpy, same shape/bytes
  make DIR                                                  write DIR/py.safetensors (F32 specials, every F16,
                                                            BF16, F8 bit pattern) and DIR/<name>.f32: the values
                                                            converted to fp32 by numpy/torch, raw little-endian
  dump ST DIR                                               every tensor of ST converted to fp32 -> DIR/<name>.f32
  hf_load MODEL_DIR DIR [MODEL_DIR DIR]...                 load each MODEL_DIR with transformers
                                                            AutoModelForCausalLM, dump its state_dict under the
                                                            checkpoint names as DIR/<name>.f32 (exit 3 if
                                                            transformers is unavailable)
Exit status 0 on success, 1 on a mismatch (message on stderr).
"""
import os
import sys

import numpy as np


def fail(msg):
    print("oracle: " + msg, file=sys.stderr)
    sys.exit(1)


def shape_of(s):
    return [int(x) for x in s.split(",") if x != ""]


def verify(args):
    from safetensors import safe_open
    path = args[0]
    want_meta = {}
    specs = []
    i = 1
    while i < len(args):
        if args[i] == "--meta":
            k, v = args[i + 1].split("=", 1)
            want_meta[k] = v
            i += 2
        else:
            specs.append(args[i])
            i += 1
    # torch framework: numpy has no bfloat16 / float8
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        for k, v in want_meta.items():
            if meta.get(k) != v:
                fail(f"metadata {k!r}: got {meta.get(k)!r}, want {v!r}")
        names = set(f.keys())
        for spec in specs:
            name, dtype, shape, raw = spec.split(":")
            if name not in names:
                fail(f"tensor {name} missing")
            sl = f.get_slice(name)
            if sl.get_dtype() != dtype:
                fail(f"{name}: dtype {sl.get_dtype()} want {dtype}")
            t = f.get_tensor(name)
            if list(t.shape) != shape_of(shape):
                fail(f"{name}: shape {list(t.shape)} want {shape}")
            got = t.contiguous().view(-1).view(__import__("torch").uint8).numpy().tobytes() if t.numel() else b""
            want = open(raw, "rb").read()
            if got != want:
                fail(f"{name}: bytes differ ({len(got)} vs {len(want)})")
    if specs:
        from safetensors.numpy import load_file  # the plain numpy reader must accept the file too
        d = load_file(path) if all(s.split(":")[1] not in ("BF16", "F8_E4M3", "F8_E5M2") for s in specs) else None
        if d is not None and set(d) != names:
            fail("numpy reader sees different tensor names")


def npy(args):
    path, raw, shape = args
    a = np.load(path)
    if a.dtype != np.float32 or list(a.shape) != shape_of(shape):
        fail(f"npy: dtype {a.dtype} shape {a.shape}, want float32 {shape}")
    if a.tobytes() != open(raw, "rb").read():
        fail("npy: data differs")


def make(args):
    import torch
    from safetensors.torch import save_file
    out = args[0]
    f32 = torch.tensor([1.0, -2.5, float("inf"), float("-inf"), float("nan"), -0.0, 1e-45, 3.4e38, 1.17549435e-38],
                       dtype=torch.float32)
    bits16 = torch.arange(65536, dtype=torch.int32).to(torch.int16)  # wraps: every 16-bit pattern once
    bits8 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    tensors = {
        "f32_special": f32.reshape(3, 3),
        "f16_all": bits16.view(torch.float16).reshape(256, 256).clone(),
        "bf16_all": bits16.view(torch.bfloat16).reshape(65536),
        "f8e4m3_all": bits8.view(torch.float8_e4m3fn).reshape(16, 16).clone(),
        "f8e5m2_all": bits8.view(torch.float8_e5m2).reshape(256),
        "f64": torch.tensor([0.1, -1e300, 1e-300], dtype=torch.float64),
        "i32": torch.tensor([1, -2, 3], dtype=torch.int32),
    }
    save_file(tensors, os.path.join(out, "py.safetensors"), metadata={"origin": "python"})
    for name, t in tensors.items():
        if name == "f16_all":  # numpy's half->float, a second independent conversion
            v = t.numpy().astype(np.float32)
        elif name == "i32":
            continue
        else:
            v = t.to(torch.float32).numpy()
        v.astype("<f4").tofile(os.path.join(out, name + ".f32"))


def dump(args):
    import torch
    from safetensors.torch import load_file
    path, out = args
    for name, t in load_file(path).items():
        t.to(torch.float32).numpy().astype("<f4").tofile(os.path.join(out, name + ".f32"))


def hf_to_checkpoint_names(sd):
    """transformers >= 5 renames Mixtral's block_sparse_moe to mlp and fuses experts (gate_up_proj [E, 2F, D] =
    w1 over w3, down_proj [E, D, F] = w2); map back to the checkpoint names moec writes."""
    out = {}
    for name, t in sd.items():
        if name.endswith(".mlp.experts.gate_up_proj"):
            pre = name[: -len(".mlp.experts.gate_up_proj")] + ".block_sparse_moe.experts."
            f = t.shape[1] // 2
            for e in range(t.shape[0]):
                out[f"{pre}{e}.w1.weight"] = t[e, :f]
                out[f"{pre}{e}.w3.weight"] = t[e, f:]
        elif name.endswith(".mlp.experts.down_proj"):
            pre = name[: -len(".mlp.experts.down_proj")] + ".block_sparse_moe.experts."
            for e in range(t.shape[0]):
                out[f"{pre}{e}.w2.weight"] = t[e]
        elif name.endswith(".mlp.gate.weight"):  # the router (a dense MLP's is gate_proj)
            out[name.replace(".mlp.gate.weight", ".block_sparse_moe.gate.weight")] = t
        else:
            out[name] = t
    return out


def hf_load(args):
    """hf_load MODEL_DIR OUT_DIR [MODEL_DIR OUT_DIR]...: one interpreter for several models (imports are slow)."""
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"oracle: transformers unavailable: {e}", file=sys.stderr)
        sys.exit(3)
    for model_dir, out in zip(args[0::2], args[1::2]):
        try:
            m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        except TypeError:  # transformers < 4.56 names it torch_dtype
            m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        for name, t in hf_to_checkpoint_names(m.state_dict()).items():
            t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tofile(os.path.join(out, name + ".f32"))
        print(f"oracle: {model_dir}: {type(m).__name__}", file=sys.stderr)


if __name__ == "__main__":
    cmds = {"verify": verify, "npy": npy, "make": make, "dump": dump, "hf_load": hf_load}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        fail("usage: st_oracle.py verify|npy|make|dump|hf_load ...")
    cmds[sys.argv[1]](sys.argv[2:])
