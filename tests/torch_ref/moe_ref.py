#!/usr/bin/env python3
"""moe_ref.py — an independent, plain PyTorch reference of the moec model, written from the SPEC
(docs: shared brief "skywork-moe" §1-3, src/model/config.h, src/moe/router.h), not from moec's C code.

Readability over speed; float64 by default (float32 optional). Used as the oracle for moec's forward pass,
losses and gradients (tests/torch_ref/compare_grads.py, tests/test_vs_torch.sh).

Model (Llama-family decoder; every layer's FFN is dense SwiGLU or a Skywork-MoE layer):
  h = embed[ids]
  per layer l:  h = h + o_proj(Attn(RoPE(q_proj(n)), RoPE(k_proj(n)), v_proj(n))),  n = RMSNorm(h)
                (with qkv_bias — Qwen2, or moec's "qkv_bias": true — q/k/v_proj add their bias before RoPE)
                h = h + FFN_l(RMSNorm(h))
  logits = lm_head(RMSNorm(h))          (lm_head = embed when tie_word_embeddings)
  RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * w
  Attention: H query heads, G KV heads (KV head g serves query heads g*H/G .. (g+1)*H/G-1), head dim Dh,
             RoPE in Hugging Face's rotate-half convention, inv_freq_i = theta^(-2i/Dh), positions 0..S-1,
             causal softmax(q k^T / sqrt(Dh)); no biases except the optional q/k/v ones.
  Dense FFN: down(silu(gate(x)) * up(x)).
  MoE FFN over ALL B*S tokens of the batch as one group of T tokens (router.h):
     z = x Wg^T;  zn = lam (z - mean z)/(std z + 1e-6) (unbiased std; zn = z when lam == 0);  g = softmax(zn)
     top-K by g (descending, ties -> lower expert index);  w = g / sum_{top-K} g
     capacity = ceil(cf*K*T/E) (cf == 0: dropless); an expert over capacity keeps its assignments with the
     highest g (ties -> lower token index); a dropped slot contributes nothing, no renormalisation.
     y_i = sum_{kept j} w_ij * Expert_j(x_i),  Expert = SwiGLU(w1 gate, w3 up, w2 down)
     aux  SQDEV  = sum_j (1/E - mean_i g_ij)^2
          SWITCH = E * sum_j f_j P_j, f_j = assignments to j before dropping / (K*T) (no grad), P_j = mean_i g_ij
     zloss = mean_i logsumexp(z_i)^2 on the raw logits.
  Loss: CE = mean over the B*(S-1) next-token predictions (position t of a row predicts token t+1 of that row);
        total = CE + sum_l alpha*aux_l + z_coef*sum_l zloss_l   (alpha = router_aux_loss_coef, the initial alpha).

CLI (mimics `moec grad`, handy for testing the comparison harness without the C binary):
  moe_ref.py grad --model DIR --ids "1 2 3 ..." --batch B --out OUT.safetensors [--dtype float32|float64]
writes the same contract as compare_grads.py documents.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

ROUTER_STD_EPS = 1e-6


# ----------------------------------------------------------------------------------------------- config
class Config:
    """The subset of Hugging Face config.json (Llama/Mixtral keys + moec/Skywork router extras) moec reads."""

    def __init__(self, d):
        self.raw = d
        self.vocab_size = int(d["vocab_size"])
        self.hidden = int(d["hidden_size"])
        self.n_layers = int(d["num_hidden_layers"])
        self.n_heads = int(d["num_attention_heads"])
        self.n_kv_heads = int(d.get("num_key_value_heads") or self.n_heads)
        self.head_dim = int(d.get("head_dim") or self.hidden // self.n_heads)
        self.norm_eps = float(d.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        rp = d.get("rope_parameters") or {}  # transformers >= 5 nests rope_theta here
        if rp.get("rope_theta") is not None:
            self.rope_theta = float(rp["rope_theta"])
        qwen2 = d.get("model_type") == "qwen2" or (not d.get("model_type") and "Qwen2ForCausalLM" in (d.get("architectures") or []))
        self.qkv_bias = bool(d.get("qkv_bias", qwen2))
        self.tie = bool(d.get("tie_word_embeddings", False))
        self.n_experts = int(d.get("num_local_experts") or 0)
        if self.n_experts > 0:
            # Mixtral convention: intermediate_size is the EXPERT width; dense layers use dense_intermediate_size.
            self.expert_ffn = int(d["intermediate_size"])
            self.ffn_dim = int(d.get("dense_intermediate_size") or d["intermediate_size"])
            self.top_k = int(d.get("num_experts_per_tok", 2))
            self.moe_layers = sorted(int(x) for x in d.get("moe_layers", range(self.n_layers)))
        else:
            self.expert_ffn = 0
            self.ffn_dim = int(d["intermediate_size"])
            self.top_k = 0
            self.moe_layers = []
        use_norm = bool(d.get("moe_use_logits_norm", False))
        self.gate_lambda = float(d.get("moe_gate_norm_std", 1.0)) if use_norm else 0.0
        self.capacity_factor = float(d.get("capacity_factor", 0.0) or 0.0)
        self.aux_kind = str(d.get("router_aux_loss_type", "sqdev")).lower()
        if self.aux_kind not in ("sqdev", "switch"):
            raise ValueError(f"router_aux_loss_type {self.aux_kind!r} is neither 'sqdev' nor 'switch'")
        self.aux_coef = float(d.get("router_aux_loss_coef", 0.0) or 0.0)
        self.z_coef = float(d.get("router_z_loss_coef", 0.0) or 0.0)
        assert self.n_heads % self.n_kv_heads == 0, "KV heads must divide heads"

    def is_moe(self, layer):
        return layer in self.moe_layers


# ----------------------------------------------------------------------------------------------- weights
def param_names(cfg):
    """Every parameter's Hugging Face name, in moec's flat-buffer order (src/model/params.c)."""
    names = ["model.embed_tokens.weight"]
    for l in range(cfg.n_layers):
        p = f"model.layers.{l}."
        names.append(p + "input_layernorm.weight")
        for w in ("q", "k", "v"):
            names.append(p + f"self_attn.{w}_proj.weight")
            if cfg.qkv_bias:
                names.append(p + f"self_attn.{w}_proj.bias")
        names += [p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight"]
        if cfg.is_moe(l):
            names.append(p + "block_sparse_moe.gate.weight")
            for e in range(cfg.n_experts):
                names += [p + f"block_sparse_moe.experts.{e}.{w}.weight" for w in ("w1", "w3", "w2")]
        else:
            names += [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight"]
    names.append("model.norm.weight")
    if not cfg.tie:
        names.append("lm_head.weight")
    return names


def param_shapes(cfg):
    D, V, Dh = cfg.hidden, cfg.vocab_size, cfg.head_dim
    HD, GD = cfg.n_heads * Dh, cfg.n_kv_heads * Dh
    shapes = {}
    for n in param_names(cfg):
        if n in ("model.embed_tokens.weight", "lm_head.weight"):
            s = (V, D)
        elif n.endswith("layernorm.weight") or n == "model.norm.weight":
            s = (D,)
        elif n.endswith("q_proj.bias"):
            s = (HD,)
        elif n.endswith("k_proj.bias") or n.endswith("v_proj.bias"):
            s = (GD,)
        elif n.endswith("q_proj.weight"):
            s = (HD, D)
        elif n.endswith("k_proj.weight") or n.endswith("v_proj.weight"):
            s = (GD, D)
        elif n.endswith("o_proj.weight"):
            s = (D, HD)
        elif n.endswith("gate.weight"):
            s = (cfg.n_experts, D)
        elif n.endswith("w1.weight") or n.endswith("w3.weight"):
            s = (cfg.expert_ffn, D)
        elif n.endswith("w2.weight"):
            s = (D, cfg.expert_ffn)
        elif n.endswith("gate_proj.weight") or n.endswith("up_proj.weight"):
            s = (cfg.ffn_dim, D)
        elif n.endswith("down_proj.weight"):
            s = (D, cfg.ffn_dim)
        else:
            raise AssertionError(n)
        shapes[n] = s
    return shapes


def load_model(model_dir, dtype=torch.float64, requires_grad=True):
    """Returns (cfg, params): params maps HF name -> leaf tensor of `dtype` (requires_grad)."""
    from safetensors.torch import load_file

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name not in tensors:
            raise KeyError(f"{model_dir}/model.safetensors lacks {name}")
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise ValueError(f"{name}: shape {tuple(t.shape)}, config says {shape}")
        params[name] = t.to(dtype).clone().requires_grad_(requires_grad)
    return cfg, params


# ----------------------------------------------------------------------------------------------- blocks
def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(S, Dh, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.float64) / Dh))  # [Dh/2]
    pos = torch.arange(S, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq)  # [S, Dh/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [S, Dh]  (HF layout: first half / second half)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):  # x [B, heads, S, Dh]
    return x * cos + rotate_half(x) * sin


def attention(x, p, pre, cfg):
    B, S, _ = x.shape
    H, G, Dh = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    def proj(w):
        y = x @ p[pre + f"self_attn.{w}_proj.weight"].T
        return y + p[pre + f"self_attn.{w}_proj.bias"] if cfg.qkv_bias else y

    q = proj("q").view(B, S, H, Dh).transpose(1, 2)
    k = proj("k").view(B, S, G, Dh).transpose(1, 2)
    v = proj("v").view(B, S, G, Dh).transpose(1, 2)
    cos, sin = rope_cos_sin(S, Dh, cfg.rope_theta, x.dtype)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    k = k.repeat_interleave(H // G, dim=1)  # query head h uses KV head h // (H/G)
    v = v.repeat_interleave(H // G, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)  # [B, H, S, S]
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v  # [B, H, S, Dh]
    out = out.transpose(1, 2).reshape(B, S, H * Dh)
    return out @ p[pre + "self_attn.o_proj.weight"].T


def swiglu(x, w_gate, w_up, w_down):
    return (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def capacity_of(cfg, T):
    if cfg.capacity_factor <= 0:
        return None
    # cf*K*T/E computed in double from the JSON value (use binary-exact cf values in tests, e.g. 1.0, 1.25)
    return int(math.ceil(cfg.capacity_factor * cfg.top_k * T / cfg.n_experts))


def route(z, cfg):
    """Skywork routing of one MoE layer. z: [T, E] raw router logits (differentiable).
    Returns dict: g [T,E], sel [T,K] (long), w [T,K] (0 where dropped), kept [T,K] bool, demand [E], aux, zloss,
    dropped (int), capacity, margin (smallest gap at a discrete decision: top-K edge or capacity edge)."""
    T, E = z.shape
    K = cfg.top_k
    lam = cfg.gate_lambda
    if lam > 0:
        mu = z.mean(dim=-1, keepdim=True)
        sd = z.std(dim=-1, keepdim=True)  # unbiased (E-1), torch.std's default
        zn = lam * (z - mu) / (sd + ROUTER_STD_EPS)
    else:
        zn = z
    g = torch.softmax(zn, dim=-1)

    gd = g.detach()
    # top-K, descending, ties -> lower expert index: a stable descending sort keeps equal values in index order
    order = torch.sort(gd, dim=-1, descending=True, stable=True).indices
    sel = order[:, :K]
    margin = float("inf")
    if K < E:
        srt = gd.gather(1, order)
        margin = min(margin, float((srt[:, K - 1] - srt[:, K]).min()))
    gsel = g.gather(1, sel)  # [T, K]
    w = gsel / gsel.sum(dim=-1, keepdim=True)

    kept = torch.ones(T, K, dtype=torch.bool)
    demand = torch.bincount(sel.reshape(-1), minlength=E)  # assignments per expert before dropping
    cap = capacity_of(cfg, T)
    if cap is not None:
        for e in range(E):
            ti, ki = (sel == e).nonzero(as_tuple=True)  # row-major: ascending token index
            if ti.numel() <= cap:
                continue
            ge = gd[ti, e]
            rank = torch.sort(ge, descending=True, stable=True).indices  # ties -> lower token index
            drop = rank[cap:]
            kept[ti[drop], ki[drop]] = False
            margin = min(margin, float(ge[rank[cap - 1]] - ge[rank[cap]]) if cap > 0 else float("inf"))
    w = w * kept.to(w.dtype)
    dropped = int((~kept).sum())

    P = g.mean(dim=0)  # [E]
    if cfg.aux_kind == "sqdev":
        aux = ((1.0 / E - P) ** 2).sum()
    else:
        f = demand.to(g.dtype) / (K * T)  # constant: no gradient
        aux = E * (f * P).sum()
    zloss = torch.logsumexp(z, dim=-1).pow(2).mean()
    return dict(g=g, sel=sel, w=w, kept=kept, demand=demand, aux=aux, zloss=zloss, dropped=dropped,
                capacity=cap, margin=margin)


def moe_ffn(x, p, pre, cfg):
    """x: [T, D] (all tokens of the batch). Returns y [T, D] and the routing record."""
    z = x @ p[pre + "block_sparse_moe.gate.weight"].T
    r = route(z, cfg)
    y = torch.zeros_like(x)
    for e in range(cfg.n_experts):
        ti, ki = ((r["sel"] == e) & r["kept"]).nonzero(as_tuple=True)
        if ti.numel() == 0:
            continue
        ep = pre + f"block_sparse_moe.experts.{e}."
        out = swiglu(x[ti], p[ep + "w1.weight"], p[ep + "w3.weight"], p[ep + "w2.weight"])
        y = y.index_add(0, ti, r["w"][ti, ki].unsqueeze(-1) * out)
    return y, r


# ----------------------------------------------------------------------------------------------- model
def forward(cfg, p, ids):
    """ids: LongTensor [B, S]. Returns dict: logits [B*S, V], ce, total, aux [n_moe], zloss [n_moe],
    drops [n_moe] (ints), margins [n_moe], routes (list of route dicts)."""
    B, S = ids.shape
    h = p["model.embed_tokens.weight"][ids]  # [B, S, D]
    auxes, zls, drops, margins, routes = [], [], [], [], []
    for l in range(cfg.n_layers):
        pre = f"model.layers.{l}."
        h = h + attention(rms_norm(h, p[pre + "input_layernorm.weight"], cfg.norm_eps), p, pre, cfg)
        n = rms_norm(h, p[pre + "post_attention_layernorm.weight"], cfg.norm_eps)
        if cfg.is_moe(l):
            y, r = moe_ffn(n.reshape(B * S, -1), p, pre, cfg)
            h = h + y.view(B, S, -1)
            auxes.append(r["aux"])
            zls.append(r["zloss"])
            drops.append(r["dropped"])
            margins.append(r["margin"])
            routes.append(r)
        else:
            h = h + swiglu(n, p[pre + "mlp.gate_proj.weight"], p[pre + "mlp.up_proj.weight"],
                           p[pre + "mlp.down_proj.weight"])
    h = rms_norm(h, p["model.norm.weight"], cfg.norm_eps)
    head = p["model.embed_tokens.weight"] if cfg.tie else p["lm_head.weight"]
    logits = h @ head.T  # [B, S, V]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
    total = ce
    for a in auxes:
        total = total + cfg.aux_coef * a
    for zl in zls:
        total = total + cfg.z_coef * zl
    return dict(logits=logits.reshape(B * S, -1), ce=ce, total=total, aux=auxes, zloss=zls, drops=drops,
                margins=margins, routes=routes)


def run_grad(model_dir, ids, dtype=torch.float64):
    """Forward + backward of total loss. Returns (cfg, params, out) with params[*].grad filled."""
    cfg, p = load_model(model_dir, dtype)
    out = forward(cfg, p, ids)
    out["total"].backward()
    return cfg, p, out


def parse_ids(text, batch):
    vals = [int(t) for t in text.split()]
    if batch <= 0 or len(vals) % batch != 0 or len(vals) // batch < 2:
        raise ValueError(f"{len(vals)} ids cannot form {batch} rows of equal length >= 2")
    return torch.tensor(vals, dtype=torch.long).view(batch, -1)


def write_contract(path, cfg, p, out):
    """Write the compare_grads.py contract (fp32)."""
    from safetensors.torch import save_file

    t = {
        "loss": out["ce"].detach().float().reshape(1).clone(),
        "total_loss": out["total"].detach().float().reshape(1).clone(),
        "logits": out["logits"].detach().float().contiguous(),
        "drops": torch.tensor(out["drops"], dtype=torch.int64) if out["drops"] else torch.zeros(0, dtype=torch.int64),
    }
    for n in param_names(cfg):
        g = p[n].grad
        t["grad." + n] = (g if g is not None else torch.zeros_like(p[n])).detach().float().contiguous()
    save_file(t, path)


# ----------------------------------------------------------------------------------------------- self-test
def _tiny_dir(tmp, name, **kw):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_tiny_model

    d = os.path.join(tmp, name)
    args = [d]
    for k, v in kw.items():
        if v is True:
            args.append("--" + k.replace("_", "-"))
        else:
            args += ["--" + k.replace("_", "-"), str(v)]
    make_tiny_model.main(args)
    return d


def selftest_gradcheck(tmp):
    """torch.autograd.gradcheck (float64) of total loss w.r.t. ALL parameters of very small models. Routing and
    dropping decisions are piecewise constant; we assert their margins exceed the finite-difference step."""
    small = dict(vocab=11, hidden=8, heads=2, kv_heads=1, head_dim=4, dense_ffn=5, expert_ffn=6, seed=3)
    cases = [
        ("moe_l1_drop_sqdev", dict(moe=True, cf=1.0, **small)),
        ("moe_l0_dropless_switch", dict(moe=True, cf=0, aux="switch", **{"lambda": 0}, **small)),
        ("moe_l2_cf125_switch_tied_allmoe", dict(moe=True, cf=1.25, aux="switch", tied=True, moe_layers="",
                                                 **{"lambda": 2}, **small)),
        ("dense_tied", dict(tied=True, **small)),
    ]
    ok = True
    gen = torch.Generator().manual_seed(0)
    for name, kw in cases:
        d = _tiny_dir(tmp, name, **kw)
        cfg, p = load_model(d, torch.float64)
        names = param_names(cfg)
        ids = torch.randint(0, cfg.vocab_size, (2, 12), generator=gen)
        out = forward(cfg, p, ids)
        margin = min(out["margins"], default=float("inf"))
        flat = torch.cat([p[n].detach().reshape(-1) for n in names]).requires_grad_(True)
        shapes = [p[n].shape for n in names]

        def f(v):
            q, off = {}, 0
            for n, s in zip(names, shapes):
                k = math.prod(s)
                q[n] = v[off:off + k].view(s)
                off += k
            return forward(cfg, q, ids)["total"]

        good = torch.autograd.gradcheck(f, (flat,), eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
        print(f"gradcheck {name}: {flat.numel()} params, drops {out['drops']}, min decision margin {margin:.2e}: "
              f"{'ok' if good else 'FAILED'}")
        ok &= bool(good) and margin > 1e-4
    return ok


def _hf_exact_fp64(hf, cfg):
    """Make a transformers model's RMSNorm and rotary embedding compute in float64 (HF forces float32)."""
    import types

    def norm_fwd(self, x):
        return rms_norm(x, self.weight, cfg.norm_eps)

    def rope_fwd(self, x, position_ids):
        cos, sin = rope_cos_sin(int(position_ids.max()) + 1, cfg.head_dim, cfg.rope_theta, x.dtype)
        return cos[position_ids], sin[position_ids]

    def router_fwd(self, h):  # MixtralTopKRouter.forward without its .float()
        h = h.reshape(-1, self.hidden_dim)
        logits = F.linear(h, self.weight)
        probs = torch.softmax(logits, dim=-1)
        top, idx = torch.topk(probs, self.top_k, dim=-1)
        return logits, top / top.sum(dim=-1, keepdim=True), idx

    for m in hf.modules():
        n = type(m).__name__
        if n.endswith("TopKRouter"):
            m.forward = types.MethodType(router_fwd, m)
        elif n.endswith("RMSNorm"):
            m.forward = types.MethodType(norm_fwd, m)
        elif n.endswith("RotaryEmbedding"):
            m.forward = types.MethodType(rope_fwd, m)


def selftest_transformers(tmp):
    """Compare logits/CE with Hugging Face transformers: dense -> LlamaForCausalLM; MoE with λ=0, dropless,
    all layers MoE -> MixtralForCausalLM (same routing: softmax, top-K, renormalise). float64.
    HF computes RMSNorm, the RoPE angles, attention softmax and router softmax in float32 whatever the model
    dtype, so as is the logits agree to ~1e-6; with those patched to float64 they must agree to ~1e-12."""
    try:
        import transformers
    except ImportError:
        print("transformers not installed: skipped")
        return True
    ok = True
    gen = torch.Generator().manual_seed(1)
    cases = [("hf_dense", dict(), transformers.LlamaForCausalLM),
             ("hf_dense_tied", dict(tied=True), transformers.LlamaForCausalLM),
             ("hf_mixtral", dict(moe=True, cf=0, moe_layers="", **{"lambda": 0}), transformers.MixtralForCausalLM)]
    for name, kw, cls in cases:
        d = _tiny_dir(tmp, name, **kw)
        cfg, p = load_model(d, torch.float64)
        ids = torch.randint(0, cfg.vocab_size, (2, 16), generator=gen)
        ours = forward(cfg, p, ids)
        extra = {"experts_implementation": "eager"} if cfg.n_experts else {}
        hf = cls.from_pretrained(d, dtype=torch.float64, attn_implementation="eager", **extra).eval()
        with torch.no_grad():
            r = hf(input_ids=ids, labels=ids)
        diff = (r.logits.reshape(ours["logits"].shape) - ours["logits"].detach()).abs().max().item()
        _hf_exact_fp64(hf, cfg)
        softmax = F.softmax  # eager attention calls softmax(..., dtype=torch.float32): keep float64

        def softmax64(x, dim=None, _stacklevel=3, dtype=None):
            return softmax(x, dim=dim, dtype=None if x.dtype == torch.float64 else dtype)

        F.softmax = softmax64
        try:
            with torch.no_grad():
                r = hf(input_ids=ids, labels=ids)
        finally:
            F.softmax = softmax
        diff64 = (r.logits.reshape(ours["logits"].shape) - ours["logits"].detach()).abs().max().item()
        dl = abs(r.loss.item() - ours["ce"].item())
        good = diff < 1e-5 and diff64 < 1e-10 and dl < 1e-5  # HF's loss upcasts logits to float32 only
        print(f"transformers {transformers.__version__} {cls.__name__} ({name}): max|dlogits| {diff:.2e} as is, "
              f"{diff64:.2e} with HF's RMSNorm/RoPE/softmaxes made float64; |dCE| {dl:.2e} (HF's CE is fp32): {'ok' if good else 'FAILED'}")
        ok &= good
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grad", help="forward+backward; write the compare_grads contract file")
    g.add_argument("--model", required=True)
    g.add_argument("--ids", required=True, help='space-separated token ids, B rows of equal length, row-major')
    g.add_argument("--batch", type=int, default=1)
    g.add_argument("--out", required=True)
    g.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    g.add_argument("--threads", type=int, default=1)
    sub.add_parser("selftest", help="gradcheck the reference; compare with transformers if installed")
    a = ap.parse_args(argv)
    if a.cmd == "selftest":
        import tempfile

        torch.set_num_threads(2)
        with tempfile.TemporaryDirectory() as tmp:
            ok = True if os.environ.get("SKIP_GRADCHECK") else selftest_gradcheck(tmp)
            ok &= selftest_transformers(tmp)
        print("selftest", "passed" if ok else "FAILED")
        return 0 if ok else 1
    torch.set_num_threads(a.threads)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    ids = parse_ids(a.ids, a.batch)
    cfg, p, out = run_grad(a.model, ids, dtype)
    write_contract(a.out, cfg, p, out)
    print(f"loss {out['ce'].item():.6f} total {out['total'].item():.6f} drops {out['drops']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
