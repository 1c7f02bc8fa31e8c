#!/usr/bin/env bash
# Builds the libFuzzer targets (clang + HDLM_FUZZ: ASan, UBSan, coverage) and runs each for a
# bounded time from the committed seeds, then prints the inputs tried per target (libFuzzer's
# stat::number_of_executed_units). Fails if any target reports a crash, leak, UB or timeout; the
# failing input is left in <build>/fuzz-work/<target>/artifacts/. New inputs go to
# <build>/fuzz-work/<target>/corpus, never into tests/fuzz/corpus (the regression cases, which
# the normal build replays in ctest as fuzz_replay.<target>).
#   scripts/fuzz.sh [SECONDS_PER_TARGET (45)] [BUILD_DIR (build-fuzz)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-45}
build_dir=${2:-build-fuzz}

if ! command -v clang >/dev/null; then
  echo "fuzz: clang is needed (apt-get install clang libomp-dev)" >&2
  exit 1
fi
mkdir -p "$build_dir"
cmake -S . -B "$build_dir" -DCMAKE_C_COMPILER=clang -DHDLM_FUZZ=ON -DHDLM_MPI=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build_dir/fuzz-configure.log" 2>&1 ||
  { cat "$build_dir/fuzz-configure.log"; exit 1; }
cmake --build "$build_dir" --target fuzz -j 2 >"$build_dir/fuzz-build.log" 2>&1 ||
  { tail -n 60 "$build_dir/fuzz-build.log"; exit 1; }

status=0
summary=""
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  short=${name#fuzz_}
  work="$build_dir/fuzz-work/$short"
  mkdir -p "$work/corpus" "$work/artifacts"
  log="$work/log.txt"
  # one thread: the targets are single-threaded and the machine is shared with the other jobs
  if OMP_NUM_THREADS=1 "$build_dir/$name" -max_total_time="$secs" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" \
    "tests/fuzz/corpus/$short" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    tail -n 60 "$log"
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  line=$(printf '%-12s %-7s %10s inputs in %s s' "$short" "$result" "${execs:-?}" "$secs")
  echo "fuzz: $line"
  summary+="$line"$'\n'
done
echo "== fuzz summary =="
printf '%s' "$summary"
exit $status
