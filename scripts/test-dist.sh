#!/usr/bin/env bash
# The relocatable build, tested: `scripts/dist.sh` into a temp folder, the folder *moved* elsewhere, the
# build tree's libraries made unreachable (no LD_LIBRARY_PATH, another cwd), then the moved binary must
# load its llama.cpp libraries and CPU variants from its own folder and give the same greedy answer on
# the tiny golden checkpoint as the binary in target/release. Also `--install PREFIX` (bin/ symlink).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# `cargo test` does not build the binary itself (no-op when `make build` ran).
cargo build --release --locked --bin h2ovl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/dist.sh "$work/a" >/dev/null
name=$(basename "$(ls -d "$work"/a/h2ovl-*/)")
mkdir -p "$work/elsewhere/deeper"
mv "$work/a/$name" "$work/elsewhere/deeper/moved"
rm -rf "$work/a"
bin="$work/elsewhere/deeper/moved/h2ovl"
fail=0
check() { echo "$2" | grep -qF -- "$3" || { echo "error: $1: expected '$3' in:" >&2; echo "$2" >&2; fail=1; }; }

# The answer of the build tree's binary, as the reference.
target/release/h2ovl convert quant-tests/fixtures/golden/checkpoints/tiny --outdir "$work/gguf" --quant f32 --vision-quant f32 --quiet >/dev/null
llm=$(ls "$work"/gguf/*F32.gguf | grep -v mmproj); mmproj=$(ls "$work"/gguf/mmproj-*)
args=(run -m "$llm" --mmproj "$mmproj" --image "$root/quant-tests/fixtures/golden/images/gradient_640x480.png" -p "Describe." -n 12 --temp 0 --kv-f32 --flash-attn off)
want=$(target/release/h2ovl "${args[@]}" 2>/dev/null)

cd /
v=$(env -u LD_LIBRARY_PATH "$bin" --version)
check "moved --version" "$v" "libraries: $work/elsewhere/deeper/moved"
check "moved --version" "$v" "llm: ggml-cpu "
deps=$(ldd "$bin" | grep -E 'libllama|libggml')
check "ldd of the moved binary" "$deps" "$work/elsewhere/deeper/moved/libllama.so.0"
check "ldd of the moved binary" "$deps" "$work/elsewhere/deeper/moved/libggml-base.so.0"
got=$(env -u LD_LIBRARY_PATH "$bin" "${args[@]}" 2>/dev/null) || { echo "error: the moved binary failed to run" >&2; fail=1; }
[ "$got" = "$want" ] || { echo "error: moved binary answered '$got', build tree '$want'" >&2; fail=1; }
# Forcing a variant works from the moved folder too; an unknown one is one clear error, exit 1.
got=$(env -u LD_LIBRARY_PATH H2OVL_LLM_CPU=x64 "$bin" "${args[@]}" 2>/dev/null) || fail=1
[ "$got" = "$want" ] || { echo "error: x64 variant answered '$got', expected '$want'" >&2; fail=1; }
set +e; err=$(env -u LD_LIBRARY_PATH "$bin" "${args[@]}" --llm-cpu nosuch 2>&1 >/dev/null); rc=$?; set -e
[ $rc = 1 ] || { echo "error: --llm-cpu nosuch exited $rc" >&2; fail=1; }
check "--llm-cpu nosuch" "$err" "error: H2OVL_LLM_CPU=nosuch: no such llama.cpp CPU variant here"
# A folder without its CPU variants is one clear error, not a crash.
mkdir "$work/bare"; cp "$work/elsewhere/deeper/moved/"{h2ovl,libllama.so.0,libggml.so.0,libggml-base.so.0} "$work/bare/"
set +e; err=$(env -u LD_LIBRARY_PATH "$work/bare/h2ovl" "${args[@]}" 2>&1 >/dev/null); rc=$?; set -e
[ $rc = 1 ] || { echo "error: variant-less folder exited $rc" >&2; fail=1; }
check "variant-less folder" "$err" "no llama.cpp CPU backend (libggml-cpu-*.so) found in $work/bare"
cd "$root"

# make install PREFIX=...: bin/h2ovl is a symlink into lib/h2ovl/.
scripts/dist.sh --install "$work/prefix" >/dev/null
v=$(cd / && env -u LD_LIBRARY_PATH "$work/prefix/bin/h2ovl" --version)
check "installed --version" "$v" "libraries: $work/prefix/lib/h2ovl"
[ $fail = 0 ] && echo "dist: moved folder and install prefix run on their own libraries (answer: '$want')"
exit $fail
