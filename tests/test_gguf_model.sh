#!/usr/bin/env bash
# test_gguf_model.sh — moec model <-> llama.cpp GGUF (src/io/gguf_model.h), checked with the `gguf` package:
#   * a small dense (tied) and MoE (untied) model, made by `moec train` and given large random weights, export
#     to GGUF with llama.cpp's tensor names, shapes (ne) and hyper-parameter keys, as convert_hf_to_gguf.py
#     writes them for the same Hugging Face directory (expected lists written out below from llama.cpp's
#     naming rules, not from moec's output); norms and router F32, matrices in the chosen type;
#   * attn_q / attn_k rows equal the Hugging Face weights permuted by convert_hf_to_gguf.py's formula
#     (reimplemented in numpy here), every other tensor equals its safetensors source;
#   * tokenizer keys: model gpt2, pre gpt-2, tokens in tokenizer.json spelling, merges as in tokenizer.json;
#   * import(export(M)) gives the same logits as M (`moec forward`): bit-exact for F32, within a relative bound
#     for F16 (1e-3), BF16 (1e-2) and Q8_0 (2e-2), and the imported Q8_0 weights equal gguf.quants' decoding;
#   * λ != 0 is refused unless inexact export is asked for (then a warning), a dense/MoE mix is refused.
# Export/import run through tests/test_gguf's helper modes. Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/${MOEC_BUILD:-build}
MOEC=$B/moec
H=$B/tests/test_gguf
PY=${MOEC_PYTHON:-$HOME/.cache/moec/venv/bin/python}
SHARED=$ROOT/../shared
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

head -c 100000 "$SHARED/data/tinyshakespeare.txt" > "$TMP/corpus.txt"
cat > "$TMP/moe.json" <<'EOF'
{"vocab_size": 320, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "intermediate_size": 64, "max_position_embeddings": 128, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
 "tie_word_embeddings": false, "num_local_experts": 4, "num_experts_per_tok": 2}
EOF
cat > "$TMP/dense.json" <<'EOF'
{"vocab_size": 320, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "intermediate_size": 96, "max_position_embeddings": 128, "rope_theta": 500000.0, "rms_norm_eps": 1e-6,
 "tie_word_embeddings": true}
EOF
for m in moe dense; do
    "$MOEC" train --data "$TMP/corpus.txt" --out "$TMP/$m" --steps 2 --config "$TMP/$m.json" --vocab 300 --batch 2 \
        --seq 32 --threads 2 --quiet 1 > "$TMP/train_$m.log" 2>&1 || { ko "moec train $m"; cat "$TMP/train_$m.log"; }
done
# Trained for 2 steps the weights are near their small init: make every tensor matter.
"$PY" - "$TMP/moe/model.safetensors" "$TMP/dense/model.safetensors" <<'PYEOF'
import sys, numpy as np
from safetensors.numpy import load_file, save_file
rng = np.random.default_rng(3)
for p in sys.argv[1:]:
    w = load_file(p)
    w = {k: (rng.normal(0, 0.25, v.shape) if v.ndim == 2 else rng.uniform(0.5, 1.5, v.shape)).astype(np.float32)
         for k, v in w.items()}
    save_file(w, p, metadata={"format": "pt"})
PYEOF

IDS="1 5 9 200 33 7 250 3 3 81 17 42 0 299 64 128 17 17 5"
for m in moe dense; do
    "$MOEC" forward --model "$TMP/$m" --ids "$IDS" --out "$TMP/$m.npy" > /dev/null 2>&1 || ko "forward $m"
    for t in f32 f16 bf16 q8_0; do
        if "$H" export "$TMP/$m" "$TMP/$m.$t.gguf" "$t" 2> "$TMP/exp.log" && "$H" import "$TMP/$m.$t.gguf" "$TMP/imp_${m}_$t" &&
           "$MOEC" forward --model "$TMP/imp_${m}_$t" --ids "$IDS" --out "$TMP/${m}_$t.npy" > /dev/null 2>&1; then :
        else ko "export/import $m $t"; cat "$TMP/exp.log"; fi
    done
done

# ---------------------------------------------------------------- names, shapes, keys, values
if "$PY" - "$TMP" <<'PYEOF'
import sys, json, numpy as np, gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import load_file
d = sys.argv[1]; bad = []
def permute(w, n_head):  # convert_hf_to_gguf.py's LlamaModel.permute, for q (n_head) and k (n_kv_head)
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
for m in ("moe", "dense"):
    cfg = json.load(open(f"{d}/{m}/config.json")); tokj = json.load(open(f"{d}/{m}/tokenizer.json"))
    hf = load_file(f"{d}/{m}/model.safetensors")
    D, V, H, G, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    Dh = D // H; E = cfg.get("num_local_experts", 0); F = cfg["intermediate_size"]
    # llama.cpp's names and ne (reversed PyTorch shapes) for this model
    exp = {"token_embd.weight": [D, V], "output_norm.weight": [D]}
    if not cfg["tie_word_embeddings"]: exp["output.weight"] = [D, V]
    for i in range(L):
        exp.update({f"blk.{i}.attn_norm.weight": [D], f"blk.{i}.attn_q.weight": [D, H * Dh], f"blk.{i}.attn_k.weight": [D, G * Dh],
                    f"blk.{i}.attn_v.weight": [D, G * Dh], f"blk.{i}.attn_output.weight": [H * Dh, D], f"blk.{i}.ffn_norm.weight": [D]})
        if E: exp.update({f"blk.{i}.ffn_gate_inp.weight": [D, E], f"blk.{i}.ffn_gate_exps.weight": [D, F, E],
                          f"blk.{i}.ffn_up_exps.weight": [D, F, E], f"blk.{i}.ffn_down_exps.weight": [F, D, E]})
        else: exp.update({f"blk.{i}.ffn_gate.weight": [D, F], f"blk.{i}.ffn_up.weight": [D, F], f"blk.{i}.ffn_down.weight": [F, D]})
    keys = {"general.architecture": "llama", "llama.block_count": L, "llama.context_length": cfg["max_position_embeddings"],
            "llama.embedding_length": D, "llama.feed_forward_length": F, "llama.attention.head_count": H,
            "llama.attention.head_count_kv": G, "llama.rope.freq_base": cfg["rope_theta"], "llama.vocab_size": V,
            "llama.attention.layer_norm_rms_epsilon": cfg["rms_norm_eps"], "llama.rope.dimension_count": Dh,
            "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2"}
    if E: keys.update({"llama.expert_count": E, "llama.expert_used_count": cfg["num_experts_per_tok"]})
    for t, qt in (("f32", Q.F32), ("f16", Q.F16), ("bf16", Q.BF16), ("q8_0", Q.Q8_0)):
        r = gguf.GGUFReader(f"{d}/{m}.{t}.gguf")
        for k, v in keys.items():
            got = r.fields[k].contents() if k in r.fields else None
            if got != v and not (isinstance(v, float) and got is not None and abs(got - v) <= 1e-6 * abs(v)): bad.append((m, t, k, got, v))
        ftype = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7}[t]
        if r.fields["general.file_type"].contents() != ftype: bad.append((m, t, "file_type"))
        tens = {x.name: x for x in r.tensors}
        if set(tens) != set(exp): bad.append((m, t, "names", sorted(set(tens) ^ set(exp))))
        for n, ne in exp.items():
            x = tens.get(n)
            if x is None: continue
            want_t = Q.F32 if len(ne) == 1 or "gate_inp" in n else qt
            if list(map(int, x.shape)) != ne or x.tensor_type != want_t: bad.append((m, t, n, list(x.shape), x.tensor_type.name))
        toks = r.fields["tokenizer.ggml.tokens"].contents()
        vocab = sorted(tokj["model"]["vocab"].items(), key=lambda kv: kv[1])
        if toks[:len(vocab)] != [k for k, _ in vocab] or any(not s.startswith("[PAD") for s in toks[len(vocab):]) or len(toks) != V:
            bad.append((m, t, "tokens"))
        merges = [mm if isinstance(mm, str) else " ".join(mm) for mm in tokj["model"]["merges"]]
        if r.fields["tokenizer.ggml.merges"].contents() != merges: bad.append((m, t, "merges"))
        if t != "f32": continue
        # values: HF tensors, q/k permuted the way llama.cpp expects
        def hfw(n): return hf[n]
        ref = {"token_embd.weight": hfw("model.embed_tokens.weight"), "output_norm.weight": hfw("model.norm.weight")}
        if not cfg["tie_word_embeddings"]: ref["output.weight"] = hfw("lm_head.weight")
        for i in range(L):
            p = f"model.layers.{i}."
            ref.update({f"blk.{i}.attn_q.weight": permute(hfw(p + "self_attn.q_proj.weight"), H),
                        f"blk.{i}.attn_k.weight": permute(hfw(p + "self_attn.k_proj.weight"), G),
                        f"blk.{i}.attn_v.weight": hfw(p + "self_attn.v_proj.weight"), f"blk.{i}.attn_output.weight": hfw(p + "self_attn.o_proj.weight"),
                        f"blk.{i}.attn_norm.weight": hfw(p + "input_layernorm.weight"), f"blk.{i}.ffn_norm.weight": hfw(p + "post_attention_layernorm.weight")})
            if E:
                ref[f"blk.{i}.ffn_gate_inp.weight"] = hfw(p + "block_sparse_moe.gate.weight")
                for g, w in (("gate", "w1"), ("down", "w2"), ("up", "w3")):
                    ref[f"blk.{i}.ffn_{g}_exps.weight"] = np.stack([hfw(p + f"block_sparse_moe.experts.{e}.{w}.weight") for e in range(E)])
            else:
                for g, w in (("gate", "gate"), ("down", "down"), ("up", "up")): ref[f"blk.{i}.ffn_{g}.weight"] = hfw(p + f"mlp.{w}_proj.weight")
        for n, v in ref.items():
            if not np.array_equal(np.asarray(tens[n].data).reshape(v.shape), v): bad.append((m, "value", n))
    # Q8_0: moec's import decodes to exactly what gguf.quants decodes
    r = gguf.GGUFReader(f"{d}/{m}.q8_0.gguf"); tens = {x.name: x for x in r.tensors}
    imp = load_file(f"{d}/imp_{m}_q8_0/model.safetensors")
    dq = gguf.quants.dequantize(tens["token_embd.weight"].data, Q.Q8_0).reshape(V, D)
    if not np.array_equal(dq, imp["model.embed_tokens.weight"]): bad.append((m, "q8_0 embed decode"))
    name = "blk.0.ffn_down_exps.weight" if E else "blk.0.ffn_down.weight"
    dq = gguf.quants.dequantize(tens[name].data, Q.Q8_0)
    src = np.stack([imp[f"model.layers.0.block_sparse_moe.experts.{e}.w2.weight"] for e in range(E)]) if E else imp["model.layers.0.mlp.down_proj.weight"]
    if not np.array_equal(dq.reshape(src.shape), src): bad.append((m, "q8_0 ffn_down decode"))
    dq = gguf.quants.dequantize(tens["blk.1.attn_k.weight"].data, Q.Q8_0).reshape(G * Dh, D)
    if not np.array_equal(permute(imp["model.layers.1.self_attn.k_proj.weight"], G), dq): bad.append((m, "q8_0 attn_k decode"))
print("ok" if not bad else bad[:10])
sys.exit(1 if bad else 0)
PYEOF
then ok "GGUF names, ne, types, llama.* and tokenizer keys as llama.cpp expects; q/k permuted as convert_hf_to_gguf.py; Q8_0 decodes as gguf.quants"
else ko "GGUF layout / values"; fi

# ---------------------------------------------------------------- logits after import
# Oracle for the lossy types: the same model with its matrices rounded by numpy (F16) / gguf.quants (BF16, Q8_0)
# and norms, biases and router kept, which is what the GGUF holds: import(export(M)) must match it bit for bit.
"$PY" - "$TMP" <<'PYEOF'
import sys, os, shutil, numpy as np, gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import load_file, save_file
d = sys.argv[1]
for m in ("moe", "dense"):
    w = load_file(f"{d}/{m}/model.safetensors")
    for t in ("f16", "bf16", "q8_0"):
        out = f"{d}/ref_{m}_{t}"; os.makedirs(out, exist_ok=True)
        for f in ("config.json", "tokenizer.json"): shutil.copy(f"{d}/{m}/{f}", out)
        def rnd(v):
            if t == "f16": return v.astype(np.float16).astype(np.float32)
            qt = Q.BF16 if t == "bf16" else Q.Q8_0
            return gguf.quants.dequantize(gguf.quants.quantize(v, qt), qt).reshape(v.shape)
        save_file({k: (v if v.ndim == 1 or "gate.weight" in k and "experts" not in k else rnd(v)) for k, v in w.items()},
                  f"{out}/model.safetensors", metadata={"format": "pt"})
PYEOF
for m in moe dense; do for t in f16 bf16 q8_0; do
    "$MOEC" forward --model "$TMP/ref_${m}_$t" --ids "$IDS" --out "$TMP/ref_${m}_$t.npy" > /dev/null 2>&1 || ko "forward ref $m $t"
done; done
if "$PY" - "$TMP" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]; bad = []
for m in ("moe", "dense"):
    a = np.load(f"{d}/{m}.npy")
    for t in ("f32", "f16", "bf16", "q8_0"):
        b = np.load(f"{d}/{m}_{t}.npy")
        ref = a if t == "f32" else np.load(f"{d}/ref_{m}_{t}.npy")
        rel = float(np.abs(a - b).max() / np.abs(a).max())
        same = a.shape == b.shape and np.array_equal(b, ref)
        print(f"{m} {t}: logits {'equal' if same else 'DIFFER from'} the oracle's; drift from the fp32 model: "
              f"max|diff| / max|logit| = {rel:.2e}")
        if not same: bad.append((m, t))
sys.exit(1 if bad else 0)
PYEOF
then ok "import(export(M)) logits bit-equal: M for F32; M with matrices rounded by numpy/gguf.quants for F16/BF16/Q8_0"
else ko "logits after import differ"; fi
if cmp -s "$TMP/moe/tokenizer.json" "$TMP/imp_moe_f32/tokenizer.json" && cmp -s "$TMP/moe/config.json" "$TMP/imp_moe_f32/config.json"; then
    ok "import restores config.json (router settings via moec.* keys) and tokenizer.json byte for byte"
else ko "imported config.json / tokenizer.json differ"; diff "$TMP/moe/config.json" "$TMP/imp_moe_f32/config.json" | head; fi

# ---------------------------------------------------------------- refusals
sed -e 's/"moe_use_logits_norm":[^,]*,/"moe_use_logits_norm": true, "moe_gate_norm_std": 1.0,/' "$TMP/moe/config.json" > "$TMP/cfg.json"
mkdir -p "$TMP/lam" && cp "$TMP/moe/model.safetensors" "$TMP/lam/" && cp "$TMP/cfg.json" "$TMP/lam/config.json"
if ! "$H" export "$TMP/lam" "$TMP/lam.gguf" f32 2> "$TMP/err.txt" && grep -q "gate_lambda" "$TMP/err.txt" && [ ! -e "$TMP/lam.gguf" ] &&
   "$H" export "$TMP/lam" "$TMP/lam.gguf" f32 inexact 2> "$TMP/warn.txt" && grep -q "warning" "$TMP/warn.txt"; then
    ok "λ != 0 refused ($(head -c 90 "$TMP/err.txt")...), exported with a warning when inexact is allowed"
else ko "λ != 0 handling"; cat "$TMP/err.txt" "$TMP/warn.txt"; fi
# a model whose layer 0 stays dense (upcycled from the dense model at layer 1 only)
if "$MOEC" upcycle --model "$TMP/dense" --out "$TMP/mixed" --experts 4 --top-k 2 --layers 1 > /dev/null 2>&1 &&
   ! "$H" export "$TMP/mixed" "$TMP/mixed.gguf" f32 2> "$TMP/err2.txt" && grep -q "mixed" "$TMP/err2.txt"; then
    ok "mixed dense/MoE model refused ($(head -c 150 "$TMP/err2.txt"))"
else ko "mixed model not refused"; cat "$TMP/err2.txt"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
