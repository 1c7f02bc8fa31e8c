#!/usr/bin/env bash
# Set-up + all tests: installs what is missing, builds (Release, -Werror), runs the whole ctest
# suite and prints its summary.   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true

# Test-only packages (tests/integration/test_report.sh renders the HTML report in headless
# Chromium; scripts/fuzz.sh builds the libFuzzer targets with clang, whose OpenMP is libomp); the
# quickstart does not need them, so they are installed here, not in setup.sh.
test_packages=(chromium clang libomp-dev)
missing=()
for p in "${test_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "test: not root; install these first: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

scripts/setup.sh "$build_dir" -DHDLM_WERROR=ON "$@"

# The GPT-2 exactness test (tests/integration/test_gpt2_exact.sh) compares with js-tiktoken run by
# node, on GPT-2's files and two corpora; it skips when any of them is missing.
for what in gpt2 brown fortunes; do
  scripts/get-data.sh "$what" || echo "test: scripts/get-data.sh $what failed; the tests needing it will skip" >&2
done
if [ ! -d "$build_dir/tests/node/node_modules/js-tiktoken" ]; then
  echo "test: installing js-tiktoken@1.0.21 into $build_dir/tests/node"
  mkdir -p "$build_dir/tests/node"
  npm install --silent --no-audit --no-fund --prefix "$build_dir/tests/node" js-tiktoken@1.0.21 ||
    echo "test: npm install js-tiktoken failed; the GPT-2 exactness test will skip" >&2
fi
cd "$build_dir"
ctest --output-on-failure -j 2
