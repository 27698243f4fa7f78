#!/usr/bin/env bash
# test_bench_table.sh — the numbers bench/run_infer_bench.sh's table reports (README "Speed vs llama.cpp"), on a
# hand-made results file whose medians, round-by-round ratios, per-GB/s ratios, memory-state split and % of the
# decode bound were worked out by hand:
#   model m reads 1e8 weights per token (fp8: 1e8 bytes); three rounds, decode tg128 samples (tok/s) with the
#   bandwidth (GB/s) measured after each:
#     llama.cpp q8_0  10, 20, 30   after 30, 50, 30
#     moec fp8        15, 22, 60   after 30, 50, 30
#   medians 22 / 20 = 1.10x; by round median(1.5, 1.1, 2.0) = 1.50x; per GB/s median(0.5, 0.44, 2.0) /
#   median(0.333, 0.4, 1.0) = 0.5 / 0.4 = 1.25x; states: cut = 1.3 x 30 = 39 GB/s, slow median(15, 60) /
#   median(10, 30) = 37.5 / 20 = 1.88x (2/2 samples), fast 22 / 20 = 1.10x (1/1); bound at the best bandwidth,
#   50 GB/s: 500 tok/s, moec's median 22 = 4 %; paired: 0.5 tok/s per GB/s x 0.1 GB = 5 %.
# Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
PY=${MOEC_PYTHON:-python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
check() { # $1 = what, $2 = regex the table must contain
    if grep -Eq -- "$2" "$TMP/table.txt"; then echo "PASS $1"; pass=$((pass + 1)); else echo "FAIL $1 (no /$2/)"; fail=$((fail + 1)); fi
}
echo '{"params": 3e8, "active_params": 1.2e8, "read_params_per_token": 1e8}' > "$TMP/m.params.json"
for r in 0 1 2; do
    l=(10 20 30) m=(15 22 60) b=(30 50 30)
    echo "{\"model\": \"m\", \"type\": \"q8_0\", \"impl\": \"llama.cpp\", \"test\": \"tg128\", \"samples_ts\": [${l[$r]}], \"bw_after\": [${b[$r]}]}"
    echo "{\"model\": \"m\", \"type\": \"fp8\", \"vs\": \"q8_0\", \"impl\": \"moec\", \"test\": \"tg128\", \"samples_ts\": [${m[$r]}], \"bw_after\": [${b[$r]}], \"peak_rss_mb\": 7, \"active_bytes\": 100000000, \"huge_mapped_mb\": 0}"
done > "$TMP/results.jsonl"
if MOEC_PYTHON=$PY MOEC_BENCH_MODELS=$TMP bash bench/run_infer_bench.sh --table "$TMP/results.jsonl" > "$TMP/table.txt" 2>&1; then
    echo "PASS the table is made"; pass=$((pass + 1))
else
    echo "FAIL the table script failed:"; cat "$TMP/table.txt"; fail=$((fail + 1))
fi
cat "$TMP/table.txt"
check "best bandwidth 50 GB/s" "/ 50\.0 GB/s"
check "moec row: median 22, bound 500, 4 % of it, 5 % paired" "^m +fp8 +moec +tg128 +22\.00 +500\.0 +4% +5%"
check "llama.cpp row: median 20" "^m +q8_0 +llama\.cpp +tg128 +20\.00 "
check "ratio of the medians 1.10x, by round 1.50x, per GB/s 1.25x" "tg128: +1\.10x, by round +1\.50x, per GB/s +1\.25x"
check "memory states split at 39.0 GB/s" "at least 39\.0 GB/s"
check "slow 37.5 / 20.0 = 1.88x (2/2), fast 22.0 / 20.0 = 1.10x (1/1)" \
    "slow +37\.5 / +20\.0 = 1\.88x \(2/2\) +fast +22\.0 / +20\.0 = 1\.10x \(1/1\)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
