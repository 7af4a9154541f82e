#!/usr/bin/env bash
# One markdown table row per target from fuzz/logs/<target>.log (written by fuzz/run.sh):
# executions and seconds of the fork-mode run, edges covered / edges instrumented in the target
# binary, libFuzzer features, corpus files after cmin, findings saved in artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
echo "| target | executions | seconds | edges covered / instrumented | features | corpus (after cmin) | findings |"
echo "|---|---|---|---|---|---|---|"
for log in logs/*.log; do
  t=$(basename "$log" .log)
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  secs=$(sed -E 's/.* time: ([0-9]+)s.*/\1/' <<<"$last")
  total=$(grep -oE '\([0-9]+ inline' "$log" | head -1 | grep -oE '[0-9]+' || true)
  done_line=$(grep -E '#[0-9]+\s+DONE' "$log" | tail -1 || true)
  cov=$(grep -oE 'cov: [0-9]+' <<<"${done_line:-$last}" | grep -oE '[0-9]+')
  ft=$(grep -oE 'ft: [0-9]+' <<<"${done_line:-$last}" | grep -oE '[0-9]+')
  files=$(find "corpus/$t" -type f | wc -l)
  finds=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  echo "| \`$t\` | $execs | $secs | $cov / $total | $ft | $files | $finds |"
done
