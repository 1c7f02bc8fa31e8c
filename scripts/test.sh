#!/usr/bin/env bash
# Set-up + all tests: installs what is missing, builds (Release, -Werror), runs the whole ctest
# suite and prints its summary.   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true
scripts/setup.sh "$build_dir" -DHDLM_WERROR=ON "$@"
cd "$build_dir"
ctest --output-on-failure -j 2
