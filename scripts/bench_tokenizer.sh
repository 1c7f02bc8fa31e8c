#!/usr/bin/env bash
# Tokenizer speed, side by side on one core: hdlm's gpt2 tokenizer vs js-tiktoken's gpt2 encoding
# (node), both encoding the same corpus held in memory (file reading and decoding excluded), best
# of ROUNDS; then the time to train a 4096-token BPE on the corpus.
#   scripts/bench_tokenizer.sh [BUILD_DIR] [CORPUS] [ROUNDS]   (defaults: build data/brown.txt 3)
# Fetches what is missing (GPT-2's files, the Brown corpus, js-tiktoken under BUILD_DIR/tests/node).
# Exits 1 when hdlm is slower than js-tiktoken.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} corpus=${2:-data/brown.txt} rounds=${3:-3}
hdlm=$build/hdlm
[[ -x $hdlm ]] || { echo "bench_tokenizer: $hdlm is missing (scripts/setup.sh $build)" >&2; exit 1; }
scripts/get-data.sh gpt2 >/dev/null
[[ $corpus != data/brown.txt ]] || scripts/get-data.sh brown >/dev/null
nodedir=$build/tests/node
if [[ ! -d $nodedir/node_modules/js-tiktoken ]]; then
    mkdir -p "$nodedir"
    npm install --silent --no-audit --no-fund --prefix "$nodedir" js-tiktoken@1.0.21
fi
one=()
command -v taskset >/dev/null && one=(taskset -c 0) # one core for both
export OMP_NUM_THREADS=1
echo "corpus: $corpus ($(wc -c <"$corpus") bytes), best of $rounds rounds, one core${one:+ (taskset -c 0)}"
h=$("${one[@]}" "$hdlm" data tokenizer encode "$corpus" --tokenizer gpt2 --bench "$rounds")
j=$("${one[@]}" node tests/integration/gpt2_reference.cjs "$nodedir" bench "$corpus" "$rounds")
echo "$h"
echo "$j"
hs=$(sed -E 's/.* = ([0-9.]+) MB\/s/\1/' <<<"$h") js=$(sed -E 's/.* = ([0-9.]+) MB\/s/\1/' <<<"$j")
awk -v h="$hs" -v j="$js" 'BEGIN { printf "hdlm / js-tiktoken: %.1fx\n", h / j }'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${one[@]}" "$hdlm" data tokenizer train "$corpus" --vocab 4096 -o "$tmp/bpe" | sed 's/^/bpe train: /'
awk -v h="$hs" -v j="$js" 'BEGIN { exit !(h >= j) }' || { echo "bench_tokenizer: hdlm is slower" >&2; exit 1; }
