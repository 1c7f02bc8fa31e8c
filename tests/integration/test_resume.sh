#!/usr/bin/env bash
# Exact resume through the real binary: a training run killed with SIGKILL after a checkpoint and
# started again (resume is the default) logs bit-identical losses to an uninterrupted run and
# ends with byte-identical checkpoint files; the killed run's row stays 'running' until the store
# is opened again, which marks it 'interrupted'; resuming a finished run does nothing.
# Runs with OMP_NUM_THREADS=1 (a run is reproducible per thread count; one thread keeps the
# timing predictable on a busy 2-core machine). About 10 s with a release build.
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

# The training script: ~80 ms per step with one thread, so the kill lands well inside the run.
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

# A: uninterrupted
t0=$(date +%s)
train "$dir/a.db" "$dir/ckA" A && ok || bad "run A failed: $(tail -3 "$dir/A.err")"
n=$(q "$dir/a.db" "SELECT count(*) FROM metrics WHERE name = 'loss'")
[ "$n" = 40 ] && ok || bad "run A logged $n losses, expected 40"

# B: killed with SIGKILL once `latest` reaches >= 10
"$HDLM" run "$dir/train.lua" --db "$dir/b.db" corpus="$dir/corpus.tok" ckpt="$dir/ckB" name=B1 \
  >"$dir/B1.out" 2>"$dir/B1.err" &
bgpid=$!
latest=0
for _ in $(seq 1 6000); do # 0.02 s polls, 120 s at most
  [ -f "$dir/ckB/latest" ] && latest=$(cat "$dir/ckB/latest" 2>/dev/null || echo 0)
  [ "${latest:-0}" -ge 10 ] 2>/dev/null && break
  kill -0 "$bgpid" 2>/dev/null || break
  sleep 0.02
done
if kill -9 "$bgpid" 2>/dev/null; then ok; else bad "run B1 ended before it could be killed (latest=$latest)"; fi
wait "$bgpid" 2>/dev/null; rc=$?
bgpid=""
[ $rc -eq 137 ] && ok || bad "run B1 exit status $rc, expected 137 (SIGKILL)"
R=$(cat "$dir/ckB/latest" 2>/dev/null || echo missing)
if [ "$R" -ge 10 ] 2>/dev/null && [ "$R" -lt 40 ] && [ $((R % 5)) -eq 0 ]; then ok
else bad "latest after the kill is '$R', expected a multiple of 5 in [10, 40)"; fi
[ -f "$dir/ckB/step_$(printf %08d "$R").state.safetensors" ] && ok || bad "checkpoint $R incomplete"

# the killed run's row is still 'running' (read-only query: no reaping) and its losses up to
# the checkpoint were flushed with it
st=$(q "$dir/b.db" "SELECT status FROM runs WHERE id = 1")
[ "$st" = running ] && ok || bad "killed run status '$st', expected running"
n=$(q "$dir/b.db" "SELECT count(*) FROM metrics WHERE run_id = 1 AND name = 'loss' AND step <= $R")
[ "$n" = "$R" ] && ok || bad "killed run has $n losses up to step $R, expected $R"
if [ "$(loss_rows "$dir/b.db" 1 "step <= $R")" = "$(loss_rows "$dir/a.db" 1 "step <= $R")" ]; then ok
else bad "losses before the kill differ from run A"; fi

# opening the store again marks it interrupted
out=$("$HDLM" runs --db "$dir/b.db" 2>&1) && ok || bad "hdlm runs failed: $out"
grep -q interrupted <<<"$out" && ok || bad "hdlm runs does not show 'interrupted': $out"
st=$(q "$dir/b.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE id = 1")
[[ "$st" == "interrupted|process "*" ended without closing the run" ]] && ok \
  || bad "killed run after reaping: '$st'"

# B2: the same command resumes from the checkpoint and runs to the end
train "$dir/b.db" "$dir/ckB" B2 && ok || bad "run B2 failed: $(tail -3 "$dir/B2.err")"
grep -q "resuming from step $R of " "$dir/B2.err" && ok \
  || bad "B2 did not report resuming from step $R: $(head -3 "$dir/B2.err")"
id2=$(q "$dir/b.db" "SELECT id FROM runs WHERE name = 'B2'")
a_rows=$(loss_rows "$dir/a.db" 1 "step > $R")
b_rows=$(loss_rows "$dir/b.db" "${id2:-0}" "step > $R")
n=$(grep -c . <<<"$b_rows")
[ "$n" = $((40 - R)) ] && ok || bad "resumed run logged $n losses after step $R, expected $((40 - R))"
if [ -n "$b_rows" ] && [ "$a_rows" = "$b_rows" ]; then ok
else bad "losses after the resume differ:"$'\n'"$(diff <(echo "$a_rows") <(echo "$b_rows") | head -6)"; fi
n=$(q "$dir/b.db" "SELECT count(*) FROM metrics WHERE run_id = ${id2:-0} AND name = 'loss' AND step <= $R")
[ "$n" = 0 ] && ok || bad "resumed run re-logged $n steps before $R"
st=$(q "$dir/b.db" "SELECT status FROM runs WHERE id = ${id2:-0}")
[ "$st" = done ] && ok || bad "resumed run status '$st'"
[ "$(cat "$dir/ckB/latest")" = 40 ] && ok || bad "latest after B2: $(cat "$dir/ckB/latest")"
# the final checkpoints (weights, EMA, optimizer state with the rng cursors) are byte-identical
for f in safetensors ema.safetensors state.safetensors; do
  cmp -s "$dir/ckA/step_00000040.$f" "$dir/ckB/step_00000040.$f" && ok \
    || bad "step_00000040.$f differs between the uninterrupted and the resumed run"
done

# B3: resuming the finished run loads step 40, trains nothing, leaves the checkpoint alone
sum_before=$(cksum "$dir/ckB"/step_00000040.* | sort)
train "$dir/b.db" "$dir/ckB" B3 && ok || bad "run B3 failed: $(tail -3 "$dir/B3.err")"
grep -q "resuming from step 40 of " "$dir/B3.err" && ok \
  || bad "B3 did not report resuming from step 40: $(head -3 "$dir/B3.err")"
grep -q "summary: steps 40" "$dir/B3.out" && ok \
  || bad "B3's run.summary.steps should be the step reached (40): $(cat "$dir/B3.out")"
id3=$(q "$dir/b.db" "SELECT id FROM runs WHERE name = 'B3'")
n=$(q "$dir/b.db" "SELECT count(*) FROM metrics WHERE run_id = ${id3:-0} AND name = 'loss'")
[ "$n" = 0 ] && ok || bad "B3 logged $n losses, expected none"
st=$(q "$dir/b.db" "SELECT status FROM runs WHERE id = ${id3:-0}")
[ "$st" = done ] && ok || bad "B3 status '$st'"
[ "$(cksum "$dir/ckB"/step_00000040.* | sort)" = "$sum_before" ] && ok || bad "B3 rewrote the checkpoint"
[ "$(cat "$dir/ckB/latest")" = 40 ] && ok || bad "latest after B3: $(cat "$dir/ckB/latest")"

# no sanitizer reports from any run (when the binary is built with them)
if grep -lE "Sanitizer|runtime error" "$dir"/*.err >/dev/null 2>&1; then
  bad "sanitizer report: $(grep -hE -m3 "Sanitizer|runtime error" "$dir"/*.err)"
else ok; fi

echo "test_resume: killed at checkpoint $R, $(( $(date +%s) - t0 )) s" >&2
echo "test_resume: $passed passed, $failed failed"
[ $failed -eq 0 ]
