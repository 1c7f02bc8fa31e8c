#!/usr/bin/env bash
# Installs the Debian packages hdlm needs (only those missing) and builds it.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
#   scripts/setup.sh --check     only say what is missing and what would be done
# Missing packages are installed with apt-get as root, or with sudo when it works without a
# password; otherwise they are listed with the command to install them. The build goes ahead
# whenever the essential packages are there: MPI (multi-process training), the sqlite3 shell and
# git are optional. Works without dpkg-query (scripts/packages.sh). HDLM_JOBS: build parallelism
# (default: every core).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
build_dir=${1:-build}
shift || true

essential=(build-essential cmake pkg-config liblua5.4-dev libsqlite3-dev libopenblas-openmp-dev libpcre2-dev)
optional=(libopenmpi-dev openmpi-bin libdnnl-dev sqlite3 git)
why_optional="libopenmpi-dev openmpi-bin: multi-process training (hdlm run under mpirun; its test
    skips without them); libdnnl-dev: oneDNN, bf16 matrix products (precision = "bf16", on CPUs
    with AVX512_BF16); sqlite3: the sqlite3 shell (some tests use it); git: the git revision in
    each run's provenance"

read -r -a miss_e <<<"$(pkg_missing "${essential[@]}")"
read -r -a miss_o <<<"$(pkg_missing "${optional[@]}")"
how=$(pkg_installer)
if [ $check -eq 1 ]; then
  echo "setup: essential packages missing: ${miss_e[*]:-none}"
  echo "setup: optional packages missing: ${miss_o[*]:-none}"
  if [ ${#miss_e[@]} -gt 0 ] || [ ${#miss_o[@]} -gt 0 ]; then
    if [ -n "$how" ]; then
      echo "setup: would run: $how install ${miss_e[*]} ${miss_o[*]}"
    else
      echo "setup: cannot install packages here (not root, no password-less sudo, or no apt-get)"
    fi
  fi
  if [ ${#miss_e[@]} -gt 0 ] && [ -z "$how" ]; then
    echo "setup: would stop: install first: sudo apt-get install ${miss_e[*]}"
    exit 1
  fi
  echo "setup: would build in $build_dir"
  exit 0
fi

if [ ${#miss_e[@]} -gt 0 ] || [ ${#miss_o[@]} -gt 0 ]; then
  if [ -n "$how" ]; then
    # essential first: an optional package that cannot be installed must not stop the build
    pkg_install setup "${miss_e[@]}" || echo "setup: could not install ${miss_e[*]}" >&2
    if [ ${#miss_o[@]} -gt 0 ]; then
      pkg_install setup "${miss_o[@]}" || echo "setup: could not install ${miss_o[*]} (optional)" >&2
    fi
    read -r -a miss_e <<<"$(pkg_missing "${essential[@]}")"
    read -r -a miss_o <<<"$(pkg_missing "${optional[@]}")"
  elif [ "$(id -u)" -ne 0 ]; then
    echo "setup: not root and no password-less sudo: cannot install packages" >&2
  else
    echo "setup: no apt-get: cannot install packages (Debian names below)" >&2
  fi
fi
if [ ${#miss_e[@]} -gt 0 ]; then
  echo "setup: missing essential packages: ${miss_e[*]}" >&2
  echo "setup: install them first: sudo apt-get install ${miss_e[*]} ${miss_o[*]}" >&2
  exit 1
fi
if [ ${#miss_o[@]} -gt 0 ]; then
  echo "setup: building without the optional packages ${miss_o[*]}" >&2
  echo "    ($why_optional)" >&2
  echo "setup: to add them later: sudo apt-get install ${miss_o[*]}, then run this again" >&2
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" -j "${HDLM_JOBS:-$(nproc)}"
