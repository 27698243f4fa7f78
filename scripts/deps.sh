#!/usr/bin/env bash
# deps.sh — installs what moec needs on a Debian machine, once. Sourced by quickstart.sh and test.sh.
#   moec_deps_build   compiler, make, cJSON
#   moec_deps_python  a virtualenv with the test oracles (PyTorch, numpy, safetensors, tokenizers), reused
#                     across runs at $MOEC_VENV (default ~/.cache/moec/venv); gguf is llama.cpp's GGUF package
#   moec_deps_fuzz    clang with libFuzzer and the sanitizer runtimes (tests/test_fuzz.sh)
#   moec_deps_emu512  SIMDe's portable intrinsics, for test.sh's pass over emulated AVX-512 kernels
set -euo pipefail

MOEC_VENV=${MOEC_VENV:-$HOME/.cache/moec/venv}

moec_apt_install() { # install the named Debian packages that are missing
    local missing=()
    for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "moec: please install these Debian packages (as root): ${missing[*]}" >&2
        return 1
    fi
    echo "moec: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

moec_deps_build() {
    moec_apt_install gcc make libc6-dev libcjson-dev ca-certificates
}

MOEC_PIP_PACKAGES="torch numpy safetensors tokenizers transformers gguf"

moec_deps_python() {
    moec_apt_install python3 python3-venv python3-pip
    local stamp="$MOEC_VENV/.moec-packages"
    if [ -x "$MOEC_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MOEC_PIP_PACKAGES" ]; then
        return 0
    fi
    echo "moec: creating the test virtualenv at $MOEC_VENV ($MOEC_PIP_PACKAGES; PyPI's torch is large, once)" >&2
    python3 -m venv "$MOEC_VENV"
    "$MOEC_VENV/bin/pip" install -q --upgrade pip
    # shellcheck disable=SC2086
    "$MOEC_VENV/bin/pip" install -q $MOEC_PIP_PACKAGES
    echo "$MOEC_PIP_PACKAGES" > "$stamp"
}

moec_deps_fuzz() { # clang's -fsanitize=fuzzer runtime is in libclang-rt-14-dev on Debian 12
    moec_apt_install clang libclang-rt-14-dev
}

moec_deps_emu512() { # header-only; see src/kernels/cpu/avx512.h
    moec_apt_install libsimde-dev
}
