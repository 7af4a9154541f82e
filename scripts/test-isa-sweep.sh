#!/usr/bin/env bash
# Runs the tests that compare numbers (vision/LLM/e2e golden, the eval's KL, the chat session, JSON)
# once per vision kernel class this CPU can run (H2OVL_VISION_ISA: scalar, avx2, avxvnni, avx512,
# avx512vnni256, avx512vnni; neon, neondot on aarch64) crossed with two llama.cpp CPU variants
# (H2OVL_LLM_CPU: the best this CPU runs and the most basic one), so a tolerance is never claimed
# from one code path of one machine (issue 22). Not part of `make test` (~15 min on 2 cores);
# run it before adding or changing a numeric tolerance, and on every new machine class.
#
# Usage: scripts/test-isa-sweep.sh [extra cargo test args]; H2OVL_SWEEP_TESTS overrides the test list.
set -uo pipefail
cd "$(dirname "$0")/.."
tests=${H2OVL_SWEEP_TESTS:-"--test e2e_golden --test vision_golden --test llm_session --test llm_decode --test cli_eval --test json_budget"}
cargo build --release --locked --workspace --tests >/dev/null 2>&1 || cargo build --release --locked --workspace --tests || exit 1
ver=$(target/release/h2ovl --version)
# Vision classes up to the best one this CPU has (the --version line names it).
case "$(uname -m)" in
  aarch64) isas="scalar neon"; grep -q "int8 neondot" <<<"$ver" && isas="$isas neondot" ;;
  *) isas="scalar"
     for c in avx2 avxvnni avx512 avx512vnni256 avx512vnni; do
       out=$(H2OVL_VISION_ISA=$c target/release/h2ovl --version | sed -n 2p)
       # A class is new if it changes the kernels --version reports.
       grep -qF "$out" <<<"${seen:-}" || { isas="$isas $c"; seen="${seen:-}|$out"; }
     done ;;
esac
# The best llama.cpp variant (chosen by default) and the most basic one shipped.
best=$(sed -n 2p <<<"$ver" | sed 's/.*ggml-cpu \([^;]*\);.*/\1/')
basic=$(sed -n 3p <<<"$ver" | tr ' ' '\n' | grep -v '^(' | grep -E '^(sse42|x64|armv8.0_1)$' | head -1)
fails=()
for isa in $isas; do
  for llm in $best $basic; do
    echo "== H2OVL_VISION_ISA=$isa H2OVL_LLM_CPU=$llm: $(H2OVL_VISION_ISA=$isa H2OVL_LLM_CPU=$llm target/release/h2ovl --version | sed -n 2p)" >&2
    log=$(mktemp)
    # shellcheck disable=SC2086
    H2OVL_VISION_ISA=$isa H2OVL_LLM_CPU=$llm cargo test --release --locked --workspace --no-fail-fast $tests "$@" >"$log" 2>&1
    rc=$?
    grep -E "^test result|FAILED|panicked" "$log"
    rm -f "$log"
    [ $rc = 0 ] || fails+=("$isa/$llm")
  done
done
if [ ${#fails[@]} -gt 0 ]; then echo "error: failed under: ${fails[*]}" >&2; exit 1; fi
echo "isa sweep: every combination passed ($isas) x ($best $basic) on $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs)" >&2
