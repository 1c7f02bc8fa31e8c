#!/usr/bin/env bash
# Error paths through the real binary: each gives one clear message, a non-zero exit, no crash,
# and runs left open by a failing script are marked failed with the message.
set -u
HDLM=${HDLM_BIN:-./hdlm}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }
# expect_fail NEEDLE CMD... : non-zero exit, stderr contains NEEDLE, no sanitizer report
expect_fail() {
  local needle=$1; shift
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$needle" <<<"$out" && ! grep -q "Sanitizer" <<<"$out"; then ok
  else bad "$* -> rc=$rc, wanted '$needle' in: $out"; fi
}

# Lua syntax error
printf 'local x = = 1\n' > "$dir/syntax.lua"
expect_fail "syntax.lua:1:" "$HDLM" run "$dir/syntax.lua" --db "$dir/a.db"

# runtime error with a traceback; the open run is marked failed with the message
cat > "$dir/fail.lua" <<'LUA'
local hdlm = require "hdlm"
local db = hdlm.open()
local run = db:run{ name = "doomed" }
run:log(1, "loss", 2.5)
local function inner() error("boom at step 1") end
inner()
LUA
expect_fail "stack traceback" "$HDLM" run "$dir/fail.lua" --db "$dir/a.db"
st=$("$HDLM" query --db "$dir/a.db" --csv "SELECT status, error FROM runs WHERE name='doomed'")
if grep -q "failed" <<<"$st" && grep -q "boom at step 1" <<<"$st"; then ok; else bad "run not marked failed: $st"; fi
n=$("$HDLM" query --db "$dir/a.db" --csv "SELECT count(*) FROM metrics" | tail -1)
[ "$n" = "1" ] && ok || bad "metric logged before the failure lost: $n"

# a script that ends normally leaves its runs done
printf 'local h = require "hdlm"; local db = h.open(); db:run{name="fine"}\n' > "$dir/fine.lua"
"$HDLM" run "$dir/fine.lua" --db "$dir/a.db" 2>/dev/null && ok || bad "fine.lua failed"
st=$("$HDLM" query --db "$dir/a.db" --csv "SELECT status FROM runs WHERE name='fine'" | tail -1)
[ "$st" = "done" ] && ok || bad "run not done: $st"

# script arguments
printf 'local h = require "hdlm"; assert(h.args.n == 3 and h.args.name == "x" and h.args.f == true)\n' > "$dir/args.lua"
"$HDLM" run "$dir/args.lua" n=3 name=x f=true 2>/dev/null && ok || bad "args not passed"
expect_fail "must look like key=value" "$HDLM" run "$dir/args.lua" notakeyvalue

# missing script, unknown command, bad flags
expect_fail "cannot open" "$HDLM" run "$dir/nope.lua"
expect_fail "unknown command 'qeury' (did you mean 'query'?)" "$HDLM" qeury "SELECT 1"
expect_fail "unknown flag" "$HDLM" run "$dir/fine.lua" --bogus

# databases: corrupt, newer schema, SQL error
printf 'this is not a database at all, just text padding padding padding padding padding padding padding padding padding padding\n' > "$dir/corrupt.db"
expect_fail "corrupt.db" "$HDLM" query --db "$dir/corrupt.db" "SELECT 1"
cp "$dir/a.db" "$dir/new.db"
if command -v sqlite3 >/dev/null; then # optional (scripts/setup.sh): the check needs the shell
  sqlite3 "$dir/new.db" "PRAGMA user_version=99"
  expect_fail "newer" "$HDLM" query --db "$dir/new.db" "SELECT 1"
else
  echo "note: no sqlite3 shell: the newer-schema check is left out"
fi
expect_fail "no such table: nope" "$HDLM" query --db "$dir/a.db" "SELECT * FROM nope"
expect_fail "missing-dir" "$HDLM" runs --db "$dir/missing-dir/x.db"

# data prepare refusals
printf '' > "$dir/empty.txt"
expect_fail "empty.txt" "$HDLM" data prepare "$dir/empty.txt" -o "$dir/e.tok"
printf 'ok\xff\xfebad' > "$dir/bad.txt"
expect_fail "invalid UTF-8" "$HDLM" data prepare "$dir/bad.txt" -o "$dir/b.tok"
expect_fail "expects a number" "$HDLM" data prepare "$dir/bad.txt" --valid abc
printf 'garbage!%.0s' $(seq 1 12) > "$dir/g.tok"
printf 'local h = require "hdlm"; h.corpus{path="%s"}\n' "$dir/g.tok" > "$dir/tok.lua"
expect_fail "not an hdlm token file" "$HDLM" run "$dir/tok.lua"

# query output formats
"$HDLM" query --db "$dir/a.db" --json "SELECT name FROM runs WHERE name='fine'" | grep -q '"name": *"fine"' && ok || bad "json output"

# ---- help: every command answers --help, -h and `hdlm help NAME` with usage, options and an
# example on stdout and exit 0, without running anything (no database appears)
cd "$dir"
for c in run plugins query runs samples sample eval report sweep data import help; do
  for form in "$c --help" "$c -h" "help $c"; do
    out=$("$HDLM" $form 2>"$dir/err"); rc=$?
    if [ $rc -eq 0 ] && grep -q "^usage: hdlm $c" <<<"$out" && grep -q "^example:" <<<"$out" && [ ! -s "$dir/err" ]; then ok
    else bad "hdlm $form -> rc=$rc: $out $(cat "$dir/err")"; fi
  done
done
[ ! -e "$dir/runs.db" ] && ok || bad "hdlm query --help ran something: runs.db created"
# --help anywhere on the line; a sub-command's help is its own
out=$("$HDLM" query --db x.db --help); [ $? -eq 0 ] && grep -q -- "--csv" <<<"$out" && ok || bad "query --db x.db --help: $out"
out=$("$HDLM" data synth --help)
grep -q "usage: hdlm data synth" <<<"$out" && ! grep -q "data prepare" <<<"$out" && grep -q -- "--vocab" <<<"$out" && ok || bad "data synth --help: $out"
out=$("$HDLM" data --help); grep -q "data prepare" <<<"$out" && grep -q "data synth" <<<"$out" && ok || bad "data --help: $out"
out=$("$HDLM" run --help); grep -q "'-' reads it from stdin" <<<"$out" && ok || bad "run --help: $out"
"$HDLM" --help | grep -q "hdlm COMMAND --help" && ok || bad "hdlm --help does not mention COMMAND --help"
expect_fail "unknown command 'smaple' (did you mean 'sample'?)" "$HDLM" help smaple
expect_fail "unknown command 'runns' (did you mean 'runs'?)" "$HDLM" runns
cd - >/dev/null

# ---- command errors are one line: no traceback, no internal file names
# expect_line NEEDLE CMD... : non-zero exit, stderr is exactly one line containing NEEDLE
expect_line() {
  local needle=$1; shift
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -qF -- "$needle" <<<"$out" \
     && ! grep -q "traceback\|hdlm_run.lua\|\.lua:[0-9]" <<<"$out"; then ok
  else bad "$* -> rc=$rc, wanted one line with '$needle', got: $out"; fi
}
expect_line "hdlm: sample: no run 99 in $dir/a.db" "$HDLM" sample --run 99 --db "$dir/a.db"
expect_line "hdlm: eval: no run 99 in $dir/a.db" "$HDLM" eval --run 99 --db "$dir/a.db"
expect_line "run id must be an integer, got abc" "$HDLM" sample --run abc --db "$dir/a.db"
expect_line "$dir/none.db: no such database file" "$HDLM" sample --run 1 --db "$dir/none.db"
[ ! -e "$dir/none.db" ] && ok || bad "hdlm sample created a missing database"
expect_line "did you mean n=4?" "$HDLM" sample --run 1 --db "$dir/a.db" --n 4
expect_line "query: unknown flag '--csvv' (did you mean '--csv'?)" "$HDLM" query --db "$dir/a.db" --csvv "SELECT 1"
expect_line "run: unknown flag '--bd' (did you mean '--db'?)" "$HDLM" run --bd x.db "$dir/fine.lua"
expect_line "samples: unknown flag '--limt' (did you mean '--limit'?)" "$HDLM" samples --run 1 --limt 3 --db "$dir/a.db"
expect_line "data synth: unknown flag '--vocb' (did you mean '--vocab'?)" "$HDLM" data synth -o "$dir/s.txt" --vocb 4
expect_line "report: unknown flag '--out'" "$HDLM" report "$dir/a.db" --out r.html
expect_line "cannot open $dir/nope.lua" "$HDLM" run "$dir/nope.lua"
expect_line "query: flag '--db' needs a value" "$HDLM" query "SELECT 1" --db
# HDLM_LOG=debug keeps the traceback of an error in a command written in Lua (for bug reports);
# `hdlm sample` / `hdlm eval` are C (core/run) and give their one line there too
out=$(HDLM_LOG=debug "$HDLM" report "$dir/a.db" -o "$dir/no/such/dir/r.html" 2>&1)
grep -q "stack traceback" <<<"$out" && ok || bad "HDLM_LOG=debug lost the traceback: $out"
out=$(HDLM_LOG=debug "$HDLM" sample --run 99 --db "$dir/a.db" 2>&1)
[ "$out" = "hdlm: sample: no run 99 in $dir/a.db" ] && ok || bad "HDLM_LOG=debug hdlm sample: $out"

# ---- hdlm run -: the script from stdin (arguments and the store work as for a file)
out=$(printf 'local h = require "hdlm"\nprint(h.args.n * 2)\nh.open():run{name = "piped"}\n' |
      "$HDLM" run - n=21 --db "$dir/a.db" 2>"$dir/err"); rc=$?
[ $rc -eq 0 ] && [ "$out" = "42" ] && ok || bad "hdlm run - -> rc=$rc out=$out err=$(cat "$dir/err")"
st=$("$HDLM" query --db "$dir/a.db" --csv "SELECT status || ' ' || script FROM runs WHERE name='piped'" | tail -1)
[ "$st" = "done stdin" ] && ok || bad "piped run: $st"
printf 'error("piped failure")\n' > "$dir/pf.lua"
expect_fail "stdin:1: piped failure" sh -c "\"$HDLM\" run - < \"$dir/pf.lua\""

# ---- script arguments the script never read are reported (with the key it looked up instead)
cat > "$dir/steps.lua" <<'LUA'
local a = require("hdlm").args
local steps = a.steps or 10
local lr = a.lr or 1e-3
print(steps, lr)
LUA
out=$("$HDLM" run "$dir/steps.lua" stpes=5 lr=0.1 colour=red 2>"$dir/err"); rc=$?
[ $rc -eq 0 ] && [ "$out" = "$(printf '10\t0.1')" ] && ok || bad "steps.lua -> rc=$rc out=$out"
grep -qF "hdlm: warning: argument 'stpes' was never read by $dir/steps.lua (did you mean 'steps'?)" "$dir/err" && ok || bad "no warning for stpes: $(cat "$dir/err")"
grep -qF "hdlm: warning: argument 'colour' was never read by $dir/steps.lua" "$dir/err" && ok || bad "no warning for colour: $(cat "$dir/err")"
! grep -q "'lr'" "$dir/err" && [ "$(wc -l <"$dir/err")" -eq 2 ] && ok || bad "lr was read, or extra warnings: $(cat "$dir/err")"
"$HDLM" run "$dir/steps.lua" steps=5 >/dev/null 2>"$dir/err" && [ ! -s "$dir/err" ] && ok || bad "warning for a read argument: $(cat "$dir/err")"
# pairs() reads every argument; a failing script gets no warnings (it may not have reached them)
printf 'for k, v in pairs(require("hdlm").args) do io.write(k, "=", v, " ") end\n' > "$dir/all.lua"
out=$("$HDLM" run "$dir/all.lua" x=1 2>"$dir/err"); [ "$out" = "x=1 " ] && [ ! -s "$dir/err" ] && ok || bad "pairs: out=$out err=$(cat "$dir/err")"
printf 'error("stop")\n' > "$dir/stop.lua"
"$HDLM" run "$dir/stop.lua" x=1 2>&1 | grep -q "never read" && bad "warning after a failure" || ok

# ---- warnings: a missing HDLM_PLUGIN_PATH folder, db:train without checkpoints, a judge whose
# schedule is not autoregressive (judge_exact false)
printf 'print(#require("hdlm").plugins("schedule") > 0)\n' > "$dir/plugins.lua"
out=$(HDLM_PLUGIN_PATH="$dir/no-such-dir" "$HDLM" run "$dir/plugins.lua" 2>"$dir/err")
[ "$out" = "true" ] && grep -qF "hdlm: warning: HDLM_PLUGIN_PATH entry '$dir/no-such-dir' does not exist" "$dir/err" && ok || bad "missing plugin path: $out $(cat "$dir/err")"
HDLM_PLUGIN_PATH="$dir" "$HDLM" run "$dir/plugins.lua" >/dev/null 2>"$dir/err" && ! grep -q "warning" "$dir/err" && ok || bad "warning for an existing plugin folder: $(cat "$dir/err")"
for i in $(seq 1 200); do echo "line $i: the quick brown fox jumps over the lazy dog."; done > "$dir/c.txt"
cat > "$dir/judge.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus, tokenizer = "bytes", valid = 0.1 }
local model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }
local ar = db:train{ name = "ar-judge", data = data, noise = { "absorbing" }, schedule = { "autoregressive" },
  context = "causal", model = model, steps = 4, batch = 4, seed = 1, checkpoint_dir = a.ck, ckpt_every = 4 }
io.stderr:write("-- trained ar\n")
local blk = db:train{ name = "blk", data = data, noise = { "absorbing" },
  schedule = { "block_annealing", width = 4, tau = 2 }, model = model, steps = 4, batch = 4, seed = 2 }
io.stderr:write("-- trained blk\n")
local smp = blk:sample{ n = 2, seed = 1, events = false }
local g = blk:gen_eval{ judge = ar, samples = smp, store = false }
io.stderr:write("-- judged by ar\n")
local g2 = blk:gen_eval{ judge = blk, samples = smp, store = false }
print(g.settings.judge_exact, g2.settings.judge_exact)
LUA
out=$(HDLM_PROGRESS=off "$HDLM" run "$dir/judge.lua" corpus="$dir/c.txt" ck="$dir/ck" --db "$dir/j.db" 2>"$dir/err"); rc=$?
[ $rc -eq 0 ] && [ "$out" = "$(printf 'true\tfalse')" ] && ok || bad "judge_exact (AR judge, block judge): rc=$rc $out $(cat "$dir/err")"
# the AR run (checkpoints) gets no warning; the block run (no checkpoint_dir) does
sed -n '/^-- trained ar$/q;p' "$dir/err" | grep -q "warning" && bad "warning for a run with checkpoints: $(cat "$dir/err")" || ok
sed -n '/^-- trained ar$/,/^-- trained blk$/p' "$dir/err" | grep -q "hdlm: warning: db:train: this run cannot be sampled or evaluated later: no checkpoint_dir" && ok || bad "no checkpoint_dir warning: $(cat "$dir/err")"
sed -n '/^-- trained blk$/,/^-- judged by ar$/p' "$dir/err" | grep -q "warning" && bad "warning for an AR judge: $(cat "$dir/err")" || ok
sed -n '/^-- judged by ar$/,$p' "$dir/err" | grep -q "hdlm: warning: run:gen_eval: judge run 2 uses schedule 'block_annealing', which is not autoregressive" && ok || bad "no warning for a block judge: $(cat "$dir/err")"
printf 'local h = require "hdlm"\nh.open():train{data = h.corpus{path = "%s"}, model = {d_model = 8, n_layer = 1, n_head = 2, seq_len = 8}, steps = 1, batch = 2, checkpoint_dir = "%s/ck2"}\n' "$dir/c.txt" "$dir" > "$dir/noevery.lua"
# checkpoint_dir without ckpt_every: the run still ends with a checkpoint of its last step, no warning
out=$(HDLM_PROGRESS=off "$HDLM" run "$dir/noevery.lua" --db "$dir/j.db" 2>&1); rc=$?
[ $rc -eq 0 ] && ! grep -q "warning" <<<"$out" && ls "$dir"/ck2/*.safetensors >/dev/null 2>&1 && ok || bad "checkpoint_dir without ckpt_every: rc=$rc $out"
sed -i 's|checkpoint_dir = "[^"]*"|checkpoint_dir = false|' "$dir/noevery.lua"
out=$(HDLM_PROGRESS=off "$HDLM" run "$dir/noevery.lua" --db "$dir/j.db" 2>&1); rc=$?
[ $rc -eq 0 ] && ! grep -q "warning" <<<"$out" && ok || bad "checkpoint_dir = false (no checkpoints on purpose): rc=$rc $out"
# the stored AR run samples and evaluates from the command line; the block run says why it cannot
"$HDLM" sample --run 1 --db "$dir/j.db" n=1 length=8 >/dev/null 2>"$dir/err" && ok || bad "sample of the AR run: $(cat "$dir/err")"
expect_line "hdlm: eval: run 2 has no checkpoint" "$HDLM" eval --run 2 --db "$dir/j.db"
expect_line "hdlm: eval: run:eval: unknown key 'mcc' (did you mean 'mc'?)" "$HDLM" eval --run 1 --db "$dir/j.db" mcc=3

echo "test_cli_errors: $passed passed, $failed failed"
[ $failed -eq 0 ]
