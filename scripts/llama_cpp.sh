#!/usr/bin/env bash
# llama_cpp.sh — a pinned, CPU-only llama.cpp build: moec's peer for benchmarks and the oracle for GGUF export.
#
#   bash scripts/llama_cpp.sh          builds (once) and prints the directory
#   bash scripts/llama_cpp.sh convert MODEL_DIR,OUT.gguf,TYPE ...
#                                      converts moec/Hugging Face model directories with llama.cpp's own
#                                      convert_hf_to_gguf.py (TYPE f32|f16|bf16|q8_0), all in one Python process
#                                      (needs the test venv: torch, transformers, numpy; see moec_llama_convert)
#   source scripts/llama_cpp.sh; moec_llama_cpp
#                                      the same from another script; afterwards these are set:
#     MOEC_LLAMA_CPP        the prefix (default ~/.cache/moec/llama.cpp-0.3.36)
#     MOEC_LLAMA_SRC        the llama.cpp source tree (has convert_hf_to_gguf.py and gguf-py/)
#     MOEC_LLAMA_BENCH      llama-bench
#     MOEC_LLAMA_ORACLE     tests/llama_oracle.c compiled against that llama.cpp (logits of a GGUF as .npy)
#
# Which llama.cpp: the one vendored in the llama-cpp-python 0.3.36 sdist on PyPI, checked against a pinned
# sha256, so every machine builds the same source (llama.cpp itself publishes no versioned source archive on
# PyPI). Only the targets asked for are built: MOEC_LLAMA_TARGETS, default "llama" (the library, all the
# test oracle needs: a few minutes on 2 cores); the benchmark asks for "llama llama-bench" (llama-bench pulls
# in llama-common, the long part of the build). Later calls add missing targets incrementally. Static libraries,
# so the oracle is one self-contained binary. -DGGML_NATIVE=ON: llama.cpp tuned for this CPU (the fair peer).
#
# Idempotent: a stamp file records what was built; with it present and the oracle up to date this returns
# at once. Exit status 3 (and a line starting "moec: llama.cpp: download failed") means PyPI could not be
# reached — the one case the tests treat as a skip; every other failure is an ordinary error.
MOEC_LLAMA_VERSION=0.3.36   # llama-cpp-python's version, i.e. which vendored llama.cpp
MOEC_LLAMA_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
MOEC_LLAMA_CPP=${MOEC_LLAMA_CPP:-$HOME/.cache/moec/llama.cpp-$MOEC_LLAMA_VERSION}
MOEC_LLAMA_SRC=$MOEC_LLAMA_CPP/src
MOEC_LLAMA_BENCH=$MOEC_LLAMA_CPP/build/bin/llama-bench
MOEC_LLAMA_ORACLE=$MOEC_LLAMA_CPP/llama_oracle
_MOEC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

_moec_llama_fail() { echo "moec: llama.cpp: $*" >&2; return 1; }

# The pip used only to download: the moec venv's if it exists, else the system's.
_moec_llama_pip() {
    if [ -x "${MOEC_VENV:-$HOME/.cache/moec/venv}/bin/pip" ]; then "${MOEC_VENV:-$HOME/.cache/moec/venv}/bin/pip" "$@"
    else python3 -m pip "$@"; fi
}

_moec_llama_fetch() { # download + verify + unpack vendor/llama.cpp into $MOEC_LLAMA_SRC
    local dl="$MOEC_LLAMA_CPP/download" tgz
    tgz="$dl/llama_cpp_python-$MOEC_LLAMA_VERSION.tar.gz"
    mkdir -p "$dl"
    if [ ! -f "$tgz" ] || ! echo "$MOEC_LLAMA_SHA256  $tgz" | sha256sum -c --status; then
        rm -f "$tgz"
        echo "moec: llama.cpp: downloading the llama-cpp-python $MOEC_LLAMA_VERSION sdist from PyPI (~77 MB)" >&2
        if ! _moec_llama_pip download -q --no-deps --no-binary :all: -d "$dl" \
                "llama-cpp-python==$MOEC_LLAMA_VERSION" >"$dl/pip.log" 2>&1 || [ ! -f "$tgz" ]; then
            tail -n 5 "$dl/pip.log" >&2
            echo "moec: llama.cpp: download failed (no access to PyPI?)" >&2
            return 3
        fi
    fi
    echo "$MOEC_LLAMA_SHA256  $tgz" | sha256sum -c --status ||
        _moec_llama_fail "$tgz does not have the pinned sha256 $MOEC_LLAMA_SHA256" || return 1
    rm -rf "$MOEC_LLAMA_SRC" "$MOEC_LLAMA_CPP/unpack"
    mkdir -p "$MOEC_LLAMA_CPP/unpack"
    tar -xzf "$tgz" -C "$MOEC_LLAMA_CPP/unpack" "llama_cpp_python-$MOEC_LLAMA_VERSION/vendor/llama.cpp" ||
        _moec_llama_fail "cannot unpack $tgz" || return 1
    mv "$MOEC_LLAMA_CPP/unpack/llama_cpp_python-$MOEC_LLAMA_VERSION/vendor/llama.cpp" "$MOEC_LLAMA_SRC"
    rm -rf "$MOEC_LLAMA_CPP/unpack"
}

_moec_llama_configure() { # a fresh build directory for the pinned source
    local b="$MOEC_LLAMA_CPP/build" log="$MOEC_LLAMA_CPP/build.log"
    rm -rf "$b"
    if ! cmake -S "$MOEC_LLAMA_SRC" -B "$b" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
               -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON \
               -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
               -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        _moec_llama_fail "cmake configure failed (full log: $log)"; return 1
    fi
}

_moec_llama_artifact() { # the file a target produces
    case "$1" in
        llama) echo "$MOEC_LLAMA_CPP/build/src/libllama.a" ;;
        *) echo "$MOEC_LLAMA_CPP/build/bin/$1" ;;
    esac
}

_moec_llama_build() { # build the asked-for targets that are missing (the long part: minutes on 2 cores)
    local b="$MOEC_LLAMA_CPP/build" log="$MOEC_LLAMA_CPP/build.log" t missing=()
    for t in ${MOEC_LLAMA_TARGETS:-llama}; do [ -e "$(_moec_llama_artifact "$t")" ] || missing+=("$t"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "moec: llama.cpp: building ${missing[*]} in $b (log: $log)" >&2
    if ! cmake --build "$b" -j"$(nproc)" --target "${missing[@]}" >>"$log" 2>&1; then
        tail -n 20 "$log" >&2
        _moec_llama_fail "build failed (full log: $log)"; return 1
    fi
}

_moec_llama_oracle() { # (re)compile tests/llama_oracle.c when it changed or llama.cpp was rebuilt
    local src="$_MOEC_ROOT/tests/llama_oracle.c" b="$MOEC_LLAMA_CPP/build"
    [ -f "$src" ] || _moec_llama_fail "missing $src" || return 1
    if [ -x "$MOEC_LLAMA_ORACLE" ] && [ "$MOEC_LLAMA_ORACLE" -nt "$src" ] && [ "$MOEC_LLAMA_ORACLE" -nt "$MOEC_LLAMA_CPP/.stamp" ]; then
        return 0
    fi
    # static archives in dependency order; names/locations are those of this pinned llama.cpp's CMake
    local libs=("$b/src/libllama.a" "$b/ggml/src/libggml.a" "$b/ggml/src/libggml-cpu.a" "$b/ggml/src/libggml-base.a")
    local l; for l in "${libs[@]}"; do [ -f "$l" ] || _moec_llama_fail "missing $l" || return 1; done
    rm -f "$MOEC_LLAMA_CPP/llama_oracle.o"
    cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$MOEC_LLAMA_SRC/include" -I"$MOEC_LLAMA_SRC/ggml/include" \
        -c "$src" -o "$MOEC_LLAMA_CPP/llama_oracle.o" || _moec_llama_fail "cannot compile $src" || return 1
    g++ -o "$MOEC_LLAMA_ORACLE.tmp" "$MOEC_LLAMA_CPP/llama_oracle.o" "${libs[@]}" -fopenmp -pthread -lm ||
        _moec_llama_fail "cannot link the oracle" || return 1
    rm -f "$MOEC_LLAMA_CPP/llama_oracle.o"
    mv "$MOEC_LLAMA_ORACLE.tmp" "$MOEC_LLAMA_ORACLE"
}

moec_llama_cpp() { # ensure the build and the oracle exist; prints the prefix; returns 3 if PyPI is unreachable
    # one builder at a time (the release test pass, a benchmark and a user may start together)
    mkdir -p "$MOEC_LLAMA_CPP" || return 1
    local lock rc=0
    exec {lock}>"$MOEC_LLAMA_CPP/.lock"
    flock "$lock"
    _moec_llama_ensure || rc=$?
    exec {lock}>&-
    return $rc
}

_moec_llama_ensure() {
    local t0=$SECONDS stamp="$MOEC_LLAMA_CPP/.stamp" want rc
    want="llama-cpp-python $MOEC_LLAMA_VERSION sha256 $MOEC_LLAMA_SHA256 native static"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        # shellcheck source=scripts/deps.sh
        source "$_MOEC_ROOT/scripts/deps.sh"
        moec_apt_install cmake g++ make python3 python3-pip ca-certificates || return 1
        rm -f "$stamp"
        rc=0; _moec_llama_fetch || rc=$?
        [ $rc -eq 0 ] || return $rc
        _moec_llama_configure || return 1
        echo "$want" > "$stamp"
    fi
    _moec_llama_build || return 1
    [ $((SECONDS - t0)) -gt 5 ] && echo "moec: llama.cpp: built in $((SECONDS - t0)) s" >&2
    _moec_llama_oracle || return 1
    echo "moec: llama.cpp ready at $MOEC_LLAMA_CPP ($((SECONDS - t0)) s)" >&2
    echo "$MOEC_LLAMA_CPP"
}

# llama.cpp's converter, adapted to the directories moec writes, without editing its source:
#  * it names a BPE pre-tokenizer only by hashing the ids of a fixed text under tokenizers of models it knows;
#    moec's byte-level tokenizer uses the GPT-2 split rule, so for byte-level files it is told "gpt-2";
#  * without a tokenizer.model it must not try SentencePiece first (that import needs the `sentencepiece`
#    package, which the venv does not have); byte-fallback (SentencePiece-style) tokenizer.json files take its
#    Hugging Face Llama-vocabulary path unchanged.
moec_llama_convert() { # MODEL_DIR,OUT.gguf,TYPE ...
    local py=${MOEC_PYTHON:-${MOEC_VENV:-$HOME/.cache/moec/venv}/bin/python}
    "$py" - "$MOEC_LLAMA_SRC" "$@" <<'PYEOF'
import json, os, sys
src = sys.argv[1]
sys.path.insert(0, src)
from conversion import base
import convert_hf_to_gguf
def no_file(self): raise FileNotFoundError
base.TextModel._set_vocab_sentencepiece = no_file
orig_llama_hf, orig_pre = base.TextModel._set_vocab_llama_hf, base.TextModel.get_vocab_base_pre
for job in sys.argv[2:]:
    model_dir, out, outtype = job.split(",")
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        byte_fallback = json.load(f)["model"].get("byte_fallback")
    base.TextModel._set_vocab_llama_hf = orig_llama_hf if byte_fallback else no_file
    base.TextModel.get_vocab_base_pre = orig_pre if byte_fallback else (lambda self, tok: "gpt-2")
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outfile", out, "--outtype", outtype]
    convert_hf_to_gguf.main()
PYEOF
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    if [ "${1:-}" = convert ]; then
        shift
        moec_llama_cpp > /dev/null
        moec_llama_convert "$@"
    else
        moec_llama_cpp
    fi
fi
