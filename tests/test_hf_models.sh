#!/usr/bin/env bash
# test_hf_models.sh — checkpoints moec did not write: tiny random models saved by the real transformers classes
# (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM with its q/k/v biases, MixtralForCausalLM with 4
# experts, top-2) with save_pretrained(safe_serialization=True) in float32, float16 and bfloat16, tied and untied,
# and sharded (model.safetensors.index.json). For each:
#   moec forward --model DIR --ids "..." --out logits.npy
# must match the logits transformers computes in float32 from the same (upcast) weights, to 1e-4·max(1, max|ref|).
# Bad input (an unsupported architecture, a shard missing from the index, an I8 weight, a tensor shape that
# disagrees with config.json) must give a one-line error naming the problem, a non-zero exit, and no output file.
# Cases are built by tests/hf_models.py. Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
MOEC=$ROOT/${MOEC_BUILD:-build}/moec
PY=${MOEC_PYTHON:-$HOME/.cache/moec/venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

if ! "$PY" -c 'import transformers, torch, safetensors' 2>/dev/null; then
    echo "test_hf_models: $PY lacks transformers/torch/safetensors"
    echo "0 passed, 1 failed"
    exit 1
fi
if ! "$PY" tests/hf_models.py make "$TMP" > "$TMP/cases.txt" 2> "$TMP/make.log"; then
    tail -n 20 "$TMP/make.log"
    echo "0 passed, 1 failed"
    exit 1
fi

while read -r first name keyword; do
    if [ "$first" = bad ]; then
        d=$TMP/$name
        if "$MOEC" forward --model "$d" --ids "1 2 3 4" --out "$d/out.npy" > "$TMP/out.txt" 2> "$TMP/err.txt"; then
            ko "$name: moec accepted it"
        elif [ -e "$d/out.npy" ]; then
            ko "$name: output written despite the error"
        elif [ "$(grep -c . "$TMP/err.txt")" -ne 1 ] || ! grep -q -- "$keyword" "$TMP/err.txt"; then
            ko "$name: expected one error line naming '$keyword', got:"; cat "$TMP/err.txt"
        else
            ok "$name refused: $(cat "$TMP/err.txt")"
        fi
        continue
    fi
    name=$first d=$TMP/$name
    if ! "$MOEC" forward --model "$d" --ids "$(cat "$d/ids.txt")" --out "$d/ours.npy" > "$TMP/out.txt" 2>&1; then
        ko "$name: moec forward failed"; cat "$TMP/out.txt"; continue
    fi
    if msg=$("$PY" tests/hf_models.py compare "$d/ours.npy" "$d/ref.npy" 2>&1); then
        ok "$name matches transformers: $msg"
    else
        ko "$name: $msg"
    fi
done < "$TMP/cases.txt"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
