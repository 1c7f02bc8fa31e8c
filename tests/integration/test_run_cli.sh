#!/usr/bin/env bash
# `hdlm sample` / `hdlm eval` (C, core/app/run_cmds.c) and the Lua bindings (run:sample / run:eval
# on require("hdlm_run").load) are two doors to one implementation (core/run): the same seed and
# options give the same stored tokens, bounds and per-sequence values. Also: typed key=value
# errors name the key, and the preloaded hdlm_run module needs no file from the source tree.
set -u
HDLM=${HDLM_BIN:-./hdlm}
HDLM=$(cd "$(dirname "$HDLM")" && pwd)/$(basename "$HDLM")
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()  { passed=$((passed+1)); }
bad() { failed=$((failed+1)); echo "FAIL: $*" >&2; }
q()   { "$HDLM" query --db "$dir/r.db" --csv "$1" | tail -n +2; }
cd "$dir" || exit 1
for i in $(seq 1 400); do echo "line $i of a small corpus: the cat sat on the mat, then $((i * 7 % 13)) dogs ran."; done > c.txt
"$HDLM" data prepare c.txt -o c.tok >/dev/null || { echo "data prepare failed"; exit 1; }
cat > train.lua <<'LUA'
local hdlm = require "hdlm"
local db = hdlm.open()
db:train{ name = "m", data = hdlm.corpus{ path = "c.tok" }, steps = 12, batch = 4, seed = 5,
  model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 24 }, checkpoint_dir = "ck",
  noise = { "epsilon_hybrid", epsilon = 0.01 }, schedule = { "block_annealing", width = 4 } }
LUA
"$HDLM" run train.lua --db r.db >/dev/null 2>err || { cat err; echo "training failed"; exit 1; }

# the same samples through both doors (samples 1-2 from the CLI, 3-4 from Lua)
"$HDLM" sample --run 1 --db r.db n=2 length=16 seed=9 sampler=acs eta=0.05 temperature=0.9 \
  prompt=line >cli.out 2>err && ok || bad "hdlm sample: $(cat err)"
grep -c "^-- sample [12] (run 1, step 12 checkpoint; acs; " cli.out | grep -q 2 && ok || bad "sample header: $(cat cli.out)"
cat > same.lua <<'LUA'
local hdlm = require "hdlm"
local run, ck = require("hdlm_run").load(hdlm.open(), 1)
assert(ck.step == 12, "checkpoint step " .. tostring(ck.step))
run:sample{ n = 2, length = 16, seed = 9, sampler = { "acs", eta = 0.05 }, temperature = 0.9,
  prompt = "line" }
run:eval{ sequences = 3, mc = 2, seed = 4 }
LUA
(cd / && "$HDLM" run "$dir/same.lua" --db "$dir/r.db" >/dev/null 2>"$dir/err") && ok || bad "Lua side: $(cat err)"
[ "$(q "SELECT tokens, sampler, settings, seed, steps, nfe FROM samples WHERE id <= 2 ORDER BY id")" = \
  "$(q "SELECT tokens, sampler, settings, seed, steps, nfe FROM samples WHERE id > 2 ORDER BY id")" ] \
  && ok || bad "CLI and Lua samples differ: $(q "SELECT id, tokens FROM samples")"
[ "$(q "SELECT count(*) FROM samples")" = 4 ] && ok || bad "sample rows"
"$HDLM" eval --run 1 --db r.db sequences=3 mc=2 seed=4 >ev.out 2>err && ok || bad "hdlm eval: $(cat err)"
grep -q "^run 1 (step 12 checkpoint, ema weights): consistent bound on 3 valid sequences of 24 tokens" ev.out \
  && ok || bad "eval output: $(cat ev.out)"
[ "$(q "SELECT value, std_error, json_remove(settings, '$.wall') FROM evaluations WHERE id = 1")" = \
  "$(q "SELECT value, std_error, json_remove(settings, '$.wall') FROM evaluations WHERE id = 2")" ] \
  && ok || bad "CLI and Lua bounds differ: $(q "SELECT id, value FROM evaluations")"
[ "$(q "SELECT group_concat(value) FROM evaluation_items WHERE evaluation_id = 1")" = \
  "$(q "SELECT group_concat(value) FROM evaluation_items WHERE evaluation_id = 2")" ] \
  && ok || bad "per-sequence values differ"
# the printed numbers are the stored ones
nats=$(q "SELECT printf('%.4f', value) FROM evaluations WHERE id = 2")
grep -q "^  $nats ± " ev.out && ok || bad "printed bound $(sed -n 2p ev.out), stored $nats"

# typed options: wrong types and unknown keys are one line naming the key
expect() {
  local needle=$1; shift
  local out; out=$("$@" 2>&1 >/dev/null)
  [ $? -ne 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -qF -- "$needle" <<<"$out" && ok \
    || bad "$* -> wanted '$needle', got: $out"
}
expect "hdlm: sample: run:sample: key 'n' must be an integer, got 2.5" "$HDLM" sample --run 1 --db r.db n=2.5
expect "hdlm: sample: run:sample: key 'temperature' must be a number, got string" "$HDLM" sample --run 1 --db r.db temperature=hot
expect "hdlm: eval: run:eval: key 'store' must be a boolean, got number" "$HDLM" eval --run 1 --db r.db store=1
expect "hdlm: eval: run:eval: unknown key 'sequence' (did you mean 'sequences'?)" "$HDLM" eval --run 1 --db r.db sequence=3
expect "hdlm: eval: run:eval: key 'length' must be in 2..24 (the model's seq_len), got 99" "$HDLM" eval --run 1 --db r.db length=99
expect "hdlm: sample: run id must be an integer, got 1x" "$HDLM" sample --run 1x --db r.db
[ "$(q "SELECT count(*) FROM samples")" = 4 ] && ok || bad "refused commands stored samples"

echo "test_run_cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
