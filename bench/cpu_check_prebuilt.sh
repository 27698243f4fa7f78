#!/usr/bin/env bash
# cpu_check_prebuilt.sh — moec's kernels on another machine's CPU, from prebuilt binaries (no installs, no
# compiler): the native AVX-512 kernel tests where the CPU has AVX-512, stories260K's golden generation, the
# decode kernels' speed with each instruction set (bench_qmatmul --isa avx2 / avx512), and the inference benchmark
# against llama.cpp (bench/run_infer_bench.sh in its prebuilt mode). Needs this checkout's build/ and the folder
# scripts/prebuilt_bundle.sh writes; python3 with numpy for the benchmark's model files.
#   usage: bash bench/cpu_check_prebuilt.sh [BUNDLE=.prebuilt] [RESULTS=/tmp/cpu-check]
#   env:   ROUNDS (3), PP (256), TG (64): the benchmark's rounds and lengths (shorter than the README's 5 x 512/128)
set -u
cd "$(dirname "$0")/.."
R=$PWD BUNDLE=$(cd "${1:-.prebuilt}" && pwd) O=${2:-/tmp/cpu-check}
mkdir -p "$O"
export LD_LIBRARY_PATH="$BUNDLE/lib:$BUNDLE/llama${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
T0=$(date +%s)
since() { echo "$(( $(date +%s) - T0 )) s"; }
{ date -u; echo "moec build of $(cat "$BUNDLE/commit" 2>/dev/null)"; nproc; lscpu; free -g
  echo "flags:"; grep -o -w 'avx2\|fma\|f16c\|avx512[a-z_0-9]*\|amx[a-z_0-9]*\|avx_vnni' /proc/cpuinfo | sort | uniq -c
} > "$O/machine.txt" 2>&1
grep -E "Model name|^CPU\(s\)" "$O/machine.txt"
avx512=0; grep -q -w avx512bw /proc/cpuinfo && avx512=1
: > "$O/tests.txt"
for t in test_gemm test_qmatmul test_infer test_layers_grad; do
    echo "=== $t" >> "$O/tests.txt"
    MOEC_BUILD=build timeout 300 build/tests/$t >> "$O/tests.txt" 2>&1
    echo "$t: rc $? ($(since))"
done
if [ -d "$BUNDLE/shared" ] && [ ! -e ../shared ]; then ln -s "$BUNDLE/shared" ../shared; fi
echo "=== test_generate.sh" >> "$O/tests.txt"
expect=$([ $avx512 = 1 ] && echo avx512 || echo avx2)
MOEC_PYTHON=${MOEC_PYTHON:-python3} MOEC_EXPECT_KERNELS=$expect MOEC_BUILD=build timeout 300 \
    bash tests/test_generate.sh >> "$O/tests.txt" 2>&1
echo "test_generate.sh: rc $? ($(since)); $(tail -n 1 "$O/tests.txt")"
: > "$O/qmatmul.txt"
for isa in avx2 $([ $avx512 = 1 ] && echo avx512); do
    echo "=== --isa $isa" >> "$O/qmatmul.txt"
    timeout 300 build/bench/bench_qmatmul --threads 2 --reps 5 --isa "$isa" >> "$O/qmatmul.txt" 2>&1
done
grep -E "^===|^(f32|bf16|f16|q8_0|fp8) " "$O/qmatmul.txt"
echo "bench_qmatmul done ($(since))"
MOEC_BENCH_PREBUILT=1 MOEC_LLAMA_BENCH_BIN="$BUNDLE/llama/llama-bench" MOEC_BENCH_TYPES="q8_0 f16" \
    MOEC_BENCH_MODELS=${MOEC_BENCH_MODELS:-/tmp/moec-bench-models} MOEC_BENCH_PP=${PP:-256} MOEC_BENCH_TG=${TG:-64} \
    bash bench/run_infer_bench.sh "${ROUNDS:-3}" 2 > "$O/infer_bench.txt" 2>&1
echo "run_infer_bench.sh: rc $? ($(since))"
# which of its CPU variants llama.cpp chose on this machine
g=$(ls "${MOEC_BENCH_MODELS:-/tmp/moec-bench-models}"/*.q8_0.gguf 2>/dev/null | head -n 1)
[ -n "$g" ] && "$BUNDLE/llama/llama-bench" -m "$g" -t 2 -p 1 -n 1 -r 1 2>&1 | grep load_backend | tee -a "$O/machine.txt"
sed -n '/^inference/,$p' "$O/infer_bench.txt"
