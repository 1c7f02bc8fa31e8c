#!/usr/bin/env bash
# Checkpoint write failures through the real binary, injected in ways that also work as root
# (CI runs as root, where chmod does not stop writes):
#   disk full   — the temporary file of a step's weights is a symlink to /dev/full (ENOSPC);
#   torn set    — the temporary file of a step's EMA weights is a directory (EISDIR), after the
#                 weights of that step were written;
#   `latest`    — its temporary file is a directory, after the whole set was written;
#   no dir      — checkpoint_dir lies under a regular file (ENOTDIR).
# Each run fails with a message naming the path and the cause, its row is 'failed' with that
# message, `latest` still names the previous complete checkpoint, no temporary file is left, and
# the same command afterwards resumes from that checkpoint and ends byte-identical to an
# uninterrupted run. Temporary names carry the writer's pid, so the test starts hdlm with exec
# and plants the fault under the known pid as the run starts, at least five steps before the
# write it breaks (no polling, so no race with a fast or loaded machine). OMP_NUM_THREADS=1.
# About 10 s with a release build. Not covered: a read-only directory by permissions (chmod
# does not stop root).
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

cat > "$dir/train.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
db:train{
  name = a.name, data = data, objective = "ar",
  model = { d_model = 128, n_layer = 2, n_head = 2, seq_len = 128 },
  steps = 20, batch = 8, lr = 3e-3, warmup = 2, log_every = 1,
  checkpoint_dir = a.ckpt, ckpt_every = 5, seed = 5,
}
LUA
train() { # db ckpt name -> exit status; stderr to $dir/<name>.err
  "$HDLM" run "$dir/train.lua" --db "$1" corpus="$dir/corpus.tok" ckpt="$2" name="$3" \
    >"$dir/$3.out" 2>"$dir/$3.err"
}
start() { # db ckpt name -> background hdlm (exec: $! is its pid, the temporary files' suffix)
  (exec "$HDLM" run "$dir/train.lua" --db "$1" corpus="$dir/corpus.tok" ckpt="$2" name="$3" \
    >"$dir/$3.out" 2>"$dir/$3.err") &
  bgpid=$!
}
finish() { wait "$bgpid"; rc=$?; bgpid=""; }
# after a failed run: status 1, its message ($2, a regex) in stderr and in the row, `latest` at
# $3, no temporary file left; then the same command resumes from $3 and matches run A
check_failed_then_resume() { # name pattern latest db ckpt
  local name=$1 pat=$2 want=$3 db=$4 ck=$5
  [ $rc -eq 1 ] && ok || bad "$name exit status $rc, expected 1"
  grep -qE "^hdlm: .*$pat" "$dir/$name.err" && ok \
    || bad "$name stderr lacks /$pat/: $(tail -2 "$dir/$name.err")"
  local row
  row=$(q "$db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE name = '$name'")
  [[ "$row" =~ ^failed\|.*$pat ]] && ok || bad "$name row '$row'"
  [ "$(cat "$ck/latest" 2>/dev/null)" = "$want" ] && ok \
    || bad "$name: latest '$(cat "$ck/latest" 2>/dev/null)', expected $want"
  local left
  left=$(find "$ck" -name '*.tmp.*' ! -type d 2>/dev/null)
  [ -z "$left" ] && ok || bad "$name left temporary files: $left"
  n=$(q "$db" "PRAGMA integrity_check")
  [ "$n" = ok ] && ok || bad "$name: integrity_check '$n'"
  find "$ck" -name '*.tmp.*' -type d -exec rm -rf {} + 2>/dev/null # the planted fault
  train "$db" "$ck" "$name.resume" && ok || bad "$name.resume failed: $(tail -2 "$dir/$name.resume.err")"
  grep -q "resuming from step $want of " "$dir/$name.resume.err" && ok \
    || bad "$name.resume did not resume from step $want: $(head -2 "$dir/$name.resume.err")"
  for f in safetensors ema.safetensors state.safetensors; do
    cmp -s "$dir/ckA/step_00000020.$f" "$ck/step_00000020.$f" && ok \
      || bad "$name: final $f differs from the uninterrupted run"
  done
}

t0=$(date +%s)
train "$dir/a.db" "$dir/ckA" A && ok || bad "run A failed: $(tail -3 "$dir/A.err")"

# disk full while writing the weights of step 10
mkdir -p "$dir/ck1"
start "$dir/1.db" "$dir/ck1" full
ln -s /dev/full "$dir/ck1/step_00000010.safetensors.tmp.$bgpid"
finish
check_failed_then_resume full \
  "checkpoint of step 10 failed .*step_00000010\.safetensors: writing .* No space left on device" \
  5 "$dir/1.db" "$dir/ck1"

# torn set: the weights of step 15 written, its EMA weights cannot be
mkdir -p "$dir/ck2"
start "$dir/2.db" "$dir/ck2" torn
mkdir "$dir/ck2/step_00000015.ema.safetensors.tmp.$bgpid"
finish
[ -f "$dir/ck2/step_00000015.safetensors" ] && ok || bad "torn: step 15 weights were not written first"
check_failed_then_resume torn \
  "step_00000015\.ema\.safetensors: cannot create temporary file .*Is a directory" \
  10 "$dir/2.db" "$dir/ck2"

# `latest` cannot be replaced at step 10 while `latest` names step 5. Planted without a race: a
# first run stops at step 10 (disk full, as above) with `latest` at 5; the same command resumes
# from step 5 with the fault planted as it starts, five steps before it is reached.
mkdir -p "$dir/ck3"
start "$dir/3.db" "$dir/ck3" latest.pre
ln -s /dev/full "$dir/ck3/step_00000010.safetensors.tmp.$bgpid"
finish
[ $rc -eq 1 ] && [ "$(cat "$dir/ck3/latest" 2>/dev/null)" = 5 ] && ok \
  || bad "latest.pre: exit status $rc, latest '$(cat "$dir/ck3/latest" 2>/dev/null)', expected 1 and 5"
start "$dir/3.db" "$dir/ck3" latest
mkdir "$dir/ck3/latest.tmp.$bgpid"
finish
grep -q "resuming from step 5 of " "$dir/latest.err" && ok \
  || bad "latest did not resume from step 5: $(head -2 "$dir/latest.err")"
[ -f "$dir/ck3/step_00000010.ema.safetensors" ] && ok || bad "latest: step 10 set was not written first"
check_failed_then_resume latest "latest\.tmp\.[0-9]+: cannot write: Is a directory" \
  5 "$dir/3.db" "$dir/ck3"

# checkpoint_dir under a regular file: fails at the first checkpoint, nothing to keep
: > "$dir/plain"
train "$dir/4.db" "$dir/plain/ck" nodir; rc=$?
[ $rc -eq 1 ] && ok || bad "nodir exit status $rc, expected 1"
row=$(q "$dir/4.db" "SELECT status || '|' || coalesce(error, '') FROM runs WHERE name = 'nodir'")
[[ "$row" =~ ^failed\|.*plain/ck:\ cannot\ create\ directory:\ Not\ a\ directory ]] && ok \
  || bad "nodir row '$row'"

echo "test_ckpt_faults: $(( $(date +%s) - t0 )) s" >&2
echo "test_ckpt_faults: $passed passed, $failed failed"
[ $failed -eq 0 ]
