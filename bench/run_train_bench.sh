#!/usr/bin/env bash
# run_train_bench.sh — training throughput of moec vs PyTorch on "ref-moe-small", same machine, same threads,
# same window: the two run alternately ROUNDS times (the machine is shared, so single timings can collapse)
# and the medians are compared. Also prints GEMM efficiency (bench_gemm) and MFU against the measured peak.
#   usage: bash bench/run_train_bench.sh [ROUNDS=3] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
moec_deps_build
moec_deps_python
ROUNDS=${1:-3} THREADS=${2:-2}
make -j"$(nproc)" build/bench/bench_train build/bench/bench_gemm >/dev/null
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
    ./build/bench/bench_train --threads "$THREADS" --steps 3 --warmup 1 2>/dev/null | tee -a "$out"
    "$MOEC_VENV/bin/python" bench/train_torch.py --threads "$THREADS" --steps 3 --warmup 1 2>/dev/null |
        grep '^{' | sed 's/^{/{"impl": "torch", /' | tee -a "$out"
done
peak=$(./build/bench/bench_gemm --threads "$THREADS" --reps 1 --only none 2>/dev/null | sed -nE "s/.* ([0-9.]+) GFLOP\/s on $THREADS threads.*/\1/p" | head -1 || true)
"$MOEC_VENV/bin/python" - "$out" "${peak:-}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
med = {k: statistics.median(r["tokens_per_s"] for r in rows if r["impl"] == k) for k in ("moec", "torch")}
fpt = rows[0]["flops_per_token"]
print(f"\nref-moe-small training, {len([r for r in rows if r['impl']=='moec'])} rounds, median tokens/s:")
print(f"  moec    {med['moec']:8.1f} tok/s  ({med['moec']*fpt/1e9:6.1f} GFLOP/s)")
print(f"  PyTorch {med['torch']:8.1f} tok/s  ({med['torch']*fpt/1e9:6.1f} GFLOP/s)")
print(f"  moec / PyTorch = {med['moec']/med['torch']:.2f}x")
if sys.argv[2]:
    peak = float(sys.argv[2])
    print(f"  MFU vs measured fp32 peak {peak:.1f} GFLOP/s: moec {100*med['moec']*fpt/1e9/peak:.0f}%, "
          f"PyTorch {100*med['torch']*fpt/1e9/peak:.0f}%")
PY
rm -f "$out"
