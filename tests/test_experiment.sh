#!/usr/bin/env bash
# test_experiment.sh — `moec experiment upcycle-vs-scratch` (src/train/experiment.h) end to end, on tiny budgets
# (the first 300 KB of tinyshakespeare, vocab 512, B 4 x S 64, 40 dense steps; well under 90 s on two cores):
#   * the command succeeds and prints a verdict; results.md and results.json exist and list the 5 runs
#     (dense, upcycled_small/large, scratch_small/large), each run directory has validation records;
#   * the MoE budgets are the requested fractions of C: C and each run's FLOPs are recomputed here from the
#     runs' config.json files (N_active = attention + active FFN/router + output projection) and the tokens
#     logged in metrics.jsonl, independently of the C code;
#   * the upcycled runs' first mean expert similarity is > 0.99, the scratch runs' < 0.2;
#   * loss_vs_tokens.png and expert_similarity.png are valid PNGs (tests/png_check.py);
#   * an existing experiment directory is refused.
# Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
MOEC=$ROOT/${MOEC_BUILD:-build}/moec
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

head -c 300000 "$ROOT/../shared/data/tinyshakespeare.txt" > "$TMP/corpus.txt"
OUT=$TMP/exp
SMALL=0.2 LARGE=1
if "$MOEC" experiment upcycle-vs-scratch --data "$TMP/corpus.txt" --out "$OUT" --dense-steps 40 --batch 4 \
    --seq 64 --vocab 512 --eval-batches 2 --threads 2 --quiet 1 --small-budget $SMALL --large-budget $LARGE \
    > "$TMP/stdout" 2> "$TMP/stderr"; then
    ok "experiment runs"
else
    ko "experiment runs: $(tail -3 "$TMP/stderr")"
fi
grep -q "At the small budget" "$TMP/stdout" && ok "verdict printed" || ko "verdict printed"

[ -s "$OUT/results.md" ] && [ "$(grep -cE '^\| (dense|upcycled_small|upcycled_large|scratch_small|scratch_large) \|' \
    "$OUT/results.md")" = 5 ] && ok "results.md has 5 runs" || ko "results.md has 5 runs"

python3 - "$OUT" "$SMALL" "$LARGE" > "$TMP/py.log" 2>&1 <<'PYEOF'
import json, sys
out, small, large = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def check(name, cond, detail=""):
    print(("PASS " if cond else "FAIL ") + name + ((": " + detail) if detail and not cond else ""))
try:
    res = json.load(open(out + "/results.json"))
    names = [r["name"] for r in res["runs"]]
    check("results.json has 5 runs", sorted(names) == sorted(
        ["dense", "upcycled_small", "upcycled_large", "scratch_small", "scratch_large"]), str(names))
except Exception as e:
    check("results.json has 5 runs", False, repr(e))

def n_active(cfg):
    D, V, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    Dh = cfg.get("head_dim") or D // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * Dh, cfg["num_key_value_heads"] * Dh
    E = cfg.get("num_local_experts", 0)
    moe = set(cfg.get("moe_layers", range(L))) if E else set()
    n = V * D
    for l in range(L):
        n += D * q + 2 * D * kv + q * D
        if l in moe:
            n += D * E + cfg["num_experts_per_tok"] * 3 * D * cfg.get("moe_ffn_dim", cfg["intermediate_size"])
        else:
            n += 3 * D * cfg.get("dense_intermediate_size", cfg["intermediate_size"])
    return n

def records(run):
    return [json.loads(l) for l in open("%s/%s/metrics.jsonl" % (out, run)) if l.strip()]

def last_tokens(run):
    return [r["tokens"] for r in records(run) if "tokens" in r][-1]

try:
    C = last_tokens("dense") * 6 * n_active(json.load(open(out + "/dense/config.json")))
    for run, f in (("upcycled_small", small), ("scratch_small", small), ("upcycled_large", large),
                   ("scratch_large", large)):
        cfg = json.load(open("%s/%s/config.json" % (out, run)))
        flops = last_tokens(run) * 6 * n_active(cfg)
        check("%s budget %.3g x C" % (run, f), abs(flops / C - f) / f < 0.15, "got %.4f x C" % (flops / C))
        check("%s is 8 experts top-2 dropless" % run, cfg.get("num_local_experts") == 8 and
              cfg.get("num_experts_per_tok") == 2 and cfg.get("capacity_factor") == 0)
        sims = [r["expert_similarity"] for r in records(run) if r.get("expert_similarity")]
        first = sum(sims[0]) / len(sims[0])
        if run.startswith("upcycled"):
            check("%s first expert similarity > 0.99" % run, first > 0.99, "%.5f" % first)
        else:
            check("%s first expert similarity < 0.2" % run, first < 0.2, "%.5f" % first)
    for run in ("dense", "upcycled_small", "upcycled_large", "scratch_small", "scratch_large"):
        vals = [r["val_loss"] for r in records(run) if "val_loss" in r]
        check("%s has validation points" % run, len(vals) >= 3, str(len(vals)))
except Exception as e:
    check("budgets and similarities readable", False, repr(e))
PYEOF
while read -r line; do
    case "$line" in
        PASS*) ok "${line#PASS }" ;;
        FAIL*) ko "${line#FAIL }" ;;
        *) echo "$line" ;;
    esac
done < "$TMP/py.log"

for png in loss_vs_tokens expert_similarity; do
    if python3 tests/png_check.py "$OUT/$png.png" --not-uniform > "$TMP/png.log" 2>&1; then ok "$png.png is a valid PNG"
    else ko "$png.png is a valid PNG: $(cat "$TMP/png.log")"; fi
done

if "$MOEC" experiment upcycle-vs-scratch --data "$TMP/corpus.txt" --out "$OUT" --quiet 1 > /dev/null 2> "$TMP/err2"; then
    ko "an existing experiment is refused"
else
    grep -q "already holds an experiment" "$TMP/err2" && ok "an existing experiment is refused" ||
        ko "an existing experiment is refused: $(cat "$TMP/err2")"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
