#!/usr/bin/env bash
# `hdlm plugins check` on every shipped plugin (all must pass) and on the broken fixtures of
# tests/plugins/broken (each must fail with the reason it was built to show, and the correct
# controls there must pass): rising levels, never reaching level 0, bad n_steps, marginals not
# summing to 1, a wrong loss gradient, a loss declared concurrent that keeps state, a sampler touching fixed positions or writing invalid
# tokens, a segfaulting op, and a plugin built against ABI 1. A few seconds.
set -u
HDLM=${HDLM_BIN:-./hdlm}
BROKEN=${HDLM_FIXTURE_DIR:-./tests/plugins}/broken
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }

# shipped plugins, by name
names=$("$HDLM" plugins 2>/dev/null | awk '/^(noise|schedule|sampler) /{print $2}')
[ "$(echo "$names" | wc -w)" -ge 14 ] && ok || bad "expected the 14 shipped plugins, found: $names"
for n in $names; do
  "$HDLM" plugins check "$n" >"$dir/out" 2>&1; rc=$?
  case $n in absorbing|uniform|epsilon_hybrid|gamma_hybrid) # they declare HDLM_INFO_CONCURRENT
    grep -q "^ok   noise $n concurrent loss: 200 rounds of two batches on two threads" "$dir/out" \
      && ok || bad "$n: no concurrent-loss line: $(grep concurrent "$dir/out")";;
  esac
  [ $rc -eq 0 ] && grep -q "^all checks passed (1 plugin)$" "$dir/out" && ! grep -q "^FAIL" "$dir/out" \
    && ok || bad "shipped plugin $n: exit $rc: $(grep -v '^ok' "$dir/out")"
  [ "$(grep -c '^ok ' "$dir/out")" -ge 3 ] && ok || bad "$n: fewer than 3 ok lines"
done
# the schedule lines name every invariant once
"$HDLM" plugins check block_annealing >"$dir/ba"
for c in "levels in range" "step 0 all worthless" "levels never rise" "settled prefix" \
         "growth consistent" "reaches level 0" "n_steps"; do
  grep -q "^ok   schedule block_annealing $c: " "$dir/ba" && ok || bad "block_annealing: no ok line for '$c'"
done

# expect FILE EXPECTED-LINE-REGEX: exit status 1 and the line present
expect() {
  "$HDLM" plugins check "$BROKEN/$1" >"$dir/out" 2>&1; rc=$?
  [ $rc -eq 1 ] && ok || bad "$1: exit status $rc, expected 1: $(cat "$dir/out")"
  grep -Eq "$2" "$dir/out" && ok || bad "$1: no line matching '$2' in: $(cat "$dir/out")"
}
# only — FILE: the failed checks are exactly these (comma-separated check names)
only() {
  got=$(sed -n 's/^FAIL [a-z]* [a-z_0-9]* \([^:]*\):.*/\1/p' "$dir/out" | paste -sd, -)
  [ "$got" = "$2" ] && ok || bad "$1: failed checks '$got', expected '$2'"
}
expect rising_levels.so "^FAIL schedule broken_rising_levels levels never rise: L = [0-9]+ position [0-9]+ rises from level 2 at step 2 to 3 at step 3"
only rising_levels.so "levels never rise"
expect never_zero.so "^FAIL schedule broken_never_zero reaches level 0: .* leaves it at level 1: it never reaches level 0"
only never_zero.so "reaches level 0"
expect bad_n_steps.so "^FAIL schedule broken_n_steps n_steps: n_steps\(1\) = 0"
only bad_n_steps.so "n_steps"
expect bad_marginal.so "^FAIL noise broken_marginal marginal sums to 1: marginal\(x0 = 0, t = 0.001\) sums to 1.05, not 1"
expect bad_gradient.so "^FAIL noise broken_gradient loss gradient: d total / d logits\[position [0-9]+, symbol [0-9]+\] is -?[0-9.e-]+ by dlogits, -?[0-9.e-]+ by central differences"
only bad_gradient.so "loss gradient"
expect stateful_concurrent.so "^FAIL noise broken_concurrent concurrent loss: loss called from two threads at once \(round 1\) differs from the same call alone .*HDLM_INFO_CONCURRENT is wrong"
only stateful_concurrent.so "concurrent loss"
expect touches_fixed.so "^FAIL sampler broken_touches_fixed fixed positions untouched: step 1 changed fixed position 3 of sequence 0"
only touches_fixed.so "fixed positions untouched"
expect invalid_token.so "^FAIL sampler broken_invalid_token valid tokens: step 1 wrote token 8 at sequence 0 position [0-9]+, outside 0..7"
only invalid_token.so "valid tokens"
expect segfault.so "^FAIL schedule broken_segfault levels in range: levels\(step 2, L = 1\) failed: plugin broken_segfault#1 \(.*segfault.so\) crashed in op levels \(SIGSEGV, segmentation fault\)"
expect abi1.so "^FAIL load .*abi1.so: .*abi1.so: plugin ABI version 1, this hdlm expects 2; rebuild the plugin against this hdlm's hdlm/plugin.h"
[ "$(wc -l < "$dir/out")" -eq 1 ] && ok || bad "abi1.so: expected one line, got: $(cat "$dir/out")"
expect no_info.so "^FAIL load .*no_info.so: .*no_info.so: sampler ops of 'broken_no_info' have no 'info' function$"

# the correct controls the broken ones are variants of
for f in good_blocks.so good_mask.so good_ancestral.so; do
  "$HDLM" plugins check "$BROKEN/$f" >"$dir/out" 2>&1; rc=$?
  [ $rc -eq 0 ] && ! grep -q "^FAIL" "$dir/out" && ok || bad "$f: exit $rc: $(grep -v '^ok' "$dir/out")"
done

# usage errors
"$HDLM" plugins check >/dev/null 2>"$dir/err"; rc=$?
[ $rc -eq 2 ] && grep -q "expected one FILE.so or plugin NAME" "$dir/err" && ok \
  || bad "no argument: exit $rc: $(cat "$dir/err")"
"$HDLM" plugins check no_such_plugin >/dev/null 2>"$dir/err"; rc=$?
[ $rc -eq 1 ] && grep -q "no plugin named 'no_such_plugin'" "$dir/err" && ok \
  || bad "unknown name: exit $rc: $(cat "$dir/err")"

echo "test_plugins_check: $passed passed, $failed failed"
[ $failed -eq 0 ]
