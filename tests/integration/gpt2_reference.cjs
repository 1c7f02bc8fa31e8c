// The independent side of the GPT-2 exactness test and of the speed comparison: js-tiktoken's
// `gpt2` encoding run by node. Usage (NODE_DIR holds node_modules/js-tiktoken):
//   node gpt2_reference.cjs NODE_DIR encode FILE OUT     ids of FILE, one a line
//   node gpt2_reference.cjs NODE_DIR bench FILE ROUNDS   best-of-ROUNDS encoding speed (MB/s)
//   node gpt2_reference.cjs NODE_DIR hardcases DIR       writes DIR/hard_cases.txt (all cases)
//                                                        and DIR/hard_cases_valid.txt (the
//                                                        valid UTF-8 ones)
// js-tiktoken encodes JavaScript strings; a file is decoded with the WHATWG UTF-8 decoder (BOM
// kept). A valid UTF-8 file is encoded as one string with encode(text, [], []) (special-token text
// as ordinary text, as hdlm does). A file with invalid UTF-8 cannot reach js-tiktoken unchanged:
// the decoder turns each maximal invalid subpart into U+FFFD, and js-tiktoken's pattern then cuts
// the decoded string. The reference for hdlm's byte-preserving encoding is those same pieces, each
// mapped back to its original bytes and merged with js-tiktoken's own ranks and merge rule
// (lowest-rank adjacent pair, leftmost first; a piece that is a token is that token).
'use strict';
const fs = require('fs');
const path = require('path');

const [nodeDir, cmd, ...args] = process.argv.slice(2);
const { getEncoding } = require(path.resolve(nodeDir, 'node_modules', 'js-tiktoken'));

function decodeAligned(buf) {
    // The decoded string, and for each UTF-16 unit the byte offset where its character starts and
    // whether it replaced invalid bytes.
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    let str = '';
    const origin = [], replaced = [];
    for (let pos = 0; pos < buf.length;) {
        const end = Math.min(buf.length, pos + 16);
        const win = dec.decode(buf.subarray(pos, end));
        const cp = win.codePointAt(0);
        const ch = String.fromCodePoint(cp);
        let len = Buffer.byteLength(ch, 'utf8'), rep = false;
        if (cp === 0xfffd && !(buf[pos] === 0xef && buf[pos + 1] === 0xbf && buf[pos + 2] === 0xbd)) {
            // a replacement: its subpart is the L bytes after which decoding resumes identically
            rep = true;
            const rest = win.slice(1);
            for (len = 1; len < 4; len++)
                if (dec.decode(buf.subarray(pos + len, end)) === rest) break;
        }
        for (let k = 0; k < ch.length; k++) {
            origin.push(pos);
            replaced.push(rep);
        }
        str += ch;
        pos += len;
    }
    origin.push(buf.length);
    return { str, origin, replaced };
}

function mergeBytes(enc, bytes) {
    const ranks = enc.rankMap; // js-tiktoken's table: "b0,b1,..." -> rank (= GPT-2 id)
    const key = (a, b) => Array.from(bytes.subarray(a, b)).join(',');
    const whole = ranks.get(key(0, bytes.length));
    if (whole !== undefined) return [whole];
    let parts = [];
    for (let i = 0; i <= bytes.length; i++) parts.push(i);
    for (;;) {
        let best = -1, bestRank = Infinity;
        for (let i = 0; i + 2 < parts.length; i++) {
            const r = ranks.get(key(parts[i], parts[i + 2]));
            if (r !== undefined && r < bestRank) bestRank = r, best = i;
        }
        if (best < 0) break;
        parts.splice(best + 1, 1);
    }
    const ids = [];
    for (let i = 0; i + 1 < parts.length; i++) ids.push(ranks.get(key(parts[i], parts[i + 1])));
    return ids;
}

function encodeFile(enc, buf) {
    let text = null;
    try {
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf);
    } catch (e) {
        text = null;
    }
    if (text !== null) return enc.encode(text, [], []);
    const { str, origin, replaced } = decodeAligned(buf);
    const ids = [];
    for (const m of str.matchAll(new RegExp(enc.patStr, 'ug'))) {
        const s = m.index, e = s + m[0].length;
        const ids1 = mergeBytes(enc, buf.subarray(origin[s], origin[e]));
        // pieces without replaced bytes: js-tiktoken itself must agree with the merge above
        if (!replaced.slice(s, e).some(Boolean)) {
            const own = enc.encode(m[0], [], []);
            if (own.join() !== ids1.join()) throw new Error(`merge rule differs on "${m[0]}"`);
        }
        ids.push(...ids1);
    }
    return ids;
}

function hardCases() {
    const B = (...xs) => Buffer.from(xs);
    const S = s => Buffer.from(s, 'utf8');
    const lines = [
        S('Accents: café naïve résumé Ångström Øresund façade déjà-vu crème brûlée'),
        S('Decomposed: cafe\u0301 e\u0308 A\u030a — combining marks after letters'),
        S('CJK: 日本語のテキスト、中文文本。한국어 텍스트 漢字かなカナ'),
        S('Emoji: 🎉🎉 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇩🇪 ❤️ x🎉y 😀😃😄'),
        S('Spaces:  two   three    four     five      six'),
        S('Trailing spaces then newline   \nand tabs\t\t\tthere\t \t\n'),
        S('\n\n\nthree newlines before, two after\n\n'),
        S(' \n \n  \n\t\n\r\n\r\n'),
        S("Contractions: I'm you're we've they'll he'd it's can't don't 'tis"),
        S("Upper: I'M YOU'RE WE'VE THEY'LL HE'D IT'S JOHN'S 'S 'T 'RE"),
        S("Quotes: 'quoted' ''double'' '' ' 's 'd 'll' 'x"),
        S('Digits: 0 12 345 6789 12345678901234567890 3.14159 1,000,000 ２０２４ ٣٤٥ ⅫⅣ ½'),
        S('Tabs:\tone\t\ttwo\t\t\tthree\ttab-ended\t'),
        S('Mixed: abc123def 123abc ABC_def-ghi/jkl.mno,pqr;stu:vwx!?'),
        S('Punctuation runs: ...!!!??? --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]]'),
        S('Symbols: ©®™ §¶ ±×÷ ∀∃∈ ≤≥≠ → ← ↔ ∞ € £ ¥ ¢'),
        S('Special text: <|endoftext|> is ordinary text here <|endoftext|>'),
        S('Other spaces: a\u00a0b a\u2003c a\u3000d a\u202fe a\u205ff a\u1680g'),
        S('JS-only space: a\ufeffb and NEL a\u0085b and MVS a\u180eb'),
        S('\ufeffBOM at a line start'),
        S('Line separators: a\u2028b\u2029c'),
        S('Controls: a\u0001b\u0007c\u001bd\u007fe'),
        S('Greek Κείμενο Cyrillic Текст Hebrew טקסט Arabic نص Thai ข้อความ Devanagari पाठ'),
        S('Zero-width: a\u200bb a\u200cb a\u200db a\u2060b'),
        S('Surrogate pair math: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛'),
        Buffer.concat([S('Invalid lone bytes: a'), B(0xff), S('b'), B(0x80), S(' c'), B(0xfe, 0xfe), S('d')]),
        Buffer.concat([S('Truncated: '), B(0xe2, 0x82), S(' end '), B(0xf0, 0x9f, 0x98), S('x '), B(0xc3)]),
        Buffer.concat([S('Overlong: '), B(0xc0, 0xaf), S(' '), B(0xe0, 0x80, 0xaf), S(' '), B(0xc1, 0xbf)]),
        Buffer.concat([S('Lone surrogates in UTF-8: '), B(0xed, 0xa0, 0x80), S(' '), B(0xed, 0xbf, 0xbf),
            S(' pair '), B(0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80), S(' word'), B(0xed, 0xb2, 0x80), S('s')]),
        Buffer.concat([S('Above U+10FFFF: '), B(0xf4, 0x90, 0x80, 0x80), S(' '), B(0xf5, 0x80), S(' '),
            B(0xf8, 0x88, 0x80, 0x80, 0x80)]),
        Buffer.concat([S("Invalid in contractions: it'"), B(0xff), S("s don"), B(0x80), S("'t "), B(0xff), S("123")]),
        Buffer.concat([S('Spaces around invalid:  '), B(0xff), S('  '), B(0x80, 0x80), S('\t'), B(0xc3), S('\n')]),
        Buffer.concat([S('Invalid next to letters and digits: é'), B(0xa9), S('9'), B(0xbf), S('日'), B(0x85)]),
        S('Long letter run: ' + 'a'.repeat(3000)),
        S('Long word: ' + 'abcdefghij'.repeat(300)),
        S('Long digits: ' + '1234567890'.repeat(200)),
        S('Long spaces:' + ' '.repeat(2000) + 'x'),
        S('Long punctuation: ' + '-='.repeat(1000)),
        S('Long CJK: ' + '漢字'.repeat(500)),
        S('Long emoji: ' + '🎉'.repeat(300)),
        S('Long newlines:' + '\n'.repeat(500) + 'end'),
        S('Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism'),
        S('URLs: https://example.com/path?q=1&r=2#frag mailto:someone@example.org C:\\Windows\\'),
        S('Code: for (int i = 0; i < n; i++) { x[i] += y[i] * 2; } // comment'),
        S('   leading spaces and trailing   '),
    ];
    // the cases separated by newlines, the file ending with no newline
    const join = ls => Buffer.concat(ls.flatMap(l => [l, S('\n')]).concat([S('no final newline')]));
    const valid = l => { try { new TextDecoder('utf-8', { fatal: true }).decode(l); return true; } catch (e) { return false; } };
    return { all: join(lines), valid: join(lines.filter(valid)) };
}

const enc = getEncoding('gpt2');
if (cmd === 'encode') {
    const ids = encodeFile(enc, fs.readFileSync(args[0]));
    fs.writeFileSync(args[1], ids.length ? ids.join('\n') + '\n' : '');
} else if (cmd === 'bench') {
    const buf = fs.readFileSync(args[0]);
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf);
    const rounds = Number(args[1] || 3);
    let best = Infinity, n = 0;
    for (let r = 0; r < rounds; r++) {
        const t0 = process.hrtime.bigint();
        n = enc.encode(text, [], []).length;
        const dt = Number(process.hrtime.bigint() - t0) / 1e9;
        if (dt < best) best = dt;
    }
    console.log(`js-tiktoken gpt2: ${buf.length} bytes -> ${n} tokens; best of ${rounds} rounds ` +
        `${best.toFixed(3)} s = ${(buf.length / best / 1e6).toFixed(2)} MB/s`);
} else if (cmd === 'hardcases') {
    const h = hardCases();
    fs.writeFileSync(path.join(args[0], 'hard_cases.txt'), h.all);
    fs.writeFileSync(path.join(args[0], 'hard_cases_valid.txt'), h.valid);
} else {
    console.error('usage: node gpt2_reference.cjs NODE_DIR encode FILE OUT | bench FILE ROUNDS | hardcases DIR');
    process.exit(2);
}
