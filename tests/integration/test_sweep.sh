#!/usr/bin/env bash
# `hdlm sweep` through the real binary: (a) a 2x2 grid with 2 workers completes, one run per
# point tagged with the sweep, eval and `after` results stored; (b) the whole sweep (coordinator
# and workers, one process group) killed with SIGKILL midway and started again runs only what was
# unfinished: finished points are not trained again, interrupted ones resume from their last
# checkpoint, every point ends with each training step logged once; (c) --status; (d) bad sweep
# files give one message naming the file and the key; (e) a failing point fails alone and
# --retry-failed runs it again. One OpenMP thread per worker; about 30 s with a release build.
set -u
HDLM=${HDLM_BIN:-./hdlm}
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off
dir=$(mktemp -d)
pgid=""
cleanup() {
  if [ -n "$pgid" ]; then kill -9 -- "-$pgid" 2>/dev/null; wait 2>/dev/null; fi
  [ -n "${KEEP_DIR:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"
}
trap cleanup EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }
# rows without the header; no value here holds a quote, so CSV quoting (keys have commas) is dropped
q()    { "$HDLM" query --db "$1" --csv "$2" | tail -n +2 | tr -d '"'; }
cd "$dir" || exit 1

# ~60 KB of generated sentences (deterministic)
words=(the quick brown fox jumps over lazy dog and a cat sat on mat with hat red blue river
       stone light rain song under)
awk -v n=60000 -v nw=${#words[@]} -v w="${words[*]}" 'BEGIN {
  split(w, W, " "); s = 12345; out = 0
  while (out < n) {
    line = ""; k = 3 + (s % 10)
    for (i = 0; i < k; i++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (i ? " " : "") W[1 + int(s / 65536) % nw] }
    print line "."; out += length(line) + 2
  } }' > corpus.txt
t0=$(date +%s)

# ---- (a) a 2x2 grid, 2 workers, eval + after ---------------------------------------------------
cat > a.lua <<'LUA'
return {
  name = "grid-a",
  base = { data = "corpus.txt", noise = { "absorbing" }, schedule = { "block_annealing", width = 8 },
           vectorised = true, model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = 32 },
           steps = 30, batch = 4, warmup = 2, log_every = 1 },
  grid = { lr = { 1e-3, 3e-3 }, ["schedule.width"] = { 4, 8 } },
  eval = { sequences = 4, mc = 2 },
  after = function(run, point) return { steps = run.summary.steps, idx = point.idx } end,
  checkpoints = "ck",
}
LUA
"$HDLM" sweep a.lua --db a.db --workers 2 >a.out 2>a.err && ok || bad "sweep a failed: $(tail -3 a.err)"
[ "$(q a.db "SELECT status || ':' || count(*) FROM sweep_points GROUP BY status")" = "done:4" ] && ok \
  || bad "sweep a points: $(q a.db "SELECT idx, status, error FROM sweep_points")"
[ "$(q a.db "SELECT count(*), count(DISTINCT json_extract(config, '$.sweep_key')) FROM runs WHERE json_extract(config, '$.sweep') = 'grid-a' AND kind = 'train' AND status = 'done'")" = "4,4" ] && ok \
  || bad "sweep a runs: $(q a.db "SELECT id, status, json_extract(config, '$.sweep_key') FROM runs")"
[ "$(q a.db "SELECT count(*) FROM runs")" = 4 ] && ok || bad "sweep a made $(q a.db "SELECT count(*) FROM runs") runs, expected 4"
# each point's run is the run with its key, trained with its parameters, in its own checkpoint dir
n=$(q a.db "SELECT count(*) FROM sweep_points p JOIN runs r ON r.id = p.run_id WHERE json_extract(r.config, '$.sweep_key') = p.key
            AND p.key = 'lr=' || json_extract(r.config, '$.lr') || ',schedule.width=' || json_extract(r.config, '$.schedule.options.width')
            AND json_extract(r.config, '$.checkpoint_dir') IN (p.checkpoint_dir, '$PWD/' || p.checkpoint_dir)")
[ "$n" = 4 ] && ok || bad "points and runs do not match: $(q a.db "SELECT p.key, r.config FROM sweep_points p JOIN runs r ON r.id = p.run_id")"
[ "$(q a.db "SELECT group_concat(key, ' ') FROM (SELECT key FROM sweep_points ORDER BY idx)")" = \
  "lr=0.001,schedule.width=4 lr=0.001,schedule.width=8 lr=0.003,schedule.width=4 lr=0.003,schedule.width=8" ] && ok \
  || bad "point keys/order: $(q a.db "SELECT key FROM sweep_points ORDER BY idx")"
[ "$(q a.db "SELECT count(DISTINCT pid) FROM sweep_points")" = 2 ] && ok || bad "the points were not shared by 2 workers"
[ "$(q a.db "SELECT count(*) FROM metrics WHERE name = 'loss'")" = 120 ] && ok || bad "sweep a loss rows: $(q a.db "SELECT count(*) FROM metrics WHERE name = 'loss'")"
for d in ck/grid-a/*/; do [ "$(cat "$d/latest" 2>/dev/null)" = 30 ] || bad "checkpoint dir $d: latest $(cat "$d/latest" 2>/dev/null)"; done
[ "$(ls -d ck/grid-a/*/ | wc -l)" = 4 ] && ok || bad "expected 4 checkpoint dirs: $(ls ck/grid-a)"
# eval: one bound per run in evaluations and in the point's result; after's value stored
[ "$(q a.db "SELECT count(DISTINCT run_id) FROM evaluations WHERE metric = 'nll_bound'")" = 4 ] && ok || bad "evaluations: $(q a.db "SELECT run_id, metric FROM evaluations")"
[ "$(q a.db "SELECT count(*) FROM sweep_points WHERE json_extract(result, '$.eval.bits') > 0 AND json_extract(result, '$.after.steps') = 30 AND json_extract(result, '$.after.idx') = idx")" = 4 ] && ok \
  || bad "results: $(q a.db "SELECT key, result FROM sweep_points")"
[ "$(q a.db "SELECT status FROM sweeps WHERE name = 'grid-a'")" = done ] && ok || bad "sweep a status"
# started again: nothing to do, no new run
"$HDLM" sweep a.lua --db a.db --workers 2 >a2.out 2>a2.err && ok || bad "sweep a again failed: $(tail -3 a2.err)"
grep -q "4 points: 4 done, 0 running elsewhere, 0 failed, 0 to run" a2.out && ok || bad "sweep a again: $(head -2 a2.out)"
[ "$(q a.db "SELECT count(*) FROM runs")" = 4 ] && ok || bad "sweep a again made runs"

# ---- (c) --status --------------------------------------------------------------------------------
out=$("$HDLM" sweep --status grid-a --db a.db 2>&1) && ok || bad "status failed: $out"
grep -q "^sweep grid-a (id 1) in a.db: 4 points: 4 done, 0 running, 0 pending, 0 failed" <<<"$out" && ok || bad "status header: $out"
for k in lr=0.001,schedule.width=4 lr=0.003,schedule.width=8; do
  rid=$(q a.db "SELECT run_id FROM sweep_points WHERE key = '$k'")
  loss=$(q a.db "SELECT printf('%.4f', value) FROM metrics WHERE run_id = $rid AND name = 'loss' AND step = 30")
  grep -qE "^ +[0-9]+ +done +$rid +30/30 +$loss +[0-9.]+ ± [0-9.]+ bits/byte; \{idx=[0-3],steps=30\} +$k" <<<"$out" && ok \
    || bad "status line of $k (run $rid, loss $loss): $out"
done
[ "$("$HDLM" sweep --status 1 --db a.db 2>&1 | head -1)" = "$(head -1 <<<"$out")" ] && ok || bad "status by id"
out=$("$HDLM" sweep --status nope --db a.db 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$out" = "hdlm: sweep: no sweep 'nope' in a.db (sweeps: grid-a)" ] && ok || bad "status of an unknown sweep: rc=$rc $out"
out=$("$HDLM" sweep --status x --db missing.db 2>&1); rc=$?
[ $rc -ne 0 ] && [ ! -e missing.db ] && grep -q "missing.db" <<<"$out" && ok || bad "status on a missing database: rc=$rc $out"

# ---- (b) kill -9 the whole sweep midway, start it again ------------------------------------------
cat > b.lua <<'LUA'
return {
  name = "grid-b",
  base = { data = "corpus.txt", objective = "ar", model = { d_model = 64, n_layer = 2, n_head = 2, seq_len = 64 },
           steps = 160, batch = 8, warmup = 4, log_every = 1, ckpt_every = 20 },
  grid = { lr = { 1e-3, 3e-3 }, seed = { 1, 2 } },
  checkpoints = "ck",
}
LUA
setsid "$HDLM" sweep b.lua --db b.db --workers 2 >b1.out 2>b1.err &
bpid=$!
pgid=$bpid # setsid: the coordinator leads its own process group (its workers are in it)
sleep 0.3
[ "$(ps -o pgid= -p "$bpid" 2>/dev/null | tr -d ' ')" = "$bpid" ] && ok || bad "the sweep is not its own process group"
# wait until one point is done and a running one has a checkpoint at step >= 20
killed=0
for _ in $(seq 1 1200); do # 0.05 s polls, 60 s at most
  if [ "$(q b.db "SELECT count(*) FROM sweep_points WHERE status = 'done'" 2>/dev/null)" -ge 1 ] 2>/dev/null; then
    for d in $(q b.db "SELECT checkpoint_dir FROM sweep_points WHERE status = 'running'" 2>/dev/null); do
      r=$(cat "$d/latest" 2>/dev/null || echo 0)
      if [ "${r:-0}" -ge 20 ] 2>/dev/null && [ "$r" -lt 160 ]; then kill -9 -- "-$pgid"; killed=1; break; fi
    done
  fi
  [ $killed = 1 ] && break
  kill -0 "$bpid" 2>/dev/null || break
  sleep 0.05
done
wait "$bpid" 2>/dev/null; rc=$?
pgid=""
[ $killed = 1 ] && [ $rc -eq 137 ] && ok || bad "the sweep was not killed midway (killed=$killed, rc=$rc): $(tail -3 b1.out)"
sleep 0.2 # the workers are gone too (SIGKILL to the group)
pgrep -f "sweep b.lua --db b.db --worker" >/dev/null && bad "workers survived the kill" || ok
done_before=$(q b.db "SELECT key || ':' || run_id FROM sweep_points WHERE status = 'done' ORDER BY idx")
interrupted=$(q b.db "SELECT key FROM sweep_points WHERE status = 'running' ORDER BY idx")
max_r=0
for k in $interrupted; do
  r=$(cat "$(q b.db "SELECT checkpoint_dir FROM sweep_points WHERE key = '$k'")/latest" 2>/dev/null || echo 0)
  [ "$r" -gt "$max_r" ] && max_r=$r
done
[ -n "$done_before" ] && [ "$max_r" -ge 20 ] && ok || bad "state after the kill: $(q b.db "SELECT idx, status FROM sweep_points")"
declare -A resume_at runs_of
for k in $interrupted; do
  resume_at[$k]=$(cat "$(q b.db "SELECT checkpoint_dir FROM sweep_points WHERE key = '$k'")/latest" 2>/dev/null || echo 0)
  # 0 when it was killed between its claim and db:train creating the run row
  runs_of[$k]=$(q b.db "SELECT count(*) FROM runs WHERE json_extract(config, '$.sweep_key') = '$k'")
done
runs_before=$(q b.db "SELECT count(*) FROM runs")
# --status of the killed sweep: the interrupted points are pending again and resume from checkpoints
out=$("$HDLM" sweep --status grid-b --db b.db 2>&1) && ok || bad "status after the kill failed: $out"
for k in $interrupted; do
  R=${resume_at[$k]}
  if [ "$R" -gt 0 ] 2>/dev/null; then
    grep -qE " pending .* $k +worker pid [0-9]+ ended while running it; resumes from step $R$" <<<"$out" && ok \
      || bad "status of interrupted $k (checkpoint $R): $out"
  fi
done
grep -q "0 running" <<<"$out" && ok || bad "points still 'running' after the kill: $out"

"$HDLM" sweep b.lua --db b.db --workers 2 >b2.out 2>b2.err && ok || bad "restarted sweep failed: $(tail -3 b2.err)"
[ "$(q b.db "SELECT status || ':' || count(*) FROM sweep_points GROUP BY status")" = "done:4" ] && ok \
  || bad "after the restart: $(q b.db "SELECT idx, status, error FROM sweep_points")"
# finished points were not trained again: same run, still one run for the key
for kr in $done_before; do
  k=${kr%%:*}; rid=${kr##*:}
  [ "$(q b.db "SELECT run_id FROM sweep_points WHERE key = '$k'")" = "$rid" ] && ok || bad "done point $k changed run"
  [ "$(q b.db "SELECT count(*) FROM runs WHERE json_extract(config, '$.sweep_key') = '$k'")" = 1 ] && ok || bad "done point $k trained again"
  grep -q "$k: starting\|$k: resuming" b2.out && bad "done point $k ran again: $(grep "$k" b2.out)" || ok
done
# interrupted points: killed after a checkpoint, the run's own row continues from it (its losses
# from step 1, the step it resumed from logged as 'resume'); killed before one, a new run starts
new_runs=0
for k in $interrupted; do
  R=${resume_at[$k]}
  rid=$(q b.db "SELECT run_id FROM sweep_points WHERE key = '$k'")
  first=$(q b.db "SELECT min(step) FROM metrics WHERE run_id = $rid AND name = 'loss'")
  [ "$first" = 1 ] && ok || bad "point $k: its final run starts at step $first, expected 1"
  if [ "$R" -gt 0 ]; then # killed after its first checkpoint: resumed; before it: started again
    grep -q "resuming from step $R of .*$k" b2.err && grep -q "$k: resuming from step $R" b2.out && ok \
      || bad "point $k: no 'resuming from step $R' ($(grep resuming b2.err))"
    [ "$(q b.db "SELECT resumes || ':' || (SELECT value FROM metrics WHERE run_id = $rid AND name = 'resume' AND step = $R) FROM runs WHERE id = $rid")" = "1:$R.0" ] && ok \
      || bad "point $k: run $rid was not continued from step $R: $(q b.db "SELECT id, resumes, resumed_from FROM runs WHERE id = $rid")"
  else
    grep -q "$k: starting" b2.out && ok || bad "point $k (no checkpoint) did not start again: $(grep "$k" b2.out)"
    new_runs=$((new_runs + 1))
  fi
  want=$([ "${runs_of[$k]}" = 1 ] && [ "$R" = 0 ] && echo "interrupted,done" || echo "done")
  [ "$(q b.db "SELECT group_concat(status) FROM (SELECT status FROM runs WHERE json_extract(config, '$.sweep_key') = '$k' ORDER BY id)")" = "$want" ] && ok \
    || bad "point $k runs: $(q b.db "SELECT id, status FROM runs WHERE json_extract(config, '$.sweep_key') = '$k'")"
  [ "$(q b.db "SELECT attempts FROM sweep_points WHERE key = '$k'")" = 2 ] && ok || bad "point $k attempts"
done
# every point: each of the 160 steps logged exactly once over its runs; 4 + interrupted runs in all
n=$(q b.db "SELECT count(*) FROM (SELECT json_extract(r.config, '$.sweep_key') k, count(*) n, count(DISTINCT m.step) d, min(m.step) lo, max(m.step) hi
            FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.name = 'loss' GROUP BY k) WHERE n = 160 AND d = 160 AND lo = 1 AND hi = 160")
[ "$n" = 4 ] && ok || bad "loss steps per point: $(q b.db "SELECT json_extract(r.config, '$.sweep_key') k, count(*), count(DISTINCT m.step) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.name = 'loss' GROUP BY k")"
n_done=$(wc -w <<<"$done_before") n_int=$(wc -w <<<"$interrupted")
# one new run per point that had not started (or started without reaching a checkpoint)
[ "$(q b.db "SELECT count(*) FROM runs")" = $((runs_before + 4 - n_done - n_int + new_runs)) ] && ok || bad "runs after the restart: $(q b.db "SELECT id, status, json_extract(config, '$.sweep_key') FROM runs")"
[ "$(q b.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 4 ] && ok || bad "done runs"
echo "test_sweep: killed with $(wc -w <<<"$done_before") done, interrupted: $(for k in $interrupted; do printf '%s@%s ' "$k" "${resume_at[$k]}"; done)(runs before restart: $runs_before)" >&2

# ---- (d) bad sweep files -------------------------------------------------------------------------
expect_fail() { # NEEDLE FILE
  local out rc
  out=$("$HDLM" sweep "$2" --db d.db 2>&1); rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -qF -- "$1" <<<"$out"; then ok
  else bad "sweep $2 -> rc=$rc, wanted one line with '$1': $out"; fi
}
printf 'return { name = "d", base = { data = "corpus.txt" }, gird = { lr = { 1 } } }\n' > d1.lua
expect_fail "hdlm: sweep: d1.lua: unknown key 'gird' (did you mean 'grid'?); allowed: name, description, base, grid, points, eval, after, checkpoints" d1.lua
printf 'return { name = "d", base = { data = "corpus.txt" }, grid = {} }\n' > d2.lua
expect_fail "hdlm: sweep: d2.lua: 'grid' is empty" d2.lua
printf 'return { name = "d", base = { data = "corpus.txt" }, grid = { lr = {} } }\n' > d3.lua
expect_fail "hdlm: sweep: d3.lua: 'grid.lr' must be a non-empty list of values" d3.lua
printf 'return { name = "d", base = { data = "corpus.txt", checkpoint_dir = "x" }, grid = { lr = { 1 } } }\n' > d4.lua
expect_fail "hdlm: sweep: d4.lua: 'base.checkpoint_dir' is set by the sweep" d4.lua
printf 'return { name = "d", base = { data = "nowhere.txt" }, grid = { lr = { 1 } } }\n' > d5.lua
expect_fail "hdlm: sweep: d5.lua: point 1 (lr=1): 'data': nowhere.txt" d5.lua
expect_fail "hdlm: sweep: cannot open nofile.lua" nofile.lua
# the same name with another spec is refused
sed 's/steps = 30/steps = 31/' a.lua > a3.lua
out=$("$HDLM" sweep a3.lua --db a.db 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "sweep: a3.lua: sweep 'grid-a' already exists in a.db with a different spec ('base' was" <<<"$out" && ok || bad "changed spec: rc=$rc $out"
[ "$(q d.db "SELECT count(*) FROM sweeps")" = 0 ] && ok || bad "a bad file registered a sweep"

# ---- (e) a failing point fails alone; --retry-failed runs it again --------------------------------
cat > e.lua <<'LUA'
local bad = os.getenv("SWEEP_BAD") == "1"
return {
  name = "fails",
  base = { data = "corpus.txt", objective = "ar", model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = 32 },
           steps = 10, batch = 4, log_every = 1 },
  points = { { lr = 1e-3 }, { lr = 2e-3, ["model.n_head"] = bad and 3 or 2 } },
  checkpoints = "ck",
}
LUA
out=$(SWEEP_BAD=1 "$HDLM" sweep e.lua --db e.db 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "hdlm: sweep: fails: 1 of 2 points not done (1 failed, 0 pending, 0 running); run the same command again to resume (--retry-failed runs failed points again)" <<<"$out" && ok || bad "failing point: rc=$rc $out"
[ "$(q e.db "SELECT group_concat(status) FROM (SELECT status FROM sweep_points ORDER BY idx)")" = "done,failed" ] && ok || bad "points of e: $(q e.db "SELECT status, error FROM sweep_points")"
# a refused config leaves no run row behind (run '-')
grep -qE "2 +failed +- +0/10 .* lr=0.002,model.n_head=3 +.*n_head" <<<"$out" && ok || bad "status shows the failure: $out"
[ "$(q e.db "SELECT count(*) FROM runs")" = 1 ] && ok || bad "the refused point made a run: $(q e.db "SELECT id, status, error FROM runs")"
# started again, the failed point stays failed; with --retry-failed it is claimed again
out=$(SWEEP_BAD=1 "$HDLM" sweep e.lua --db e.db 2>&1); rc=$?
[ $rc -eq 1 ] && ! grep -q "point 2/2.*starting" <<<"$out" && ok || bad "failed point re-run without --retry-failed: $out"
out=$(SWEEP_BAD=1 "$HDLM" sweep e.lua --db e.db --retry-failed 2>&1); rc=$?
grep -q "point 2/2 lr=0.002,model.n_head=3: starting" <<<"$out" && ok || bad "--retry-failed did not run the point again: $out"
[ "$(q e.db "SELECT attempts FROM sweep_points WHERE idx = 1")" = 2 ] && ok || bad "attempts after --retry-failed"

# no sanitizer reports from any process (when the binary is built with them)
if grep -lE "Sanitizer|runtime error" ./*.err >/dev/null 2>&1; then
  bad "sanitizer report: $(grep -hE -m3 "Sanitizer|runtime error" ./*.err)"
else ok; fi

echo "test_sweep: $(( $(date +%s) - t0 )) s" >&2
echo "test_sweep: $passed passed, $failed failed"
[ $failed -eq 0 ]
