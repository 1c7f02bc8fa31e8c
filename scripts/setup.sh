#!/usr/bin/env bash
# Installs the Debian packages hdlm needs (only those missing) and builds it.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
# Root on Debian 12: apt-get; elsewhere it only checks and tells what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-build}
shift || true

packages=(build-essential cmake pkg-config liblua5.4-dev libsqlite3-dev libopenblas-openmp-dev libpcre2-dev sqlite3 git
          libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: not root; install these first: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
