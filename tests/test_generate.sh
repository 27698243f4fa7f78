#!/usr/bin/env bash
# test_generate.sh — `moec generate`, `moec perplexity` and `moec quantize` on the real pretrained stories260K
# (../shared/models/stories260K), whose golden outputs come from outside moec:
#   * greedy generation from BOS for 200 tokens reproduces llama2.c's output (greedy-200.txt) byte for byte —
#     this runs the KV cache, incremental decoding, the SentencePiece decoder and streaming text;
#   * stop strings (inside a token and across tokens) end the text just before the first occurrence, which is
#     computed independently from the golden text;
#   * a batch file decoded with continuous batching (more prompts than --batch slots, prompts of different
#     lengths, chunked prefill) gives every prompt the same text as running it alone;
#   * seeded sampling is reproducible, and different seeds differ;
#   * perplexity of the fp32 model on TinyStories equals the reference figure in the model's README (1.898
#     nats/token; moec scores 97,652 tokens where the README counts 97,569, so agreement to 0.01 is asked), and
#     the fp8 / bf16 / f16 copies written by `moec quantize` lose at most 0.05 / 0.005 / 0.001 nats (measured: see
#     README), and the Q8_0 GGUF export run in place at most 0.005;
#   * a prompt longer than the context, and bad sampling flags, are refused with a one-line error.
# Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
MOEC=$ROOT/${MOEC_BUILD:-build}/moec
PY=${MOEC_PYTHON:-$HOME/.cache/moec/venv/bin/python}
SHARED=$ROOT/../shared
ST=$SHARED/models/stories260K
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

M=$TMP/stories
mkdir -p "$M"
cp "$ST/hf/config.json" "$ST/hf/model.safetensors" "$M/"
"$PY" tests/llama2c_tokenizer.py convert "$ST/tok512.bin" "$M/tokenizer.json" >/dev/null || ko "tokenizer.json from tok512.bin"

# ---------------------------------------------------------------- greedy == llama2.c
"$MOEC" generate --model "$M" --prompt "" --max-tokens 200 --temperature 0 --stats 1 > "$TMP/greedy.txt" 2> "$TMP/greedy.err"
if cmp -s "$TMP/greedy.txt" "$ST/greedy-200.txt" || cmp -s <(head -c -1 "$TMP/greedy.txt") "$ST/greedy-200.txt"; then
    ok "greedy 200 tokens from BOS == llama2.c's greedy-200.txt"
else
    ko "greedy generation differs from greedy-200.txt"; diff "$TMP/greedy.txt" "$ST/greedy-200.txt" | head; cat "$TMP/greedy.err"
fi
# test.sh's AVX-512-emulated pass says which kernels must have run (the --stats line names them)
if [ -n "${MOEC_EXPECT_KERNELS:-}" ]; then
    if grep -q "; kernels $MOEC_EXPECT_KERNELS (" "$TMP/greedy.err"; then ok "the decode ran the $MOEC_EXPECT_KERNELS kernels"
    else ko "kernels: expected $MOEC_EXPECT_KERNELS"; cat "$TMP/greedy.err"; fi
fi
# same with a single thread and with a small prefill block on a prompt (the prompt is the golden text's start)
"$MOEC" generate --model "$M" --prompt "Once upon a time, there was a little girl named Lily." --max-tokens 60 \
    --temperature 0 --prefill-block 3 --threads 1 > "$TMP/cont1.txt" 2>&1
"$MOEC" generate --model "$M" --prompt "Once upon a time, there was a little girl named Lily." --max-tokens 60 \
    --temperature 0 > "$TMP/cont2.txt" 2>&1
if [ -s "$TMP/cont1.txt" ] && cmp -s "$TMP/cont1.txt" "$TMP/cont2.txt" &&
   "$PY" - "$TMP/cont1.txt" "$ST/greedy-200.txt" <<'PY'
import sys
got = open(sys.argv[1]).read().rstrip("\n")
gold = open(sys.argv[2]).read()
prompt = "Once upon a time, there was a little girl named Lily."
# greedy continuation of the golden text's own prefix must continue the golden text
assert gold.startswith(prompt + got[:40]), (got[:60], gold[len(prompt):len(prompt) + 60])
PY
then ok "prompt prefill in blocks of 3, 1 thread == one block, 2 threads; continues the golden text"
else ko "prefill blocks / continuation"; head -c 300 "$TMP/cont1.txt"; echo; head -c 300 "$TMP/cont2.txt"; fi

# ---------------------------------------------------------------- the same model as GGUF (moec's export, then run)
if "$MOEC" convert --to gguf --type f32 --model "$M" --out "$TMP/stories.gguf" > "$TMP/gguf.log" 2>&1 &&
   "$MOEC" generate --model "$TMP/stories.gguf" --prompt "" --max-tokens 200 --temperature 0 > "$TMP/greedy_gguf.txt" 2>> "$TMP/gguf.log" &&
   cmp -s "$TMP/greedy_gguf.txt" "$TMP/greedy.txt"; then
    ok "GGUF export run by moec (tokenizer from the GGUF): greedy text == greedy-200.txt"
else ko "generate from GGUF"; cat "$TMP/gguf.log"; head -c 200 "$TMP/greedy_gguf.txt"; fi

# ---------------------------------------------------------------- stop strings
for stop in "Lily" "upon a" "d, \"I" "park.\"" ; do
    "$MOEC" generate --model "$M" --prompt "" --max-tokens 200 --temperature 0 --stop "$stop" > "$TMP/stop.txt" 2>&1
    if "$PY" - "$TMP/stop.txt" "$ST/greedy-200.txt" "$stop" <<'PY'
import sys
got = open(sys.argv[1]).read()
gold, stop = open(sys.argv[2]).read(), sys.argv[3]
want = gold[: gold.index(stop)]
assert got.rstrip("\n") == want.rstrip("\n") and got.startswith(want), (got[-40:], want[-40:])
PY
    then ok "--stop '$stop' ends the text right before its first occurrence"
    else ko "--stop '$stop'"; tail -c 200 "$TMP/stop.txt"; fi
done

# ---------------------------------------------------------------- batch file, continuous batching
printf '%s\n' "Once upon a time" "Tom had a red" "" "The sun was hot and the dog" "Lily" "One day, a little bird named Bob wanted to fly high in the sky" > "$TMP/prompts.txt"
"$MOEC" generate --model "$M" --batch-file "$TMP/prompts.txt" --batch 2 --prefill-block 4 --max-tokens 40 \
    --temperature 0 > "$TMP/batch.jsonl" 2> "$TMP/batch.err"
: > "$TMP/alone.txt"
while IFS= read -r p; do
    [ -n "$p" ] || continue
    "$MOEC" generate --model "$M" --prompt "$p" --max-tokens 40 --temperature 0 >> "$TMP/alone.txt" 2>&1
done < "$TMP/prompts.txt"
if "$PY" - "$TMP/batch.jsonl" "$TMP/alone.txt" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
alone = open(sys.argv[2]).read().split("\n")
assert len(rows) == 5, len(rows)
by = {r["index"]: r for r in rows}
assert sorted(by) == [0, 1, 2, 3, 4]
for i in range(5):
    r = by[i]
    assert r["finish"] in ("length", "eos"), r
    assert r["generated_tokens"] <= 40
    # each alone-run prints its text then a newline; texts have no newline in 40 tokens of these prompts or
    # they are compared on the joined form
joined = "\n".join(by[i]["text"] for i in range(5)) + "\n"
assert joined == "\n".join(alone), (joined[:200], "\n".join(alone)[:200])
PY
then ok "batch file: 5 prompts on 2 slots (continuous batching, prefill blocks of 4) == each prompt alone"
else ko "batch file"; cat "$TMP/batch.err"; head -c 600 "$TMP/batch.jsonl"; fi

# ---------------------------------------------------------------- sampling
s1=$("$MOEC" generate --model "$M" --prompt "Once" --max-tokens 50 --temperature 0.9 --top-k 40 --top-p 0.95 --seed 7 2>&1)
s2=$("$MOEC" generate --model "$M" --prompt "Once" --max-tokens 50 --temperature 0.9 --top-k 40 --top-p 0.95 --seed 7 2>&1)
s3=$("$MOEC" generate --model "$M" --prompt "Once" --max-tokens 50 --temperature 0.9 --top-k 40 --top-p 0.95 --seed 8 2>&1)
if [ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$s1" != "$s3" ]; then ok "seeded sampling: same seed same text, other seed other text"
else ko "seeded sampling"; echo "$s1"; echo "$s3"; fi
r1=$("$MOEC" generate --model "$M" --prompt "" --max-tokens 120 --temperature 0 --repetition-penalty 1.5 2>&1)
if [ -n "$r1" ] && [ "$r1" != "$(head -c ${#r1} "$ST/greedy-200.txt")" ]; then ok "repetition penalty changes greedy output"
else ko "repetition penalty had no effect"; fi

# ---------------------------------------------------------------- perplexity, quantized copies
ppl() { "$MOEC" perplexity --model "$1" --data "$SHARED/data/tinystories-sample.txt" "${@:2}" 2>&1; }
P32=$(ppl "$M")
P32KV=$(ppl "$M" --kv f32)
"$MOEC" quantize --to fp8 --model "$M" --out "$TMP/s8" > /dev/null 2>&1 || ko "quantize fp8"
"$MOEC" quantize --to bf16 --model "$M" --out "$TMP/s16" > /dev/null 2>&1 || ko "quantize bf16"
"$MOEC" quantize --to f16 --model "$M" --out "$TMP/sh" > /dev/null 2>&1 || ko "quantize f16"
P8=$(ppl "$TMP/s8")
P16=$(ppl "$TMP/s16")
PH=$(ppl "$TMP/sh")
echo "fp32: $P32"; echo "fp32, fp32 KV cache: $P32KV"; echo "fp8:  $P8"; echo "bf16: $P16"; echo "f16:  $PH"
if "$PY" - "$P32" "$P8" "$P16" "$PH" "$P32KV" <<'PY'
import json, sys
a, b, c, h, k = (json.loads(x) for x in sys.argv[1:6])
# the default f16 KV cache against the exact fp32 one: rounding K and V to 11 significant bits moves the NLL by
# well under 1e-3 nats (its effect is measured, not zero)
assert 0 < abs(a["nll"] - k["nll"]) < 2e-4 and a["tokens"] == k["tokens"], (a, k)
assert abs(a["nll"] - 1.898) < 0.01, a
assert 0 <= b["nll"] - a["nll"] < 0.05, (a, b)
assert abs(c["nll"] - a["nll"]) < 0.005, (a, c)
assert abs(h["nll"] - a["nll"]) < 0.001, (a, h)
assert a["tokens"] == b["tokens"] == c["tokens"] == h["tokens"]
PY
then ok "perplexity: fp32 == README's 1.898 nats; fp8 within 0.05, bf16 within 0.005, f16 within 0.001; f16 KV cache within 2e-4 of fp32's"
else ko "perplexity"; fi
# llama.cpp's 8-bit format run in place from a GGUF (Q8_0 tensors, the tokenizer from the file as well)
"$MOEC" convert --to gguf --type q8_0 --model "$M" --out "$TMP/s.q8_0.gguf" > /dev/null 2>&1 || ko "convert q8_0"
PQ=$(ppl "$TMP/s.q8_0.gguf")
echo "q8_0 GGUF: $PQ"
if "$PY" - "$P32" "$PQ" <<'PY'
import json, sys
a, q = (json.loads(x) for x in sys.argv[1:3])
assert abs(q["nll"] - a["nll"]) < 0.005 and q["tokens"] == a["tokens"], (a, q)
PY
then ok "perplexity of the Q8_0 GGUF run in place within 0.005 nats of fp32, same tokens from the file's tokenizer"
else ko "perplexity q8_0 GGUF"; fi
g8=$("$MOEC" generate --model "$TMP/s8" --prompt "" --max-tokens 30 --temperature 0 2>&1)
if [ -n "$g8" ] && [ "${g8:0:16}" = "Once upon a time" ]; then ok "fp8 model generates: ${g8:0:60}"
else ko "fp8 generation: $g8"; fi
if [ -f "$TMP/s8/model.safetensors" ] && "$PY" - "$TMP/s8" "$M" <<'PY'
import json, sys
import struct
import numpy as np
def load_raw(path):  # safetensors read by hand: numpy has no float8 dtype, so F8_E4M3 comes back as uint8
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    dt = {"F32": np.float32, "F8_E4M3": np.uint8, "BF16": np.uint16}
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s: 8 + n + e], dtype=dt[v["dtype"]]).reshape(v["shape"])
        out[k + "/dtype"] = v["dtype"]
    return out
q = load_raw(sys.argv[1] + "/model.safetensors")
f = load_raw(sys.argv[2] + "/model.safetensors")
cfg = json.load(open(sys.argv[1] + "/config.json"))
assert cfg["quantization_config"]["config_groups"]["group_0"]["weights"]["strategy"] == "channel"
n8 = 0
for name, w in f.items():
    if name.endswith("/dtype"): continue
    if w.ndim == 2:
        assert q[name + "/dtype"] == "F8_E4M3", name
        # safetensors' numpy loader has no float8: read the bytes and decode E4M3 here, independently of moec
        raw = q[name].astype(np.int32)
        s, e, m = raw >> 7, (raw >> 3) & 15, raw & 7
        val = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e - 7.0)) * np.where(s == 1, -1, 1)
        scale = q[name + "_scale"]
        assert scale.shape == (w.shape[0], 1) and scale.dtype == np.float32
        deq = val * scale
        amax = np.abs(w).max(axis=1, keepdims=True)
        assert np.allclose(scale, amax / 448, rtol=1e-6)
        # E4M3 has 3 mantissa bits: relative error <= 2^-4 for normal values, abs <= 2^-10 * scale below
        err = np.abs(deq - w)
        assert np.all(err <= np.maximum(np.abs(w) * 2.0 ** -4, scale * 2.0 ** -10) + 1e-12), name
        n8 += 1
    else:
        assert q[name].dtype == np.float32 and np.array_equal(q[name], w), name
assert n8 > 0
PY
then ok "fp8 file: E4M3 + [rows,1] F32 weight_scale per weight (decoded by numpy), scale = amax/448, error <= half an ulp"
else ko "fp8 file layout"; fi

# ---------------------------------------------------------------- refusals
long=$(printf 'Once upon a time %.0s' $(seq 1 40))
out=$("$MOEC" generate --model "$M" --prompt "$long" --ctx 64 --max-tokens 5 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "context"; then ok "prompt longer than the context refused: $out"
else ko "long prompt: rc=$rc $out"; fi
out=$("$MOEC" generate --model "$M" --prompt "x" --top-p 1.5 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ]; then ok "--top-p 1.5 refused: $out"; else ko "top-p 1.5: $out"; fi
out=$("$MOEC" generate --model "$M" --prompt "x" --temperature -1 2>&1); rc=$?
if [ $rc -ne 0 ]; then ok "--temperature -1 refused: $out"; else ko "temperature -1: $out"; fi
out=$("$MOEC" quantize --to fp8 --model "$M" --out "$TMP/s8" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ -f "$TMP/s8/model.safetensors" ]; then ok "quantize refuses an existing --out: $out"; else ko "quantize over existing"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
