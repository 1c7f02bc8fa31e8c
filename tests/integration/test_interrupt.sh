#!/usr/bin/env bash
# Graceful stop through the real binary: SIGTERM (or SIGINT) during training finishes the step,
# writes a checkpoint at the step reached, marks the run 'interrupted' with the reason and exits
# with 128 + signal; running the same command again resumes there and logs bit-identical losses
# to an uninterrupted run, ending with byte-identical checkpoint files. Also: a second signal
# ends the process at once, an ignored SIGINT stays ignored, and Ctrl-C on a sweep leaves the
# point being trained to resume (not failed).
# OMP_NUM_THREADS=1 (a run is reproducible per thread count). About 25 s with a release build.
set -u
HDLM=${HDLM_BIN:-./hdlm}
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off
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
"$HDLM" data prepare "$dir/corpus.txt" -o "$dir/corpus.tok" --valid 0.05 >/dev/null 2>&1 \
  && ok || bad "data prepare"

# ~80 ms per step with one thread; checkpoints every 5 steps, so the signal usually lands
# between two of them and the stop must write one of its own
cat > "$dir/train.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
local run = db:train{
  name = a.name, data = data, objective = "ar",
  model = { d_model = 128, n_layer = 2, n_head = 2, seq_len = 128 },
  steps = 40, batch = 8, lr = 3e-3, warmup = 4, log_every = 1,
  checkpoint_dir = a.ckpt, ckpt_every = 5, seed = 3,
}
print(("summary: steps %d"):format(run.summary.steps))
LUA
train() { # db ckpt name -> runs the script, stderr to $dir/<name>.err
  "$HDLM" run "$dir/train.lua" --db "$1" corpus="$dir/corpus.tok" ckpt="$2" name="$3" \
    >"$dir/$3.out" 2>"$dir/$3.err"
}
loss_rows() { # db run_id cond -> "step,loss" with all 17 significant digits
  q "$1" "SELECT step, printf('%.17g', value) FROM metrics WHERE run_id = $2 AND name = 'loss' AND $3 ORDER BY step"
}
# start a run in the background and send signal $4 once `latest` >= 10 (plus a short delay so
# the signal lands mid-interval); sets rc to its exit status
signal_run() { # db ckpt name signal
  # env --default-signal: a background job of a non-interactive shell starts with SIGINT
  # ignored, and hdlm leaves an ignored signal ignored
  (exec env --default-signal=INT "$HDLM" run "$dir/train.lua" --db "$1" corpus="$dir/corpus.tok" ckpt="$2" name="$3" \
    >"$dir/$3.out" 2>"$dir/$3.err") & # exec: $! is hdlm itself, not a subshell

  bgpid=$!
  local latest=0
  for _ in $(seq 1 6000); do # 0.02 s polls, 120 s at most
    [ -f "$2/latest" ] && latest=$(cat "$2/latest" 2>/dev/null || echo 0)
    [ "${latest:-0}" -ge 10 ] 2>/dev/null && break
    kill -0 "$bgpid" 2>/dev/null || break
    sleep 0.02
  done
  sleep 0.15
  kill -s "$4" "$bgpid" 2>/dev/null && ok || bad "run $3 ended before the signal (latest=$latest)"
  wait "$bgpid"; rc=$?
  bgpid=""
}

t0=$(date +%s)
# A: uninterrupted
train "$dir/a.db" "$dir/ckA" A && ok || bad "run A failed: $(tail -3 "$dir/A.err")"

# B1: SIGTERM -> exit 143, the run 'interrupted' at step N with a checkpoint at N
signal_run "$dir/b.db" "$dir/ckB" B1 TERM
[ $rc -eq 143 ] && ok || bad "B1 exit status $rc, expected 143: $(tail -2 "$dir/B1.err")"
row=$(q "$dir/b.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE id = 1")
N=$(sed -n 's/^interrupted|interrupted by SIGTERM at step \([0-9]*\) .*/\1/p' <<<"$row")
if [ -n "$N" ] && [ "$N" -ge 10 ] && [ "$N" -lt 40 ]; then ok
else bad "B1 row '$row', expected interrupted by SIGTERM at a step in [10, 40)"; N=0; fi
grep -q "hdlm: interrupted by SIGTERM at step $N" "$dir/B1.err" && ok \
  || bad "B1 did not report the stop: $(tail -2 "$dir/B1.err")"
[ "$(cat "$dir/ckB/latest" 2>/dev/null)" = "$N" ] && ok \
  || bad "latest after SIGTERM is '$(cat "$dir/ckB/latest" 2>/dev/null)', expected the step reached ($N)"
for f in safetensors ema.safetensors state.safetensors; do
  [ -s "$dir/ckB/step_$(printf %08d "$N").$f" ] && ok || bad "checkpoint $N: no $f"
done
n=$(q "$dir/b.db" "SELECT count(*) FROM checkpoints WHERE run_id = 1 AND step = $N")
[ "$n" = 1 ] && ok || bad "B1 has $n checkpoint rows for step $N, expected 1"
n=$(q "$dir/b.db" "SELECT count(*) FROM metrics WHERE run_id = 1 AND name = 'loss'")
[ "$n" = "$N" ] && ok || bad "B1 logged $n losses, expected $N (one per step reached)"
# a later open does not touch it (it is not 'running')
"$HDLM" runs --db "$dir/b.db" >/dev/null 2>&1
st=$(q "$dir/b.db" "SELECT status FROM runs WHERE id = 1")
[ "$st" = interrupted ] && ok || bad "B1 after reaping: '$st'"

# B2: the same command resumes at N; losses after N and the final checkpoint match run A
train "$dir/b.db" "$dir/ckB" B2 && ok || bad "run B2 failed: $(tail -3 "$dir/B2.err")"
grep -q "resuming from step $N of " "$dir/B2.err" && ok \
  || bad "B2 did not resume from step $N: $(head -3 "$dir/B2.err")"
id2=$(q "$dir/b.db" "SELECT id FROM runs WHERE name = 'B2'")
a_rows=$(loss_rows "$dir/a.db" 1 "step > $N")
b_rows=$(loss_rows "$dir/b.db" "${id2:-0}" "step > $N")
[ "$(grep -c . <<<"$b_rows")" = $((40 - N)) ] && ok || bad "B2 logged the wrong number of losses"
if [ -n "$b_rows" ] && [ "$a_rows" = "$b_rows" ]; then ok
else bad "losses after the resume differ:"$'\n'"$(diff <(echo "$a_rows") <(echo "$b_rows") | head -6)"; fi
if [ "$(loss_rows "$dir/b.db" 1 "1")" = "$(loss_rows "$dir/a.db" 1 "step <= $N")" ]; then ok
else bad "B1's losses differ from run A's"; fi
for f in safetensors ema.safetensors state.safetensors; do
  cmp -s "$dir/ckA/step_00000040.$f" "$dir/ckB/step_00000040.$f" && ok \
    || bad "step_00000040.$f differs between the uninterrupted and the resumed run"
done

# C: SIGINT -> exit 130, 'interrupted by SIGINT'
signal_run "$dir/c.db" "$dir/ckC" C1 INT
[ $rc -eq 130 ] && ok || bad "C1 exit status $rc, expected 130: $(tail -2 "$dir/C1.err")"
row=$(q "$dir/c.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE id = 1")
M=$(sed -n 's/^interrupted|interrupted by SIGINT at step \([0-9]*\) .*/\1/p' <<<"$row")
[ -n "$M" ] && [ "$(cat "$dir/ckC/latest" 2>/dev/null)" = "$M" ] && ok \
  || bad "C1 row '$row', latest '$(cat "$dir/ckC/latest" 2>/dev/null)'"

# D: a second signal during the stop ends the process at once (default action): exit 143
# without waiting. Two signals back to back: the first arms the stop, the second kills.
(exec "$HDLM" run "$dir/train.lua" --db "$dir/d.db" corpus="$dir/corpus.tok" ckpt="$dir/ckD" \
  name=D1 >"$dir/D1.out" 2>"$dir/D1.err") &
bgpid=$!
for _ in $(seq 1 6000); do
  [ -f "$dir/ckD/latest" ] && break; kill -0 "$bgpid" 2>/dev/null || break; sleep 0.02
done
kill -TERM "$bgpid"; kill -TERM "$bgpid"
wait "$bgpid"; rc=$?; bgpid=""
[ $rc -eq 143 ] && ok || bad "D1 exit status $rc, expected 143"
# either the second signal hit before the stop finished (row left 'running', reaped as
# 'interrupted' at the next open) or the stop completed: never 'failed' or 'done'
"$HDLM" runs --db "$dir/d.db" >/dev/null 2>&1
st=$(q "$dir/d.db" "SELECT status FROM runs WHERE id = 1")
[ "$st" = interrupted ] && ok || bad "D1 status '$st', expected interrupted"

# E: a SIGINT that was ignored on entry stays ignored: the run goes on to the end
(trap '' INT; exec "$HDLM" run "$dir/train.lua" --db "$dir/e.db" corpus="$dir/corpus.tok" \
  ckpt="$dir/ckE" name=E1 >"$dir/E1.out" 2>"$dir/E1.err") &
bgpid=$!
for _ in $(seq 1 6000); do
  [ -f "$dir/ckE/latest" ] && break; kill -0 "$bgpid" 2>/dev/null || break; sleep 0.02
done
kill -INT "$bgpid"
wait "$bgpid"; rc=$?; bgpid=""
[ $rc -eq 0 ] && [ "$(q "$dir/e.db" "SELECT status FROM runs WHERE id = 1")" = done ] && ok \
  || bad "E1 with SIGINT ignored: exit status $rc, $(tail -2 "$dir/E1.err")"

# F: Ctrl-C on a sweep (the coordinator forwards it to its worker): the point being trained is
# not failed but left to resume; its run is 'interrupted' at the step its checkpoint holds, and
# the same command again finishes every point, resuming that one there
cat > "$dir/s.lua" <<LUA
return {
  name = "stop-s",
  base = { data = "$dir/corpus.txt", objective = "ar", steps = 40, batch = 8, warmup = 2,
           model = { d_model = 128, n_layer = 2, n_head = 2, seq_len = 128 }, lr = 3e-3,
           log_every = 1, ckpt_every = 5 },
  grid = { seed = { 1, 2 } },
  checkpoints = "$dir/sck",
}
LUA
(exec env --default-signal=INT "$HDLM" sweep "$dir/s.lua" --db "$dir/s.db" --workers 1 \
  >"$dir/S1.out" 2>"$dir/S1.err") &
bgpid=$!
sent=0
for _ in $(seq 1 6000); do
  for d in "$dir"/sck/stop-s/*/; do
    r=$(cat "$d/latest" 2>/dev/null || echo 0)
    if [ "${r:-0}" -ge 10 ] 2>/dev/null && [ "$r" -lt 40 ]; then kill -INT "$bgpid"; sent=1; break; fi
  done
  [ $sent = 1 ] && break
  kill -0 "$bgpid" 2>/dev/null || break
  sleep 0.02
done
wait "$bgpid"; rc=$?; bgpid=""
[ $sent = 1 ] && [ $rc -eq 130 ] && ok || bad "sweep: SIGINT sent=$sent, exit status $rc: $(tail -2 "$dir/S1.err")"
st=$(q "$dir/s.db" "SELECT group_concat(status, ' ') FROM sweep_points")
[[ "$st" != *failed* ]] && [[ "$st" == *running* ]] && ok || bad "sweep points after SIGINT: '$st'"
row=$(q "$dir/s.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE status <> 'done'")
S=$(sed -n 's/^interrupted|interrupted by SIGINT at step \([0-9]*\) .*/\1/p' <<<"$row")
sd=$(q "$dir/s.db" "SELECT checkpoint_dir FROM sweep_points WHERE status = 'running'")
[ -n "$S" ] && [ "$(cat "$sd/latest" 2>/dev/null)" = "$S" ] && ok \
  || bad "sweep: interrupted run '$row', latest '$(cat "$sd/latest" 2>/dev/null)'"
"$HDLM" sweep "$dir/s.lua" --db "$dir/s.db" --workers 1 >"$dir/S2.out" 2>"$dir/S2.err" && ok \
  || bad "sweep restart failed: $(tail -2 "$dir/S2.err")"
[ "$(q "$dir/s.db" "SELECT group_concat(status, ' ') FROM sweep_points")" = "done done" ] && ok \
  || bad "sweep points after the restart: $(q "$dir/s.db" "SELECT group_concat(status, ' ') FROM sweep_points")"
grep -q "resuming from step $S" "$dir/S2.out" && ok || bad "sweep restart did not resume from step $S: $(cat "$dir/S2.out")"

if grep -lE "Sanitizer|runtime error" "$dir"/*.err >/dev/null 2>&1; then
  bad "sanitizer report: $(grep -hE -m3 "Sanitizer|runtime error" "$dir"/*.err)"
else ok; fi

echo "test_interrupt: stopped at steps $N (SIGTERM) and ${M:-?} (SIGINT), $(( $(date +%s) - t0 )) s" >&2
echo "test_interrupt: $passed passed, $failed failed"
[ $failed -eq 0 ]
