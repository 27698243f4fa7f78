#!/usr/bin/env python3
"""compare_grads.py DIR IDS_FILE MOEC_OUT.safetensors [--batch B] [--expect-drops]

Checks moec's forward/backward against the independent PyTorch reference (moe_ref.py, float64).

CONTRACT of MOEC_OUT.safetensors, written by
    build/moec grad --model DIR --ids "i1 i2 ..." --batch B --out OUT.safetensors
(the ids are B rows of equal length S, row-major; IDS_FILE holds the same ids, whitespace-separated):
  "loss"        F32 [1]        CE = mean over the B*(S-1) next-token predictions
  "total_loss"  F32 [1]        CE + Σ_l α·aux_l + z_coef·Σ_l zloss_l  (α = router_aux_loss_coef, the initial α)
  "logits"      F32 [B*S, V]   row b*S+t = logits at position t of row b
  "drops"       [n_moe_layers] dropped assignments per MoE layer, in layer order (any int or float dtype;
                               may be absent or empty for a dense model)
  "grad.<name>" F32, the shape of parameter <name> (Hugging Face name, e.g.
                "grad.model.layers.0.block_sparse_moe.experts.3.w2.weight"): d total_loss / d parameter,
                one for every parameter (tied models: only "grad.model.embed_tokens.weight", holding both uses).
Tolerance per tensor: max|moec − ref| <= ATOL + RTOL·max|ref|  (defaults 1e-4, 1e-3; fp32 vs fp64).
Drops must be equal; with --expect-drops at least one layer must drop (so dropping is really exercised).
Prints a per-tensor table, then `N passed, M failed`; exit status 1 on any failure.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_ref  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("ids_file")
    ap.add_argument("moec_out")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--expect-drops", action="store_true", help="fail unless some MoE layer drops assignments")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--quiet", action="store_true", help="print only failing rows and the summary")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from safetensors.torch import load_file

    with open(a.ids_file) as f:
        ids = moe_ref.parse_ids(f.read(), a.batch)
    cfg, p, ref = moe_ref.run_grad(a.model_dir, ids, torch.float64)
    got = load_file(a.moec_out)

    passed, failed = 0, 0
    rows = []

    def record(name, ok, detail):
        nonlocal passed, failed
        passed += ok
        failed += not ok
        rows.append((name, ok, detail))

    def cmp(name, refv, key):
        if key not in got:
            record(name, False, f"missing '{key}' in {a.moec_out}")
            return
        b = refv.detach().to(torch.float64)
        x = got[key].to(torch.float64)
        if x.numel() != b.numel():
            record(name, False, f"shape {tuple(got[key].shape)} != reference {tuple(b.shape)}")
            return
        x = x.reshape(b.shape)
        if not torch.isfinite(x).all():
            record(name, False, "non-finite values")
            return
        diff = (x - b).abs().max().item() if b.numel() else 0.0
        scale = b.abs().max().item() if b.numel() else 0.0
        tol = a.atol + a.rtol * scale
        record(name, diff <= tol, f"max|d| {diff:.3e}  tol {tol:.3e}  max|ref| {scale:.3e}")

    cmp("loss", ref["ce"].reshape(1), "loss")
    cmp("total_loss", ref["total"].reshape(1), "total_loss")
    cmp("logits", ref["logits"], "logits")

    # drops
    ref_drops = [int(d) for d in ref["drops"]]
    got_drops = [int(round(float(v))) for v in got["drops"].reshape(-1)] if "drops" in got else []
    if ref_drops or got_drops:
        record("drops", got_drops == ref_drops, f"moec {got_drops}  ref {ref_drops}")
    if a.expect_drops:
        record("drops exercised", sum(ref_drops) > 0, f"reference drops {ref_drops} (need > 0 somewhere)")

    for n in moe_ref.param_names(cfg):
        cmp("grad." + n, p[n].grad if p[n].grad is not None else torch.zeros_like(p[n]), "grad." + n)
    extra = sorted(k for k in got if k.startswith("grad.") and k[5:] not in p)
    for k in extra:
        record(k, False, "moec wrote a gradient for a parameter the reference does not have")

    w = max(len(r[0]) for r in rows)
    for name, ok, detail in rows:
        if ok and a.quiet:
            continue
        print(f"{'ok  ' if ok else 'FAIL'} {name:<{w}}  {detail}")
    margins = [m for m in ref["margins"] if m != float("inf")]
    if margins and min(margins) < 1e-5:
        print(f"note: smallest routing decision margin {min(margins):.2e} (< 1e-5): an fp32 tie-break flip is "
              f"possible; mismatches may be a near-tie rather than a bug")
    print(f"{os.path.basename(a.model_dir.rstrip('/'))}: ce {ref['ce'].item():.6f} total {ref['total'].item():.6f} "
          f"drops {ref_drops} decision margins {['%.1e' % m for m in ref['margins']]}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
