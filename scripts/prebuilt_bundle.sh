#!/usr/bin/env bash
# prebuilt_bundle.sh — everything bench/cpu_check_prebuilt.sh needs on a machine that has no package registry or
# toolchain set up for moec (for instance a borrowed GPU host, to measure moec's AVX-512 kernels on its CPU): this
# checkout's build/ (run `make all` first; the bundle records its commit), libcjson and libgomp, a llama.cpp
# (the pinned source of scripts/llama_cpp.sh) whose CPU backend picks the best of its x86 variants at run time
# (-DGGML_CPU_ALL_VARIANTS=ON: AVX2, AVX-512, AVX-512 BF16/VNNI, AMX, Zen 4), and a copy of ../shared (the tests'
# real model and text), all in one folder of ~30 MB.
#   usage: bash scripts/prebuilt_bundle.sh [OUT=.prebuilt]
# The first run builds llama.cpp's variants: ~25 minutes on 2 cores; later runs reuse that build.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.prebuilt}
source scripts/deps.sh
moec_deps_build
moec_apt_install cmake g++ libgomp1 binutils
make -j"$(nproc)" all >/dev/null
source scripts/llama_cpp.sh
moec_llama_cpp >/dev/null # fetches (and checks) the pinned source
B=$MOEC_LLAMA_CPP/build-portable
if [ ! -x "$B/bin/llama-bench" ]; then
    echo "moec: building llama.cpp with every x86 CPU variant in $B (log: $B.log)" >&2
    cmake -S "$MOEC_LLAMA_SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF \
        -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_CUDA=OFF -DGGML_OPENMP=ON -DLLAMA_OPENSSL=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON > "$B.log" 2>&1
    cmake --build "$B" -j"$(nproc)" --target llama-bench >> "$B.log" 2>&1
fi
rm -rf "$OUT"
mkdir -p "$OUT/lib" "$OUT/llama"
cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 /usr/lib/x86_64-linux-gnu/libgomp.so.1 "$OUT/lib/"
# the binary, its versioned libraries, and the CPU variants from Haswell (AVX2) up
cp -L "$B"/bin/llama-bench "$B"/bin/*.so.0 "$B"/bin/libllama-bench-impl.so "$OUT/llama/"
for v in x64 haswell skylakex icelake cascadelake cooperlake sapphirerapids zen4; do
    cp -L "$B/bin/libggml-cpu-$v.so" "$OUT/llama/"
done
strip --strip-unneeded "$OUT"/llama/* 2>/dev/null || true
[ -d ../shared ] && cp -rL ../shared "$OUT/shared" && chmod -R u+w "$OUT/shared"
git rev-parse HEAD > "$OUT/commit"
echo "moec: bundle in $OUT ($(du -sh "$OUT" | cut -f1)); with build/, run bench/cpu_check_prebuilt.sh $OUT" >&2
