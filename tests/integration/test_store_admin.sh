#!/usr/bin/env bash
# The researcher's day through the real binary (issue #16): Ctrl-C and the same command again
# continue one run row; a finished script run again adds no run; a typo adds no run; `hdlm runs`
# shows continuations; a checkpoint_dir with ckpt_every > steps still gives a sampleable run;
# `hdlm runs rm` / `hdlm runs gc` (with --dry-run) delete rows and files and print them; `hdlm
# query` refuses writes without --write and cascades with it; read commands refuse a missing
# --db file without creating it; `hdlm compare` prints the paired difference (checked against the
# items in SQL) and refuses different evaluation sets; a database of the previous schema is
# upgraded and cleaned. About 30 s with a release build and one thread.
set -u
HDLM=${HDLM_BIN:-./hdlm}
SRC=${HDLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
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
cd "$dir" || exit 1

words=(the quick brown fox jumps over lazy dog and a cat sat on mat with hat red blue river
       stone light rain song under)
awk -v n=60000 -v nw=${#words[@]} -v w="${words[*]}" 'BEGIN {
  split(w, W, " "); s = 12345; out = 0
  while (out < n) {
    line = ""; k = 3 + (s % 10)
    for (i = 0; i < k; i++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (i ? " " : "") W[1 + int(s / 65536) % nw] }
    print line "."; out += length(line) + 2
  } }' > corpus.txt
"$HDLM" data prepare corpus.txt -o corpus.tok --valid 0.05 >/dev/null 2>&1 && ok || bad "data prepare"

# a method run (it can be sampled and evaluated); ~40 ms a step with one thread
cat > train.lua <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = "corpus.tok" }
local run = db:train{
  name = a.name, data = data, noise = { "absorbing" },
  schedule = a.schedule == "ar" and { "autoregressive" } or { "block_annealing", width = 8 },
  context = a.schedule == "ar" and "causal" or "block_causal", vectorised = true,
  model = { d_model = 64, n_layer = 2, n_head = 2, seq_len = 32 },
  steps = a.steps or 60, batch = 8, lr = 3e-3, log_every = 1, seed = 3,
  checkpoint_dir = a.ckpt, ckpt_every = a.every or 1000,
}
print(("run %d steps %d trained %d loss %.6f"):format(run.id, run.summary.steps, run.summary.steps_trained, run.summary.loss))
LUA

# ---- Ctrl-C, then the same command: one run row, continued ----
(exec env --default-signal=INT "$HDLM" run train.lua --db a.db name=ar schedule=ar ckpt=ckA every=10 \
  >int.out 2>int.err) &
bgpid=$!
for _ in $(seq 1 3000); do # until `latest` >= 10 (0.02 s polls)
  [ "$(cat ckA/latest 2>/dev/null || echo 0)" -ge 10 ] 2>/dev/null && break
  kill -0 "$bgpid" 2>/dev/null || break
  sleep 0.02
done
# a running run cannot be deleted
out=$("$HDLM" runs rm 1 --db a.db 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "run 1 is running (process $bgpid); stop it first; nothing was deleted" <<<"$out" && ok \
  || bad "rm of a running run: rc=$rc $out"
kill -INT "$bgpid"; wait "$bgpid"; rc=$?; bgpid=""
[ $rc -eq 130 ] && ok || bad "Ctrl-C exit status $rc: $(tail -2 int.err)"
N=$(q a.db "SELECT max(step) FROM checkpoints WHERE run_id = 1")
[ "$(q a.db "SELECT status FROM runs WHERE id = 1")" = interrupted ] && [ "$(cat ckA/latest)" = "$N" ] && ok \
  || bad "after Ctrl-C: $(q a.db "SELECT status, error FROM runs") latest $(cat ckA/latest) N $N"
"$HDLM" run train.lua --db a.db name=ar schedule=ar ckpt=ckA every=10 >res.out 2>res.err && ok \
  || bad "resume failed: $(tail -2 res.err)"
grep -q "continuing run 1 from step $N" res.err && ok || bad "no continuation message: $(cat res.err)"
[ "$(q a.db "SELECT count(*) || ' ' || status || ' ' || resumes || ' ' || coalesce(resumed_from, '-') FROM runs")" = "1 done 1 -" ] && ok \
  || bad "runs after the resume: $(q a.db "SELECT id, status, resumes, resumed_from FROM runs")"
[ "$(q a.db "SELECT count(*) || ' ' || count(DISTINCT step) || ' ' || min(step) || ' ' || max(step) FROM metrics WHERE run_id = 1 AND name = 'loss'")" = "60 60 1 60" ] && ok \
  || bad "losses of the continued run: $(q a.db "SELECT count(*), min(step), max(step) FROM metrics WHERE name = 'loss'")"
[ "$(q a.db "SELECT step || ':' || value FROM metrics WHERE name = 'resume'")" = "$N:$N.0" ] && ok \
  || bad "resume metric: $(q a.db "SELECT step, value FROM metrics WHERE name = 'resume'")"
"$HDLM" runs --db a.db | grep -qE "^ *1 +ar +train +done .*continued 1x" && ok || bad "hdlm runs: $("$HDLM" runs --db a.db)"

# ---- the finished script again: the same run, no 0-step copy; a typo: no run ----
"$HDLM" run train.lua --db a.db name=ar schedule=ar ckpt=ckA every=10 >again.out 2>again.err && ok || bad "re-run failed"
grep -q "run 1 already trained to step 60" again.err && grep -qE "^run 1 steps 60 trained 0 loss [0-9.]+$" again.out \
  && ! grep -q "loss 0.000000" again.out && ok || bad "re-run: $(cat again.out again.err)"
[ "$(q a.db "SELECT count(*) FROM runs")" = 1 ] && ok || bad "the re-run added a run"
printf 'local h = require "hdlm"\nh.open():train{ data = h.corpus{ path = "corpus.tok" }, stesp = 3 }\n' > typo.lua
out=$("$HDLM" run typo.lua --db a.db 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "unknown key 'stesp' (did you mean 'steps'?)" <<<"$out" && [ "$(q a.db "SELECT count(*) FROM runs")" = 1 ] && ok \
  || bad "typo: rc=$rc, runs $(q a.db "SELECT count(*) FROM runs"): $out"

# ---- ckpt_every larger than steps: the run still ends with a checkpoint and can be sampled ----
"$HDLM" run train.lua --db a.db name=blk ckpt=ckB steps=40 >b.out 2>b.err && ok || bad "run blk failed: $(tail -2 b.err)"
[ "$(q a.db "SELECT group_concat(step) FROM checkpoints WHERE run_id = 2")" = 40 ] && ok \
  || bad "blk checkpoints: $(q a.db "SELECT step FROM checkpoints WHERE run_id = 2")"
[ "$(q a.db "SELECT hash FROM checkpoints WHERE run_id = 2")" = "$(sha256sum ckB/step_00000040.safetensors | cut -d' ' -f1)" ] && ok \
  || bad "checkpoint hash"
"$HDLM" sample --run 2 --db a.db n=2 >s.out 2>s.err && grep -q "^-- sample 1 (run 2, step 40 checkpoint" s.out && ok \
  || bad "hdlm sample --run 2: $(cat s.out s.err)"

# ---- hdlm compare: paired over the same sequences; refuses different sets ----
"$HDLM" eval --run 1 --db a.db sequences=12 mc=0 >/dev/null 2>&1 && "$HDLM" eval --run 2 --db a.db sequences=12 mc=2 >/dev/null 2>&1 \
  && ok || bad "evals"
out=$("$HDLM" compare 1 2 --db a.db 2>&1); rc=$?
want=$(q a.db "SELECT printf('%+.4f', avg(x.value - y.value)) FROM evaluation_items x JOIN evaluation_items y ON y.item = x.item
               WHERE x.evaluation_id = (SELECT max(id) FROM evaluations WHERE run_id = 1) AND y.evaluation_id = (SELECT max(id) FROM evaluations WHERE run_id = 2)")
[ $rc -eq 0 ] && grep -q "run 1 (ar) vs run 2 (blk): nll_bound on the same 12 valid sequences of 32 tokens" <<<"$out" \
  && grep -qF "difference 1 - 2, paired over 12 sequences: $want ± " <<<"$out" && ok || bad "compare (want $want): rc=$rc $out"
"$HDLM" eval --run 2 --db a.db sequences=5 mc=1 >/dev/null 2>&1
"$HDLM" compare 1 2 --db a.db 2>&1 | grep -qF "$want ± " && ok || bad "a later eval on other sequences changed the pair"
"$HDLM" run train.lua --db a.db name=other ckpt=ckC steps=20 >/dev/null 2>&1 && "$HDLM" eval --run 3 --db a.db sequences=7 mc=1 >/dev/null 2>&1 \
  && ok || bad "run other"
out=$("$HDLM" compare 1 3 --db a.db 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "hdlm: compare: runs 1 and 3 have no bounds on the same sequences: run 1's latest bound (evaluation 1): 12 valid sequences of 32 tokens" <<<"$out" \
  && grep -q "run 3's latest bound (evaluation 4): 7 valid sequences" <<<"$out" && ok || bad "different sets: rc=$rc $out"
out=$("$HDLM" compare 1 --db a.db 2>&1); [ $? -eq 2 ] && grep -q "expected two run ids" <<<"$out" && ok || bad "compare usage: $out"

# ---- views (what sqlite3/pandas users read) ----
[ "$(q a.db "SELECT run_id || ':' || sequences || ':' || n_items FROM v_latest_bound ORDER BY run_id")" = $'1:12:12\n2:5:5\n3:7:7' ] && ok \
  || bad "v_latest_bound: $(q a.db "SELECT * FROM v_latest_bound")"
[ "$(q a.db "SELECT count(*) FROM v_loss_curve WHERE run_id = 1 AND loss IS NOT NULL AND lr IS NOT NULL")" = 60 ] && ok || bad "v_loss_curve"
[ "$(q a.db "SELECT count(*) || ':' || min(sampler) || ':' || min(checkpoint_step) FROM v_samples")" = "2:ancestral:40" ] && ok \
  || bad "v_samples: $(q a.db "SELECT * FROM v_samples")"

# ---- query: read-only unless --write; --write cascades ----
out=$("$HDLM" query --db a.db "DELETE FROM runs WHERE id = 3" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "a.db: read-only, and the statement would change the database (in: DELETE FROM runs WHERE id = 3); use --write" <<<"$out" \
  && [ "$(q a.db "SELECT count(*) FROM runs")" = 3 ] && ok || bad "write without --write: rc=$rc $out"
out=$("$HDLM" query --db a.db --write "DELETE FROM runs WHERE id = 3" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -qE "^hdlm: [0-9]+ rows changed \(with foreign-key cascades\)$" <<<"$out" && ok || bad "--write: rc=$rc $out"
[ "$(q a.db "SELECT (SELECT count(*) FROM metrics WHERE run_id = 3) + (SELECT count(*) FROM evaluations WHERE run_id = 3) + (SELECT count(*) FROM evaluation_items WHERE evaluation_id = 4)")" = 0 ] && ok \
  || bad "--write did not cascade"

# ---- a missing --db file: an error naming it, nothing created ----
for cmd in "runs" "runs gc" "runs rm 1" "query 'SELECT 1'" "samples --run 1" "eval --run 1" "sample --run 1" "compare 1 2"; do
  eval "set -- $cmd"
  out=$("$HDLM" "$@" --db typo.db 2>&1); rc=$?
  [ $rc -ne 0 ] && grep -q "^hdlm: typo.db: no such database file" <<<"$out" && [ ! -e typo.db ] && ok \
    || bad "hdlm $cmd --db typo.db: rc=$rc $out"
done

# ---- runs gc: failed and empty runs, orphaned checkpoint files; --dry-run first ----
cat > junk.lua <<'LUA'
local db = require("hdlm").open()
db:run{ name = "empty" }:finish()
local s = db:run{ name = "scratch" }
s:log(1, "acc", 0.5)
s:finish()
local r = db:run{ name = "doomed" }
error("boom")
LUA
"$HDLM" run junk.lua --db a.db >/dev/null 2>&1
cp ckA/step_00000060.safetensors ckA/step_00000007.safetensors # no row names step 7
cp ckA/step_00000060.safetensors ckA/step_00000007.ema.safetensors
before=$(q a.db "SELECT count(*) FROM runs")
out=$("$HDLM" runs gc --db a.db --dry-run 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^would delete run 3 (empty, script, done): done with nothing recorded: 0 metrics, 0 checkpoint rows" <<<"$out" \
  && grep -q "^would delete run 5 (doomed, script, failed): failed: junk.lua:.*boom" <<<"$out" && ! grep -q "run 4 " <<<"$out" \
  && grep -q "^would delete file $dir/ckA/step_00000007.safetensors" <<<"$out" \
  && grep -q "^would delete 2 runs and 2 files" <<<"$out" && ok || bad "gc --dry-run: rc=$rc $out"
[ "$(q a.db "SELECT count(*) FROM runs")" = "$before" ] && [ -e ckA/step_00000007.safetensors ] && ok || bad "--dry-run changed something"
out=$("$HDLM" runs gc --db a.db 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^deleted 2 runs and 2 files" <<<"$out" && ok || bad "gc: rc=$rc $out"
[ "$(q a.db "SELECT group_concat(name, ' ') FROM runs")" = "ar blk scratch" ] && [ ! -e ckA/step_00000007.safetensors ] \
  && [ -e ckA/step_00000060.safetensors ] && [ -e ckA/step_00000050.safetensors ] && ok \
  || bad "after gc: $(q a.db "SELECT id, name FROM runs") $(ls ckA)"

# ---- runs rm: rows, dependents and checkpoint files ----
out=$("$HDLM" runs rm 2 99 --db a.db 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "no run 99; nothing was deleted" <<<"$out" && [ "$(q a.db "SELECT count(*) FROM runs WHERE id = 2")" = 1 ] && ok \
  || bad "rm of a missing run: rc=$rc $out"
out=$("$HDLM" runs rm 2 --db a.db --dry-run 2>&1); rc=$?
[ $rc -eq 0 ] && grep -qE "^would delete run 2 \(blk, train, done\): [0-9]+ metrics, 1 checkpoint row, 2 evaluations \(17 items\), 2 samples" <<<"$out" \
  && grep -q "^would delete file $dir/ckB/step_00000040.safetensors" <<<"$out" && [ -e ckB/step_00000040.safetensors ] && ok \
  || bad "rm --dry-run: rc=$rc $out"
out=$("$HDLM" runs rm 2 --db a.db 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^deleted 1 run and 4 files" <<<"$out" && ok || bad "rm: rc=$rc $out"
[ "$(q a.db "SELECT (SELECT count(*) FROM runs WHERE id = 2) + (SELECT count(*) FROM metrics WHERE run_id = 2) + (SELECT count(*) FROM checkpoints WHERE run_id = 2) + (SELECT count(*) FROM evaluations WHERE run_id = 2) + (SELECT count(*) FROM samples WHERE run_id = 2) + (SELECT count(*) FROM sample_events) + (SELECT count(*) FROM run_plugins WHERE run_id = 2)")" = 0 ] \
  && [ ! -e ckB ] && ok || bad "after rm: files $(ls ckB 2>&1)"
[ -z "$(q a.db "PRAGMA foreign_key_check")" ] && [ "$(q a.db "PRAGMA integrity_check")" = ok ] && ok || bad "store checks after rm"

# ---- a database of the previous schema: upgraded, its 0-step copy and typo run collected ----
cp "$SRC/tests/data/store_v3.db" v3.db
out=$("$HDLM" runs gc --db v3.db 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^deleted run 2 (v3-train, train, done): done with nothing recorded: 1 metric, 0 checkpoint rows" <<<"$out" \
  && grep -q "^deleted run 4 (typo, train, failed): failed: db:train: unknown key 'stesp'" <<<"$out" && ok || bad "gc of v3.db: rc=$rc $out"
[ "$(q v3.db "PRAGMA user_version")" = 4 ] && [ "$(q v3.db "SELECT group_concat(id, ' ') FROM runs")" = "1 3" ] && ok || bad "v3.db after gc"

if grep -lE "Sanitizer|runtime error" ./*.err >/dev/null 2>&1; then
  bad "sanitizer report: $(grep -hE -m3 "Sanitizer|runtime error" ./*.err)"
else ok; fi
echo "test_store_admin: $passed passed, $failed failed"
[ $failed -eq 0 ]
