#!/usr/bin/env bash
# A plugin that segfaults mid-run, through the real binary: fixture_crash_noise
# (tests/plugins/faults/crash_noise.c) writes through NULL in its 21st `loss` call (batch 4, one
# call per sequence: during step 6). The host's crash guard must report "plugin
# fixture_crash_noise#N (FILE) crashed in op loss (SIGSEGV, ...)" on stderr, record the run as
# failed with that message (not leave it running/interrupted), exit 1 rather than die of the
# signal (139), and keep the store consistent. A crash in an op that returns no status
# (fixture_crash_schedule's n_steps) ends the process with status 70 after marking the open run
# failed. `hdlm plugins check` on the same file must print
# one FAIL line naming the crash and exit 1. OMP_NUM_THREADS=1. A few seconds.
set -u
HDLM=${HDLM_BIN:-./hdlm}
FIX=${HDLM_FIXTURE_DIR:-./tests/plugins}/faults
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off
dir=$(mktemp -d)
trap '[ -n "${KEEP_DIR:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"' EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }
q()    { "$HDLM" query --db "$1" --csv "$2" | tail -n +2; } # rows without the header

[ -f "$FIX/crash_noise.so" ] && [ -f "$FIX/crash_schedule.so" ] && ok || bad "fixtures not built in $FIX"
export HDLM_PLUGIN_PATH=$FIX

for i in $(seq 1 3000); do echo "the quick brown fox jumps over the lazy dog, line $i."; done \
  > "$dir/corpus.txt"
"$HDLM" data prepare "$dir/corpus.txt" -o "$dir/corpus.tok" --valid 0.05 >/dev/null 2>&1 \
  && ok || bad "data prepare"
cat > "$dir/train.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
db:train{
  name = "crash", data = data,
  noise = { "fixture_crash_noise", crash_at = a.crash_at }, schedule = { "diffusion", tau = 4 },
  model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = 32 },
  steps = 10, batch = 4, lr = 3e-3, log_every = 1, seed = 9, checkpoint_dir = false,
}
LUA
"$HDLM" run "$dir/train.lua" --db "$dir/r.db" corpus="$dir/corpus.tok" crash_at=21 \
  >"$dir/out" 2>"$dir/err"; rc=$?
msg="crashed in op loss (SIGSEGV, segmentation fault)"
[ $rc -eq 1 ] && ok || bad "exit status $rc, expected 1 (139 would be the unguarded segfault)"
grep -q "^hdlm: noise loss: plugin fixture_crash_noise#[0-9]* ($FIX/crash_noise.so\|.*crash_noise.so) $msg" "$dir/err" \
  && ok || bad "stderr lacks the crash message: $(head -3 "$dir/err")"
row=$(q "$dir/r.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE name = 'crash'")
row=${row#\"} # CSV quotes the field (the message has a comma)
[[ "$row" == "failed|"*"plugin fixture_crash_noise#"*"$msg"* ]] && ok || bad "run row '$row'"
n=$(q "$dir/r.db" "SELECT count(*) || ' ' || max(step) FROM metrics WHERE name = 'loss'")
[ "$n" = "5 5" ] && ok || bad "losses (count, last step) '$n', expected 5 5 (steps before the crash)"
[ "$(q "$dir/r.db" "PRAGMA integrity_check")" = ok ] && ok || bad "store integrity_check"

# a crash in an op without a status (n_steps of fixture_crash_schedule): the message, exit 70,
# and the script's open run marked failed with it before the process ends
cat > "$dir/manual.lua" <<'LUA'
local hdlm = require "hdlm"
local db = hdlm.open()
local run = db:run{ name = "manual" }
run:log(1, { x = 1 })
local s = hdlm.schedule{ "fixture_crash_schedule", crash_at = 1 }
print(s:levels(1, 8))
LUA
"$HDLM" run "$dir/manual.lua" --db "$dir/m.db" >"$dir/m.out" 2>"$dir/m.err"; rc=$?
smsg="plugin fixture_crash_schedule#1 (.*crash_schedule.so) crashed in op n_steps (SIGSEGV, segmentation fault)"
[ $rc -eq 70 ] && ok || bad "n_steps crash: exit status $rc, expected 70"
grep -q "^hdlm: $smsg; the run cannot continue$" "$dir/m.err" && ok || bad "n_steps crash stderr: $(cat "$dir/m.err")"
row=$(q "$dir/m.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE name = 'manual'")
row=${row#\"}
grep -q "^failed|$smsg" <<<"$row" && ok || bad "manual run row '$row'"

# the checker: crash_at defaults to 1, so its first loss call crashes
"$HDLM" plugins check "$FIX/crash_noise.so" >"$dir/check" 2>"$dir/check.err"; rc=$?
[ $rc -eq 1 ] && ok || bad "plugins check exit status $rc, expected 1"
grep -q "^FAIL noise fixture_crash_noise loss gradient: loss failed: plugin fixture_crash_noise#1 .* $msg" \
  "$dir/check" && ok || bad "plugins check output: $(cat "$dir/check")"
grep -q "^FAIL noise fixture_crash_noise limit: not run: the instance crashed in op loss" "$dir/check" \
  && ok || bad "checks after the crash: $(cat "$dir/check")"

echo "test_plugin_crash: $passed passed, $failed failed"
[ $failed -eq 0 ]
