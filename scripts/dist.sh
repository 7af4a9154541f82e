#!/usr/bin/env bash
# Packs a relocatable h2ovl: one folder (and a .tar.gz of it) with the binary and every llama.cpp library
# it loads — libllama/libggml/libggml-base by SONAME (found through the binary's $ORIGIN rpath) and one
# libggml-cpu-<variant>.so per ISA level (scanned in the binary's folder at start-up). The folder runs
# from wherever it is moved or unpacked; nothing refers to the build tree.
#
# Usage: scripts/dist.sh [OUTDIR]        (default dist/; `make dist`)
#        scripts/dist.sh --install PREFIX (`make install PREFIX=...`: PREFIX/lib/h2ovl/ + PREFIX/bin/h2ovl link)
# Uses target/release (built by `make build`); CARGO_TARGET_DIR and H2OVL_DIST_TARGET (a target triple
# for cross builds, e.g. aarch64-unknown-linux-gnu) pick another build.
set -euo pipefail
cd "$(dirname "$0")/.."
install_prefix=""
if [ "${1:-}" = --install ]; then install_prefix=${2:?--install needs PREFIX}; fi
outdir=${1:-dist}
[ -n "$install_prefix" ] && outdir=""
tdir=${CARGO_TARGET_DIR:-target}
triple=${H2OVL_DIST_TARGET:-}
rel="$tdir/${triple:+$triple/}release"
[ -x "$rel/h2ovl" ] || { echo "error: $rel/h2ovl not built (run make build first)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=${triple:-$(rustc -vV | sed -n 's/^host: //p')}
name="h2ovl-$version-$arch"

# The files: the binary, core libraries by SONAME (not libllama-common: nothing of ours links it), variants.
files=("$rel/h2ovl")
for f in "$rel"/lib*.so.[0-9]*; do
  case "$(basename "$f")" in libllama-common*) continue ;; esac
  [[ "$(basename "$f")" =~ \.so\.[0-9]+$ ]] && files+=("$f")
done
variants=("$rel"/libggml-cpu-*.so)
[ -e "${variants[0]}" ] || { echo "error: no libggml-cpu-*.so in $rel (llama-cpp-sys-2 dynamic-backends build?)" >&2; exit 1; }
files+=("${variants[@]}")

fill() { # fill DIR: copy the files, then check every library the binary needs resolves inside DIR
  mkdir -p "$1"
  cp -p "${files[@]}" "$1/"
  cp -p README.md "$1/README.md"
  # Line tables are for developers' backtraces; users get a 5x smaller binary.
  strip_cmd=${STRIP:-strip}; [ -n "$triple" ] && strip_cmd=${STRIP:-$triple-strip}
  command -v "$strip_cmd" >/dev/null && "$strip_cmd" --strip-debug "$1/h2ovl"
  if [ -z "$triple" ] && command -v ldd >/dev/null; then
    missing=$(ldd "$1/h2ovl" | grep -E 'libllama|libggml' | grep -v "=> $1/" || true)
    [ -z "$missing" ] || { echo "error: libraries not resolved inside $1:" >&2; echo "$missing" >&2; exit 1; }
  fi
}

if [ -n "$install_prefix" ]; then
  dest="$install_prefix/lib/h2ovl"
  tmp="$dest.tmp.$$"
  rm -rf "$tmp"; fill "$tmp"
  rm -rf "$dest"; mv "$tmp" "$dest"
  mkdir -p "$install_prefix/bin"
  ln -sfn "../lib/h2ovl/h2ovl" "$install_prefix/bin/h2ovl"
  echo "installed $install_prefix/bin/h2ovl -> $dest/ ($(ls "$dest" | wc -l) files)"
  exit 0
fi

mkdir -p "$outdir"
stage=$(mktemp -d "$outdir/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
fill "$stage/$name"
tar -C "$stage" -czf "$stage/$name.tar.gz" "$name"
rm -rf "${outdir:?}/$name" "$outdir/$name.tar.gz"
mv "$stage/$name" "$outdir/$name"
mv "$stage/$name.tar.gz" "$outdir/$name.tar.gz"
echo "$outdir/$name/ and $outdir/$name.tar.gz ($(du -sh "$outdir/$name" | cut -f1), $(ls "$outdir/$name" | wc -l) files)"
