#!/usr/bin/env bash
# run_infer_bench.sh — inference throughput, moec vs llama.cpp (pinned, scripts/llama_cpp.sh), same machine,
# same threads, same GGUF-able models, and the memory-bandwidth bound for decoding.
#   usage: bash bench/run_infer_bench.sh [ROUNDS=5] [THREADS=2]
#          bash bench/run_infer_bench.sh --table RESULTS.jsonl...   the table over the samples of several runs together
#                                     (copies of $MOEC_BENCH_MODELS/results.jsonl; the best bandwidth any sample saw)
#   env:   MOEC_BENCH_MODELS  where the models and GGUFs are kept between runs (~/.cache/moec/bench-models)
#          MOEC_BENCH_ONLY    "ref-moe-small" or "moe-1b" to run one model; MOEC_BENCH_TYPES ("q8_0 f16 q4_k_m";
#                             q4_k_m: llama.cpp's own Q4_K_M file, which moec runs in place — no moec format of its own)
#          MOEC_BENCH_PP      prompt length of the prefill test (512), MOEC_BENCH_TG decode length (128)
#          MOEC_BENCH_DEPTH   context before the second decode test, "tgTG@dDEPTH" (512; 0: no such test): TG steps
#                             after DEPTH tokens prefilled untimed (llama-bench -d), 8-bit and 16-bit types only
#          MOEC_BENCH_ISA     moec's kernels: auto (default: the best the CPU has), avx2, avx512, scalar
#          MOEC_BENCH_PREBUILT=1 with MOEC_LLAMA_BENCH_BIN=PATH: no installs or builds (see below)
# Models (bench/make_bench_model.py, random weights, Mixtral layout, λ = 0):
#   ref-moe-small  the training benchmark's model: 153M parameters, 49M active (8 experts, top-2)
#   moe-1b         1.05B parameters, 426M active: D 2048, 12 layers, 16/8 heads of 128, 8 experts of 1408, top-2
# Each is exported to GGUF per type (by `moec convert` when it exists, else by llama.cpp's converter), then:
#   llama.cpp: llama-bench -t THREADS -p PP -n TG -r 1, ROUNDS times, taking turns with moec; medians
#              (pp = prefill of PP tokens from an empty cache, tg = TG decode steps, each one token).
#   moec:      build/bench/bench_infer --reps 1 (after its own warm-up), in turns with llama.cpp; medians
#   moec-gguf: the same, on the very GGUF file llama.cpp runs (moec_infer_model_load_gguf: Q8_0 / F16 in place)
#   bound:     decode cannot beat (weight bytes one token reads) / (measured memory read bandwidth): every
#              decode step streams the attention weights, the router, K experts per layer, the norms and
#              the output head (expert choice changes per token, so nothing stays in a 32 MB L3 for the 1B
#              model; ref-moe-small at Q8_0 (~50 MB read per token) partly does, so its bound is looser).
#              The KV cache read (a few hundred tokens) is left out: < 1 % here. Two bandwidths: the best one
#              measured in the whole run (the "of bound" column: conservative), and the one measured right after
#              each engine's run ("paired": each decode sample against the bound of its own moment, median; and
#              "per GB/s" ratios, tokens/s per GB/s moec over llama.cpp) — the shared machine's bandwidth moves
#              by tens of percent within minutes, more than the engines differ.
set -euo pipefail
cd "$(dirname "$0")/.."
TABLE_ONLY=()
if [ "${1:-}" = --table ]; then
    shift
    TABLE_ONLY=("$@")
    [ ${#TABLE_ONLY[@]} -gt 0 ] || { echo "usage: $0 --table RESULTS.jsonl..." >&2; exit 2; }
    set --
fi
ROUNDS=${1:-5} THREADS=${2:-2}
PP=${MOEC_BENCH_PP:-512} TG=${MOEC_BENCH_TG:-128} DEPTH=${MOEC_BENCH_DEPTH:-512}
TYPES=${MOEC_BENCH_TYPES:-"q8_0 f16 q4_k_m"}
MODELS=${MOEC_BENCH_ONLY:-"ref-moe-small moe-1b"}
DIR=${MOEC_BENCH_MODELS:-$HOME/.cache/moec/bench-models}
ISA=${MOEC_BENCH_ISA:-auto} # moec's matmul kernels (bench_infer --isa)
if [ ${#TABLE_ONLY[@]} -gt 0 ]; then
    PY=${MOEC_PYTHON:-python3}
elif [ "${MOEC_BENCH_PREBUILT:-0}" = 1 ]; then
    # A machine with no package registry (e.g. a lent GPU host, for its CPU): build/ and a llama.cpp built
    # elsewhere; python3 with numpy. MOEC_LLAMA_BENCH_BIN = that llama-bench (q4_k_m is not available here).
    PY=${MOEC_PYTHON:-python3}
    LLAMA_BENCH=${MOEC_LLAMA_BENCH_BIN:?MOEC_BENCH_PREBUILT=1 needs MOEC_LLAMA_BENCH_BIN}
    LLAMA=/nonexistent
else
    source scripts/deps.sh
    moec_deps_build
    moec_deps_python
    PY=$MOEC_VENV/bin/python
    make -j"$(nproc)" build/moec build/bench/bench_infer build/bench/bench_bandwidth >/dev/null
    LLAMA=$(MOEC_LLAMA_TARGETS="llama llama-bench" bash scripts/llama_cpp.sh)
    LLAMA_BENCH=$LLAMA/build/bin/llama-bench
fi
mkdir -p "$DIR"
RESULTS=$DIR/results.jsonl
if [ ${#TABLE_ONLY[@]} -gt 0 ]; then
    RESULTS=$(mktemp)
    trap 'rm -f "$RESULTS"' EXIT
    cat "${TABLE_ONLY[@]}" > "$RESULTS"
    MODELS="" # nothing to run: straight to the table
else
    : > "$RESULTS"
fi

# ---------------------------------------------------------------- memory read bandwidth
# build/bench/bench_bandwidth: THREADS threads stream-sum a 1 GiB buffer, best of 10 passes — the sustained read
# rate the decode step is limited by. The machine is shared: a busy neighbour halves this (measured 10 vs
# 17-20 GB/s here), so it is measured again before each model and the best is used.
measure_bandwidth() {
    ./build/bench/bench_bandwidth "$THREADS" >> "$DIR/bandwidth.txt"
    echo "memory read bandwidth, $THREADS threads: $(tail -n 1 "$DIR/bandwidth.txt") GB/s" >&2
}
: > "$DIR/bandwidth.txt"
# The read bandwidth right after each engine's run (same tool, recorded with its samples): the machine's bandwidth
# moves by tens of percent within minutes, so each decode sample is also compared with the bound of its own moment
# ("paired" columns of the table), besides the run's best bandwidth. Also kept in bandwidth.txt.
bandwidth_now() {
    local b; b=$(./build/bench/bench_bandwidth "$THREADS")
    echo "$b" >> "$DIR/bandwidth.txt"
    echo "$b"
}

# ---------------------------------------------------------------- models and GGUFs
make_models() { # $1 = model name
    local m=$1 d=$DIR/$1
    if [ ! -f "$d/.done" ]; then
        rm -rf "$d"
        "$PY" bench/make_bench_model.py "$m" "$d" > "$d.params.json"
        touch "$d/.done"
    fi
    cat "$d.params.json"
    # $g.writer says who wrote a GGUF: one written by llama.cpp's converter before `moec convert` existed is
    # rewritten by moec once it does
    local t g have_moec=1 jobs=() probe
    probe=$(./build/moec convert 2>&1 || true)
    case $probe in *"unknown command"*) have_moec=0 ;; esac
    for t in $TYPES; do
        g=$DIR/$m.$t.gguf
        if [ "$t" = q4_k_m ]; then # llama.cpp's own quantizer, from moec's f16 export (made first if need be)
            [ -f "$g" ] && continue
            [ -f "$DIR/$m.f16.gguf" ] || { ./build/moec convert --to gguf --type f16 --model "$d" --out "$DIR/$m.f16.gguf" >&2 &&
                                           echo moec > "$DIR/$m.f16.gguf.writer"; }
            "$LLAMA/llama_oracle" quantize "$DIR/$m.f16.gguf" "$g" --ftype Q4_K_M >&2 && echo llama.cpp > "$g.writer"
            continue
        fi
        if [ -f "$g" ] && { [ $have_moec = 0 ] || [ "$(cat "$g.writer" 2>/dev/null)" = moec ]; }; then continue; fi
        rm -f "$g" "$g.writer"
        if [ $have_moec = 1 ]; then
            ./build/moec convert --to gguf --type "$t" --model "$d" --out "$g" >&2
            echo moec > "$g.writer"
        else
            jobs+=("$d,$g,$t")
        fi
    done
    if [ ${#jobs[@]} -gt 0 ]; then
        echo "moec convert does not exist yet: llama.cpp's converter writes ${jobs[*]}" >&2
        MOEC_PYTHON=$PY bash scripts/llama_cpp.sh convert "${jobs[@]}" > "$DIR/convert.log" 2>&1 ||
            { tail -n 20 "$DIR/convert.log" >&2; return 1; }
        for t in $TYPES; do [ -f "$DIR/$m.$t.gguf.writer" ] || echo llama.cpp > "$DIR/$m.$t.gguf.writer"; done
    fi
}

# ---------------------------------------------------------------- page cache
# Each engine starts from its weight files out of the page cache (posix_fadvise DONTNEED; clean pages only), so each
# loads them its own way: moec's mapping asks for 2 MB pages (madvise MADV_HUGEPAGE, which makes the kernel fill
# the cache with 2 MB folios), llama.cpp's loader does what it does by default. Without this, whoever wrote or read
# a file last decides its page size (bench_infer reports how much of moec's weights got huge pages).
evict() { # files...
    "$PY" -c 'import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$@"
}

# ---------------------------------------------------------------- llama.cpp
llama_bench() { # $1 = model, $2 = type, $3 = repetitions: appends {"impl": "llama.cpp", "test": "pp512"|"tg128",
                #   "samples_ts": [...]}
    local g=$DIR/$1.$2.gguf
    evict "$g"
    "$LLAMA_BENCH" -m "$g" -t "$THREADS" -p "$PP" -n "$TG" -r "$3" -o jsonl 2>/dev/null > "$DIR/llama.out.jsonl"
    local bw; bw=$(bandwidth_now)
    "$PY" -c '
import json, sys
for line in open(sys.argv[5]):
    r = json.loads(line)
    test = "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]
    print(json.dumps({"model": sys.argv[1], "type": sys.argv[2], "impl": "llama.cpp", "test": test,
                      "samples_ts": r["samples_ts"], "bw_after": [float(sys.argv[4])] * len(r["samples_ts"]),
                      "gguf_by": sys.argv[3]}))' "$1" "$2" "$(cat "$g.writer")" "$bw" "$DIR/llama.out.jsonl" >> "$RESULTS"
}
llama_bench_depth() { # $1 = model, $2 = type: decode after DEPTH tokens, {"test": "tgTG@dDEPTH"}
    local g=$DIR/$1.$2.gguf
    "$LLAMA_BENCH" -m "$g" -t "$THREADS" -p 0 -n "$TG" -d "$DEPTH" -r 1 -o jsonl 2>/dev/null > "$DIR/llama.out.jsonl"
    local bw; bw=$(bandwidth_now)
    "$PY" -c '
import json, sys
for line in open(sys.argv[4]):
    r = json.loads(line)
    print(json.dumps({"model": sys.argv[1], "type": sys.argv[2], "impl": "llama.cpp",
                      "test": "tg%d@d%d" % (r["n_gen"], r["n_depth"]), "samples_ts": r["samples_ts"],
                      "bw_after": [float(sys.argv[3])] * len(r["samples_ts"])}))' "$1" "$2" "$bw" "$DIR/llama.out.jsonl" >> "$RESULTS"
}

# ---------------------------------------------------------------- moec
# moec runs its own formats of the same weights: fp8 E4M3 with per-row scales (`moec quantize --to fp8`) against
# llama.cpp's Q8_0, bf16 against llama.cpp's f16 — both 8-bit and both 16-bit, from the same f32/bf16 model
# directory — and bf16p (the same bf16 values stored losslessly in 12 bits, `moec quantize --to bf16p`) against f16
# too. build/bench/bench_infer measures pp (one prefill of PP tokens from an empty cache) and tg (TG decode
# steps after a 1-token context), as llama-bench does, one repetition after a warm-up per round.
moec_types() { # $1 = llama.cpp type -> the moec weight types compared with it (none for q4_k_m: the file only)
    case $1 in q8_0) echo fp8 ;; f16|bf16) echo "bf16 bf16p" ;; q4_k_m) echo "" ;; *) echo f32 ;; esac
}
moec_model() { # $1 = model, $2 = moec type: writes the moec directory if needed (quantize), prints its path
    local m=$1 mt=$2 d
    d=$DIR/$m.$mt
    [ "$mt" = f32 ] && { echo "$DIR/$m"; return; }
    if [ ! -f "$d/config.json" ]; then
        rm -rf "$d"
        ./build/moec quantize --to "$mt" --model "$DIR/$m" --out "$d" >&2
    fi
    echo "$d"
}
moec_bench() { # $1 = model, $2 = llama.cpp type it is compared with, $3 = moec type, $4 = repetitions
    local m=$1 t=$2 mt=$3 d
    d=$(moec_model "$m" "$mt")
    evict "$d"/*.safetensors
    ./build/bench/bench_infer --model "$d" --threads "$THREADS" --pp "$PP" --tg "$TG" --reps "$4" \
        --isa "$ISA" --bw-mib 256 > "$DIR/moec.$m.$mt.json"
    local bw; bw=$(bandwidth_now)
    "$PY" - "$DIR/moec.$m.$mt.json" "$m" "$mt" "$t" "$PP" "$TG" "$bw" >> "$RESULTS" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
m, mt, vs, pp, tg = sys.argv[2:7]
for test, key in (("pp" + pp, "pp_samples"), ("tg" + tg, "tg_samples")):
    print(json.dumps({"model": m, "type": mt, "vs": vs, "impl": "moec", "test": test, "samples_ts": r[key],
                      "bw_after": [float(sys.argv[7])] * len(r[key]),
                      "peak_rss_mb": r["peak_rss_mb"], "active_bytes": r["active_bytes_per_token"],
                      "huge_mapped_mb": r.get("huge_mapped_bytes", -1) >> 20}))
PYEOF
}

moec_bench_depth() { # $1 = model, $2 = llama.cpp type it is compared with, $3 = moec type: decode after DEPTH tokens
    local m=$1 t=$2 mt=$3 d
    d=$(moec_model "$m" "$mt")
    ./build/bench/bench_infer --model "$d" --threads "$THREADS" --pp 1 --tg "$TG" --depth "$DEPTH" --reps 1 \
        --isa "$ISA" --bw-mib 256 > "$DIR/moec.$m.$mt.depth.json"
    local bw; bw=$(bandwidth_now)
    "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"model": sys.argv[2], "type": sys.argv[3], "vs": sys.argv[4], "impl": "moec",
                  "test": "tg%d@d%d" % (r["tg"], r["depth"]), "samples_ts": r["tg_samples"],
                  "bw_after": [float(sys.argv[5])] * len(r["tg_samples"]), "peak_rss_mb": r["peak_rss_mb"],
                  "huge_mapped_mb": r.get("huge_mapped_bytes", -1) >> 20}))' \
        "$DIR/moec.$m.$mt.depth.json" "$m" "$mt" "$t" "$bw" >> "$RESULTS"
}

moec_gguf_bench() { # $1 = model, $2 = type: moec on llama.cpp's own file
    local g=$DIR/$1.$2.gguf
    evict "$g"
    ./build/bench/bench_infer --model "$g" --threads "$THREADS" --pp "$PP" --tg "$TG" --reps "$3" \
        --isa "$ISA" --bw-mib 256 > "$DIR/moec-gguf.$1.$2.json"
    local bw; bw=$(bandwidth_now)
    "$PY" - "$DIR/moec-gguf.$1.$2.json" "$1" "$2" "$PP" "$TG" "$bw" >> "$RESULTS" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
m, t, pp, tg = sys.argv[2:6]
for test, key in (("pp" + pp, "pp_samples"), ("tg" + tg, "tg_samples")):
    print(json.dumps({"model": m, "type": t, "vs": t, "impl": "moec-gguf", "test": test, "samples_ts": r[key],
                      "bw_after": [float(sys.argv[6])] * len(r[key]),
                      "peak_rss_mb": r["peak_rss_mb"], "active_bytes": r["active_bytes_per_token"],
                      "huge_mapped_mb": r.get("huge_mapped_bytes", -1) >> 20}))
PYEOF
}

# The engines take turns, one repetition each, ROUNDS times: the shared machine's speed drifts over minutes (a
# neighbour's job halves the bandwidth for a while), and a drift then hits both engines' samples alike instead of
# whichever ran during it. The table takes medians over the rounds.
for m in $MODELS; do
    make_models "$m"
    for t in $TYPES; do for mt in $(moec_types "$t"); do moec_model "$m" "$mt" > /dev/null; done; done
    for r in $(seq "$ROUNDS"); do
        measure_bandwidth
        for t in $TYPES; do
            echo "benchmarking $m $t, round $r of $ROUNDS ..." >&2
            llama_bench "$m" "$t" 1
            for mt in $(moec_types "$t"); do moec_bench "$m" "$t" "$mt" 1; done
            moec_gguf_bench "$m" "$t" 1
            if [ "$DEPTH" -gt 0 ] && [ "$t" != q4_k_m ]; then
                llama_bench_depth "$m" "$t"
                for mt in $(moec_types "$t"); do moec_bench_depth "$m" "$t" "$mt"; done
            fi
        done
    done
done

# ---------------------------------------------------------------- table
if [ ${#TABLE_ONLY[@]} -gt 0 ]; then
    BW=$("$PY" -c 'import json, sys
print(max(b for l in open(sys.argv[1]) if l.strip() for b in json.loads(l).get("bw_after", [0])))' "$RESULTS")
else
    BW=$(sort -g "$DIR/bandwidth.txt" | tail -n 1)
fi
"$PY" - "$RESULTS" "$DIR" "$BW" "$THREADS" <<'PYEOF'
import json, statistics, sys
# one line per round and engine: merge the rounds' samples of each (model, type, engine, test)
rows = []
for l in open(sys.argv[1]):
    if not l.strip(): continue
    r = json.loads(l)
    same = [x for x in rows if all(x.get(k) == r.get(k) for k in ("model", "type", "impl", "test"))]
    if same:
        same[0]["samples_ts"] += r["samples_ts"]
        same[0]["bw_after"] = same[0].get("bw_after", []) + r.get("bw_after", [])
        if "peak_rss_mb" in r: same[0]["peak_rss_mb"] = max(same[0]["peak_rss_mb"], r["peak_rss_mb"])
    else:
        rows.append(r)
bw, threads = float(sys.argv[3]), sys.argv[4]
bytes_per_weight = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32,  # Q8_0: 32 int8 + one f16 scale
                    "fp8": 1.0}  # E4M3 + one f32 scale per row of >= 512 weights (< 1 % more)
def per_gbs(r):  # each sample's tokens/s per GB/s of the read bandwidth measured right after it
    return [x / b for x, b in zip(r["samples_ts"], r.get("bw_after", [])) if b > 0]
print(f"\ninference, {threads} threads, medians of the repetitions; decode bound = weight bytes read per token / "
      f"{bw:.1f} GB/s (best measured read bandwidth); paired = each sample against the bound of the bandwidth "
      f"measured right after it, median; tgN@dD = N decode steps after a D-token context (no bound: it also "
      f"reads the KV cache, fp32 in moec, f16 in llama.cpp)")
print(f"{'model':14} {'type':5} {'impl':10} {'test':>6} {'tok/s':>9} {'bound':>8} {'of bound':>8} {'paired':>7}  "
      f"{'GGUF by':9} samples")
for r in rows:
    p = json.load(open(f"{sys.argv[2]}/{r['model']}.params.json"))
    med = statistics.median(r["samples_ts"])
    bound, share, paired = "", "", ""
    # a mixed quantisation (Q4_K_M): the bytes bench_infer counted in the file for one token
    counted = [x["active_bytes"] for x in rows if x["model"] == r["model"] and x["type"] == r["type"] and "active_bytes" in x]
    read = p["read_params_per_token"] * bytes_per_weight[r["type"]] if r["type"] in bytes_per_weight else \
        (counted[0] if counted else 0)
    if r["test"].startswith("tg") and "@" not in r["test"] and read:
        b = bw * 1e9 / read
        bound, share = f"{b:8.1f}", f"{100 * med / b:7.0f}%"
        if per_gbs(r):
            paired = f"{100 * statistics.median(per_gbs(r)) * read / 1e9:6.0f}%"
    samples = " ".join(f"{x:.1f}" for x in r["samples_ts"])
    print(f"{r['model']:14} {r['type']:5} {r['impl']:10} {r['test']:>6} {med:9.2f} {bound:>8} {share:>8} {paired:>7}  "
          f"{r.get('gguf_by', ''):9} {samples}")
print("\nmoec / llama.cpp (medians, same model, same run; 8-bit = moec fp8 vs Q8_0, 16-bit = moec bf16 and bf16p\n"
      "(the same values in 12 bits) vs f16;\n"
      "moec-gguf = moec on llama.cpp's own GGUF file, same type; by round = median of the rounds' own ratios):")
for r in rows:
    if not r["impl"].startswith("moec"): continue
    peer = [x for x in rows if x["impl"] == "llama.cpp" and x["model"] == r["model"] and x["type"] == r["vs"]
            and x["test"] == r["test"]]
    if peer:
        ratio = statistics.median(r["samples_ts"]) / statistics.median(peer[0]["samples_ts"])
        # the same per GB/s of the bandwidth measured after each sample: less sensitive to the machine's drift
        norm = statistics.median(per_gbs(r)) / statistics.median(per_gbs(peer[0])) \
            if per_gbs(r) and per_gbs(peer[0]) else float("nan")
        # round by round: sample k of each engine comes from round k, the two a minute apart at most, so a
        # memory state that lasts minutes hits both (the medians above pair whatever states each engine drew)
        rounds = [a / b for a, b in zip(r["samples_ts"], peer[0]["samples_ts"]) if b > 0]
        per = f", by round {statistics.median(rounds):5.2f}x" if rounds else " " * 18
        per += f", per GB/s {norm:5.2f}x" if r["test"].startswith("tg") else " " * 17  # (decode: memory-bound)
        print(f"  {r['model']:14} {r['impl']:9} {r['type']:5} vs {r['vs']:5} {r['test']:>10}: {ratio:5.2f}x{per}   "
              f"(moec peak RSS {r['peak_rss_mb']} MB, {r.get('huge_mapped_mb', -1)} MB of it in 2 MB pages)")
# The shared machine's memory flips between two states (README: "the machine"): decode samples split by the
# bandwidth measured right after them, slow (< 1.3 x the run's 10th percentile: one odd low measurement must not
# move every sample to "fast") and fast, each engine's median per state.
allbw = sorted(b for r in rows for b in r.get("bw_after", []) if b > 0)
if allbw:
    cut = 1.3 * allbw[len(allbw) // 10]
    def by_state(r, fast):
        return [x for x, b in zip(r["samples_ts"], r.get("bw_after", [])) if b > 0 and (b >= cut) == fast]
    print(f"\ndecode by memory state (bandwidth after the sample below / at least {cut:.1f} GB/s), moec / llama.cpp "
          f"medians (samples):")
    for r in rows:
        if not r["impl"].startswith("moec") or not r["test"].startswith("tg"): continue
        peer = [x for x in rows if x["impl"] == "llama.cpp" and x["model"] == r["model"] and x["type"] == r["vs"]
                and x["test"] == r["test"]]
        if not peer: continue
        cells = []
        for fast in (False, True):
            a, b = by_state(r, fast), by_state(peer[0], fast)
            cells.append(f"{'fast' if fast else 'slow'} {statistics.median(a):7.1f} / {statistics.median(b):7.1f} = "
                         f"{statistics.median(a) / statistics.median(b):4.2f}x ({len(a)}/{len(b)})" if a and b else
                         f"{'fast' if fast else 'slow'} {'-':>28} ({len(a)}/{len(b)})")
        print(f"  {r['model']:14} {r['impl']:9} {r['type']:5} vs {r['vs']:5} {r['test']:>9}: {cells[0]}   {cells[1]}")
for name in sorted({r["model"] for r in rows}):
    p = json.load(open(f"{sys.argv[2]}/{name}.params.json"))
    print(f"{name}: {p['params'] / 1e6:.1f}M parameters, {p['active_params'] / 1e6:.1f}M active, "
          f"{p['read_params_per_token'] / 1e6:.1f}M read per decoded token")
PYEOF
