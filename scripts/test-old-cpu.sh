#!/usr/bin/env bash
# Proves that a CPU without AVX runs h2ovl: the golden tests under `qemu-x86_64 -cpu Westmere`
# (SSE4.2, no AVX/AVX2/FMA/F16C). qemu's TCG raises SIGILL on any AVX instruction for that CPU model
# (checked: a -mavx2 program dies there), so a pass means no AVX instruction was reached: llama.cpp runs
# its sse42 variant (asserted) and our vision/preprocess code its scalar twins (asserted), i.e. no AVX
# code of ours sits outside run-time dispatch on these paths.
#
# Runs on x86-64 hosts only; installs qemu-user with apt when allowed (as scripts/install-prereqs.sh).
# Uses the release test binaries of `make test` (built here if missing). Timing is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -m)" != x86_64 ]; then echo "test-old-cpu: not an x86-64 host, nothing to do"; exit 0; fi
have() { command -v "$1" >/dev/null 2>&1; }
have qemu-x86_64 || scripts/apt-install.sh "the old-CPU test's emulator" qemu-user
CPU=${H2OVL_OLD_CPU:-Westmere}
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu $CPU"
export H2OVL_EXPECT_LLM_CPU=sse42 H2OVL_EXPECT_VISION="f32 scalar, int8 scalar"
t0=$(date +%s)
fail=0
run() { echo "== [qemu -cpu $CPU] $*" >&2; cargo test --release --locked "$@" || fail=1; }
run -p h2ovl-runtime --lib -- cpu_backend vision::kernels preprocess
run -p h2ovl-runtime --test preprocess_golden
# One vision case (F32 and Q8_0 weights, f32 and int8 math): the scalar ViT under emulation takes ~1 min
# per case; the full vision_golden takes 7.
run -p h2ovl-runtime --test vision_golden -- tiny_single_640x480
# The LLM through llama.cpp's sse42 variant: prompt ids, 16 greedy ids and logits against the reference.
run -p h2ovl-quant-tests --test e2e_golden -- --skip own_vision --skip q8_0_divergence_report
# The binary itself (rpath, variant scan) starts and says what it runs.
cargo build --release --locked --bin h2ovl
v=$(qemu-x86_64 -cpu "$CPU" target/release/h2ovl --version) || fail=1
echo "$v"
echo "$v" | grep -q "llm: ggml-cpu sse42; vision: f32 scalar, int8 scalar" || { echo "error: unexpected --version under $CPU" >&2; fail=1; }
echo "old-CPU ($CPU) tests: $(( $(date +%s) - t0 )) s" >&2
[ $fail = 0 ] || echo "error: tests failed under qemu-x86_64 -cpu $CPU (see above)" >&2
exit $fail
