#!/usr/bin/env bash
# test.sh — moec's whole test suite: installs what it needs, builds, runs every test, then the same suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer (set MOEC_SAN=0 to skip that second pass), then the
# tests that run the matmul kernels once more with the AVX-512 kernels, emulated where the CPU lacks AVX-512
# (src/kernels/cpu/avx512.h; MOEC_EMU512=0 skips that pass).
# Prints "N passed, M failed" at the end and exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
moec_deps_build
moec_deps_python
moec_deps_fuzz
moec_deps_emu512
export MOEC_PYTHON="$MOEC_VENV/bin/python"
JOBS=$(nproc)

passed=0; failed=0; failed_names=()
run_suite() { # $1 = build dir, $2 = label, $3 = the tests to run (names; default: all)
    local build=$1 label=$2 only=${3:-}
    for t in "$build"/tests/test_*; do
        [ -n "$only" ] && [[ " $only " != *" $(basename "$t") "* ]] && continue
        [ -x "$t" ] || continue
        local name; name=$(basename "$t")
        local log="$build/logs/$name.log"; mkdir -p "$build/logs"
        if MOEC_BUILD="$build" "$t" > "$log" 2>&1; then
            passed=$((passed + 1)); echo "PASS [$label] $name"
        else
            failed=$((failed + 1)); failed_names+=("[$label] $name"); echo "FAIL [$label] $name"; tail -n 25 "$log"
        fi
    done
    for t in tests/test_*.sh; do
        [ -f "$t" ] || continue
        [ -n "$only" ] && [[ " $only " != *" $(basename "$t") "* ]] && continue
        local name; name=$(basename "$t")
        local log="$build/logs/$name.log"; mkdir -p "$build/logs"
        if MOEC_BUILD="$build" bash "$t" > "$log" 2>&1; then
            passed=$((passed + 1)); echo "PASS [$label] $name"
        else
            failed=$((failed + 1)); failed_names+=("[$label] $name"); echo "FAIL [$label] $name"; tail -n 25 "$log"
        fi
    done
}

echo "== build (release)"
make -j"$JOBS" BUILD=build all || { echo "0 passed, 1 failed"; exit 1; }
run_suite build release

if [ "${MOEC_SAN:-1}" != 0 ]; then
    echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer)"
    if make -j"$JOBS" BUILD=build-san SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 run_suite build-san asan+ubsan
    else
        failed=$((failed + 1)); failed_names+=("sanitizer build")
    fi
fi

# The AVX-512 kernels (gemm_avx512.c, qmatmul_avx512.c) on this machine, through SIMDe's portable intrinsics when
# the CPU has no AVX-512: the kernel tests, and the end-to-end tests against outside references (stories260K's
# golden text and perplexity, PyTorch training steps, llama.cpp's logits) with those kernels doing the matmuls.
if [ "${MOEC_EMU512:-1}" != 0 ]; then
    echo "== build (AVX-512 kernels, emulated)"
    if make -j"$JOBS" BUILD=build-emu512 DEFS="-DMOEC_EMULATE_AVX512 -Wno-psabi" all; then
        MOEC_EXPECT_KERNELS=avx512 run_suite build-emu512 avx512-emulated \
            "test_gemm test_qmatmul test_bf16p test_infer test_layers_grad test_generate.sh test_vs_torch.sh test_gguf_llama.sh"
    else
        failed=$((failed + 1)); failed_names+=("AVX-512 emulated build")
    fi
fi

echo
[ ${#failed_names[@]} -gt 0 ] && printf 'failed: %s\n' "${failed_names[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
