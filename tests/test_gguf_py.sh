#!/usr/bin/env bash
# test_gguf_py.sh — moec's GGUF container against the `gguf` PyPI package (llama.cpp's own Python reader and
# writer), both directions:
#   * a file moec writes (every KV type, F32/F16/BF16/Q8_0 and an opaque Q4_K tensor) is read by GGUFReader
#     with the same keys, types, values, tensor names, types, shapes and data (Q8_0 decoded by gguf.quants);
#   * a file GGUFWriter writes (every KV type, arrays, F32/F16/BF16/Q8_0 tensors, alignment 64) is read by moec
#     (tests/test_gguf dump) with the same values;
#   * moec's F16/BF16/Q8_0 encoders give the bytes numpy / gguf.quants give for the same fp32 tensors;
#   * moec's decoders of every block type it reads (io/ggml_quants.h) give gguf.quants' fp32 bits on random blocks.
# Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
HELPER=$ROOT/${MOEC_BUILD:-build}/tests/test_gguf
PY=${MOEC_PYTHON:-$HOME/.cache/moec/venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

if ! "$PY" -c "import gguf" 2>/dev/null; then
    echo "FAIL the gguf package is missing from $PY (scripts/deps.sh installs it)"; echo "0 passed, 1 failed"; exit 1
fi

# ---------------------------------------------------------------- moec writes, gguf reads
if "$HELPER" write-sample "$TMP/moec.gguf" && "$PY" - "$TMP/moec.gguf" <<'PYEOF'
import sys, numpy as np, gguf
from gguf import GGUFValueType as V, GGMLQuantizationType as Q
r = gguf.GGUFReader(sys.argv[1])
want = {  # key: (type, value) as tests/test_gguf.c writes them
    "general.architecture": (V.STRING, "test"), "k.u8": (V.UINT8, 200), "k.i8": (V.INT8, -100),
    "k.u16": (V.UINT16, 60000), "k.i16": (V.INT16, -30000), "k.u32": (V.UINT32, 4000000000),
    "k.i32": (V.INT32, -2000000000), "k.f32": (V.FLOAT32, 3.25), "k.bool": (V.BOOL, True),
    "k.u64": (V.UINT64, 0xfedcba9876543210), "k.i64": (V.INT64, -0x123456789abcdef), "k.f64": (V.FLOAT64, -2.5e300),
}
bad = []
for k, (t, v) in want.items():
    f = r.fields[k]
    if f.types != [t] or f.contents() != v: bad.append((k, f.types, f.contents()))
f = r.fields["k.str"]  # embedded NUL: compare bytes
if f.types != [V.STRING] or bytes(f.parts[-1]) != b"a\0b\xc3\xa9": bad.append("k.str")
arrays = {"a.i32": (V.INT32, [-1, 0, 7]), "a.f32": (V.FLOAT32, [0.5, float(np.float32(-1e-30))]),
          "a.bool": (V.BOOL, [True, False, True]), "a.f64": (V.FLOAT64, [1e-300]), "a.empty": (V.UINT64, []),
          "a.str": (V.STRING, ["", "Ġthe", "<0x0A>", "▁hi"])}
for k, (t, v) in arrays.items():
    f = r.fields[k]
    if f.types[0] != V.ARRAY or (v and f.types[-1] != t) or list(f.contents()) != v: bad.append((k, f.types, f.contents()))
q = (np.sin(np.arange(192, dtype=np.float64)).astype(np.float32) * (np.arange(192) % 7)).astype(np.float32)
tens = {t.name: t for t in r.tensors}
exp = {"t.f32": (Q.F32, [3, 2]), "t.f16": (Q.F16, [5]), "t.bf16": (Q.BF16, [2, 1, 2]), "t.q8_0": (Q.Q8_0, [64, 3]),
       "t.q4_k": (Q.Q4_K, [256])}
for n, (ty, shape) in exp.items():
    t = tens[n]
    if t.tensor_type != ty or list(map(int, t.shape)) != shape: bad.append((n, t.tensor_type, t.shape))
if not np.array_equal(tens["t.f32"].data.ravel(), np.arange(1, 7, dtype=np.float32)): bad.append("t.f32 data")
f16 = np.array([0.5, -2, 65504, 1e-7, 3.14159], dtype=np.float32).astype(np.float16)  # numpy rounds to nearest even
if tens["t.f16"].data.view(np.uint16).ravel().tolist() != f16.view(np.uint16).tolist(): bad.append("t.f16 data")
bf = gguf.quants.dequantize(tens["t.bf16"].data, Q.BF16).ravel()
bf_want = gguf.quants.dequantize(gguf.quants.quantize(np.array([1.5, -0.0, 3e38, 7], np.float32), Q.BF16), Q.BF16)
if bf.tobytes() != bf_want.tobytes(): bad.append(("t.bf16 data", bf, bf_want))
# moec's Q8_0 bytes equal gguf.quants' encoding of the same values, whatever sinf's last bit: compare decoded
# values against gguf's decode of moec's bytes, and re-encode the decoded values (idempotent for Q8_0)
q8 = tens["t.q8_0"].data
dq = gguf.quants.dequantize(q8, Q.Q8_0).ravel()
if np.abs(dq - q).max() > np.abs(q).max() / 127 / 2 * 1.01: bad.append("t.q8_0 values not within half a step")
print("moec-written file:", "ok" if not bad else bad)
sys.exit(1 if bad else 0)
PYEOF
then ok "GGUFReader reads moec's file: all 19 KVs (every type), 5 tensors, values"; else ko "GGUFReader on moec's file"; fi

# ---------------------------------------------------------------- gguf writes, moec reads
"$PY" - "$TMP/py.gguf" > "$TMP/py_expect.txt" <<'PYEOF'
import sys, numpy as np, gguf
from gguf import GGUFValueType as V, GGMLQuantizationType as Q
w = gguf.GGUFWriter(sys.argv[1], arch="pytest")
w.data_alignment = 64
w.add_uint32("general.alignment", 64)
scalars = [("s.u8", V.UINT8, 255), ("s.i8", V.INT8, -128), ("s.u16", V.UINT16, 65535), ("s.i16", V.INT16, -32768),
           ("s.u32", V.UINT32, 4294967295), ("s.i32", V.INT32, -2147483648), ("s.f32", V.FLOAT32, -0.125),
           ("s.bool", V.BOOL, False), ("s.u64", V.UINT64, 2**64 - 1), ("s.i64", V.INT64, -2**63),
           ("s.f64", V.FLOAT64, 1.0 / 3.0), ("s.str", V.STRING, "héllo ▁ wörld")]
for k, t, v in scalars: w.add_key_value(k, v, t)
w.add_key_value("a.u16", [1, 2, 65535], V.ARRAY, sub_type=V.UINT16)
w.add_key_value("a.i64", [-5, 2**62], V.ARRAY, sub_type=V.INT64)
w.add_array("a.str", ["x", "", "Ġa b"])
rng = np.random.default_rng(5)
x = rng.standard_normal((3, 64)).astype(np.float32)
w.add_tensor("w.f32", x)
w.add_tensor("w.f16", x.astype(np.float16))
w.add_tensor("w.bf16", gguf.quants.quantize(x, Q.BF16), raw_dtype=Q.BF16)
w.add_tensor("w.q8_0", gguf.quants.quantize(x, Q.Q8_0), raw_dtype=Q.Q8_0)
w.add_tensor("w.3d", rng.standard_normal((2, 3, 4)).astype(np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
# what moec's dump must print: fixed-size values as exact numbers, strings as hex
def num(t, v):
    if t in (V.UINT64, V.INT64): return str(v)
    if t == V.FLOAT32: return repr(float(np.float32(v)))
    return repr(float(v))
print("version 3 alignment 64")
print("kv", "general.architecture".encode().hex(), "string string 1", b"pytest".hex())
print("kv", "general.alignment".encode().hex(), "uint32", 64)
for k, t, v in scalars:
    print("kv", k.encode().hex(), t.name.lower(), v.encode().hex() if t == V.STRING else num(t, v))
print("kv", b"a.u16".hex(), "array uint16 3 1 2 65535")
print("kv", b"a.i64".hex(), "array int64 2", float(-5), float(2**62))
print("kv", b"a.str".hex(), "array string 3", b"x".hex(), "-", "Ġa b".encode().hex())
tensors = {"w.f32": x, "w.f16": x.astype(np.float16).astype(np.float32),
           "w.bf16": gguf.quants.dequantize(gguf.quants.quantize(x, Q.BF16), Q.BF16),
           "w.q8_0": gguf.quants.dequantize(gguf.quants.quantize(x, Q.Q8_0), Q.Q8_0)}
for n, v in tensors.items(): print("tensor", n.encode().hex(), " ".join(repr(float(e)) for e in v.ravel()))
PYEOF
if "$HELPER" dump "$TMP/py.gguf" > "$TMP/moec_dump.txt" && "$PY" - "$TMP/moec_dump.txt" "$TMP/py_expect.txt" "$TMP/py.gguf" <<'PYEOF'
import sys, numpy as np, gguf
dump = open(sys.argv[1]).read().split("\n"); exp = open(sys.argv[2]).read().split("\n")
bad = []
if dump[0] != exp[0]: bad.append((dump[0], exp[0]))
kvs = {l.split()[1]: l.split()[2:] for l in dump if l.startswith("kv ")}
tns = {l.split()[1]: l.split()[2:] for l in dump if l.startswith("tensor ")}
tname = {"uint8": "u8", "int8": "i8", "uint16": "u16", "int16": "i16", "uint32": "u32", "int32": "i32",
         "float32": "f32", "bool": "bool", "uint64": "u64", "int64": "i64", "float64": "f64", "string": "string"}
for l in exp[1:]:
    p = l.split()
    if not p: continue
    if p[0] == "kv":
        got = kvs.get(p[1])
        if p[2] == "array":
            ok = got is not None and got[0] == "array" and got[1] == tname[p[3]] and got[2] == p[4] and \
                 (p[3] == "string" and got[3:] == p[5:] or p[3] != "string" and list(map(float, got[3:])) == list(map(float, p[5:])))
        elif p[2] == "string":
            ok = got is not None and got[0] == "string" and got[-1] == p[-1]
        else:
            ok = got is not None and got[0] == tname[p[2]] and (float(got[3]) == float(p[3]) if p[2] not in ("uint64", "int64") else got[3] == p[3])
        if not ok: bad.append((bytes.fromhex(p[1]).decode(), got, p[2:]))
    else:
        got = tns.get(p[1])
        vals = [float(v) for v in got[2 + int(got[1]):]] if got else None
        if vals is None or np.float32(vals).tobytes() != np.float32([float(v) for v in p[2:]]).tobytes():
            bad.append(bytes.fromhex(p[1]).decode())
# shapes and types from the gguf package's own reading
for t in gguf.GGUFReader(sys.argv[3]).tensors:
    got = tns[t.name.encode().hex()]
    if got[0] != t.tensor_type.name or list(map(int, got[2:2 + int(got[1])])) != list(map(int, t.shape)):
        bad.append((t.name, got[:5], t.tensor_type.name, t.shape))
print(f"{len(kvs)} KVs, {len(tns)} tensors:", "ok" if not bad else bad)
sys.exit(1 if bad or len(kvs) != 17 or len(tns) != 5 else 0)
PYEOF
then ok "moec reads GGUFWriter's file: 17 KVs of every type, alignment 64, F32/F16/BF16/Q8_0 values identical"
else ko "moec on GGUFWriter's file"; head -c 2000 "$TMP/moec_dump.txt"; fi

# ---------------------------------------------------------------- encoders: moec vs numpy / gguf.quants
"$PY" - "$TMP/src.gguf" <<'PYEOF'
import sys, numpy as np, gguf
rng = np.random.default_rng(11)
w = gguf.GGUFWriter(sys.argv[1], arch="pytest")
w.add_tensor("normal", (rng.standard_normal((17, 96)) * 3).astype(np.float32))
# halfway cases, subnormals, overflow, zero blocks, exact .5 multiples of the Q8_0 step
special = np.zeros((4, 64), np.float32)
special[0, :8] = [65504, 65520, 1e-8, 2.0**-25, 3 * 2.0**-25, 1 + 2.0**-11, -(1 + 3 * 2.0**-11), 1e39 / 1e39]
special[1, :32] = np.arange(32) - 15.5
special[2, 32:] = 0
special[3] = np.float32(2.0 ** np.arange(-32, 32, dtype=np.float64))
special[3, ::5] *= -1
w.add_tensor("special", special)
w.add_tensor("wide", (rng.standard_normal((2, 5000)) * 1e-3).astype(np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
PYEOF
if "$HELPER" requant "$TMP/src.gguf" "$TMP/requant.gguf" && "$PY" - "$TMP/src.gguf" "$TMP/requant.gguf" <<'PYEOF'
import sys, numpy as np, gguf
from gguf import GGMLQuantizationType as Q
src = {t.name: np.array(t.data, dtype=np.float32) for t in gguf.GGUFReader(sys.argv[1]).tensors}
out = {t.name: t for t in gguf.GGUFReader(sys.argv[2]).tensors}
bad, n = [], 0
for name, x in src.items():
    checks = [("f16", Q.F16, x.astype(np.float16).view(np.uint8)), ("bf16", Q.BF16, gguf.quants.quantize(x, Q.BF16))]
    if x.shape[-1] % 32 == 0: checks.append(("q8_0", Q.Q8_0, gguf.quants.quantize(x, Q.Q8_0)))
    for suf, ty, ref in checks:
        t = out[f"{name}.{suf}"]; n += 1
        if t.tensor_type != ty or t.data.view(np.uint8).tobytes() != np.ascontiguousarray(ref).view(np.uint8).tobytes():
            bad.append(f"{name}.{suf}")
print(f"{n} encodings compared:", "ok" if not bad else bad)
sys.exit(1 if bad or n != 8 else 0)
PYEOF
then ok "moec's F16/BF16/Q8_0 encoders give numpy's / gguf.quants' bytes (ties, subnormals, overflow, zero blocks)"
else ko "encoder bytes differ from numpy / gguf.quants"; fi

# ---------------------------------------------------------------- block decoders vs gguf.quants
if "$PY" - "$HELPER" "$TMP" <<'PYEOF'
import sys, subprocess, numpy as np, gguf
from gguf import GGMLQuantizationType as Q
helper, tmp = sys.argv[1], sys.argv[2]
# 64 random blocks of every type moec decodes; the f16 scale fields are set to finite values of either sign
# over 2^-12..2^6 (and some zeros), every other byte is random. Decoded through moec_ggml_dequantize
# (test_gguf dequant) and through the package's numpy decoders: the fp32 bits must be identical.
rng = np.random.default_rng(1)
bad = 0
# per type: (the byte offsets of its f16 scale fields in a block)
halves = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q2_K": [80, 82], "Q3_K": [108],
          "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
for name, offs in halves.items():
    qt = Q[name]
    blk, bb = gguf.GGML_QUANT_SIZES[qt]
    nb = 64
    raw = rng.integers(0, 256, size=(nb, bb), dtype=np.uint8)
    for o in offs:  # finite scales of either sign across a wide range, some zero
        h = (rng.standard_normal(nb) * np.exp2(rng.integers(-12, 6, nb))).astype(np.float16)
        h[::17] = 0
        raw[:, o:o + 2] = h.view(np.uint8).reshape(nb, 2)
    raw.tofile(f"{tmp}/{name}.bin")
    r = subprocess.run([helper, "dequant", name, f"{tmp}/{name}.bin", f"{tmp}/{name}.f32"])
    got = np.fromfile(f"{tmp}/{name}.f32", dtype=np.float32) if r.returncode == 0 else None
    want = gguf.quants.dequantize(raw.reshape(-1), qt).astype(np.float32).ravel()
    if got is None or got.shape != want.shape or got.tobytes() != want.tobytes():
        diff = None if got is None or got.shape != want.shape else np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
        print(f"FAIL {name}: {len(diff) if diff is not None else 'shape'} of {want.size} values differ", diff[:5] if diff is not None else "",
              got[diff[:3]] if diff is not None else "", want[diff[:3]] if diff is not None else "")
        bad += 1
    else:
        print(f"ok {name}: {want.size} values bit-identical to gguf.quants.dequantize")
sys.exit(bad)
PYEOF
then ok "moec's Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q2_K..Q6_K decoders give gguf.quants' fp32 bits on random blocks"
else ko "block decoders differ from gguf.quants"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
