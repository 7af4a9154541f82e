#!/usr/bin/env bash
# Makes sure the build prerequisites of llama-cpp-sys-2 are present: a C/C++ compiler, cmake, and libclang
# (bindgen). Installs the missing ones with apt when allowed (root, or passwordless sudo), otherwise prints
# the exact command and fails. Set H2OVL_NO_INSTALL=1 to only check.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && ls "$LIBCLANG_PATH"/libclang*.so* >/dev/null 2>&1 && return 0
  ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so' && return 0
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang-*.so* >/dev/null 2>&1
}
have_clang_headers() { ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h >/dev/null 2>&1 || ls /usr/lib/clang/*/include/stddef.h >/dev/null 2>&1; }

have cc || missing+=(gcc)
have c++ || missing+=(g++)
have make || missing+=(make)
have cmake || missing+=(cmake)
if ! have_libclang || ! have_clang_headers; then missing+=(libclang); fi

if ! have cargo; then
  echo "error: Rust (cargo) is not installed. Install it from https://rustup.rs (rustup), then re-run." >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! have apt-get; then
  echo "error: missing build prerequisites: ${missing[*]} (need a C/C++ compiler, cmake >= 3.14 and libclang)." >&2
  echo "Install them with your package manager, then re-run." >&2
  exit 1
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then sudo_cmd="sudo"; else sudo_cmd="NOSUDO"; fi
fi
can_install=1
if [ "${H2OVL_NO_INSTALL:-0}" = 1 ] || [ "$sudo_cmd" = NOSUDO ]; then can_install=0; fi
# A fresh machine may have no package lists yet: refresh them before resolving names.
[ $can_install = 1 ] && $sudo_cmd apt-get update -qq

# Debian/Ubuntu/Raspberry Pi OS package names. For libclang prefer the small runtime pair of the distro's
# LLVM (bindgen needs libclang.so + clang's builtin headers, not the large static libs).
pkgs=()
for m in "${missing[@]}"; do
  case "$m" in
    libclang)
      v=""
      for cand in 19 18 17 16 15 14 13; do
        if apt-cache show "libclang1-$cand" >/dev/null 2>&1 && apt-cache show "libclang-common-$cand-dev" >/dev/null 2>&1; then v=$cand; break; fi
      done
      if [ -n "$v" ]; then pkgs+=("libclang1-$v" "libclang-common-$v-dev"); else pkgs+=(libclang-dev); fi ;;
    *) pkgs+=("$m") ;;
  esac
done

if [ $can_install = 0 ]; then
  echo "error: missing build prerequisites: ${missing[*]}. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs[*]}" >&2
  exit 1
fi
echo "installing build prerequisites: ${pkgs[*]}" >&2
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
