#!/usr/bin/env bash
# Store under load: PROCS `hdlm run` processes write to one database at the same time for
# DURATION seconds, each through the real Lua API: a tiny trained model (db:train, its metrics and
# plugin rows), then in a loop a script run (db:run) with 20 logged steps plus a table of two
# metrics, finished, and one sample drawn from the model (run:sample stores the sample and its
# events). Each process prints what it wrote; the check then asks the database:
#   - every process exited 0 and no stderr mentions "locked" or "busy" (the busy handling hides
#     contention, nothing surfaces);
#   - runs, metrics, samples and sample events: the database holds exactly the reported counts
#     (nothing lost, nothing duplicated); run names are unique, every metric value is the one its
#     (process, iteration, step) implies, every reported sample id exists once;
#   - PRAGMA integrity_check and foreign_key_check pass; no run is left 'running'.
#   scripts/load_test.sh [DURATION=60] [PROCS=8]        (HDLM_BIN: the binary to test)
set -u
DURATION=${1:-60}
PROCS=${2:-8}
HDLM=${HDLM_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/hdlm}
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP_DIR:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"
}
trap cleanup EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }
q()    { "$HDLM" query --db "$1" --csv "$2" | tail -n +2; } # rows without the header
[ -x "$HDLM" ] || { echo "load_test: no binary at $HDLM (set HDLM_BIN)" >&2; exit 2; }

awk 'BEGIN { for (i = 0; i < 400; i++) print "line " i % 17 " of the load corpus, word " i % 5 "." }' \
  > "$dir/corpus.txt"
"$HDLM" data prepare "$dir/corpus.txt" -o "$dir/corpus.tok" --valid 0.1 >/dev/null 2>&1 \
  || { echo "load_test: data prepare failed" >&2; exit 1; }

cat > "$dir/worker.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
local p = a.proc
local model = db:train{ name = ("load-p%d-train"):format(p), data = data,
  noise = { "absorbing" }, schedule = { "diffusion", tau = 4 },
  model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 },
  steps = 2, batch = 2, log_every = 1, seed = p }
local runs, metrics, samples, events, ids = 0, 0, 0, 0, {}
local deadline = hdlm.time() + a.seconds
local i = 0
while hdlm.time() < deadline do
  i = i + 1
  local r = db:run{ name = ("load-p%d-%d"):format(p, i), config = { proc = p, iter = i } }
  for step = 1, 20 do r:log(step, "value", p * 1e6 + i * 100 + step) end
  r:log(21, { a = 1, b = 2 })
  r:finish()
  runs, metrics = runs + 1, metrics + 22
  local s = model:sample{ n = 1, seed = i, length = 16 }
  samples, events = samples + 1, events + s[1].events
  ids[#ids + 1] = s[1].id
end
print(("load: proc %d runs %d metrics %d samples %d events %d"):format(p, runs, metrics, samples, events))
print("ids: " .. table.concat(ids, " "))
LUA

t0=$(date +%s)
for ((p = 1; p <= PROCS; p++)); do
  "$HDLM" run "$dir/worker.lua" --db "$dir/load.db" corpus="$dir/corpus.tok" proc=$p \
    seconds="$DURATION" >"$dir/p$p.out" 2>"$dir/p$p.err" &
  pids+=($!)
done
for ((p = 1; p <= PROCS; p++)); do
  wait "${pids[$((p - 1))]}"; rc=$?
  [ $rc -eq 0 ] && ok || bad "process $p exit status $rc: $(tail -2 "$dir/p$p.err")"
done
pids=()
wall=$(( $(date +%s) - t0 ))
if grep -liE "locked|busy" "$dir"/p*.err >/dev/null 2>&1; then
  bad "contention surfaced: $(grep -hiE -m3 "locked|busy" "$dir"/p*.err)"
else ok; fi

# what the processes say they wrote
read -r runs metrics samples events < <(awk '/^load:/ { r += $5; m += $7; s += $9; e += $11 }
  END { print r + 0, m + 0, s + 0, e + 0 }' "$dir"/p*.out)
cat "$dir"/p*.out | sed -n 's/^ids: //p' | tr ' ' '\n' | grep . | sort -n > "$dir/ids.txt"

db_runs=$(q "$dir/load.db" "SELECT count(*) FROM runs WHERE kind = 'script'")
[ "$db_runs" = "$runs" ] && ok || bad "script runs: database $db_runs, reported $runs"
n=$(q "$dir/load.db" "SELECT count(DISTINCT name) FROM runs")
[ "$n" = $((runs + PROCS)) ] && ok || bad "distinct run names $n, expected $((runs + PROCS))"
db_metrics=$(q "$dir/load.db" "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.kind = 'script'")
[ "$db_metrics" = "$metrics" ] && ok || bad "script metrics: database $db_metrics, reported $metrics"
n=$(q "$dir/load.db" "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id
  WHERE r.kind = 'script' AND ((m.name = 'value' AND m.value = json_extract(r.config, '\$.proc') * 1e6
  + json_extract(r.config, '\$.iter') * 100 + m.step) OR (m.step = 21 AND ((m.name = 'a' AND m.value = 1)
  OR (m.name = 'b' AND m.value = 2))))")
[ "$n" = "$metrics" ] && ok || bad "metrics with the expected value: $n of $metrics"
n=$(q "$dir/load.db" "SELECT count(*) FROM runs r WHERE kind = 'train' AND status = 'done'
  AND (SELECT count(*) FROM metrics WHERE run_id = r.id AND name = 'loss') = 2")
[ "$n" = "$PROCS" ] && ok || bad "train runs done with 2 losses each: $n of $PROCS"
db_samples=$(q "$dir/load.db" "SELECT count(*) FROM samples")
[ "$db_samples" = "$samples" ] && ok || bad "samples: database $db_samples, reported $samples"
q "$dir/load.db" "SELECT id FROM samples ORDER BY id" > "$dir/db_ids.txt"
cmp -s "$dir/ids.txt" "$dir/db_ids.txt" && ok || bad "sample ids in the database differ from the reported ones"
db_events=$(q "$dir/load.db" "SELECT count(*) FROM sample_events")
[ "$db_events" = "$events" ] && ok || bad "sample events: database $db_events, reported $events"
[ "$(q "$dir/load.db" "PRAGMA integrity_check")" = ok ] && ok || bad "integrity_check failed"
[ -z "$(q "$dir/load.db" "PRAGMA foreign_key_check")" ] && ok || bad "foreign_key_check failed"
n=$(q "$dir/load.db" "SELECT count(*) FROM runs WHERE status <> 'done'")
[ "$n" = 0 ] && ok || bad "$n runs not 'done'"
total=$(q "$dir/load.db" "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM metrics)
  + (SELECT count(*) FROM samples) + (SELECT count(*) FROM sample_events) + (SELECT count(*) FROM run_plugins) AS n")

echo "load_test: $PROCS processes, ${DURATION} s (wall ${wall} s): $runs script runs, $metrics metrics," \
  "$samples samples, $events sample events reported and found; $total rows in the database"
echo "load_test: $passed passed, $failed failed"
[ $failed -eq 0 ]
