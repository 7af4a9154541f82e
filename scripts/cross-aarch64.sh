#!/usr/bin/env bash
# Cross-compiles the workspace for aarch64-unknown-linux-gnu (Raspberry Pi 4/5, 64-bit OS) and runs the
# kernel / vision / preprocess / quantizer unit tests and the golden tests under qemu-user, so the NEON
# paths are proved equal to their scalar twins and to the reference outputs without ARM hardware.
#
# Why a separate target dir (target/aarch64): the x86 release build in target/ (and its llama.cpp) is
# never touched or invalidated by this script.
#
# Prerequisites (Debian/Ubuntu package names): gcc-aarch64-linux-gnu g++-aarch64-linux-gnu (GCC 12 ships
# the arm64 libc, libstdc++ and libgomp that llama.cpp links), qemu-user (qemu-aarch64), plus the host
# prerequisites of scripts/install-prereqs.sh (cmake, libclang) and the rustup target. Installed with apt
# when allowed (root or passwordless sudo); H2OVL_NO_INSTALL=1 only checks.
#
# Usage: scripts/cross-aarch64.sh [--build-only]
#   --build-only   cross-build the tests and the h2ovl binary, do not run anything under qemu.
# Timings of the build and of the qemu run are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
CARGO=${CARGO:-cargo}
build_only=0
for a in "$@"; do
  case "$a" in
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done

# --- prerequisites --------------------------------------------------------------------------------------
scripts/install-prereqs.sh
have() { command -v "$1" >/dev/null 2>&1; }
pkgs=()
have aarch64-linux-gnu-gcc || pkgs+=(gcc-aarch64-linux-gnu)
have aarch64-linux-gnu-g++ || pkgs+=(g++-aarch64-linux-gnu)
[ $build_only = 1 ] || have qemu-aarch64 || pkgs+=(qemu-user)
if [ ${#pkgs[@]} -gt 0 ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then
    if have sudo && sudo -n true 2>/dev/null; then sudo_cmd="sudo"; else sudo_cmd="NOSUDO"; fi
  fi
  if [ "${H2OVL_NO_INSTALL:-0}" = 1 ] || [ "$sudo_cmd" = NOSUDO ] || ! have apt-get; then
    echo "error: missing cross prerequisites: ${pkgs[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs[*]}" >&2
    exit 1
  fi
  echo "installing cross prerequisites: ${pkgs[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
fi
if have rustup; then
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET" || {
      echo "error: 'rustup target add $TARGET' failed (it downloads the target's std from static.rust-lang.org)." >&2
      exit 1
    }
  fi
else
  echo "warning: rustup not found; assuming the $TARGET standard library is installed" >&2
fi

# --- cross environment (cc-rs, cmake-rs, bindgen, rustc linker, test runner) ---------------------------
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=$SYSROOT"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"
export CARGO_TARGET_DIR="$PWD/target/aarch64"

crates=(-p h2ovl-runtime -p h2ovl-convert -p h2ovl-quant-tests)
cargo_x() { "$CARGO" "$@" --release --locked --target "$TARGET"; }

t0=$(date +%s)
cargo_x build --bin h2ovl
cargo_x test --no-run "${crates[@]}"
t1=$(date +%s)
echo "cross build: $((t1 - t0)) s (target dir $CARGO_TARGET_DIR)" >&2
[ $build_only = 1 ] && exit 0

# --- tests under qemu ----------------------------------------------------------------------------------
# Unit tests of the compute stages (vision kernels + encoder, preprocess, quantizers) and the golden
# tests that compare against the reference outputs. The LLM/serve tests exercise llama.cpp itself
# (already run by upstream on ARM) and are left to the x86 suite.
fail=0
run() { echo "== $*" >&2; cargo_x test "$@" || fail=1; }
run -p h2ovl-runtime --lib vision
run -p h2ovl-runtime --lib preprocess
run -p h2ovl-runtime --test vision_golden
run -p h2ovl-runtime --test preprocess_golden
run -p h2ovl-convert --lib quant
# Not run: quant-tests/tests/bitexact compares our quantizers with the HOST's ggml, and our quantizers
# reproduce x86-64 ggml's bytes by design (convert/src/quant/mod.rs); aarch64 GCC contracts a*b+c into FMA
# in ggml-quants.c, so Q4_0/Q5_0/Q8_0/K-quant bytes differ on a few values there (seen under qemu).
# Opt in with H2OVL_AARCH64_BITEXACT=1 to see the differences.
[ "${H2OVL_AARCH64_BITEXACT:-0}" = 1 ] && run -p h2ovl-quant-tests --test bitexact
run -p h2ovl-quant-tests --test e2e_golden
# The binary itself starts and reports its llama.cpp system info under emulation.
qemu-aarch64 -L "$SYSROOT" "$CARGO_TARGET_DIR/$TARGET/release/h2ovl" --version || fail=1
t2=$(date +%s)
echo "cross build: $((t1 - t0)) s, qemu tests: $((t2 - t1)) s" >&2
exit $fail
