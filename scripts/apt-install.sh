#!/usr/bin/env bash
# scripts/apt-install.sh WHAT PKG...: installs Debian packages a script of ours needs, with apt when allowed
# (root or passwordless sudo, H2OVL_NO_INSTALL unset); otherwise prints the exact command and fails.
# WHAT names the need in messages ("cross prerequisites", ...). No packages = nothing to do.
set -euo pipefail
what=$1; shift
[ $# -gt 0 ] || exit 0
have() { command -v "$1" >/dev/null 2>&1; }
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then sudo_cmd="sudo"; else sudo_cmd="NOSUDO"; fi
fi
if [ "${H2OVL_NO_INSTALL:-0}" = 1 ] || [ "$sudo_cmd" = NOSUDO ] || ! have apt-get; then
  echo "error: missing $what: $*. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $*" >&2
  exit 1
fi
echo "installing $what: $*" >&2
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "$@" >&2
