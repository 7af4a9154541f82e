#!/usr/bin/env bash
# The built-in chat page in a real browser: Debian's chromium (installed with scripts/apt-install.sh like
# every other prerequisite; if it cannot be installed this FAILS with the apt command, it is never
# skipped), playwright-core pinned in webui-test/package-lock.json (npm ci), the tiny golden checkpoint
# converted with target/release/h2ovl, four `h2ovl serve` on free loopback ports (one with --api-key,
# one with a 2048-token context, one the test kills mid-answer), then webui-test/test.mjs. `SCREENSHOT=docs/webui.png
# scripts/test-webui.sh` refreshes the README's screenshots, docs/webui.png and the phone view
# docs/webui-phone.png (by default they go to the temp folder, so `make test` leaves the tree clean).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cargo build --release --locked --bin h2ovl   # a no-op after `make build`
bin=${CARGO_TARGET_DIR:-$root/target}/release/h2ovl

[ -x /usr/bin/chromium ] || scripts/apt-install.sh "the web page test's browser (Debian chromium)" chromium
[ -x /usr/bin/chromium ] || { echo "error: /usr/bin/chromium missing after install: sudo apt-get install -y chromium" >&2; exit 1; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  scripts/apt-install.sh "Node.js for the web page test" nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "error: playwright-core needs Node.js >= 20, found $(node --version)" >&2; exit 1; }
(cd webui-test && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" convert quant-tests/fixtures/golden/checkpoints/tiny --outdir "$work/gguf" --quant f32 --vision-quant f32 --quiet >/dev/null
llm=$(ls "$work"/gguf/*F32.gguf | grep -v mmproj); mmproj=$(ls "$work"/gguf/mmproj-*)

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
# start NAME ARGS...: h2ovl serve in the background (pid kept for the trap); sets $url once /health answers.
start() {
  local name=$1; shift
  local port; port=$(free_port)
  "$bin" serve -m "$llm" --mmproj "$mmproj" --host 127.0.0.1 --port "$port" -t 2 "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  url=http://127.0.0.1:$port
  for _ in $(seq 1 300); do
    if node -e 'fetch(process.argv[1]+"/health").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$url"; then
      return 0
    fi
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.2
  done
  echo "error: h2ovl serve ($name) did not start:" >&2; cat "$work/$name.log" >&2; return 1
}
key=webui-test-key
start open; base=$url
start keyed --api-key "$key"; base_key=$url
start small -c 2048; base_small=$url   # a context a 6-page PDF does not fit: read page by page
start doomed; base_doomed=$url; doomed_pid=${pids[-1]}
disown "$doomed_pid"   # the test kills it (SIGKILL): no "Killed" job notice from bash

shot=${SCREENSHOT:-$work/webui.png}
set +e
BASE=$base BASE_KEY=$base_key KEY=$key DOOMED_BASE=$base_doomed DOOMED_PID=$doomed_pid \
  SMALL_BASE=$base_small SIX_PDF=$root/runtime/tests/fixtures/pdf/six_pages.pdf \
  PNG=$root/quant-tests/fixtures/golden/images/gradient_640x480.png \
  JPG=$root/quant-tests/fixtures/golden/images/square_448x448.jpg \
  SCREENSHOT=$shot SCREENSHOT_PHONE=${shot%.png}-phone.png \
  node webui-test/test.mjs
rc=$?
set -e
if [ $rc != 0 ]; then
  echo "--- server log (no key) ---" >&2; tail -n 30 "$work/open.log" >&2
  echo "--- server log (--api-key) ---" >&2; tail -n 30 "$work/keyed.log" >&2
fi
exit $rc
