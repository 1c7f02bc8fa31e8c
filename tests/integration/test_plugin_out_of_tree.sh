#!/usr/bin/env bash
# The two example plugins of docs/writing-plugins.md (a schedule and a sampler) build out of tree
# against plugin.h alone, are found through HDLM_PLUGIN_PATH, are listed by `hdlm plugins` with
# their options, pass `hdlm plugins check`, and work in a run: a tiny model trained with
# example_diffusion samples with example_greedy (no mask left, same tokens for the same seed,
# prompt kept).
set -u
HDLM=${HDLM_BIN:-./hdlm}
SRC=${HDLM_SRC:-..}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()  { passed=$((passed+1)); }
bad() { failed=$((failed+1)); echo "FAIL: $*" >&2; }
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off

cp "$SRC/docs/example-plugin/example_diffusion.c" "$SRC/docs/example-plugin/example_greedy.c" \
  "$SRC/docs/example-plugin/Makefile" "$dir/"
if make -s -C "$dir" HDLM="$SRC" CFLAGS="-O2 -Wall -Wextra -Werror" >/dev/null 2>"$dir/err"; then ok; else bad "build: $(cat "$dir/err")"; fi
out=$(HDLM_PLUGIN_PATH="$dir" "$HDLM" plugins 2>&1)
grep -q "example_diffusion" <<<"$out" && grep -q "example_greedy" <<<"$out" && ok || bad "not listed: $out"
grep -q "tau" <<<"$out" && grep -q "number of noise levels" <<<"$out" && ok || bad "options not listed: $out"
grep -q "min_prob" <<<"$out" && ok || bad "example_greedy's option not listed: $out"
# a folder that does not exist on the path is reported, not fatal
out=$(HDLM_PLUGIN_PATH="$dir:$dir/missing" "$HDLM" plugins 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "example_diffusion" <<<"$out" && ok || bad "missing path entry broke the listing: $out"
for p in example_diffusion example_greedy; do
  out=$(HDLM_PLUGIN_PATH="$dir" "$HDLM" plugins check "$p" 2>&1); rc=$?
  [ $rc -eq 0 ] && grep -q "^all checks passed" <<<"$out" && ok || bad "plugins check $p: $out"
  out=$("$HDLM" plugins check "$dir/$p.so" 2>&1); rc=$?
  [ $rc -eq 0 ] && ok || bad "plugins check $dir/$p.so: $out"
done

cat > "$dir/run.lua" <<'LUA'
local hdlm = require "hdlm"
local dir = hdlm.args.dir
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 300 do f:write(("line %d: the quick brown fox jumps over the lazy dog.\n"):format(i)) end
f:close()
local data = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
local db = hdlm.open(dir .. "/r.db")
local run = db:train{ data = data, noise = { "absorbing" }, schedule = { "example_diffusion", tau = 8 },
  model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = 32 },
  steps = 20, batch = 8, lr = 3e-3, log_every = 10, seed = 1, checkpoint_dir = false }
local a = run:sample{ sampler = { "example_greedy", min_prob = 0.2 }, n = 3, seed = 5, prompt = "line" }
local b = run:sample{ sampler = { "example_greedy", min_prob = 0.2 }, n = 3, seed = 5, prompt = "line" }
for i = 1, 3 do
  assert(#a[i].tokens == 32, "sample length " .. #a[i].tokens)
  for k, t in ipairs(a[i].tokens) do assert(t >= 0 and t < 256, "token " .. t .. " at " .. k) end
  assert(a[i].text:sub(1, 4) == "line", "prompt not kept: " .. a[i].text)
  assert(a[i].text == b[i].text, "same seed, other tokens")
end
print("example_greedy ok")
LUA
out=$(HDLM_PLUGIN_PATH="$dir" "$HDLM" run "$dir/run.lua" dir="$dir" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "example_greedy ok" <<<"$out" && ok || bad "train + sample with the examples: $out"
echo "test_plugin_out_of_tree: $passed passed, $failed failed"
[ $failed -eq 0 ]
