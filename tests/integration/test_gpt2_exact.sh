#!/usr/bin/env bash
# GPT-2 exactness: hdlm's gpt2 tokenizer and js-tiktoken (an independent implementation, run by
# node) give identical ids for the whole Brown corpus, the fortunes file and a file of hard cases
# (tests/integration/gpt2_reference.cjs writes it: accents, CJK, emoji, runs of spaces and
# newlines, contractions incl. upper case, digits, tabs, invalid UTF-8, UTF-8-encoded surrogates,
# long words), and hdlm decodes every file back to its exact bytes. Skips (77) naming what is
# missing: node, js-tiktoken (scripts/test.sh installs it under the build dir), GPT-2's files
# (scripts/get-data.sh gpt2), the corpora (scripts/get-data.sh brown / fortunes).
set -euo pipefail
src=${HDLM_SRC:?} bin=${HDLM_BIN:?} build=${HDLM_BUILD:?}
skip() { echo "SKIP: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed (apt-get install nodejs npm)"
nodedir=$build/tests/node
[[ -d $nodedir/node_modules/js-tiktoken ]] ||
    skip "js-tiktoken is not installed in $nodedir (scripts/test.sh does: npm install --prefix $nodedir js-tiktoken@1.0.21)"
[[ -f $src/data/gpt2/encoder.json && -f $src/data/gpt2/vocab.bpe ]] ||
    skip "GPT-2's encoder.json + vocab.bpe are missing from $src/data/gpt2 (scripts/get-data.sh gpt2)"
for c in brown fortunes; do
    [[ -s $src/data/$c.txt ]] || skip "$src/data/$c.txt is missing (scripts/get-data.sh $c)"
done
export HDLM_GPT2_DIR=$src/data/gpt2
ref=$src/tests/integration/gpt2_reference.cjs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node "$ref" "$nodedir" hardcases "$work"
fail=0
for f in "$work/hard_cases.txt" "$work/hard_cases_valid.txt" "$src/data/brown.txt" "$src/data/fortunes.txt"; do
    name=$(basename "$f")
    node "$ref" "$nodedir" encode "$f" "$work/$name.ref"
    "$bin" data tokenizer encode "$f" --tokenizer gpt2 -o "$work/$name.hdlm"
    nr=$(wc -l <"$work/$name.ref") nh=$(wc -l <"$work/$name.hdlm")
    if cmp -s "$work/$name.ref" "$work/$name.hdlm"; then
        echo "ok: $name: $(wc -c <"$f") bytes, $nh tokens, identical to js-tiktoken"
    else
        echo "FAIL: $name: hdlm $nh tokens, js-tiktoken $nr; first difference:"
        cmp "$work/$name.ref" "$work/$name.hdlm" | head -1
        diff <(nl "$work/$name.ref") <(nl "$work/$name.hdlm") | head -6
        fail=1
    fi
done
# the hard cases must really contain what they claim
grep -q "Contractions" "$work/hard_cases.txt"
[[ $(wc -c <"$work/hard_cases.txt") -gt $(wc -c <"$work/hard_cases_valid.txt") ]]
if LC_ALL=C grep -qaP '[\x80-\xff]' "$work/hard_cases.txt" && ! iconv -f UTF-8 -t UTF-8 "$work/hard_cases.txt" >/dev/null 2>&1; then
    echo "ok: the hard cases hold invalid UTF-8"
else
    echo "FAIL: the hard-case file is valid UTF-8"; fail=1
fi
# round trip through hdlm's decoder (Lua: corpus:decode), any bytes
cat >"$work/rt.lua" <<'LUA'
local hdlm = require "hdlm"
local tok = hdlm.tokenizer("gpt2")
local bad = 0
for path in (hdlm.args.files or ""):gmatch("[^,]+") do
  local fh = assert(io.open(path, "rb")); local s = fh:read("a"); fh:close()
  local back = tok:decode(tok:encode(s))
  if back ~= s then print("round trip differs: " .. path); bad = bad + 1
  else print(("ok: round trip %s (%d bytes)"):format(path:match("[^/]+$"), #s)) end
end
assert(bad == 0)
LUA
"$bin" run "$work/rt.lua" files="$work/hard_cases.txt,$src/data/fortunes.txt" || fail=1
exit $fail
