#!/usr/bin/env bash
# Data-parallel training through the real binary under mpirun (2 ranks, one OpenMP thread each):
#   (a) 2 ranks with batch 8 (4 each) log the same losses and validation losses as 1 rank with
#       batch 8, to 1e-5 relative, for a method objective (ε-hybrid x block annealing, vectorised)
#       and for "ar";
#   (b) the 2-rank run is one row of `runs` with world_size 2, its plugins, checkpoints and
#       samples are recorded once, one checkpoint set is on disk, every rank could query the
#       store, got rank 0's samples (ids and texts) and could start an hdlm of its own;
#   (c) a run stopped at step 6 on 2 ranks and resumed on 1 (and the other way round) continues
#       the uninterrupted 1-rank loss curve;
#   (d) a script failing on one rank ends the whole job with an error instead of hanging, and
#       commands other than `run` refuse to run as several processes.
# MPI is optional: without it (no MPI in the build, or no mpirun) the test exits 77, which ctest
# reports as skipped — unless the MPI development files are installed (mpicc) and the build was
# asked to use them (HDLM_MPI=ON): then CMake missed them, which is a failure.
set -u
HDLM=${HDLM_BIN:-./hdlm}
BUILD=${HDLM_BUILD:-.}
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off
# containers often forbid the cross-memory attach Open MPI's shared-memory transport tries first
export OMPI_MCA_btl_vader_single_copy_mechanism=none

if "$HDLM" --version | grep -q "no MPI"; then
  if command -v mpicc >/dev/null 2>&1 && grep -q "^HDLM_MPI:BOOL=ON" "$BUILD/CMakeCache.txt" 2>/dev/null; then
    echo "FAIL: mpicc is installed but $HDLM was built without MPI (CMake's FindMPI missed it?)" >&2
    exit 1
  fi
  echo "skipped: no MPI in this build (apt-get install libopenmpi-dev openmpi-bin, then rebuild)"
  exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
  echo "skipped: $HDLM was built with MPI but mpirun is not on PATH (apt-get install openmpi-bin)"
  exit 77
fi
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS -np 2)

dir=$(mktemp -d)
trap '[ -n "${KEEP_DIR:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"' EXIT
passed=0; failed=0
ok()  { passed=$((passed+1)); }
bad() { failed=$((failed+1)); echo "FAIL: $*" >&2; }
q()   { "$HDLM" query --db "$1" --csv "$2" | tail -n +2; } # rows without the header

# ~60 KB of generated sentences (deterministic)
words=(the quick brown fox jumps over lazy dog and a cat sat on mat with hat red blue river
       stone light rain song under)
awk -v n=60000 -v nw=${#words[@]} -v w="${words[*]}" 'BEGIN {
  split(w, W, " "); s = 12345; out = 0
  while (out < n) {
    line = ""; k = 3 + (s % 10)
    for (i = 0; i < k; i++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (i ? " " : "") W[1 + int(s / 65536) % nw] }
    print line "."; out += length(line) + 2
  } }' > "$dir/corpus.txt"
"$HDLM" data prepare "$dir/corpus.txt" -o "$dir/corpus.tok" --valid 0.1 >/dev/null 2>&1 \
  && ok || bad "data prepare"

cat > "$dir/train.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
if a.fail_rank and hdlm.rank == tonumber(a.fail_rank) then error("deliberate failure on rank " .. hdlm.rank) end
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
local opts = {
  name = a.name, data = data, seed = 7, steps = 12, batch = 8, lr = 3e-3, warmup = 2,
  model = { d_model = 64, n_layer = 2, n_head = 2, seq_len = 64 }, log_every = 1,
  eval_every = 6, eval_batches = 2, checkpoint_dir = a.ckpt, ckpt_every = 3,
  stop_after = tonumber(a.stop or 0),
}
if a.obj == "ar" then
  opts.objective = "ar"
else
  opts.noise = { "epsilon_hybrid", epsilon = 0.01 }
  opts.schedule = { "block_annealing", width = 16, tau = 16 }
  opts.vectorised = true
end
local run = db:train(opts)
-- every rank can read the store (followers read-only); only rank 0's stdout is shown
local rows = db:query("SELECT count(*) AS n FROM runs WHERE id = ?", run.id)
io.stderr:write(("rank %d of %d: run %d, query ok (%d row)\n"):format(hdlm.rank, hdlm.world_size, run.id, rows[1].n))
-- an hdlm started by a rank runs alone (it must not try to join the job)
local child = os.execute(("%q plugins > /dev/null 2>&1"):format(hdlm.binary))
io.stderr:write(("rank %d: child hdlm %s\n"):format(hdlm.rank, child and "ok" or "failed"))
if opts.noise then -- rank 0 samples for everyone: the same stored ids and texts on every rank
  local s = run:sample{ n = 2, length = 32, seed = 1 }
  local sum = 0
  for _, x in ipairs(s) do for i = 1, #x.text do sum = (sum * 31 + x.text:byte(i)) % 1000003 end end
  io.stderr:write(("rank %d: samples %d %d checksum %d\n"):format(hdlm.rank, s[1].id, s[2].id, sum))
end
print(("summary: world %d, steps %d, allreduce %.6f s/step"):format(run.summary.world_size, run.summary.steps, run.summary.allreduce_time))
LUA

train() { # np db ckpt name obj [extra key=value...]; output in $dir/<name>.out/.err
  local np=$1 db=$2 ck=$3 name=$4 obj=$5
  shift 5
  if [ "$np" = 1 ]; then
    "$HDLM" run "$dir/train.lua" --db "$db" corpus="$dir/corpus.tok" ckpt="$ck" name="$name" \
      obj="$obj" "$@" >"$dir/$name.out" 2>"$dir/$name.err"
  else # Open MPI's own allocations outlive MPI_Finalize: no leak reports under a sanitizer
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    timeout 300 "${MPIRUN[@]}" "$HDLM" run "$dir/train.lua" --db "$db" corpus="$dir/corpus.tok" \
      ckpt="$ck" name="$name" obj="$obj" "$@" >"$dir/$name.out" 2>"$dir/$name.err"
  fi
}
metric() { # db run_name metric [cond] -> "step,value" rows with 17 digits
  q "$1" "SELECT m.step, printf('%.17g', m.value) FROM metrics m JOIN runs r ON r.id = m.run_id
          WHERE r.name = '$2' AND m.name = '$3' ${4:-} ORDER BY m.step"
}
# same steps, values within rel relative: prints the worst relative difference, fails otherwise
close() { # label rows_a rows_b rel
  local res
  res=$(join -t, <(echo "$2") <(echo "$3") | awk -F, -v na="$(grep -c . <<<"$2")" \
    -v nb="$(grep -c . <<<"$3")" -v rel="$4" '
    { d = $2 - $3; if (d < 0) d = -d; s = $3 < 0 ? -$3 : $3; r = d / (s > 1e-30 ? s : 1e-30)
      if (r > worst) worst = r; n++ }
    END { printf "%d rows, worst relative difference %.3g", n, worst
          exit !(n > 0 && n == na && n == nb && worst <= rel) }')
  local rc=$?
  if [ $rc -eq 0 ]; then ok; echo "  $1: $res" >&2; else bad "$1: $res (want <= $4, same steps)"; fi
}

t0=$(date +%s)
# ---- (a) 1 rank vs 2 ranks ------------------------------------------------------------------
for obj in method ar; do
  train 1 "$dir/one.db" "$dir/ck1_$obj" "one_$obj" $obj && ok || bad "1-rank $obj run failed: $(tail -3 "$dir/one_$obj.err")"
  train 2 "$dir/two.db" "$dir/ck2_$obj" "two_$obj" $obj && ok || bad "2-rank $obj run failed: $(tail -5 "$dir/two_$obj.err")"
  n=$(metric "$dir/two.db" "two_$obj" loss | grep -c .)
  [ "$n" = 12 ] && ok || bad "2-rank $obj run logged $n losses, expected 12 (one rank logs)"
  close "$obj loss, 1 vs 2 ranks" "$(metric "$dir/one.db" "one_$obj" loss)" \
    "$(metric "$dir/two.db" "two_$obj" loss)" 1e-5
  close "$obj valid_loss, 1 vs 2 ranks" "$(metric "$dir/one.db" "one_$obj" valid_loss)" \
    "$(metric "$dir/two.db" "two_$obj" valid_loss)" 1e-5
  # the runs really differ in layout: a 2-rank step all-reduces, a 1-rank step does not
  n=$(q "$dir/two.db" "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.name = 'two_$obj' AND m.name = 'allreduce_time' AND m.value > 0")
  [ "$n" = 12 ] && ok || bad "2-rank $obj run: $n positive allreduce_time rows, expected 12"
  n=$(q "$dir/one.db" "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.name = 'one_$obj' AND m.name = 'allreduce_time'")
  [ "$n" = 0 ] && ok || bad "1-rank $obj run logged allreduce_time"
done

# ---- (b) one row, world_size 2, one set of checkpoints ---------------------------------------
n=$(q "$dir/two.db" "SELECT count(*) FROM runs")
[ "$n" = 2 ] && ok || bad "two.db has $n runs, expected 2 (one per 2-rank script run)"
r=$(q "$dir/two.db" "SELECT world_size || '|' || status FROM runs WHERE name = 'two_method'")
[ "$r" = "2|done" ] && ok || bad "2-rank run row: world_size|status = '$r', expected 2|done"
r=$(q "$dir/one.db" "SELECT world_size FROM runs WHERE name = 'one_method'")
[ "$r" = 1 ] && ok || bad "1-rank run row: world_size '$r', expected 1"
n=$(q "$dir/two.db" "SELECT count(*) FROM run_plugins p JOIN runs r ON r.id = p.run_id WHERE r.name = 'two_method'")
[ "$n" = 2 ] && ok || bad "2-rank run has $n run_plugins rows, expected 2 (noise, schedule)"
r=$(q "$dir/two.db" "SELECT group_concat(step, ' ') FROM (SELECT c.step FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE r.name = 'two_method' ORDER BY c.step)")
[ "$r" = "3 6 9 12" ] && ok || bad "2-rank checkpoint rows at steps '$r', expected 3 6 9 12 once each"
[ "$(cat "$dir/ck2_method/latest" 2>/dev/null)" = 12 ] && ok || bad "2-rank run: latest is not 12"
files=$(cd "$dir/ck2_method" && ls | sort | tr '\n' ' ')
want="latest step_00000009.ema.safetensors step_00000009.safetensors step_00000009.state.safetensors step_00000012.ema.safetensors step_00000012.safetensors step_00000012.state.safetensors "
[ "$files" = "$want" ] && ok || bad "2-rank checkpoint dir holds '$files', expected '$want'"
grep -q "rank 1 of 2: run .*query ok (1 row)" "$dir/two_method.err" && ok \
  || bad "rank 1 could not query the store: $(grep rank "$dir/two_method.err")"
n=$(grep -c "child hdlm ok" "$dir/two_method.err")
[ "$n" = 2 ] && ok || bad "an hdlm started by each rank: $n of 2 ran: $(grep child "$dir/two_method.err")"
s0=$(grep "rank 0: samples" "$dir/two_method.err" | cut -d: -f2)
s1=$(grep "rank 1: samples" "$dir/two_method.err" | cut -d: -f2)
[ -n "$s0" ] && [ "$s0" = "$s1" ] && ok || bad "rank 0 and 1 got different samples: '$s0' vs '$s1'"
n=$(q "$dir/two.db" "SELECT count(*) FROM samples s JOIN runs r ON r.id = s.run_id WHERE r.name = 'two_method'")
[ "$n" = 2 ] && ok || bad "the 2-rank run stored $n samples, expected 2 (rank 0 samples once)"
grep -q "samples $(q "$dir/two.db" "SELECT group_concat(s.id, ' ') FROM samples s JOIN runs r ON r.id = s.run_id WHERE r.name = 'two_method'") " "$dir/two_method.err" \
  && ok || bad "the ranks' sample ids are not the stored ones: $(grep samples "$dir/two_method.err")"
grep -q "summary: world 2, steps 12" "$dir/two_method.out" && ok || bad "2-rank summary: $(cat "$dir/two_method.out")"
n=$(grep -c "summary:" "$dir/two_method.out")
[ "$n" = 1 ] && ok || bad "rank 0 alone prints to stdout, found $n summary lines"

# ---- (c) stop at 6 on 2 ranks, resume on 1 (and 1 -> 2) --------------------------------------
train 2 "$dir/c.db" "$dir/ck21" "c21_first" method stop=6 && ok || bad "2-rank stop_after run failed: $(tail -5 "$dir/c21_first.err")"
[ "$(cat "$dir/ck21/latest" 2>/dev/null)" = 6 ] && ok || bad "2-rank stopped run: latest is not 6"
train 1 "$dir/c.db" "$dir/ck21" "c21_resumed" method && ok || bad "1-rank resume failed: $(tail -3 "$dir/c21_resumed.err")"
grep -q "resuming from step 6 of " "$dir/c21_resumed.err" && ok || bad "1-rank run did not resume from 6: $(head -3 "$dir/c21_resumed.err")"
close "2 ranks -> 1 rank: losses after step 6 vs uninterrupted 1 rank" \
  "$(metric "$dir/one.db" one_method loss 'AND m.step > 6')" "$(metric "$dir/c.db" c21_resumed loss)" 1e-5
r=$(q "$dir/c.db" "SELECT group_concat(world_size, ' ') FROM (SELECT world_size FROM runs ORDER BY id)")
[ "$r" = "2 1" ] && ok || bad "stop/resume rows have world sizes '$r', expected 2 1"
train 1 "$dir/c.db" "$dir/ck12" "c12_first" method stop=6 && ok || bad "1-rank stop_after run failed"
train 2 "$dir/c.db" "$dir/ck12" "c12_resumed" method && ok || bad "2-rank resume failed: $(tail -5 "$dir/c12_resumed.err")"
n=$(grep -c "resuming from step 6 of " "$dir/c12_resumed.err")
[ "$n" = 1 ] && ok || bad "2-rank resume: $n 'resuming' messages, expected 1 (rank 0 speaks)"
close "1 rank -> 2 ranks: losses after step 6 vs uninterrupted 1 rank" \
  "$(metric "$dir/one.db" one_method loss 'AND m.step > 6')" "$(metric "$dir/c.db" c12_resumed loss)" 1e-5

# ---- (d) a failure on one rank ends the job ---------------------------------------------------
start=$(date +%s)
train 2 "$dir/d.db" "$dir/ckd" d_fail method fail_rank=1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && ok || bad "a failing rank 1: job exit status $rc, expected a failure (124 = hung)"
grep -q "deliberate failure on rank 1" "$dir/d_fail.err" && ok || bad "rank 1's error not shown: $(head -5 "$dir/d_fail.err")"
[ $(( $(date +%s) - start )) -lt 120 ] && ok || bad "the failed job took $(( $(date +%s) - start )) s to end"

# no sanitizer reports from any run (when the binary is built with them)
if grep -lE "Sanitizer|runtime error" "$dir"/*.err >/dev/null 2>&1; then
  bad "sanitizer report: $(grep -hE -m3 "Sanitizer|runtime error" "$dir"/*.err)"
else ok; fi

# commands other than `run` refuse to run as several processes (each would write on its own)
out=$(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout 120 "${MPIRUN[@]}" \
      "$HDLM" runs --db "$dir/one.db" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "only 'hdlm run' works across 2 MPI processes" <<<"$out" && ok \
  || bad "'hdlm runs' under mpirun -np 2: status $rc, output: $(head -3 <<<"$out")"

echo "test_mpi: $(( $(date +%s) - t0 )) s" >&2
echo "test_mpi: $passed passed, $failed failed"
[ $failed -eq 0 ]
