#!/usr/bin/env bash
# The README's plugin example builds out of tree against plugin.h alone, is found through
# HDLM_PLUGIN_PATH, and is listed by `hdlm plugins` with its options.
set -u
HDLM=${HDLM_BIN:-./hdlm}
SRC=${HDLM_SRC:-..}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()  { passed=$((passed+1)); }
bad() { failed=$((failed+1)); echo "FAIL: $*" >&2; }

cp "$SRC/docs/example-plugin/example_diffusion.c" "$SRC/docs/example-plugin/Makefile" "$dir/"
if make -s -C "$dir" HDLM="$SRC" CFLAGS="-O2 -Wall -Wextra -Werror" >/dev/null 2>"$dir/err"; then ok; else bad "build: $(cat "$dir/err")"; fi
out=$(HDLM_PLUGIN_PATH="$dir" "$HDLM" plugins 2>&1)
grep -q "example_diffusion" <<<"$out" && ok || bad "not listed: $out"
grep -q "tau" <<<"$out" && grep -q "number of noise levels" <<<"$out" && ok || bad "options not listed: $out"
# a folder that does not exist on the path is reported, not fatal
out=$(HDLM_PLUGIN_PATH="$dir:$dir/missing" "$HDLM" plugins 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "example_diffusion" <<<"$out" && ok || bad "missing path entry broke the listing: $out"
echo "test_plugin_out_of_tree: $passed passed, $failed failed"
[ $failed -eq 0 ]
