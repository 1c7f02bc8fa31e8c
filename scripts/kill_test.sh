#!/usr/bin/env bash
# Random SIGKILL: trains one run, killing it with SIGKILL KILLS times in a row and starting the
# same command again each time (resume is the default), then checks that nothing was lost:
#   - every restart resumed from the checkpoint `latest` named after the kill (a complete one);
#   - the final checkpoint (weights, EMA, optimizer state) is byte-identical to an uninterrupted
#     run with the same seed and thread count;
#   - the store is consistent (PRAGMA integrity_check, foreign_key_check), every killed run is
#     'interrupted' (or has no row: killed before training started, with no progress), the last
#     one 'done', every restart that resumed names the run it resumed from, no run logged a step
#     twice, and the losses stitched from the chain (each run's steps up to where the next one
#     resumed) are every step exactly once, bit-identical to the uninterrupted run's.
# Each restart has its own name (r0, r1, ...), so each gets its own row linked by resumed_from;
# tests/integration/test_store_admin.sh covers the same name continuing one row.
# The kill points rotate over three moments: at a random time (mostly inside a training step),
# while a checkpoint file is being written (a *.tmp.<pid> file exists), and just after `latest`
# moved (the checkpoint's store row and the metrics flush are in their transaction then).
#   scripts/kill_test.sh [KILLS=20] [STEPS=200] [SEED=1]      (HDLM_BIN: the binary to test)
# Prints one line per kill and a summary; exit status 0 when every check passed.
set -u
KILLS=${1:-20}
STEPS=${2:-200}
SEED=${3:-1}
HDLM=${HDLM_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/hdlm}
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off # a run is reproducible per thread count
RANDOM=$SEED
dir=$(mktemp -d)
bgpid=""
cleanup() {
  if [ -n "$bgpid" ]; then kill -9 "$bgpid" 2>/dev/null; wait "$bgpid" 2>/dev/null; fi
  [ -n "${KEEP_DIR:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"
}
trap cleanup EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }
q()    { "$HDLM" query --db "$1" --csv "$2" | tail -n +2; } # rows without the header
[ -x "$HDLM" ] || { echo "kill_test: no binary at $HDLM (set HDLM_BIN)" >&2; exit 2; }

words=(the quick brown fox jumps over lazy dog and a cat sat on mat with hat red blue river
       stone light rain song under)
awk -v n=60000 -v nw=${#words[@]} -v w="${words[*]}" 'BEGIN {
  split(w, W, " "); s = 12345; out = 0
  while (out < n) {
    line = ""; k = 3 + (s % 10)
    for (i = 0; i < k; i++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (i ? " " : "") W[1 + int(s / 65536) % nw] }
    print line "."; out += length(line) + 2
  } }' > "$dir/corpus.txt"
"$HDLM" data prepare "$dir/corpus.txt" -o "$dir/corpus.tok" --valid 0.05 >/dev/null 2>&1 \
  || { echo "kill_test: data prepare failed" >&2; exit 1; }

# ~80 ms a step with one thread; a checkpoint every 5 steps
cat > "$dir/train.lua" <<LUA
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
db:train{
  name = a.name, data = data, objective = "ar",
  model = { d_model = 128, n_layer = 2, n_head = 2, seq_len = 128 },
  steps = $STEPS, batch = 8, lr = 3e-3, warmup = 4, log_every = 1,
  checkpoint_dir = a.ckpt, ckpt_every = 5, seed = 3,
}
LUA
start() { # db ckpt name: hdlm in the background (exec: \$! is hdlm itself)
  (exec "$HDLM" run "$dir/train.lua" --db "$1" corpus="$dir/corpus.tok" ckpt="$2" name="$3" \
    >"$dir/$3.out" 2>"$dir/$3.err") &
  bgpid=$!
}
latest() { cat "$dir/ck/latest" 2>/dev/null || echo 0; }
alive() { kill -0 "$bgpid" 2>/dev/null; }

t0=$(date +%s)
"$HDLM" run "$dir/train.lua" --db "$dir/a.db" corpus="$dir/corpus.tok" ckpt="$dir/ckA" name=A \
  >"$dir/A.out" 2>"$dir/A.err" || { echo "kill_test: the uninterrupted run failed" >&2; exit 1; }
t_ref=$(( $(date +%s) - t0 ))

declare -A moments=()
resume_at=() # resume_at[i]: step run i started from (0 = fresh)
kills=0 no_row=0
i=0
while :; do
  before=$(latest)
  resume_at[$i]=$before
  start "$dir/b.db" "$dir/ck" "r$i"
  if [ "$kills" -ge "$KILLS" ]; then # the last run goes to the end
    stale_before=$(find "$dir/ck" -name '*.tmp.*' | wc -l) # the killed saves' leftovers
    wait "$bgpid"; rc=$?; bgpid=""
    [ $rc -eq 0 ] && ok || bad "final run r$i exit status $rc: $(tail -2 "$dir/r$i.err")"
    break
  fi
  mode=$((kills % 3)) moment=""
  case $mode in
    0) # a random time: 0.3..1.8 s after the start (start-up, a step, or a checkpoint)
      sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 0.3 + 1.5 * r / 32768 }')"
      moment=random ;;
    1) # while a checkpoint file is being written
      while alive; do
        if compgen -G "$dir/ck/*.tmp.$bgpid" >/dev/null; then moment=checkpoint-write; break; fi
        sleep 0.002
      done ;;
    2) # just after `latest` moved past where this run started: its store transaction
      while alive; do
        cur=$(latest)
        if [ "$cur" != "$before" ]; then moment=after-latest; break; fi
        sleep 0.002
      done ;;
  esac
  if kill -9 "$bgpid" 2>/dev/null; then
    wait "$bgpid" 2>/dev/null; rc=$?; bgpid=""
    [ $rc -eq 137 ] && ok || bad "r$i exit status $rc after SIGKILL, expected 137"
    kills=$((kills + 1))
    moments[$moment]=$(( ${moments[$moment]:-0} + 1 ))
    # did the kill land between `latest` and the commit of its checkpoint row? (a read-only
    # query: it does not reap the run)
    now=$(latest) note=""
    if [ "$now" != "$before" ] &&
      [ "$(q "$dir/b.db" "SELECT count(*) FROM checkpoints WHERE run_id = (SELECT id FROM runs WHERE name = 'r$i') AND step = $now")" = 0 ]; then
      no_row=$((no_row + 1)) note=" (before its checkpoint row was committed)"
    fi
    echo "kill $kills: run r$i (from step $before) at $moment; latest now $now$note"
  else # it finished first: nothing to kill; the chain ends with it
    wait "$bgpid"; rc=$?; bgpid=""
    [ $rc -eq 0 ] && ok || bad "run r$i ended with status $rc: $(tail -2 "$dir/r$i.err")"
    echo "run r$i finished before kill $((kills + 1)) could land" >&2
    break
  fi
  i=$((i + 1))
done
n_runs=$((i + 1))

# every restart resumed from the `latest` left by the kill before it
for ((r = 1; r < n_runs; r++)); do
  want=${resume_at[$r]}
  if [ "$want" = 0 ]; then
    grep -q "resuming from" "$dir/r$r.err" && bad "r$r resumed, but no checkpoint existed" || ok
  else
    grep -q "resuming from step $want of " "$dir/r$r.err" && ok \
      || bad "r$r did not resume from step $want: $(grep -m1 resuming "$dir/r$r.err")"
  fi
done
[ "$(cat "$dir/ck/latest" 2>/dev/null)" = "$STEPS" ] && ok || bad "latest at the end: $(latest)"
for f in safetensors ema.safetensors state.safetensors; do
  cmp -s "$dir/ckA/step_$(printf %08d "$STEPS").$f" "$dir/ck/step_$(printf %08d "$STEPS").$f" \
    && ok || bad "final $f differs from the uninterrupted run"
done
# temporary files of checkpoints cut short by a kill (named by the dead pid) are removed by the
# next successful save
stale=$(find "$dir/ck" -name '*.tmp.*' | wc -l)
[ "$stale" = 0 ] && ok || bad "$stale temporary files of killed saves left: $(find "$dir/ck" -name '*.tmp.*' | head -3)"

# the store: consistent, every killed run 'interrupted' (reaped by the next open), the last done
[ "$(q "$dir/b.db" "PRAGMA integrity_check")" = ok ] && ok || bad "integrity_check failed"
[ -z "$(q "$dir/b.db" "PRAGMA foreign_key_check")" ] && ok || bad "foreign_key_check failed"
# a run has its row from the moment training starts: one killed earlier (loading the model or
# the checkpoint) has none and made no progress; a restart that resumed names the run it resumed
# from (resumed_from)
st="" no_row_runs=0
for ((r = 0; r < n_runs; r++)); do
  s_r=$(q "$dir/b.db" "SELECT status || ':' || (resumed_from IS NOT NULL) FROM runs WHERE name = 'r$r'")
  if [ -z "$s_r" ]; then
    no_row_runs=$((no_row_runs + 1))
    next=$([ $((r + 1)) -lt $n_runs ] && echo "${resume_at[$((r + 1))]}" || echo "$STEPS")
    [ "$next" = "${resume_at[$r]}" ] && ok || bad "r$r has no run row but progressed from ${resume_at[$r]} to $next"
    s_r="none"
  else
    linked=$([ "${resume_at[$r]}" -gt 0 ] && echo 1 || echo 0)
    [ "${s_r##*:}" = "$linked" ] && ok || bad "r$r (resumed from step ${resume_at[$r]}): resumed_from set = ${s_r##*:}, expected $linked"
    s_r=${s_r%%:*}
  fi
  st="$st${st:+ }$s_r"
done
want_st="$(for ((r = 1; r < n_runs; r++)); do printf 'interrupted '; done)done"
[ "$(sed 's/none/interrupted/g' <<<"$st")" = "$want_st" ] && ok || bad "run statuses '$st', expected '$want_st' (none: no row)"
dup=$(q "$dir/b.db" "SELECT count(*) FROM (SELECT run_id, name, step FROM metrics GROUP BY 1, 2, 3 HAVING count(*) > 1)")
[ "$dup" = 0 ] && ok || bad "$dup (run, metric, step) rows appear more than once"
# stitch: run r contributes steps (resume_at[r], resume_at[r+1]]; the last up to STEPS
cond=""
for ((r = 0; r < n_runs; r++)); do
  lo=${resume_at[$r]}
  hi=$([ $((r + 1)) -lt $n_runs ] && echo "${resume_at[$((r + 1))]}" || echo "$STEPS")
  cond="$cond${cond:+ OR }(run_id = (SELECT id FROM runs WHERE name = 'r$r') AND step > $lo AND step <= $hi)"
done
stitched=$(q "$dir/b.db" "SELECT step, printf('%.17g', value) FROM metrics WHERE name = 'loss' AND ($cond) ORDER BY step")
ref=$(q "$dir/a.db" "SELECT step, printf('%.17g', value) FROM metrics WHERE name = 'loss' ORDER BY step")
[ "$(grep -c . <<<"$stitched")" = "$STEPS" ] && ok || bad "stitched losses: $(grep -c . <<<"$stitched") rows, expected $STEPS"
[ "$stitched" = "$ref" ] && ok \
  || bad "stitched losses differ from the uninterrupted run:"$'\n'"$(diff <(echo "$ref") <(echo "$stitched") | head -6)"
# and each run's own rows start right after its resume point (nothing before it re-logged)
for ((r = 1; r < n_runs; r++)); do
  lo=$(q "$dir/b.db" "SELECT coalesce(min(step), -1) FROM metrics WHERE run_id = (SELECT id FROM runs WHERE name = 'r$r') AND name = 'loss'")
  [ "$lo" = -1 ] || [ "$lo" = $(( ${resume_at[$r]} + 1 )) ] && ok \
    || bad "r$r's first logged step is $lo, expected $(( ${resume_at[$r]} + 1 ))"
done
if grep -lE "Sanitizer|runtime error" "$dir"/*.err >/dev/null 2>&1; then
  bad "sanitizer report: $(grep -hE -m3 "Sanitizer|runtime error" "$dir"/*.err)"
fi

summary=""
for m in random checkpoint-write after-latest; do summary="$summary $m=${moments[$m]:-0}"; done
echo "kill_test: $kills SIGKILLs survived over $n_runs runs ($summary ; $no_row before the checkpoint" \
  "row of a moved \`latest\` was committed; $no_row_runs killed before their run row existed)," \
  "$STEPS steps," \
  "reference run ${t_ref} s, total $(( $(date +%s) - t0 )) s; ${stale_before:-0} temporary" \
  "file(s) of killed saves before the last run, $stale after it"
echo "kill_test: $passed passed, $failed failed"
[ $failed -eq 0 ]
