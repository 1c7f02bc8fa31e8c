#!/usr/bin/env bash
# A plugin failing mid-run, through the real binary: the fixture noise plugin
# fixture_failing_noise (tests/plugins/faults/) returns an error from `loss` at its 21st call
# (batch 4, one call per sequence: during step 6). The run must fail with the plugin's message
# on stderr and in its row, keep the checkpoints written before (steps 2 and 4, `latest` = 4,
# weights byte-identical to a run whose plugin never fails), log steps 1..5 once each, and leave
# the store consistent (PRAGMA integrity_check). OMP_NUM_THREADS=1. A few seconds.
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

[ -f "$FIX/failing_noise.so" ] && ok || bad "fixture $FIX/failing_noise.so not built"
# only the fixture's folder on the plugin path (the other fixtures would be reported as refused)
export HDLM_PLUGIN_PATH=$FIX

words=(the quick brown fox jumps over lazy dog and a cat sat on mat with hat)
awk -v n=20000 -v nw=${#words[@]} -v w="${words[*]}" 'BEGIN {
  split(w, W, " "); s = 777; out = 0
  while (out < n) {
    line = ""; k = 3 + (s % 8)
    for (i = 0; i < k; i++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (i ? " " : "") W[1 + int(s / 65536) % nw] }
    print line "."; out += length(line) + 2
  } }' > "$dir/corpus.txt"
"$HDLM" data prepare "$dir/corpus.txt" -o "$dir/corpus.tok" --valid 0.05 >/dev/null 2>&1 \
  && ok || bad "data prepare"

cat > "$dir/train.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
db:train{
  name = a.name, data = data,
  noise = { "fixture_failing_noise", fail_at = a.fail_at }, schedule = { "diffusion", tau = 4 },
  model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = 32 },
  steps = 10, batch = 4, lr = 3e-3, log_every = 1, seed = 9,
  checkpoint_dir = a.ckpt, ckpt_every = 2, keep = 100,
}
LUA
train() { # db ckpt name fail_at -> exit status; stderr to $dir/<name>.err
  "$HDLM" run "$dir/train.lua" --db "$1" corpus="$dir/corpus.tok" ckpt="$2" name="$3" \
    fail_at="$4" >"$dir/$3.out" 2>"$dir/$3.err"
}
payload() { # safetensors file -> its tensor bytes (after the 8-byte length and the JSON header)
  local n
  n=$(od -An -t u8 -N8 "$1" | tr -d ' ')
  tail -c +$((9 + n)) "$1" | cksum
}

# reference: the plugin never fails
train "$dir/a.db" "$dir/ckA" A 1000000 && ok || bad "run A failed: $(tail -3 "$dir/A.err")"

train "$dir/b.db" "$dir/ckB" B 21; rc=$?
msg="noise loss: fixture_failing_noise: simulated failure at loss call 21"
[ $rc -eq 1 ] && ok || bad "B exit status $rc, expected 1"
grep -q "^hdlm: .*$msg" "$dir/B.err" && ok || bad "B stderr lacks the plugin message: $(head -2 "$dir/B.err")"
row=$(q "$dir/b.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE name = 'B'")
[[ "$row" == "failed|"*"$msg"* ]] && ok || bad "B row '$row'"
[ "$(q "$dir/b.db" "PRAGMA integrity_check")" = ok ] && ok || bad "B store integrity_check"
[ "$(q "$dir/b.db" "PRAGMA foreign_key_check" | wc -l)" = 0 ] && ok || bad "B foreign_key_check"
[ "$(cat "$dir/ckB/latest" 2>/dev/null)" = 4 ] && ok || bad "B latest '$(cat "$dir/ckB/latest")', expected 4"
ck=$(q "$dir/b.db" "SELECT group_concat(step, ' ') FROM (SELECT step FROM checkpoints ORDER BY step)")
[ "$ck" = "2 4" ] && ok || bad "B checkpoint rows '$ck', expected 2 4"
n=$(q "$dir/b.db" "SELECT count(*) || ' ' || count(DISTINCT step) || ' ' || min(step) || ' ' || max(step) FROM metrics WHERE name = 'loss'")
[ "$n" = "5 5 1 5" ] && ok || bad "B losses (count,distinct,min,max) '$n', expected 5 5 1 5"
la=$(q "$dir/a.db" "SELECT printf('%.17g', value) FROM metrics WHERE name = 'loss' AND step <= 5 ORDER BY step")
lb=$(q "$dir/b.db" "SELECT printf('%.17g', value) FROM metrics WHERE name = 'loss' ORDER BY step")
[ -n "$lb" ] && [ "$la" = "$lb" ] && ok || bad "B losses differ from run A's"
[ -z "$(find "$dir/ckB" -name '*.tmp.*')" ] && ok || bad "B left temporary files"
[ ! -e "$dir/ckB/step_00000006.safetensors" ] && ok || bad "B wrote a checkpoint past the failure"
for s in 00000002 00000004; do
  for f in safetensors ema.safetensors state.safetensors; do
    [ "$(payload "$dir/ckA/step_$s.$f")" = "$(payload "$dir/ckB/step_$s.$f")" ] && ok \
      || bad "B step_$s.$f tensors differ from run A's"
  done
done
# the kept checkpoint loads as a model
cat > "$dir/load.lua" <<'LUA'
local hdlm = require "hdlm"
local m = hdlm.model{ checkpoint = hdlm.args.path }
print("loaded " .. m.n_params)
LUA
"$HDLM" run "$dir/load.lua" --db "$dir/load.db" path="$dir/ckB/step_00000004.safetensors" \
  >"$dir/load.out" 2>&1 && grep -q "^loaded [0-9]" "$dir/load.out" && ok \
  || bad "step 4 checkpoint does not load: $(tail -2 "$dir/load.out")"

echo "test_plugin_failure: $passed passed, $failed failed"
[ $failed -eq 0 ]
