#!/usr/bin/env bash
# test_vs_torch.sh — moec's forward, losses and gradients against the independent PyTorch reference
# (tests/torch_ref/moe_ref.py). For each config: make a random tiny model, run
#   build/moec grad --model DIR --ids "..." --batch B --out OUT.safetensors
# and check OUT with tests/torch_ref/compare_grads.py (contract documented there).
#
# Environment:
#   MOEC    the moec binary (default build/moec)
#   PYTHON  python with torch + safetensors (default ~/.cache/moec/venv/bin/python, else python3)
#   SELF=1  use the reference itself in float32 as the "moec" side (tests this harness without the C binary)
# Exit status non-zero on any failure; last line: `N passed, M failed` (one count per config).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
REF=$ROOT/tests/torch_ref

PYTHON=${PYTHON:-${MOEC_PYTHON:-}}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$HOME/.cache/moec/venv/bin/python" ]; then PYTHON=$HOME/.cache/moec/venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import torch, safetensors' 2>/dev/null; then
    echo "test_vs_torch: $PYTHON lacks torch/safetensors" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

MOEC=${MOEC:-$ROOT/${MOEC_BUILD:-build}/moec}
if [ "${SELF:-0}" = 1 ]; then
    run_grad() { "$PYTHON" "$REF/moe_ref.py" grad --dtype float32 "$@"; }
elif [ -x "$MOEC" ]; then
    run_grad() { "$MOEC" grad "$@"; }
else
    echo "test_vs_torch: $MOEC not built (run make, or SELF=1 to test the harness)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# name | make_tiny_model.py options | batch | seq | extra compare options
# Seeds are chosen so every routing decision (top-K edge, capacity edge) has a margin >= 1e-3 in g: an fp32
# implementation cannot flip one. Expect-drops configs must drop; cf 1.0 with K=1, E=3 has a fractional capacity.
CONFIGS=(
    "moe_l1_drops_sqdev|--moe --lambda 1 --cf 1.0 --aux sqdev --seed 14|2|16|--expect-drops"
    "moe_l0_dropless_switch|--moe --lambda 0 --cf 0 --aux switch --router-std 0.25 --seed 14|2|16|"
    "moe_l2_cf125_allmoe_tied|--moe --lambda 2 --cf 1.25 --aux switch --moe-layers= --tied --seed 14|3|12|--expect-drops"
    "moe_top1_e3_drops|--moe --lambda 1 --cf 1.0 --topk 1 --experts 3 --moe-layers 1,2 --seed 22|4|8|--expect-drops"
    "dense_untied|--seed 14|2|16|"
    "dense_tied|--tied --seed 15|2|16|"
    "dense_qwen2_qkv_bias|--qkv-bias --seed 16|2|16|"
    "moe_qkv_bias_drops|--moe --qkv-bias --lambda 1 --cf 1.0 --aux sqdev --seed 14|2|16|--expect-drops"
)

pass=0
fail=0
for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name opts batch seq extra <<<"$c"
    dir=$TMP/$name
    # shellcheck disable=SC2086
    "$PYTHON" "$REF/make_tiny_model.py" "$dir" $opts >/dev/null || { echo "FAIL $name: make model"; fail=$((fail + 1)); continue; }
    # deterministic ids in [0, vocab)
    ids=$("$PYTHON" -c "import random,json;r=random.Random('$name');V=json.load(open('$dir/config.json'))['vocab_size'];print(' '.join(str(r.randrange(V)) for _ in range($batch*$seq)))")
    echo "$ids" >"$dir/ids.txt"
    echo "== $name (batch $batch, seq $seq)"
    if ! run_grad --model "$dir" --ids "$ids" --batch "$batch" --out "$dir/out.safetensors" >"$dir/moec.log" 2>&1; then
        echo "FAIL $name: moec grad failed:"; tail -n 20 "$dir/moec.log"
        fail=$((fail + 1)); continue
    fi
    # shellcheck disable=SC2086
    if "$PYTHON" "$REF/compare_grads.py" "$dir" "$dir/ids.txt" "$dir/out.safetensors" --batch "$batch" --quiet $extra; then
        pass=$((pass + 1))
    else
        echo "FAIL $name"; fail=$((fail + 1))
    fi
done
echo "test_vs_torch: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
