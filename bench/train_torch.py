#!/usr/bin/env python3
"""train_torch.py — the PyTorch peer of moec's training-throughput benchmark.

The same architecture as moec (Llama-family decoder, RMSNorm, RoPE, GQA, SwiGLU experts, Skywork-MoE routing:
λ-normalised gate logits, top-K, w = g/Σ_topK g, score-priority capacity dropping over the whole batch as one
group, SQDEV aux loss), written for SPEED in idiomatic PyTorch: fp32, F.scaled_dot_product_attention (causal),
experts run on the tokens gathered for them and combined with index_add_, dropping vectorised (no Python loop
over tokens; one loop over experts). Random token batches; each timed step = forward + backward + AdamW step.

Config "ref-moe-small": vocab 8192, hidden 512, 8 layers (all MoE), 8 heads, 4 KV heads, head_dim 64,
expert FFN 1408, 8 experts, top-2, seq 256, batch 8, capacity factor 1.25, λ=1, untied lm_head,
aux SQDEV α=0.01, z-loss off (--zloss to enable).

Prints the model FLOPs per token, then one JSON line:
  {"tokens_per_s": ..., "step_ms_median": ..., "threads": N, ...}
FLOPs per token (training) = 6·N_active + 12·L·H·Dh·S   (PaLM convention: N_active = parameters used per token
in matmuls — attention projections, router, K experts, lm_head; the embedding lookup is excluded; the attention
term counts the full S×S score/value matmuls ×3 for fwd+bwd; the causal half is also printed).
MFU = tokens_per_s · flops_per_token / peak FLOP/s.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

REF_MOE_SMALL = dict(vocab=8192, hidden=512, layers=8, heads=8, kv_heads=4, head_dim=64, expert_ffn=1408,
                     experts=8, topk=2, seq=256, batch=8, cf=1.25, lam=1.0, aux_coef=0.01, zloss=0.0,
                     eps=1e-5, theta=10000.0)


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_tables(S, Dh, theta):
    inv = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.float64) / Dh))
    fr = torch.outer(torch.arange(S, dtype=torch.float64), inv)
    emb = torch.cat([fr, fr], -1)
    return emb.cos().float(), emb.sin().float()


def apply_rope(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, H, G, Dh = c["hidden"], c["heads"], c["kv_heads"], c["head_dim"]
        self.H, self.G, self.Dh = H, G, Dh
        self.q = nn.Linear(D, H * Dh, bias=False)
        self.k = nn.Linear(D, G * Dh, bias=False)
        self.v = nn.Linear(D, G * Dh, bias=False)
        self.o = nn.Linear(H * Dh, D, bias=False)

    def forward(self, x, cos, sin):
        B, S, _ = x.shape
        q = self.q(x).view(B, S, self.H, self.Dh).transpose(1, 2)
        k = self.k(x).view(B, S, self.G, self.Dh).transpose(1, 2)
        v = self.v(x).view(B, S, self.G, self.Dh).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o(out.transpose(1, 2).reshape(B, S, self.H * self.Dh))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, Fd, E = c["hidden"], c["expert_ffn"], c["experts"]
        self.E, self.K, self.cf, self.lam = E, c["topk"], c["cf"], c["lam"]
        self.gate = nn.Linear(D, E, bias=False)
        self.w1 = nn.Parameter(torch.randn(E, Fd, D) * D ** -0.5)  # gate
        self.w3 = nn.Parameter(torch.randn(E, Fd, D) * D ** -0.5)  # up
        self.w2 = nn.Parameter(torch.randn(E, D, Fd) * Fd ** -0.5)  # down

    def forward(self, x):  # x [T, D]
        T = x.shape[0]
        E, K = self.E, self.K
        z = self.gate(x)
        zn = self.lam * (z - z.mean(-1, keepdim=True)) / (z.std(-1, keepdim=True) + 1e-6) if self.lam > 0 else z
        g = torch.softmax(zn, -1)
        topv, topi = torch.topk(g, K, -1)  # [T, K]
        w = topv / topv.sum(-1, keepdim=True)
        flat_e = topi.reshape(-1)  # assignment a = t*K + k
        flat_g = topv.detach().reshape(-1)
        # score priority within each expert: sort by g descending, then (stable) by expert
        o1 = torch.sort(flat_g, descending=True, stable=True).indices
        o2 = torch.sort(flat_e[o1], stable=True).indices
        order = o1[o2]  # assignments grouped by expert, highest g first
        counts = torch.bincount(flat_e, minlength=E)
        starts = torch.cumsum(counts, 0) - counts
        if self.cf > 0:
            cap = math.ceil(self.cf * K * T / E)
            kept_counts = counts.clamp(max=cap)
        else:
            kept_counts = counts
        dropped = int((counts - kept_counts).sum())
        starts_l, kept_l = starts.tolist(), kept_counts.tolist()
        w_flat = w.reshape(-1)
        # unbind once: indexing self.w1[e] per expert would make autograd zero-fill a full [E,F,D] gradient
        # per expert and matrix (select_backward); unbind's backward is a single stack
        w1s, w3s, w2s = self.w1.unbind(0), self.w3.unbind(0), self.w2.unbind(0)
        y = torch.zeros_like(x)
        for e in range(E):
            if kept_l[e] == 0:
                continue
            a = order[starts_l[e]:starts_l[e] + kept_l[e]]
            tok = a // K
            xe = x[tok]
            h = F.silu(xe @ w1s[e].t()) * (xe @ w3s[e].t())
            y.index_add_(0, tok, (h @ w2s[e].t()) * w_flat[a].unsqueeze(-1))
        P = g.mean(0)
        aux = ((1.0 / E - P) ** 2).sum()
        zl = torch.logsumexp(z, -1).pow(2).mean()
        return y, aux, zl, dropped


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n1 = RMSNorm(c["hidden"], c["eps"])
        self.attn = Attention(c)
        self.n2 = RMSNorm(c["hidden"], c["eps"])
        self.moe = MoE(c)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.n1(x), cos, sin)
        B, S, D = x.shape
        y, aux, zl, dropped = self.moe(self.n2(x).reshape(B * S, D))
        return x + y.view(B, S, D), aux, zl, dropped


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.emb = nn.Embedding(c["vocab"], c["hidden"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"], c["eps"])
        self.head = nn.Linear(c["hidden"], c["vocab"], bias=False)
        cos, sin = rope_tables(c["seq"], c["head_dim"], c["theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, ids):
        S = ids.shape[1]
        x = self.emb(ids)
        cos, sin = self.cos[:S], self.sin[:S]
        aux_sum, z_sum, drops = 0.0, 0.0, 0
        for b in self.blocks:
            x, aux, zl, d = b(x, cos, sin)
            aux_sum, z_sum, drops = aux_sum + aux, z_sum + zl, drops + d
        logits = self.head(self.norm(x))
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        total = ce + self.c["aux_coef"] * aux_sum
        if self.c["zloss"] > 0:
            total = total + self.c["zloss"] * z_sum
        return total, ce, drops


def flops_per_token(c):
    D, L, H, G, Dh, V = c["hidden"], c["layers"], c["heads"], c["kv_heads"], c["head_dim"], c["vocab"]
    attn_proj = D * H * Dh * 2 + D * G * Dh * 2  # q, o + k, v
    router = D * c["experts"]
    experts = c["topk"] * 3 * D * c["expert_ffn"]
    n_active = L * (attn_proj + router + experts) + V * D  # + lm_head
    attn = 12 * L * H * Dh * c["seq"]
    return n_active, 6 * n_active + attn, 6 * n_active + attn // 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-4)
    for k in ("batch", "seq", "layers", "hidden", "vocab", "experts", "topk", "expert_ffn", "heads", "kv_heads",
              "head_dim"):
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None, help=f"override ({REF_MOE_SMALL[k]})")
    for k in ("cf", "lam", "aux_coef", "zloss"):
        ap.add_argument("--" + k.replace("_", "-"), type=float, default=None, help=f"override ({REF_MOE_SMALL[k]})")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    c = dict(REF_MOE_SMALL)
    for k in c:
        v = getattr(a, k, None)
        if v is not None:
            c[k] = v
    model = Model(c)
    for m in model.modules():  # plain init: N(0, 1/fan_in) for every linear (router too; λ-norm rescales it)
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.weight.shape[1] ** -0.5)
    try:
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)
    n_total = sum(p.numel() for p in model.parameters())
    n_active, fpt, fpt_causal = flops_per_token(c)
    print(f"# ref-moe-small torch {torch.__version__}: {n_total / 1e6:.1f}M params, {n_active / 1e6:.2f}M active "
          f"(excl. embedding); flops_per_token {fpt:.4e} (6*N_active + 12*L*H*Dh*S), causal-attention "
          f"{fpt_causal:.4e}", flush=True)
    gen = torch.Generator().manual_seed(a.seed + 1)
    times, last = [], None
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, c["vocab"], (c["batch"], c["seq"]), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total, ce, drops = model(ids)
        total.backward()
        opt.step()
        dt = time.perf_counter() - t0
        last = (total.item(), ce.item(), drops)
        if step >= a.warmup:
            times.append(dt)
        print(f"# step {step}{' (warmup)' if step < a.warmup else ''}: {dt * 1e3:.1f} ms, loss {last[1]:.4f}, "
              f"total {last[0]:.4f}, drop rate {drops / (c['layers'] * c['topk'] * c['batch'] * c['seq']):.4f}",
              flush=True)
    med = statistics.median(times)
    tok = c["batch"] * c["seq"]
    print(json.dumps({"tokens_per_s": round(tok / med, 2), "step_ms_median": round(med * 1e3, 2),
                      "threads": a.threads, "steps": a.steps, "tokens_per_step": tok,
                      "flops_per_token": fpt, "flops_per_token_causal": fpt_causal,
                      "achieved_gflops": round(tok / med * fpt / 1e9, 2), "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
