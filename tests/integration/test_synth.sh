#!/usr/bin/env bash
# `hdlm data synth` end to end: the one-line report and its numbers, the file (n letters, no
# newline, byte-identical per seed), the byte-tokenizer prepare of it, and every bad flag refused
# with one line naming the flag and exit code 2.
set -u
HDLM=${HDLM_BIN:-./hdlm}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }
# expect_usage NEEDLE ARGS... : exit code 2, stderr one line containing NEEDLE, nothing written
expect_usage() {
  local needle=$1; shift
  local out rc
  out=$("$HDLM" data synth "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$needle" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ]; then ok
  else bad "data synth $* -> rc=$rc, wanted '$needle' in: $out"; fi
}

line=$("$HDLM" data synth -o "$dir/a.txt" --vocab 8 --order 2 --alpha 0.5 --n 300000 --seed 1) || bad "synth failed"
echo "$line"
grep -qE "^synth: 300000 symbols, vocab 8, order 2, alpha 0.5, seed 1 -> $dir/a.txt; entropy rate [0-9.]+ nats/symbol \([0-9.]+ bits\), unigram [0-9.]+ nats, empirical [0-9.]+ nats$" <<<"$line" \
  && ok || bad "report line format: $line"
H=$(sed -E 's/.*entropy rate ([0-9.]+) nats.*/\1/' <<<"$line")
B=$(sed -E 's/.*\(([0-9.]+) bits\).*/\1/' <<<"$line")
U=$(sed -E 's/.*unigram ([0-9.]+) nats.*/\1/' <<<"$line")
E=$(sed -E 's/.*empirical ([0-9.]+) nats$/\1/' <<<"$line")
awk -v h="$H" -v b="$B" -v u="$U" -v e="$E" 'BEGIN { exit !(h > 0 && h <= u && u <= log(8) + 1e-6 &&
  (b - h / log(2)) ^ 2 < 1e-10 && (e - h) ^ 2 < 0.015 ^ 2) }' && ok || bad "numbers: H=$H bits=$B unigram=$U empirical=$E"
[ "$(stat -c %s "$dir/a.txt")" = 300000 ] && ok || bad "size $(stat -c %s "$dir/a.txt")"
[ "$(tr -d 'a-h' < "$dir/a.txt" | wc -c)" = 0 ] && ok || bad "bytes outside a..h (or a newline)"

# same seed -> byte-identical, another seed -> different; the defaults work
"$HDLM" data synth -o "$dir/b.txt" --vocab=8 --order=2 --alpha=0.5 --n=300000 --seed=1 >/dev/null
cmp -s "$dir/a.txt" "$dir/b.txt" && ok || bad "same seed, different bytes"
"$HDLM" data synth -o "$dir/c.txt" --n 300000 --seed 2 >/dev/null
cmp -s "$dir/a.txt" "$dir/c.txt" && bad "another seed, same bytes" || ok
"$HDLM" data synth -o "$dir/d.txt" --n 5000 | grep -q "vocab 8, order 2, alpha 0.5, seed 1" && ok || bad "defaults"
ls "$dir" | grep -q '\.tmp\.' && bad "temporary file left" || ok

# the consumer's path: byte tokenizer, every symbol one token
"$HDLM" data prepare "$dir/a.txt" -o "$dir/a.tok" | grep -q "300000 bytes -> .* tokens (bytes)" && ok || bad "prepare"

# refusals: one line naming the flag, expected vs found, exit code 2
expect_usage "--vocab must be in 2..26, got 27" -o "$dir/x.txt" --vocab 27
expect_usage "--vocab must be in 2..26, got 1" -o "$dir/x.txt" --vocab 1
expect_usage "--order must be in 1..4, got 5" -o "$dir/x.txt" --order 5
expect_usage "--alpha must be in (0, 1e+09], got 0" -o "$dir/x.txt" --alpha 0
expect_usage "--alpha expects a number, got 'lots'" -o "$dir/x.txt" --alpha lots
expect_usage "--n must be in 3..1099511627776 (more than order 2), got 2" -o "$dir/x.txt" --n 2
expect_usage "--n expects an integer, got '1.5'" -o "$dir/x.txt" --n 1.5
expect_usage "--seed expects an integer in 0..2^64-1, got '-3'" -o "$dir/x.txt" --seed -3
expect_usage "-o FILE is required" --n 100
expect_usage "data synth: unknown flag '--bogus'" -o "$dir/x.txt" --bogus
[ -e "$dir/x.txt" ] && bad "a refused command wrote its output" || ok
out=$("$HDLM" data synth -o "$dir/missing/x.txt" --n 100 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && grep -qF "$dir/missing/x.txt" <<<"$out" && ok || bad "unwritable path: rc=$rc $out"

echo "test_synth: $passed passed, $failed failed"
[ $failed -eq 0 ]
