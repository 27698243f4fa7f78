"""router_oracle.py — PyTorch (float64, autograd) oracle for tests/test_router.c.

Re-implements Skywork-MoE routing from the formulas in src/moe/router.h with torch ops (torch.std for the
unbiased std, softmax, stable sort for top-K, autograd for the backward) and prints, for each case of the input
file written by test_router.c:
    capacity (-1 = dropless) dropped, probs [T*E], topk idx [T*K], kept [T*K], w [T*K], aux, zloss, dL/dz [T*E]
with L = sum(c * w) + alpha * aux + zc * zloss. The capacity uses the shortest decimal of the float32
capacity factor (numpy's repr) with exact rational arithmetic.
First output word: OK, or "SKIP <reason>" when torch/numpy are missing.
Input: first line n_cases; per case one line "T E K lambda cf aux_kind zc alpha", a line of T*E logits and a
line of T*K dL/dw values.
"""
import sys
from fractions import Fraction
import math

try:
    import numpy as np
    import torch
except Exception as e:  # noqa: BLE001 - any import failure means "no oracle here"
    print("SKIP", f"cannot import torch/numpy: {e}")
    sys.exit(0)

EPS = float(np.float32(1e-6))  # MOEC_ROUTER_STD_EPS is the float 1e-6f


def capacity(cf32, K, T, E):
    if not cf32 > 0 or math.isinf(cf32):
        return None
    frac = Fraction(str(np.float32(cf32)))  # shortest round-trip decimal, e.g. "1.1"
    return math.ceil(frac * K * T / E)


def run_case(T, E, K, lam, cf, aux_kind, zc, alpha, logits, c):
    z = torch.tensor(logits, dtype=torch.float64).reshape(T, E).requires_grad_(True)
    cw = torch.tensor(c, dtype=torch.float64).reshape(T, K)
    if lam > 0:
        mu = z.mean(dim=-1, keepdim=True)
        sd = z.std(dim=-1, keepdim=True)  # unbiased, like Skywork's code
        zn = lam * (z - mu) / (sd + EPS)
    else:
        zn = z
    g = torch.softmax(zn, dim=-1)
    # descending g, ties -> lower expert index (a stable sort of -g)
    order = torch.sort(-g.detach(), dim=-1, stable=True).indices[:, :K]
    gsel = torch.gather(g, 1, order)
    s = gsel.sum(dim=-1, keepdim=True)
    cap = capacity(cf, K, T, E)
    kept = torch.ones(T, K, dtype=torch.float64)
    if cap is not None:
        for j in range(E):
            slots = [(-gsel[i, k].item(), i, k) for i in range(T) for k in range(K) if order[i, k].item() == j]
            slots.sort()
            for (_, i, k) in slots[cap:]:
                kept[i, k] = 0.0
    w = gsel / s * kept
    P = g.mean(dim=0)
    if aux_kind == 1:  # SWITCH
        counts = torch.bincount(order.reshape(-1), minlength=E).to(torch.float64)
        aux = E * ((counts / (K * T)) * P).sum()
    else:
        aux = ((1.0 / E - P) ** 2).sum()
    zloss = (torch.logsumexp(z, dim=-1) ** 2).mean()
    L = (cw * w).sum() + alpha * aux + zc * zloss
    L.backward()
    out = [str(-1 if cap is None else cap), str(int((kept == 0).sum().item()))]
    out += [repr(v) for v in g.detach().reshape(-1).tolist()]
    out += [str(v) for v in order.reshape(-1).tolist()]
    out += [str(int(v)) for v in kept.reshape(-1).tolist()]
    out += [repr(v) for v in w.detach().reshape(-1).tolist()]
    out += [repr(aux.item()), repr(zloss.item())]
    out += [repr(v) for v in z.grad.reshape(-1).tolist()]
    return " ".join(out)


def main():
    words = open(sys.argv[1]).read().split()
    pos = 0

    def take(n, conv):
        nonlocal pos
        vals = [conv(x) for x in words[pos:pos + n]]
        pos += n
        return vals

    n_cases = take(1, int)[0]
    lines = []
    for _ in range(n_cases):
        T, E, K = take(3, int)
        lam, cf = take(2, float)
        aux_kind = take(1, int)[0]
        zc, alpha = take(2, float)
        logits = take(T * E, float)
        c = take(T * K, float)
        lines.append(run_case(T, E, K, lam, cf, aux_kind, zc, alpha, logits, c))
    print("OK")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
