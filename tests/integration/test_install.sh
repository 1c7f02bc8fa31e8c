#!/usr/bin/env bash
# An installed hdlm stands alone. A copy of the source tree is configured, built (the binary and
# the plugins only, -j2) and installed to a temporary prefix; then the copy, with its build tree,
# is renamed away, so no file of it is reachable at the path the build knew. With the installed
# binary, from a folder without data/: the shipped plugins are found next to it; a tiny model
# trains, samples, evaluates and gets a report; GPT-2's files are found in PREFIX/share/hdlm (or
# the error names that folder and get-data.sh); the example plugin(s) shipped with the docs build
# with `pkg-config --cflags hdlm-plugin` alone, load through HDLM_PLUGIN_PATH and from
# `pkg-config --variable=plugindir`, and one trains; the whole prefix moved elsewhere still
# works. Skipped (77) without cc, cmake or pkg-config. About a minute on 2 idle cores.
set -u
SRC=${HDLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
for tool in cc cmake pkg-config tar; do
    command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
work=$(mktemp -d)
cleanup() { [ -n "${KEEP_DIR:-}" ] && echo "kept $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT
passed=0; failed=0
ok()  { passed=$((passed+1)); }
bad() { failed=$((failed+1)); echo "FAIL: $*" >&2; }
fatal() { echo "FAIL: $*" >&2; echo "test_install: $passed passed, $((failed+1)) failed"; exit 1; }

# ---- copy, build, install, move the copy away ----
copy=$work/src
mkdir -p "$copy"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # the files of the checkout as they are now (tracked and new, not ignored ones)
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
        tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$copy" -xf - ||
        fatal "copying the checkout"
else
    tar -C "$SRC" --exclude='./build*' --exclude='./data' -cf - . | tar -C "$copy" -xf - ||
        fatal "copying the source tree"
fi
if [ -f "$SRC/data/gpt2/encoder.json" ] && [ -f "$SRC/data/gpt2/vocab.bpe" ]; then
    mkdir -p "$copy/data/gpt2" && cp "$SRC/data/gpt2/encoder.json" "$SRC/data/gpt2/vocab.bpe" "$copy/data/gpt2/"
fi
cp "$SRC/tests/data/tiny.txt" "$work/tiny.txt"
P=$work/prefix
cmake -S "$copy" -B "$copy/build" -DCMAKE_BUILD_TYPE=Release -DHDLM_MPI=OFF >"$work/build.log" 2>&1 &&
    cmake --build "$copy/build" -j2 --target hdlm >>"$work/build.log" 2>&1 &&
    cmake --install "$copy/build" --prefix "$P" >>"$work/build.log" 2>&1 ||
    fatal "configure/build/install of the copy: $(tail -20 "$work/build.log")"
mv "$copy" "$work/moved-away"
[ ! -e "$copy" ] && ok || bad "the copy is still at $copy"

# ---- the layout ----
for f in bin/hdlm include/hdlm/plugin.h lib/hdlm/plugins/absorbing.so lib/hdlm/plugins/ancestral.so \
         lib/hdlm/plugins/block_annealing.so share/hdlm/get-data.sh share/doc/hdlm/README.md \
         share/doc/hdlm/LICENSE share/doc/hdlm/method.md; do
    [ -f "$P/$f" ] && ok || bad "not installed: $f"
done
pcdir=$(dirname "$(find "$P" -name hdlm-plugin.pc | head -1)")
[ -f "$pcdir/hdlm-plugin.pc" ] && ok || bad "no hdlm-plugin.pc under $P"

# the installed binary, run where there is no data/ and no hdlm environment
H=$P/bin/hdlm
mkdir -p "$work/run"
cd "$work/run"
unset HDLM_BIN HDLM_SRC HDLM_BUILD HDLM_FIXTURE_DIR HDLM_PLUGIN_DIR HDLM_PLUGIN_PATH HDLM_GPT2_DIR HDLM_KERNELS
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off

out=$("$H" --version 2>&1) && grep -q "kernels" <<<"$out" && ok || bad "--version: $out"
out=$("$H" plugins 2>&1)
grep -q "$P/lib/hdlm/plugins/absorbing.so" <<<"$out" && grep -q "$P/lib/hdlm/plugins/block_annealing.so" <<<"$out" &&
    ok || bad "shipped plugins not found next to the binary: $out"
! grep -qi "refus\|warning" <<<"$out" && ok || bad "plugins listing complains: $out"

# ---- train, sample, eval, report ----
for _ in $(seq 16); do cat "$work/tiny.txt"; done >corpus.txt
"$H" data prepare corpus.txt -o corpus.tok --valid 0.25 >/dev/null 2>"$work/err" && ok || bad "data prepare: $(cat "$work/err")"
cat >train.lua <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local run = db:train{ name = a.name, data = hdlm.corpus{ path = "corpus.tok" }, seed = 1,
  noise = { "absorbing" }, schedule = { a.schedule, width = a.width, tau = 4 },
  model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = 32 }, steps = a.steps, batch = 8,
  lr = 3e-3, log_every = 5, checkpoint_dir = "ckpt-" .. a.name, ckpt_every = a.steps }
print("RUN " .. run.id)
LUA
out=$("$H" run train.lua name=tiny schedule=block_annealing width=8 steps=20 2>"$work/err")
[ "$out" = "RUN 1" ] && ok || bad "training: $out $(cat "$work/err")"
out=$("$H" sample --run 1 n=2 length=32 2>"$work/err") && [ -n "$out" ] && ok || bad "sample: $out $(cat "$work/err")"
n=$("$H" query "SELECT count(*) FROM samples WHERE run_id = 1" --csv 2>&1 | tail -1)
[ "$n" = "2" ] && ok || bad "stored samples: $n"
"$H" eval --run 1 mc=0 sequences=4 >"$work/eval.txt" 2>"$work/err" && ok || bad "eval: $(cat "$work/err")"
n=$("$H" query "SELECT count(*) FROM evaluations WHERE run_id = 1" --csv 2>&1 | tail -1)
[ "$n" -ge 1 ] 2>/dev/null && ok || bad "stored evaluations: $n"
"$H" report runs.db -o report.html >/dev/null 2>"$work/err" && grep -q "tiny" report.html && ok ||
    bad "report: $(cat "$work/err")"

# ---- GPT-2's files: PREFIX/share/hdlm/gpt2, or an error naming where they belong ----
if [ -f "$P/share/hdlm/gpt2/encoder.json" ]; then
    out=$("$H" data tokenizer info --tokenizer gpt2 2>&1) && grep -q "vocabulary 50257" <<<"$out" && ok ||
        bad "gpt2 from $P/share/hdlm/gpt2: $out"
    mv "$P/share/hdlm/gpt2" "$work/gpt2-aside"
fi
out=$("$H" data tokenizer info --tokenizer gpt2 2>&1) && bad "gpt2 without its files: $out" ||
    { grep -qF "$P/share/hdlm/gpt2" <<<"$out" && grep -qF "get-data.sh gpt2 $P/share/hdlm" <<<"$out" && ok ||
        bad "gpt2 error does not say where: $out"; }
[ -d "$work/gpt2-aside" ] && mv "$work/gpt2-aside" "$P/share/hdlm/gpt2"

# ---- out-of-tree plugins against the installed header, through pkg-config ----
export PKG_CONFIG_PATH=$pcdir
cflags=$(pkg-config --cflags hdlm-plugin) && ok || bad "pkg-config --cflags hdlm-plugin"
plugindir=$(pkg-config --variable=plugindir hdlm-plugin)
[ "$(realpath "$plugindir" 2>/dev/null)" = "$P/lib/hdlm/plugins" ] && ok || bad "plugindir: $plugindir"
[ -n "$(pkg-config --variable=abi_version hdlm-plugin)" ] && ok || bad "no abi_version in the .pc file"
mkdir -p "$work/plug"
n_src=0
while IFS= read -r c; do
    n_src=$((n_src+1))
    so=$work/plug/$(basename "${c%.c}").so
    # shellcheck disable=SC2086 # cflags is a list of flags
    cc $cflags -O2 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden "$c" -o "$so" -lm 2>"$work/err" &&
        ok || bad "building $c with pkg-config's flags: $(cat "$work/err")"
done < <(find "$P/share/doc/hdlm" -name '*.c' | sort)
[ "$n_src" -ge 1 ] && ok || bad "no example plugin source in $P/share/doc/hdlm"
out=$(HDLM_PLUGIN_PATH=$work/plug "$H" plugins 2>&1)
for so in "$work"/plug/*.so; do
    grep -qF "$so" <<<"$out" && ok || bad "$so not loaded through HDLM_PLUGIN_PATH: $out"
done
cp "$work"/plug/*.so "$plugindir/"
out=$("$H" plugins 2>&1)
for so in "$work"/plug/*.so; do
    grep -qF "$plugindir/$(basename "$so")" <<<"$out" || grep -qF "$P/lib/hdlm/plugins/$(basename "$so")" <<<"$out" &&
        ok || bad "$(basename "$so") not loaded from plugindir: $out"
done
if [ -f "$plugindir/example_diffusion.so" ]; then
    out=$("$H" run train.lua name=plug schedule=example_diffusion steps=3 2>"$work/err")
    [ "$out" = "RUN 2" ] && ok || bad "training with the example plugin: $out $(cat "$work/err")"
fi

# ---- the prefix moved as a whole ----
mv "$P" "$work/prefix2"
P2=$work/prefix2
out=$("$P2/bin/hdlm" plugins 2>&1)
grep -q "$P2/lib/hdlm/plugins/absorbing.so" <<<"$out" && ok || bad "moved prefix: plugins not found: $out"
out=$("$P2/bin/hdlm" sample --run 1 n=1 length=16 2>&1) && ok || bad "moved prefix: sample: $out"
if [ -f "$P2/share/hdlm/gpt2/encoder.json" ]; then
    "$P2/bin/hdlm" data tokenizer info --tokenizer gpt2 >/dev/null 2>&1 && ok || bad "moved prefix: gpt2"
fi
mv "$P2" "$P"

echo "test_install: $passed passed, $failed failed"
[ $failed -eq 0 ]
