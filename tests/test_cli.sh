#!/usr/bin/env bash
# test_cli.sh — the moec command line end to end:
#   * `moec forward` on a real pretrained checkpoint moec did not write (stories260K, Hugging Face Llama layout)
#     gives the same logits as the independent PyTorch reference (tests/torch_ref/moe_ref.py);
#   * `moec train` + `--resume` reproduces an uninterrupted run exactly (metrics and weights, bit for bit);
#   * bad input (truncated or lying safetensors, missing tensors, wrong shapes, impossible config, empty corpus,
#     an existing run as --out) gets a one-line error, a non-zero exit, and leaves existing files untouched.
# Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
MOEC=$ROOT/${MOEC_BUILD:-build}/moec
PY=${MOEC_PYTHON:-$HOME/.cache/moec/venv/bin/python}
SHARED=$ROOT/../shared
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

# ---------------------------------------------------------------- a real checkpoint
IDS="1 403 407 261 378 429 271 313 379 261 1 40 300 2 88 17 511 0 34 260"
if "$MOEC" forward --model "$SHARED/models/stories260K/hf" --ids "$IDS" --out "$TMP/logits.npy" > "$TMP/fwd.txt" 2>&1 &&
   "$PY" tests/torch_ref/moe_ref.py grad --model "$SHARED/models/stories260K/hf" --ids "$IDS" --out "$TMP/ref.safetensors" >/dev/null 2>&1 &&
   "$PY" - "$TMP/logits.npy" "$TMP/ref.safetensors" "$TMP/fwd.txt" <<'PYEOF'
import sys, numpy as np
from safetensors.numpy import load_file
ours = np.load(sys.argv[1]); ref = load_file(sys.argv[2])
loss = float(open(sys.argv[3]).read().split("loss ")[1].split()[0])
d = np.abs(ours - ref["logits"]).max(); dl = abs(loss - float(ref["loss"][0]))
print(f"stories260K logits max|diff| {d:.2e}, loss {loss:.6f} vs reference {float(ref['loss'][0]):.6f}")
sys.exit(0 if ours.shape == ref["logits"].shape and d < 1e-4 and dl < 1e-5 else 1)
PYEOF
then ok "forward on stories260K matches the PyTorch reference"; else ko "forward on stories260K"; cat "$TMP/fwd.txt"; fi

# ---------------------------------------------------------------- resume == uninterrupted
CORPUS="$SHARED/data/tinyshakespeare.txt"
head -c 200000 "$CORPUS" > "$TMP/corpus.txt"
common=(--batch 4 --seq 32 --vocab 512 --eval-every 4 --eval-batches 2 --seed 7 --threads 2 --quiet 1)
"$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/full" --steps 12 --save-every 6 "${common[@]}" > /dev/null 2>&1
"$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/half" --steps 6 --schedule-steps 12 --save-every 6 "${common[@]}" > /dev/null 2>&1
"$MOEC" train --resume "$TMP/half" --steps 12 --quiet 1 > /dev/null 2>&1
# training records only: the shorter first run adds one extra end-of-run evaluation, which changes nothing
strip() { grep '"loss"' "$1" | sed -E 's/"tokens_per_s":[^,]*,//'; }
if [ -s "$TMP/full/metrics.jsonl" ] && [ "$(strip "$TMP/full/metrics.jsonl")" = "$(strip "$TMP/half/metrics.jsonl")" ] &&
   cmp -s "$TMP/full/model.safetensors" "$TMP/half/model.safetensors" &&
   cmp -s "$TMP/full/optimizer.safetensors" "$TMP/half/optimizer.safetensors"; then
    ok "resume reproduces the uninterrupted run (metrics, weights, optimizer identical)"
else
    ko "resume differs from the uninterrupted run"; diff <(strip "$TMP/full/metrics.jsonl") <(strip "$TMP/half/metrics.jsonl") | head -5
fi
if grep -q '"val_loss"' "$TMP/full/metrics.jsonl" && [ "$(grep -c '"loss"' "$TMP/full/metrics.jsonl")" -eq 12 ]; then
    ok "metrics.jsonl has 12 step records and validation records"
else ko "metrics.jsonl content"; fi
for key in step loss lr grad_norm tokens_per_s drop_rate aux_coef expert_load max1_max2; do
    grep -q "\"$key\":" "$TMP/full/metrics.jsonl" || { ko "metrics key $key missing"; continue; }
done
ok "metrics records carry step, loss, lr, grad_norm, tokens_per_s, drop_rate, aux_coef, expert_load, max1_max2"
if "$MOEC" plot --metrics "$TMP/full/metrics.jsonl" --out "$TMP/plots" > /dev/null &&
   for f in loss drop_rate aux_coef expert_load; do head -c 8 "$TMP/plots/$f.png" | od -An -tx1 | grep -q "89 50 4e 47" || exit 1; done; then
    ok "moec plot writes loss, drop-rate, α and expert-load PNGs"
else ko "moec plot"; fi
# the run refuses to be overwritten
if "$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/full" --steps 3 --quiet 1 > "$TMP/err.txt" 2>&1; then
    ko "training over an existing run was not refused"
elif cmp -s "$TMP/full/model.safetensors" "$TMP/half/model.safetensors"; then
    ok "training over an existing run is refused, files untouched: $(head -1 "$TMP/err.txt")"
else ko "existing run was modified"; fi

# gradient accumulation: 2 micro-batches of 2 rows = one batch of 4 rows (dense model: no capacity coupling
# between rows), same sampled windows, so losses and weights agree to fp32 rounding
cat > "$TMP/dense.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 64,
 "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true}
JSON
acc=(--config "$TMP/dense.json" --seq 32 --eval-every 0 --seed 3 --threads 2 --quiet 1)
"$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/acc1" --steps 3 --batch 4 "${acc[@]}" > /dev/null 2>&1
"$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/acc2" --steps 3 --batch 2 --grad-accum 2 "${acc[@]}" > /dev/null 2>&1
if "$PY" - "$TMP/acc1" "$TMP/acc2" <<'PYEOF'
import json, sys, numpy as np
from safetensors.numpy import load_file
def losses(d): return [json.loads(l)["loss"] for l in open(d + "/metrics.jsonl") if '"loss"' in l]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
wa, wb = load_file(sys.argv[1] + "/model.safetensors"), load_file(sys.argv[2] + "/model.safetensors")
dl = max(abs(x - y) for x, y in zip(a, b)); dw = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
print(f"grad-accum: {len(a)} steps, max |loss diff| {dl:.2e}, max |weight diff| {dw:.2e}")
sys.exit(0 if len(a) == len(b) == 3 and dl < 1e-5 and dw < 1e-5 else 1)
PYEOF
then ok "gradient accumulation 2x2 equals one batch of 4"; else ko "gradient accumulation"; fi

# training continues from an upcycled model (--init): expert_similarity starts at ~1 and falls, and the value
# logged for the last step equals the mean pairwise cosine similarity computed by numpy from the saved weights
"$MOEC" upcycle --model "$TMP/acc1" --out "$TMP/up" --experts 4 --top-k 2 > /dev/null 2>&1
"$MOEC" train --init "$TMP/up" --data "$TMP/corpus.txt" --out "$TMP/upt" --steps 12 --batch 4 --seq 32 --warmup 3 \
    --lr 1e-3 --eval-every 0 --threads 2 --quiet 1 > /dev/null 2>&1
if cmp -s "$TMP/acc1/tokenizer.json" "$TMP/upt/tokenizer.json" && "$PY" - "$TMP/upt" <<'PYEOF'
import json, sys, numpy as np
from safetensors.numpy import load_file
recs = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if '"expert_similarity"' in l]
w = load_file(sys.argv[1] + "/model.safetensors"); cfg = json.load(open(sys.argv[1] + "/config.json"))
E = cfg["num_local_experts"]; ok = True
for j, l in enumerate(cfg["moe_layers"]):
    X = np.stack([np.concatenate([w[f"model.layers.{l}.block_sparse_moe.experts.{e}.{m}.weight"].ravel()
                                  for m in ("w1", "w3", "w2")]).astype(np.float64) for e in range(E)])
    n = np.linalg.norm(X, axis=1); C = (X @ X.T) / np.outer(n, n)
    ref = C[np.triu_indices(E, 1)].mean()
    first, last = recs[0]["expert_similarity"][j], recs[-1]["expert_similarity"][j]
    print(f"layer {l}: similarity {first:.5f} -> {last:.5f}, numpy {ref:.5f}")
    ok &= first > 0.99 and last < first and abs(last - ref) < 1e-4
sys.exit(0 if ok and len(recs) == 12 else 1)
PYEOF
then ok "train --init from an upcycled model: tokenizer carried over, expert_similarity falls and matches numpy"
else ko "train --init / expert_similarity"; fi

# a NaN gradient is detected, reported and skipped: weights after the skipped step equal those before it
MOEC_FAULT_NAN_STEP=3 "$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/nan" --steps 3 --save-every 2 \
    "${common[@]}" > /dev/null 2> "$TMP/nan.err"
"$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/two" --steps 2 --schedule-steps 3 "${common[@]}" > /dev/null 2>&1
if grep -q "non-finite gradient" "$TMP/nan.err" && grep -q '"step":3,.*"skipped":1' "$TMP/nan/metrics.jsonl" &&
   "$PY" - "$TMP/nan/model.safetensors" "$TMP/two/model.safetensors" <<'PYEOF'
import sys, numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
sys.exit(0 if a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) else 1)
PYEOF
then ok "a NaN gradient is reported and the step skipped (weights unchanged)"; else ko "NaN step skipping"; cat "$TMP/nan.err" | tail -3; fi

# a kill -9 at any moment, saves included, leaves a checkpoint that resumes (saving every step, killed 5 times)
"$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/kill" --steps 2 --save-every 1 "${common[@]}" > /dev/null 2>&1
killed_ok=1
for delay in 0.7 1.1 0.9 1.6 1.3; do
    "$MOEC" train --resume "$TMP/kill" --steps 100000 --quiet 1 > /dev/null 2>> "$TMP/kill.err" &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done
step=$(sed -nE 's/.*"step":[[:space:]]*([0-9]+).*/\1/p' "$TMP/kill/trainer.json" | head -1)
if [ -n "$step" ] && [ "$step" -gt 2 ] &&
   "$MOEC" train --resume "$TMP/kill" --steps $((step + 1)) --quiet 1 > /dev/null 2>> "$TMP/kill.err" &&
   "$MOEC" forward --model "$TMP/kill" --ids "1 2 3 4" > /dev/null 2>> "$TMP/kill.err"; then
    ok "killed 5 times mid-run (saving every step): the checkpoint always resumes (reached step $((step + 1)))"
    if ls "$TMP/kill" | grep -q '\.tmp\.'; then ko "stale temporary files left after resume"; else ok "no stale temporary files after resume"; fi
else ko "resume after kill -9"; tail -3 "$TMP/kill.err"; fi

# ---------------------------------------------------------------- bad input
expect_error() { # name, expected substring, command...
    local name=$1 want=$2; shift 2
    if "$@" > "$TMP/out.txt" 2> "$TMP/err.txt"; then ko "$name: succeeded"; return; fi
    local lines; lines=$(wc -l < "$TMP/err.txt")
    if grep -q -- "$want" "$TMP/err.txt" && [ "$lines" -le 2 ]; then ok "$name: $(head -1 "$TMP/err.txt")"
    else ko "$name (want '$want')"; cat "$TMP/err.txt"; fi
}
good=$TMP/full
mk() { rm -rf "$TMP/bad"; cp -r "$good" "$TMP/bad"; }
mk; head -c 100 "$good/model.safetensors" > "$TMP/bad/model.safetensors"
expect_error "truncated safetensors" "model.safetensors" "$MOEC" forward --model "$TMP/bad" --ids "1 2 3"
mk; printf '\xff\xff\xff\xff\x00\x00\x00\x00{}' > "$TMP/bad/model.safetensors"
expect_error "safetensors header length beyond the file" "model.safetensors" "$MOEC" forward --model "$TMP/bad" --ids "1 2 3"
mk; "$PY" - "$TMP/bad/model.safetensors" <<'PYEOF'
import sys
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1]); del t["model.norm.weight"]; save_file(t, sys.argv[1])
PYEOF
expect_error "missing tensor" "model.norm.weight" "$MOEC" forward --model "$TMP/bad" --ids "1 2 3"
mk; "$PY" - "$TMP/bad/model.safetensors" <<'PYEOF'
import sys, numpy as np
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1]); t["model.norm.weight"] = np.ones(7, np.float32); save_file(t, sys.argv[1])
PYEOF
expect_error "wrong tensor shape" "model.norm.weight" "$MOEC" forward --model "$TMP/bad" --ids "1 2 3"
mk; sed -i -E 's/"num_attention_heads":[[:space:]]*[0-9]+/"num_attention_heads": 3/' "$TMP/bad/config.json"
expect_error "impossible config (heads not a multiple of KV heads)" "head" "$MOEC" forward --model "$TMP/bad" --ids "1 2 3"
mk; sed -i -E 's/"num_experts_per_tok":[[:space:]]*[0-9]+/"num_experts_per_tok": 99/' "$TMP/bad/config.json"
expect_error "impossible config (top-k > experts)" "top_k" "$MOEC" forward --model "$TMP/bad" --ids "1 2 3"
expect_error "token id outside the vocabulary" "vocabulary" "$MOEC" forward --model "$good" --ids "1 2 999999"
printf '{"vocab_size": 10, "hidden_size": "big"}' > "$TMP/bad/config.json"
expect_error "config value of the wrong type" "hidden_size" "$MOEC" forward --model "$TMP/bad" --ids "1 2 3"
expect_error "missing model directory" "config.json" "$MOEC" forward --model "$TMP/nope" --ids "1 2 3"
: > "$TMP/empty.txt"
expect_error "empty corpus" "empty" "$MOEC" train --data "$TMP/empty.txt" --out "$TMP/e" --steps 2
expect_error "unknown flag" "unknown flag" "$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/e" --stepz 2
expect_error "resume of a directory without a run" "trainer.json" "$MOEC" train --resume "$TMP/nope" --steps 2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
