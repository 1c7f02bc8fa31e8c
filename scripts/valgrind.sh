#!/usr/bin/env bash
# valgrind memcheck over every unit test and a short training + sampling + eval run. Builds its own
# tree without -march=native (valgrind does not decode AVX-512). Any error or definite/indirect
# leak fails the script.   scripts/valgrind.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-valgrind}
command -v valgrind >/dev/null || { echo "valgrind: apt-get install valgrind" >&2; exit 1; }
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHDLM_NATIVE=OFF -DHDLM_MPI=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
# GOMP_SPINCOUNT set: without a wait policy hdlm re-executes itself (core/base/threads.h), which
# would run the program outside valgrind
export OMP_NUM_THREADS=1 GOMP_SPINCOUNT=1000 HDLM_PROGRESS=off HDLM_FIXTURE_DIR="$PWD/$dir/tests/plugins"
vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect -q)
fails=0; n=0
for t in "$dir"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$((n + 1))
  abs=$(realpath "$t")
  if (cd "$dir" && "${vg[@]}" "$abs" >"/tmp/vg.$$.out" 2>&1); then
    echo "clean: $(basename "$t")"
  else
    echo "FAIL: $(basename "$t")"; tail -30 "/tmp/vg.$$.out"; fails=$((fails + 1))
  fi
done
# a short run through the real binary: train, sample, eval
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" /tmp/vg.$$.out' EXIT
for i in $(seq 200); do echo "line $i: the quick brown fox jumps over the lazy dog."; done > "$tmp/c.txt"
cat > "$tmp/run.lua" <<'LUA'
local hdlm = require "hdlm"
local db = hdlm.open()
local data = hdlm.corpus{ path = hdlm.args.corpus, tokenizer = "bytes", valid = 0.1 }
local run = db:train{ data = data, noise = { "epsilon_hybrid" }, schedule = { "block_annealing", width = 8, tau = 2 },
  vectorised = true, model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }, steps = 3, batch = 2,
  checkpoint_dir = hdlm.args.ck, ckpt_every = 3 }
run:sample{ sampler = { "acs", eta = 0.1 }, n = 2 }
run:eval{ sequences = 2, mc = 2 }
LUA
n=$((n + 1))
if "${vg[@]}" "$dir/hdlm" run --db "$tmp/v.db" "$tmp/run.lua" corpus="$tmp/c.txt" ck="$tmp/ck" >"/tmp/vg.$$.out" 2>&1; then
  echo "clean: hdlm run (train + sample + eval)"
else
  echo "FAIL: hdlm run"; tail -30 "/tmp/vg.$$.out"; fails=$((fails + 1))
fi
echo "valgrind: $((n - fails)) of $n clean"
[ $fails -eq 0 ]
