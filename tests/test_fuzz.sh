#!/usr/bin/env bash
# test_fuzz.sh — coverage-guided fuzzing (libFuzzer + ASan + UBSan) of the two readers that parse untrusted
# model files: GGUF (tests/fuzz/fuzz_gguf.c) and safetensors (tests/fuzz/fuzz_safetensors.c). Each target is
# built with clang straight from the sources it needs into $MOEC_BUILD/fuzz, seeded with small valid files
# (written by moec, by the gguf package and by the safetensors package) and run for MOEC_FUZZ_SECONDS (default 20)
# seconds; any crash, sanitizer report or leak fails the test (the crashing input is kept in $MOEC_BUILD/fuzz).
# The fuzzers are sanitized builds already, so the suite's sanitizer pass (MOEC_BUILD=build-san) skips this.
# Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${MOEC_BUILD:-build}
case "$BUILD" in
    *build-san*) echo "skip: the fuzzers run once per suite, in the release pass"; echo "0 passed, 0 failed"; exit 0 ;;
esac
PY=${MOEC_PYTHON:-$HOME/.cache/moec/venv/bin/python}
SECONDS_EACH=${MOEC_FUZZ_SECONDS:-20}
OUT=$ROOT/$BUILD/fuzz
mkdir -p "$OUT"
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

CC_FUZZ=${MOEC_FUZZ_CC:-clang}
if ! command -v "$CC_FUZZ" > /dev/null; then
    echo "FAIL $CC_FUZZ not found (scripts/deps.sh: moec_deps_fuzz installs clang)"; echo "0 passed, 1 failed"; exit 1
fi
FLAGS=(-g -O1 -std=c11 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer)
COMMON=(src/core/error.c src/io/fsutil.c src/io/safetensors.c)
build() { # $1 = target name, rest = extra sources
    local name=$1; shift
    "$CC_FUZZ" "${FLAGS[@]}" "tests/fuzz/$name.c" "$@" "${COMMON[@]}" -o "$OUT/$name" -lcjson -lm 2> "$OUT/$name.build.log"
}
if build fuzz_gguf src/io/gguf.c && build fuzz_safetensors; then ok "fuzzers build with $CC_FUZZ -fsanitize=fuzzer,address,undefined"
else ko "fuzzer build"; cat "$OUT"/*.build.log | head -30; echo "$pass passed, $fail failed"; exit 1; fi

# ---------------------------------------------------------------- seed corpora (small valid files)
rm -rf "$OUT/seed_gguf" "$OUT/seed_st" "$OUT/corpus_gguf" "$OUT/corpus_st"
mkdir -p "$OUT/seed_gguf" "$OUT/seed_st" "$OUT/corpus_gguf" "$OUT/corpus_st"
"$ROOT/$BUILD/tests/test_gguf" write-sample "$OUT/seed_gguf/moec_sample.gguf" 2> /dev/null ||
    echo "note: $BUILD/tests/test_gguf missing; gguf seeds from Python only"
"$PY" - "$OUT/seed_gguf" "$OUT/seed_st" <<'PYEOF' || echo "note: Python seeds not written"
import sys, os, numpy as np
d_gguf, d_st = sys.argv[1], sys.argv[2]
try:
    import gguf
    from gguf import GGMLQuantizationType as Q
    x = np.arange(64, dtype=np.float32).reshape(2, 32) / 7
    w = gguf.GGUFWriter(os.path.join(d_gguf, "py.gguf"), arch="llama")
    w.add_uint32("llama.block_count", 1); w.add_array("tokenizer.ggml.tokens", ["a", "b", "<0x0A>"])
    w.add_array("tokenizer.ggml.scores", [0.0, -1.5, 2.0]); w.add_bool("b", True); w.add_float64("d", 0.25)
    w.add_tensor("f32", x); w.add_tensor("f16", x.astype(np.float16))
    w.add_tensor("q8", gguf.quants.quantize(x, Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("bf16", gguf.quants.quantize(x, Q.BF16), raw_dtype=Q.BF16)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
except ImportError:
    pass
from safetensors.numpy import save_file
save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float16),
           "c": np.zeros((2, 2), np.int64), "s": np.array(1.5, np.float64)},
          os.path.join(d_st, "small.safetensors"), metadata={"format": "pt"})
save_file({"w": np.arange(4, dtype=np.float32)}, os.path.join(d_st, "one.safetensors"))
PYEOF
# a hand-written safetensors seed needs no Python
printf '\x40\x00\x00\x00\x00\x00\x00\x00{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}        \x80\x3f\x00\x40' \
    > "$OUT/seed_st/hand.safetensors"

# ---------------------------------------------------------------- fuzz
run() { # $1 = target, $2 = corpus dir, $3 = seed dir
    (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "./$1" -max_total_time="$SECONDS_EACH" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$OUT/$1-" "$2" "$3" > "$OUT/$1.log" 2>&1)
}
for t in gguf:corpus_gguf:seed_gguf safetensors:corpus_st:seed_st; do
    IFS=: read -r name corpus seed <<< "$t"
    if run "fuzz_$name" "$OUT/$corpus" "$OUT/$seed"; then
        runs=$(grep -Eo 'Done [0-9]+ runs' "$OUT/fuzz_$name.log" | grep -Eo '[0-9]+' || echo "?")
        ok "fuzz_$name: $runs inputs in ${SECONDS_EACH}s, no crash, leak or undefined behaviour"
    else
        ko "fuzz_$name found a problem (log: $OUT/fuzz_$name.log)"; grep -E "ERROR|runtime error|SUMMARY|Test unit written" "$OUT/fuzz_$name.log" | head -10
    fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
