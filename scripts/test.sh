#!/usr/bin/env bash
# Set-up + all tests: installs what is missing, builds (Release, -Werror), runs the whole ctest
# suite and prints its summary.   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
build_dir=${1:-build}
shift || true

# Test-only packages, all optional (tests/integration/test_report.sh renders the HTML report in
# headless Chromium; scripts/fuzz.sh builds the libFuzzer targets with clang, whose OpenMP is
# libomp): installed when possible (root, or sudo without a password); the tests that need them
# are reported as skipped by ctest when they are absent.
test_packages=(chromium clang libomp-dev)
read -r -a missing <<<"$(pkg_missing "${test_packages[@]}")"
if [ ${#missing[@]} -gt 0 ]; then
  pkg_install test "${missing[@]}" || true
  read -r -a missing <<<"$(pkg_missing "${test_packages[@]}")"
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test: without ${missing[*]} (sudo apt-get install ${missing[*]}); their tests skip" >&2
  fi
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
