#!/usr/bin/env bash
# test_upcycle.sh — `moec upcycle` (src/moe/upcycle.h) end to end:
#   * function preserved at step 0: dense models made by the real `transformers` library (untied and tied
#     embeddings) and the pretrained stories260K, upcycled with λ = 1 and λ = 0, random or zero gate, dropless or
#     with ample capacity (cf 4: no drops), all or some layers MoE: `moec forward` logits of the MoE model equal the
#     dense model's `moec forward` logits and transformers' logits (max|diff| < 1e-4); with expert noise they differ;
#   * transformers loads an upcycled directory (λ = 0, all layers MoE) as MixtralForCausalLM, same logits;
#   * memory: a ~310 MB dense model upcycles under an address-space limit (ulimit -v) smaller than the model file,
#     and the output has every tensor with its shape (the input is read with pread, the output streamed);
#   * bad input (an MoE model as input, a missing tensor, an existing --out, --experts 0, top-k > experts) gets a
#     one-line error, a non-zero exit, and leaves neither the output nor a temporary directory behind.
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

IDS="1 5 9 200 33 7 250 3 3 81 17 42 0 299 64 128"
STORIES_IDS="1 403 407 261 378 429 271 313 379 261 1 40 300 2 88 17 511 0 34 260"

# ---------------------------------------------------------------- dense models made by transformers
"$PY" - "$TMP" "$IDS" > "$TMP/gen.log" 2>&1 <<'PYEOF'
import sys, numpy as np, torch
from transformers import LlamaConfig, LlamaForCausalLM
out = sys.argv[1]; ids = [int(x) for x in sys.argv[2].split()]
for name, tied in (("dense", False), ("dense_tied", True)):
    torch.manual_seed(1 if tied else 0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2)
    m = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():  # transformers' init (std 0.02) makes the FFN nearly invisible: make it matter
        for p in m.parameters(): p.normal_(0, 0.2) if p.ndim == 2 else p.uniform_(0.5, 1.5)
    m.save_pretrained(f"{out}/{name}", safe_serialization=True)
    if not tied: m.save_pretrained(f"{out}/dense_sharded", safe_serialization=True, max_shard_size="100KB")
    with torch.no_grad(): np.save(f"{out}/{name}.hf.npy", m(torch.tensor([ids])).logits[0].numpy())
# the same untied model stored as bf16 and f16 (the upcycler converts while it reads, in chunks)
import shutil
from safetensors.torch import load_file, save_file
for dt, tag in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
    shutil.copytree(f"{out}/dense", f"{out}/dense_{tag}")
    t = {k: v.to(dt) for k, v in load_file(f"{out}/dense/model.safetensors").items()}
    save_file(t, f"{out}/dense_{tag}/model.safetensors", metadata={"format": "pt"})
PYEOF
[ -f "$TMP/dense/model.safetensors" ] && [ -f "$TMP/dense_tied/model.safetensors" ] ||
    { ko "transformers could not make the dense models"; cat "$TMP/gen.log"; }

# pairs to compare: "a.npy b.npy equal|differ label", checked by one Python run at the end
: > "$TMP/pairs.txt"
want() { echo "$1 $2 $3 $4" >> "$TMP/pairs.txt"; }

fwd() { # $1 model dir, $2 ids, $3 out.npy
    "$MOEC" forward --model "$1" --ids "$2" --out "$3" > "$3.log" 2>&1 || { echo "forward failed on $1:"; cat "$3.log"; }
}

n=0
for base in dense dense_tied; do
    fwd "$TMP/$base" "$IDS" "$TMP/$base.moec.npy"
    want "$TMP/$base.moec.npy" "$TMP/$base.hf.npy" equal "$base: moec forward == transformers"
    while read -r label flags; do
        n=$((n + 1))
        out="$TMP/up$n"
        # shellcheck disable=SC2086
        if "$MOEC" upcycle --model "$TMP/$base" --out "$out" $flags > "$out.log" 2>&1; then
            fwd "$out" "$IDS" "$out.npy"
            if [ "$label" = noise ]; then
                want "$out.npy" "$TMP/$base.moec.npy" differ "$base upcycled with expert noise differs from dense"
            else
                want "$out.npy" "$TMP/$base.moec.npy" equal "$base upcycled ($label: $flags) == dense moec"
                want "$out.npy" "$TMP/$base.hf.npy" equal "$base upcycled ($label) == transformers dense"
            fi
        else
            ko "$base upcycle $flags"; cat "$out.log"
        fi
    done <<'EOF'
lambda1 --experts 4 --top-k 2 --lambda 1 --gate random --seed 3
lambda0 --experts 4 --top-k 2 --lambda 0 --gate random --gate-std 0.5
zerogate --experts 8 --top-k 3 --gate zero
capacity4 --experts 4 --top-k 2 --capacity-factor 4.0 --gate-std 1.0
layers --experts 4 --top-k 1 --layers 0,2 --lambda 1
noise --experts 4 --top-k 2 --noise 0.05
EOF
done
# 16-bit dense weights: the upcycled fp32 model equals the dense model read by moec forward
for tag in bf16 f16; do
    fwd "$TMP/dense_$tag" "$IDS" "$TMP/dense_$tag.npy"
    if "$MOEC" upcycle --model "$TMP/dense_$tag" --out "$TMP/up_$tag" --experts 4 > "$TMP/up_$tag.log" 2>&1; then
        fwd "$TMP/up_$tag" "$IDS" "$TMP/up_$tag.npy"
        want "$TMP/up_$tag.npy" "$TMP/dense_$tag.npy" equal "$tag dense weights upcycled == dense moec"
    else ko "upcycle $tag"; cat "$TMP/up_$tag.log"; fi
done
# a sharded checkpoint (model.safetensors.index.json)
if [ -f "$TMP/dense_sharded/model.safetensors.index.json" ] &&
   "$MOEC" upcycle --model "$TMP/dense_sharded" --out "$TMP/up_sharded" --experts 4 > "$TMP/up_sharded.log" 2>&1; then
    fwd "$TMP/up_sharded" "$IDS" "$TMP/up_sharded.npy"
    want "$TMP/up_sharded.npy" "$TMP/dense.moec.npy" equal "sharded dense checkpoint upcycled == dense moec"
else ko "upcycle a sharded checkpoint"; ls "$TMP/dense_sharded"; cat "$TMP/up_sharded.log"; fi
# the checked-in pretrained model: dense moec == upcycled moec
fwd "$SHARED/models/stories260K/hf" "$STORIES_IDS" "$TMP/stories.npy"
if "$MOEC" upcycle --model "$SHARED/models/stories260K/hf" --out "$TMP/stories_moe" --experts 8 --top-k 2 --gate-std 0.5 \
    > "$TMP/stories_up.log" 2>&1; then
    fwd "$TMP/stories_moe" "$STORIES_IDS" "$TMP/stories_moe.npy"
    want "$TMP/stories_moe.npy" "$TMP/stories.npy" equal "stories260K upcycled (8 experts, top-2, λ=1) == dense"
else ko "upcycle stories260K"; cat "$TMP/stories_up.log"; fi
# Mixtral: λ = 0 (plain softmax gate, as Mixtral), all layers MoE
"$MOEC" upcycle --model "$TMP/dense" --out "$TMP/mixtral" --experts 4 --top-k 2 --lambda 0 --gate-std 0.3 \
    > "$TMP/mixtral.log" 2>&1 || { ko "upcycle for Mixtral"; cat "$TMP/mixtral.log"; }
if grep -q upcycled_from "$TMP/up1/model.safetensors" 2>/dev/null; then ok "model.safetensors metadata names the dense model"
else ko "upcycled_from metadata missing"; fi
if grep -q '"MixtralForCausalLM"' "$TMP/up1/config.json" && grep -qE '"num_local_experts":[[:space:]]*4,' "$TMP/up1/config.json"; then
    ok "config.json is a Mixtral config with 4 experts"
else ko "upcycled config.json"; cat "$TMP/up1/config.json"; fi

"$PY" - "$TMP" "$IDS" > "$TMP/check.log" 2>&1 <<'PYEOF'
import sys, numpy as np
tmp, ids = sys.argv[1], [int(x) for x in sys.argv[2].split()]
for line in open(f"{tmp}/pairs.txt"):
    a, b, how, label = line.rstrip("\n").split(" ", 3)
    try:
        x, y = np.load(a), np.load(b)
        d = float(np.abs(x - y).max()) if x.shape == y.shape else float("inf")
    except Exception as e:
        print(f"FAIL {label}: {e}"); continue
    good = d < 1e-4 if how == "equal" else (x.shape == y.shape and d > 1e-3)
    print(f"{'PASS' if good else 'FAIL'} {label} (max|diff| {d:.2e})")
try:
    import torch
    from transformers import MixtralForCausalLM
    m = MixtralForCausalLM.from_pretrained(f"{tmp}/mixtral", dtype=torch.float32).eval()
    with torch.no_grad(): logits = m(torch.tensor([ids])).logits[0].numpy()
    d = float(np.abs(logits - np.load(f"{tmp}/dense.hf.npy")).max())
    print(f"{'PASS' if d < 1e-4 else 'FAIL'} transformers loads the upcycled dir as MixtralForCausalLM, logits == dense (max|diff| {d:.2e})")
except Exception as e:
    print(f"FAIL transformers Mixtral load: {type(e).__name__}: {e}")
PYEOF
grep -E '^(PASS|FAIL) ' "$TMP/check.log"
pass=$((pass + $(grep -c '^PASS ' "$TMP/check.log")))
fail=$((fail + $(grep -c '^FAIL ' "$TMP/check.log")))
grep -qE '^(PASS|FAIL) .*Mixtral' "$TMP/check.log" || { ko "comparison script did not finish"; tail -20 "$TMP/check.log"; }

# ---------------------------------------------------------------- memory: model larger than the address-space limit
if grep -qa __asan_init "$MOEC"; then
    echo "SKIP memory-limit check: sanitizer builds reserve terabytes of shadow address space"
else
    "$PY" - "$TMP/big" <<'PYEOF'
import sys, os, json, numpy as np
from safetensors.numpy import save_file
d = sys.argv[1]; os.makedirs(d)
D, F, L, V = 1024, 2048, 6, 8192
cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=V, hidden_size=D, intermediate_size=F,
           num_hidden_layers=L, num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=256,
           rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu")
json.dump(cfg, open(f"{d}/config.json", "w"))
rng = np.random.default_rng(0)
r = lambda *s: rng.standard_normal(s, dtype=np.float32) * np.float32(0.02)
t = {"model.embed_tokens.weight": r(V, D), "model.norm.weight": np.ones(D, np.float32), "lm_head.weight": r(V, D)}
for l in range(L):
    p = f"model.layers.{l}."
    for n in ("q", "k", "v", "o"): t[p + f"self_attn.{n}_proj.weight"] = r(D, D)
    t[p + "input_layernorm.weight"] = np.ones(D, np.float32); t[p + "post_attention_layernorm.weight"] = np.ones(D, np.float32)
    t[p + "mlp.gate_proj.weight"] = r(F, D); t[p + "mlp.up_proj.weight"] = r(F, D); t[p + "mlp.down_proj.weight"] = r(D, F)
save_file(t, f"{d}/model.safetensors", metadata={"format": "pt"})
PYEOF
    size_kb=$(( $(stat -c %s "$TMP/big/model.safetensors") / 1024 ))
    LIMIT_KB=200000
    if [ "$size_kb" -le "$LIMIT_KB" ]; then ko "memory test model ($size_kb KB) is not larger than the limit"; fi
    # the limit is real: loading the whole model (moec forward) under it fails
    if (ulimit -v $LIMIT_KB; "$MOEC" forward --model "$TMP/big" --ids "1 2 3" > /dev/null 2>&1); then
        ko "moec forward loaded a $size_kb KB model under ulimit -v $LIMIT_KB: the limit proves nothing"
    else ok "a $size_kb KB model cannot be loaded whole under ulimit -v $LIMIT_KB"; fi
    if (ulimit -v $LIMIT_KB; "$MOEC" upcycle --model "$TMP/big" --out "$TMP/big_moe" --experts 2 --top-k 1 --noise 0.01) \
        > "$TMP/big.log" 2>&1 &&
       "$PY" - "$TMP/big" "$TMP/big_moe" <<'PYEOF'
import sys, numpy as np
from safetensors import safe_open
dense, moe = sys.argv[1], sys.argv[2]
D, F, L, V, E = 1024, 2048, 6, 8192, 2
want = {"model.embed_tokens.weight": [V, D], "model.norm.weight": [D], "lm_head.weight": [V, D]}
for l in range(L):
    p = f"model.layers.{l}."
    for n in ("q", "k", "v", "o"): want[p + f"self_attn.{n}_proj.weight"] = [D, D]
    want[p + "input_layernorm.weight"] = [D]; want[p + "post_attention_layernorm.weight"] = [D]
    want[p + "block_sparse_moe.gate.weight"] = [E, D]
    for e in range(E):
        q = p + f"block_sparse_moe.experts.{e}."
        want[q + "w1.weight"] = [F, D]; want[q + "w3.weight"] = [F, D]; want[q + "w2.weight"] = [D, F]
with safe_open(f"{moe}/model.safetensors", "numpy") as f, safe_open(f"{dense}/model.safetensors", "numpy") as g:
    got = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    assert got == want, f"tensors differ: missing {set(want) - set(got)}, extra {set(got) - set(want)}"
    w = f.get_tensor("model.layers.5.block_sparse_moe.experts.1.w2.weight") - g.get_tensor("model.layers.5.mlp.down_proj.weight")
    assert abs(w.std() - 0.01) < 1e-3, w.std()  # the dense copy plus the requested noise
    assert np.array_equal(f.get_tensor("lm_head.weight"), g.get_tensor("lm_head.weight"))
    assert f.metadata().get("format") == "pt"
print(f"{len(got)} tensors with the right shapes")
PYEOF
    then ok "a $size_kb KB dense model upcycles under ulimit -v $LIMIT_KB (output: every tensor, right shapes)"
    else ko "upcycle under ulimit -v $LIMIT_KB"; cat "$TMP/big.log"; fi
    rm -rf "$TMP/big" "$TMP/big_moe"
fi

# ---------------------------------------------------------------- bad input
"$PY" - "$TMP/dense" "$TMP/missing" <<'PYEOF'
import sys, shutil
from safetensors.numpy import load_file, save_file
shutil.copytree(sys.argv[1], sys.argv[2])
t = load_file(f"{sys.argv[2]}/model.safetensors"); del t["model.layers.1.mlp.up_proj.weight"]
save_file(t, f"{sys.argv[2]}/model.safetensors", metadata={"format": "pt"})
PYEOF
mkdir -p "$TMP/exists"
bad() { # $1 label, $2 expected substring of the error, then the arguments
    local label=$1 expect=$2; shift 2
    local out=$TMP/bad_out
    "$MOEC" upcycle "$@" > "$TMP/bad.out" 2> "$TMP/bad.err"
    local rc=$?
    local leftovers; leftovers=$(find "$TMP" -maxdepth 1 -name '*.tmp-*' | wc -l)
    if [ $rc -ne 0 ] && [ "$(wc -l < "$TMP/bad.err")" -eq 1 ] && grep -q "^moec: error: .*$expect" "$TMP/bad.err" &&
       [ ! -e "$out" ] && [ "$leftovers" -eq 0 ]; then
        ok "$label: $(cat "$TMP/bad.err")"
    else
        ko "$label (rc $rc, $leftovers temporary dirs left)"; cat "$TMP/bad.err"
    fi
}
bad "MoE model as input" "already an MoE model" --model "$TMP/up1" --out "$TMP/bad_out" --experts 4
bad "missing dense tensor" "up_proj.weight' is missing" --model "$TMP/missing" --out "$TMP/bad_out" --experts 4
bad "--experts 0" "experts" --model "$TMP/dense" --out "$TMP/bad_out" --experts 0
bad "top-k > experts" "top-k" --model "$TMP/dense" --out "$TMP/bad_out" --experts 4 --top-k 5
bad "layer out of range" "layer 7" --model "$TMP/dense" --out "$TMP/bad_out" --experts 4 --layers 0,7
bad "not a model directory" "config.json" --model "$TMP/nowhere" --out "$TMP/bad_out" --experts 4
"$MOEC" upcycle --model "$TMP/dense" --out "$TMP/exists" --experts 4 > /dev/null 2> "$TMP/bad.err"
rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l < "$TMP/bad.err")" -eq 1 ] && grep -q "already exists" "$TMP/bad.err" &&
   [ -z "$(ls -A "$TMP/exists")" ] && [ "$(find "$TMP" -maxdepth 1 -name '*.tmp-*' | wc -l)" -eq 0 ]; then
    ok "existing --out refused and left untouched: $(cat "$TMP/bad.err")"
else ko "existing --out (rc $rc)"; cat "$TMP/bad.err"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
