#!/usr/bin/env bash
# Data-parallel overhead on this machine: experiments/bench_mpi.lua as 1 rank x 1 thread,
# 1 rank x 2 threads and 2 ranks x 1 thread (mpirun), then a table of step time, tokens/s and the
# time per step spent in the gradient all-reduce (it includes waiting for the slower rank).
#   scripts/bench_mpi.sh [BUILD_DIR] [steps]        (default build/, 30 steps)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${2:-30}
hdlm="$build/hdlm"
if "$hdlm" --version | grep -q "no MPI"; then
  echo "bench_mpi: $hdlm was built without MPI (apt-get install libopenmpi-dev openmpi-bin; re-run cmake)" >&2
  exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export HDLM_PROGRESS=off
mpi=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)

results=()
run() { # label, command...
  local label=$1
  shift
  local line
  line=$("$@" 2>"$dir/err" | grep '^RESULT') || { cat "$dir/err" >&2; exit 1; }
  results+=("$label ${line#RESULT }")
}
run "1 rank x 1 thread " env OMP_NUM_THREADS=1 "$hdlm" run experiments/bench_mpi.lua db="$dir/a.db" steps="$steps" threads=1
run "1 rank x 2 threads" env OMP_NUM_THREADS=2 "$hdlm" run experiments/bench_mpi.lua db="$dir/b.db" steps="$steps" threads=2
run "2 ranks x 1 thread" env OMP_NUM_THREADS=1 "${mpi[@]}" -x OMP_NUM_THREADS -np 2 "$hdlm" run experiments/bench_mpi.lua db="$dir/c.db" steps="$steps" threads=1

echo "bench_mpi: $(nproc) cores, $steps steps, batch 16 x 128 tokens (medians after step 3)"
printf "%-20s %10s %10s %14s %12s\n" "layout" "ms/step" "tokens/s" "all-reduce ms" "gradient MiB"
for r in "${results[@]}"; do
  read -r a b c d e world threads ms tok ar mib <<<"$r"
  printf "%-20s %10s %10s %14s %12s\n" "$a $b $c $d $e" "$ms" "$tok" "$ar" "$mib"
done
