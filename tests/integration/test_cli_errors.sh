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
sqlite3 "$dir/new.db" "PRAGMA user_version=99" 2>/dev/null || "$HDLM" query --db "$dir/new.db" "PRAGMA user_version=99" >/dev/null 2>&1
expect_fail "newer" "$HDLM" query --db "$dir/new.db" "SELECT 1"
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

echo "test_cli_errors: $passed passed, $failed failed"
[ $failed -eq 0 ]
