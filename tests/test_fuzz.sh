#!/usr/bin/env bash
# test_fuzz.sh — coverage-guided fuzzing (libFuzzer + ASan + UBSan) of the two readers that parse untrusted
# model files: GGUF (tests/fuzz/fuzz_gguf.c) and safetensors (tests/fuzz/fuzz_safetensors.c), of what runs a
# GGUF model in place (tests/fuzz/fuzz_gguf_model.c: loader, a forward pass, tokenizer import), and of what runs a
# model directory's safetensors in place (tests/fuzz/fuzz_model_dir.c: f32/bf16/f16/fp8/bf16p weights, the
# loader's checks, a forward pass; seeded by `moec quantize`'s code). Each target is
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
# The whole library, compiled once (in parallel) for the targets that need it all, then linked into each.
build_lib() {
    local objs="$OUT/lib" lib_flags=("${FLAGS[@]/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}")
    rm -rf "$objs" && mkdir -p "$objs" || return 1
    find src -name '*.c' | sort | xargs -P "$(nproc)" -I{} sh -c \
        'o="$1/$(echo "$2" | tr / _).o"; shift 2; "$@" -c "$0" -o "$o"' {} "$objs" {} "$CC_FUZZ" "${lib_flags[@]}" \
        2> "$OUT/lib.build.log" || return 1
    ar rcs "$OUT/libmoec_fuzz.a" "$objs"/*.o
}
build_all() { # $1 = target name: with the whole library
    "$CC_FUZZ" "${FLAGS[@]}" "tests/fuzz/$1.c" "$OUT/libmoec_fuzz.a" -o "$OUT/$1" -lcjson -lm -pthread 2> "$OUT/$1.build.log"
}
if build fuzz_gguf src/io/gguf.c src/io/ggml_quants.c && build fuzz_safetensors && build_lib &&
    build_all fuzz_gguf_model && build_all fuzz_model_dir; then
    ok "fuzzers build with $CC_FUZZ -fsanitize=fuzzer,address,undefined"
else ko "fuzzer build"; cat "$OUT"/*.build.log | head -30; echo "$pass passed, $fail failed"; exit 1; fi

# ---------------------------------------------------------------- seed corpora (small valid files)
rm -rf "$OUT/seed_gguf" "$OUT/seed_st" "$OUT/corpus_gguf" "$OUT/corpus_st" "$OUT/seed_gguf_model" "$OUT/corpus_gguf_model" \
    "$OUT/seed_model_dir" "$OUT/corpus_model_dir" "$OUT/tmp"
mkdir -p "$OUT/seed_gguf" "$OUT/seed_st" "$OUT/corpus_gguf" "$OUT/corpus_st" "$OUT/seed_gguf_model" "$OUT/corpus_gguf_model" \
    "$OUT/seed_model_dir" "$OUT/corpus_model_dir" "$OUT/tmp"
export MOEC_FUZZ_TMP=$OUT/tmp
# the model directory target writes its own seeds (its tiny model as f32, bf16, f16, fp8 and bf16p)
MOEC_FUZZ_WRITE_SEEDS=$OUT/seed_model_dir "$OUT/fuzz_model_dir" > "$OUT/fuzz_model_dir.seeds.log" 2>&1 &&
    [ "$(ls "$OUT/seed_model_dir" | wc -l)" = 5 ] && ok "fuzz_model_dir seeds: f32, bf16, f16, fp8, bf16p" ||
    { ko "fuzz_model_dir seeds"; cat "$OUT/fuzz_model_dir.seeds.log"; }
"$ROOT/$BUILD/tests/test_gguf" write-sample "$OUT/seed_gguf/moec_sample.gguf" 2> /dev/null ||
    echo "note: $BUILD/tests/test_gguf missing; gguf seeds from Python only"
"$PY" - "$OUT/seed_gguf" "$OUT/seed_st" "$OUT/seed_gguf_model" <<'PYEOF' || echo "note: Python seeds not written"
import sys, os, numpy as np
d_gguf, d_st, d_model = sys.argv[1], sys.argv[2], sys.argv[3]
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
    # tiny llama-family models for fuzz_gguf_model (< 8 KB each): dense (F32/F16/BF16/Q8_0 mixed), MoE (stacked
    # experts) and qwen2; D = 32 (Q8_0 rows are blocks of 32), 2 heads of 8, 1 KV head
    rng = np.random.default_rng(1)
    def model(path, moe, arch="llama"):
        D, V, F, H, G, Dh, E = 32, 6, 8, 2, 1, 8, 2
        w = gguf.GGUFWriter(path, arch=arch)
        for k, v in (("block_count", 1), ("embedding_length", D), ("feed_forward_length", F),
                     ("attention.head_count", H), ("attention.head_count_kv", G), ("context_length", 8),
                     ("attention.key_length", Dh), ("attention.value_length", Dh)):
            w.add_uint32(f"{arch}.{k}", v)
        w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
        if moe:
            w.add_uint32(f"{arch}.expert_count", E); w.add_uint32(f"{arch}.expert_used_count", 1)
        r = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)
        q8 = lambda x: w.add_tensor(name, gguf.quants.quantize(x, Q.Q8_0), raw_dtype=Q.Q8_0)
        for name, x, kind in (("token_embd.weight", r(V, D), "q8"), ("output_norm.weight", r(D) + 1, "f32"),
                              ("blk.0.attn_norm.weight", r(D) + 1, "f32"), ("blk.0.attn_q.weight", r(H * Dh, D), "f16"),
                              ("blk.0.attn_k.weight", r(G * Dh, D), "q8"), ("blk.0.attn_v.weight", r(G * Dh, D), "bf16"),
                              ("blk.0.attn_output.weight", r(D, H * Dh), "f16"), ("blk.0.ffn_norm.weight", r(D) + 1, "f32")):
            if kind == "q8": q8(x)
            elif kind == "bf16": w.add_tensor(name, gguf.quants.quantize(x, Q.BF16), raw_dtype=Q.BF16)
            else: w.add_tensor(name, x.astype(np.float16) if kind == "f16" else x)
        if moe:
            name = "blk.0.ffn_gate_inp.weight"; w.add_tensor(name, r(E, D))
            for name, x in (("blk.0.ffn_gate_exps.weight", r(E, F, D)), ("blk.0.ffn_up_exps.weight", r(E, F, D))):
                q8(x)
            w.add_tensor("blk.0.ffn_down_exps.weight", r(E, D, F).astype(np.float16))
        else:
            for name, x in (("blk.0.ffn_gate.weight", r(F, D)), ("blk.0.ffn_up.weight", r(F, D))):
                q8(x)
            w.add_tensor("blk.0.ffn_down.weight", r(D, F).astype(np.float16))
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    os.makedirs(d_model, exist_ok=True)
    # a SentencePiece-style tokenizer with byte fallback and no tensors (the target imports it, then refuses the model)
    w = gguf.GGUFWriter(os.path.join(d_model, "tokenizer.gguf"), arch="llama")
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_array("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] +
                ["\u2581H", "i", "\u2581", "H", "\u2581Hi"])
    w.add_array("tokenizer.ggml.scores", [0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -0.5])
    w.add_array("tokenizer.ggml.token_type", [2, 3, 3] + [6] * 256 + [1] * 5)
    w.add_array("tokenizer.ggml.merges", ["\u2581 H", "\u2581H i"])
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    model(os.path.join(d_model, "dense.gguf"), False)
    model(os.path.join(d_model, "moe.gguf"), True)
    model(os.path.join(d_model, "qwen2.gguf"), False, "qwen2")
    # ggml's block types (the files users download): D = 256 (K types are blocks of 256), raw random blocks
    D, V, F, H, Dh = 256, 6, 4, 2, 4  # < 16 KB, the fuzzer's -max_len
    w = gguf.GGUFWriter(os.path.join(d_model, "blocks.gguf"), arch="llama")
    for k, v in (("block_count", 1), ("embedding_length", D), ("feed_forward_length", F), ("attention.head_count", H),
                 ("attention.head_count_kv", 1), ("context_length", 8), ("attention.key_length", Dh),
                 ("attention.value_length", Dh)):
        w.add_uint32(f"llama.{k}", v)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    def blocks(name, rows, qt):
        blk, bb = gguf.GGML_QUANT_SIZES[qt]
        raw = rng.integers(0, 256, size=(rows, D // blk * bb), dtype=np.uint8)
        w.add_tensor(name, raw, raw_dtype=qt)  # shape from the bytes: [rows, D]
    blocks("token_embd.weight", V, Q.Q4_K)
    for name, rows, qt in (("blk.0.attn_q.weight", H * Dh, Q.Q6_K), ("blk.0.attn_k.weight", Dh, Q.Q5_K),
                           ("blk.0.attn_v.weight", Dh, Q.Q3_K), ("blk.0.ffn_gate.weight", F, Q.Q2_K),
                           ("blk.0.ffn_up.weight", F, Q.Q4_0), ("output.weight", V, Q.Q5_1)):
        blocks(name, rows, qt)
    r = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)
    for name, x in (("output_norm.weight", r(D) + 1), ("blk.0.attn_norm.weight", r(D) + 1),
                    ("blk.0.ffn_norm.weight", r(D) + 1), ("blk.0.attn_output.weight", r(D, H * Dh)),
                    ("blk.0.ffn_down.weight", r(D, F))):
        w.add_tensor(name, x.astype(np.float16))
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
run() { # $1 = target, $2 = corpus dir, $3 = seed dir, $4 = largest input (16384)
    (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "./$1" -max_total_time="$SECONDS_EACH" -max_len="${4:-16384}" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$OUT/$1-" "$2" "$3" > "$OUT/$1.log" 2>&1)
}
for t in gguf:corpus_gguf:seed_gguf safetensors:corpus_st:seed_st gguf_model:corpus_gguf_model:seed_gguf_model \
         model_dir:corpus_model_dir:seed_model_dir:65536; do
    IFS=: read -r name corpus seed maxlen <<< "$t"
    if run "fuzz_$name" "$OUT/$corpus" "$OUT/$seed" "$maxlen"; then
        runs=$(grep -Eo 'Done [0-9]+ runs' "$OUT/fuzz_$name.log" | grep -Eo '[0-9]+' || echo "?")
        ok "fuzz_$name: $runs inputs in ${SECONDS_EACH}s, no crash, leak or undefined behaviour"
    else
        ko "fuzz_$name found a problem (log: $OUT/fuzz_$name.log)"; grep -E "ERROR|runtime error|SUMMARY|Test unit written" "$OUT/fuzz_$name.log" | head -10
    fi
done

rm -rf "$OUT/tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
