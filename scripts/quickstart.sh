#!/usr/bin/env bash
# quickstart.sh — moec's main job on its built-in default: installs what it needs, builds moec, gets a real
# English corpus from Debian's `fortunes` package (thousands of quotations, poems and jokes), trains a
# byte-level BPE tokenizer and a small Skywork-style MoE (8 experts, top-2, gating logit normalisation λ=1,
# capacity factor 1.25, adaptive aux-loss coefficients) on it, shows the validation loss falling, and renders
# the plots.   Options: --data FILE.txt (any text instead), --steps N, --out DIR, --threads N.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

DATA="" STEPS=300 OUT=runs/quickstart THREADS=0
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        *) echo "quickstart: unknown option $1 (use --data FILE --steps N --out DIR --threads N)" >&2; exit 2 ;;
    esac
done

moec_deps_build
make -j"$(nproc)" build/moec >/dev/null

if [ -z "$DATA" ]; then
    moec_apt_install fortunes
    mkdir -p runs
    DATA=runs/fortunes.txt
    # the fortune files are plain text with '%' lines between entries; the .dat files are binary indexes
    find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -print0 | sort -z |
        xargs -0 cat | grep -v '^%$' > "$DATA"
    echo "corpus: $DATA ($(wc -c < "$DATA") bytes of English from Debian's fortunes package)"
fi

if [ -e "$OUT/trainer.json" ]; then
    echo "quickstart: $OUT already holds a run; resuming it up to step $STEPS"
    build/moec train --resume "$OUT" --steps "$STEPS" --threads "$THREADS"
else
    build/moec train --data "$DATA" --out "$OUT" --steps "$STEPS" --eval-every 50 --save-every 100 \
        --threads "$THREADS"
fi
build/moec plot --metrics "$OUT/metrics.jsonl" --out "$OUT/plots"

echo
echo "validation loss by step (from $OUT/metrics.jsonl):"
grep '"val_loss"' "$OUT/metrics.jsonl" | sed -E 's/.*"step":([0-9]+).*"val_loss":([0-9.]+).*"val_ppl":([0-9.]+).*/\1 \2 \3/' |
    awk '{ printf "  step %5d: loss %.4f, perplexity %.1f\n", $1, $2, $3 }'
# inference: an FP8 copy (E4M3 weights, one scale per output row), its quality on the held-out shard, samples
FP8="$OUT.fp8"
rm -rf "$FP8"
build/moec quantize --to fp8 --model "$OUT" --out "$FP8"
echo
echo "held-out loss, fp32 weights vs fp8 weights (same validation shard):"
for m in "$OUT" "$FP8"; do
    printf '  %-28s ' "$m"; build/moec eval --model "$m" --data "$OUT/data/val.bin" --threads "$THREADS" | tr "\n" " "; echo
done
echo
for m in "$OUT" "$FP8"; do
    echo "sample from $m (temperature 0.8, top-p 0.95, seed 1; KV-cache decoding):"
    build/moec generate --model "$m" --prompt "The secret of life is" --max-tokens 60 --temperature 0.8 \
        --top-p 0.95 --seed 1 --stats 1 --threads "$THREADS" | sed 's/^/  | /'
done
echo
echo "model (Hugging Face Mixtral layout): $OUT/config.json, $OUT/model.safetensors, $OUT/tokenizer.json"
echo "fp8 copy: $FP8"
echo "metrics: $OUT/metrics.jsonl"
echo "plots:   $OUT/plots/ (loss.png, drop_rate.png, aux_coef.png, expert_load.png, lr.png)"
