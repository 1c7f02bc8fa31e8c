#!/usr/bin/env bash
# `hdlm data tokenizer train|encode|info` and `hdlm data prepare` with BPE tokenizers through the
# real binary: a trained vocabulary round-trips a file with invalid UTF-8, prepare reports the
# documents it separated with <|endoftext|>, the token file records the tokenizer, bad arguments
# give one message each; and, when the Brown corpus is present, a 4096-token BPE trains on it in
# under a minute (the time is printed).
set -u
HDLM=${HDLM_BIN:-./hdlm}
src=${HDLM_SRC:-..}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()   { passed=$((passed+1)); }
bad()  { failed=$((failed+1)); echo "FAIL: $*" >&2; }
expect_fail() {
  local needle=$1; shift
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$needle" <<<"$out"; then ok
  else bad "$* -> rc=$rc, wanted '$needle' in: $out"; fi
}

for d in 1 2 3; do
  for i in $(seq 1 40); do echo "document $d line $i: the cat and the dog sat on the mat, again and again."; done
  echo
done > "$dir/c.txt"

out=$("$HDLM" data tokenizer train "$dir/c.txt" --vocab 320 -o "$dir/bpe") && ok || bad "train failed: $out"
grep -q -- "-> 63 merges, vocabulary 320 -> $dir/bpe (encoder.json + vocab.bpe)" <<<"$out" && ok || bad "train output: $out"
grep -q "^time: .* s counting pieces, .* s merging" <<<"$out" && ok || bad "train time: $out"
[ "$(head -1 "$dir/bpe/vocab.bpe")" = "#version: 0.2" ] && [ "$(wc -l <"$dir/bpe/vocab.bpe")" = 64 ] && ok || bad "vocab.bpe"
grep -q '"<|endoftext|>": 319}$' "$dir/bpe/encoder.json" && ok || bad "encoder.json ends with <|endoftext|>"
info=$("$HDLM" data tokenizer info --tokenizer "bpe:$dir/bpe")
grep -q "tokenizer bpe:$(realpath "$dir/bpe"): vocabulary 320, end-of-text id 319, vocabulary SHA-256 [0-9a-f]\{64\}" <<<"$info" && ok || bad "info: $info"

# encode: ids one a line; any bytes
printf 'the cat\xff\xfe sat \xed\xa0\x80 on the mat\n' > "$dir/bad.txt"
"$HDLM" data tokenizer encode "$dir/bad.txt" --tokenizer "bpe:$dir/bpe" -o "$dir/bad.ids" && ok || bad "encode"
[ "$(wc -l <"$dir/bad.ids")" -lt "$(wc -c <"$dir/bad.txt")" ] && ok || bad "fewer ids than bytes"
ben=$("$HDLM" data tokenizer encode "$dir/c.txt" --tokenizer "bpe:$dir/bpe" --bench 2)
grep -q "^hdlm bpe:.*: [0-9]* bytes -> [0-9]* tokens; best of 2 rounds .* MB/s$" <<<"$ben" && ok || bad "bench: $ben"

# prepare: documents, the record
out=$("$HDLM" data prepare "$dir/c.txt" -o "$dir/c.tok" --tokenizer "bpe:$dir/bpe")
grep -q "3 documents separated by <|endoftext|>) -> $dir/c.tok" <<<"$out" && ok || bad "prepare: $out"
grep -qa "bpe:$(realpath "$dir/bpe")" "$dir/c.tok" && ok || bad "the token file names its tokenizer"
out=$("$HDLM" data prepare "$dir/c.txt" -o "$dir/n.tok" --tokenizer "bpe:$dir/bpe" --docs none)
grep -q "documents" <<<"$out" && bad "docs none still reports documents: $out" || ok

expect_fail "data tokenizer train: usage: hdlm data tokenizer train CORPUS --vocab N -o DIR" "$HDLM" data tokenizer train "$dir/c.txt"
expect_fail "vocabulary 100 is outside 257..65536" "$HDLM" data tokenizer train "$dir/c.txt" --vocab 100 -o "$dir/x"
expect_fail "--vocab expects an integer, got 'many'" "$HDLM" data tokenizer train "$dir/c.txt" --vocab many -o "$dir/x"
expect_fail "nothere.txt: cannot open" "$HDLM" data tokenizer train "$dir/nothere.txt" --vocab 300 -o "$dir/x"
expect_fail "data prepare: --docs expects blank or none, got 'lines'" "$HDLM" data prepare "$dir/c.txt" --docs lines
expect_fail "tokenizer bytes has no end-of-text token" "$HDLM" data prepare "$dir/c.txt" -o "$dir/b.tok" --docs blank
expect_fail "unknown tokenizer 'bpe', expected bytes, text8, gpt2 or bpe:DIR" "$HDLM" data prepare "$dir/c.txt" --tokenizer bpe
expect_fail "$dir/encoder.json: not found (a BPE directory holds encoder.json and vocab.bpe)" "$HDLM" data tokenizer info --tokenizer "bpe:$dir"
expect_fail "data tokenizer: expected 'train', 'encode' or 'info'" "$HDLM" data tokenizer frobnicate

# training speed on Brown (skipped without it)
if [ -s "$src/data/brown.txt" ]; then
  t0=$(date +%s.%N)
  out=$("$HDLM" data tokenizer train "$src/data/brown.txt" --vocab 4096 -o "$dir/brown4k")
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  echo "brown: $(head -1 <<<"$out")"
  echo "brown: 4096-token BPE trained in $secs s (wall, whole command)"
  grep -q -- "-> 3839 merges, vocabulary 4096" <<<"$out" && ok || bad "brown training: $out"
  awk -v s="$secs" 'BEGIN { exit !(s < 60) }' && ok || bad "training took $secs s, over a minute"
else
  echo "note: $src/data/brown.txt missing (scripts/get-data.sh brown): Brown training time not measured"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
