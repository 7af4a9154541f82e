#!/usr/bin/env bash
# Fuzz every target (or those named) with cargo-fuzz / libFuzzer, then minimize the corpora.
#   fuzz/run.sh [-t SECONDS_PER_TARGET] [-j PARALLEL] [target ...]
# Installs what it needs: the nightly toolchain (rustup) and cargo-fuzz (crates.io).
# Logs go to fuzz/logs/<target>.log; crashes to fuzz/artifacts/<target>/. A crash found here gets
# fixed, and its input goes to fuzz/regressions/<target>/ so `make test` replays it on stable
# (tests/fuzz_replay.rs). Figures from a run: docs/robustness.md.
set -euo pipefail
cd "$(dirname "$0")"
secs=1260 jobs=1
while getopts "t:j:" o; do
  case $o in
    t) secs=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) echo "usage: fuzz/run.sh [-t seconds] [-j parallel] [target ...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf safetensors spm tokenizer_json json_schema prompt_template image pdf chat_request)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# The fuzz targets never call llama.cpp: build one ggml CPU variant, not the release set.
export GGML_H2OVL_CPU_VARIANTS=x64
# Nightly cargo lays build scripts out as build/<crate>/<hash>/out; llama-cpp-sys-2's build.rs takes the
# third parent of OUT_DIR as the target dir (= .../release/build there) and hard-links its libraries
# into <that>/deps, which must exist.
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
mkdir -p "target/$host/release/build/deps"
cargo +nightly fuzz build

mkdir -p logs
run_one() {
  local t=$1
  # corpus/<t>: what libFuzzer keeps (minimized after the run); seeds/<t>: the hand-made
  # starting inputs (tests/fuzz_replay.rs write_seeds), read-only here.
  mkdir -p "corpus/$t" "artifacts/$t"
  # -timeout: a unit slower than 20 s is a hang (the PDF guard's own limit is 5 s);
  # -rss_limit_mb: a lying header must not make us allocate gigabytes. -fork=1 with
  # -ignore_*: keep fuzzing after a finding for the whole time (each one saved in artifacts/).
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1 || echo "$t: libFuzzer stopped (see fuzz/logs/$t.log)"
  cargo +nightly fuzz cmin "$t" "corpus/$t" >>"logs/$t.log" 2>&1 || true
  echo "$t: $(grep -E '^stat::number_of_executed_units' "logs/$t.log" | tail -1) $(grep -E '#[0-9]+.*(DONE|pulse|NEW)' "logs/$t.log" | tail -1)"
}
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
