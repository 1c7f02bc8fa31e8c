#!/usr/bin/env python3
"""Writes the seed corpora tests/fuzz/corpus/<target>/seed_* : a few small valid and invalid
inputs per fuzz target, built here byte by byte from the formats' specifications (token file,
safetensors, training-state sidecar), so that the fuzzers start from inputs that reach deep into
the parsers. Regression inputs found by fuzzing are committed next to them as crash_* files and
are not touched by this script.   python3 tests/fuzz/make_seeds.py"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    assert len(data) < 20000, name
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for x in b:
        h ^= x
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def tokfile(kind, vocab, bpt, train, valid, fix=True):
    payload = b"".join(t.to_bytes(bpt, "little") for t in train + valid)
    h = b"HDLMTOK1" + struct.pack("<IIII", 1, kind, vocab, bpt)
    h += struct.pack("<QQQQ", len(train), len(valid), fnv1a64(payload) if fix else 0, 7)
    h += bytes(8)
    return h + payload


def safetensors(tensors, meta=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    hdr, off, data = {}, 0, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    text = json.dumps(hdr, separators=(",", ":")).encode()
    while pad and (8 + len(text)) % 8:
        text += b" "
    return struct.pack("<Q", len(text)) + text + data


# ---- tokfile: flag byte (bit 0: the target fixes the checksum) + the file
bytes_kind, text8_kind = 1, 2
put("tokfile", "valid_bytes", b"\x00" + tokfile(bytes_kind, 256, 1, list(b"hello wor"), list(b"ld")))
put("tokfile", "valid_text8", b"\x00" + tokfile(text8_kind, 27, 1, [1, 2, 3, 0, 4], [5, 26]))
put("tokfile", "empty_splits", b"\x00" + tokfile(bytes_kind, 256, 1, [], []))
put("tokfile", "bad_checksum", b"\x00" + tokfile(bytes_kind, 256, 1, [1, 2, 3], [4], fix=False))
put("tokfile", "fixme_token_range", b"\x01" + tokfile(text8_kind, 27, 1, [1, 200], [3], fix=False))
put("tokfile", "truncated_header", b"\x00HDLMTOK1\x01\x00\x00\x00")
put("tokfile", "huge_counts", b"\x01" + tokfile(bytes_kind, 256, 2, [1], [2])[:24]
    + struct.pack("<QQ", 2**63, 2**63) + bytes(24))

# ---- safetensors
f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
put("safetensors", "valid", safetensors([("w", "F32", [2, 3], f32), ("b", "I64", [1], bytes(8))],
                                        {"format": "pt"}))
put("safetensors", "scalar_and_empty", safetensors([("s", "F64", [], bytes(8)),
                                                    ("e", "U8", [0, 5], b"")]))
put("safetensors", "overlap", b"" + struct.pack("<Q", 104) + (
    b'{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
    b'"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}').ljust(104) + bytes(6))
put("safetensors", "bad_len", struct.pack("<Q", 2**40) + b"{}")
put("safetensors", "shape_overflow", safetensors(
    [("x", "F32", [2**32, 2**32, 2**32], b"")]))
put("safetensors", "dup_keys", struct.pack("<Q", 16) + b'{"a":{},"a":{}} ')

# ---- train_state: the sidecar trainer_save writes (small adam moments)
rng_hex = "0123456789abcdef" * 4
meta = {"format": "hdlm-state-2", "step": "3", "config": '{"objective":"ar"}', "adam_t": "3",
        "data_rng": rng_hex, "noise_rng": "f" * 64, "dropout_rng": "0" * 64}
mom = struct.pack("<3f", 0.1, 0.2, 0.3)
put("train_state", "valid", safetensors([("adam.m", "F32", [3], mom), ("adam.v", "F32", [3], mom)],
                                        meta))
put("train_state", "neg_adam_t", safetensors([("adam.m", "F32", [3], mom)],
                                              dict(meta, adam_t="-5")))
put("train_state", "signed_rng", safetensors([], dict(meta, noise_rng="-" + "0" * 15 + "1" * 48)))
put("train_state", "hex_prefix_rng", safetensors([], dict(meta, data_rng="0x" + "a" * 62)))
put("train_state", "missing_keys", safetensors([], {"format": "hdlm-state-2"}))
put("train_state", "adam_t_overflow", safetensors([], dict(meta, adam_t="9" * 25)))

# ---- corpus_text: byte 0 tokenizer (bit 0: text8), byte 1 fraction code, then the text
put("corpus_text", "ascii_bytes", b"\x00\x40" + b"the quick brown fox jumps over the lazy dog\n")
put("corpus_text", "text8", b"\x01\x20" + b"anarchism originated as a term of abuse")
put("corpus_text", "utf8_mixed", b"\x00\x10" + "naïve café — 日本語 😀\n".encode())
put("corpus_text", "nul_byte", b"\x00\x10abc\x00def")
put("corpus_text", "overlong", b"\x00\x10ab\xc0\xafcd")
put("corpus_text", "surrogate", b"\x00\x10\xed\xa0\x80")
put("corpus_text", "truncated_seq", b"\x00\x10abc\xe2\x82")
put("corpus_text", "empty", b"\x00\x10")
put("corpus_text", "bad_fraction", b"\x00\xffhello")
put("corpus_text", "text8_no_letters", b"\x01\x10" + b"1234 5678 !!")

# ---- json
put("json", "object", '{"a":[1,2.5,-3e10,true,false,null],"b":{"c":"d\\u00e9\\n"}}')
put("json", "nested", "[" * 40 + "]" * 40)
put("json", "too_deep", "[" * 70 + "]" * 70)
put("json", "bad_escape", '"\\u12"')
put("json", "nul_key", '{"a\\u0000b":1,"a":2}')
put("json", "dup_key", '{"a":1,"a":2}')
put("json", "big_int", "[9223372036854775807,-9223372036854775808,9223372036854775808,1e400]")
put("json", "surrogates", '["\\ud83d\\ude00","\\ud800"]')
put("json", "trailing", "[1,]")

# ---- plugin_opts: byte 0 plugin index, then records (see fuzz_plugin_opts.c)
# every plugin with its defaults; the noise plugins (absorbing, epsilon_hybrid, gamma_hybrid,
# uniform: 0, 8, 9, 13 in name order) also with the host's "vocab" (a small integer, 27)
for i in range(14):
    put("plugin_opts", "defaults_%02d" % i, bytes([i]))
for i in (0, 8, 9, 13):
    put("plugin_opts", "vocab27_%02d" % i, bytes([i, 0x19, 0, 27]))
put("plugin_opts", "huge_vocab", bytes([0, 0x05, 0, 17]))
put("plugin_opts", "nan_number", bytes([1, 0x04, 0, 0, 0x05, 0, 0]))
put("plugin_opts", "string_for_number", bytes([2, 0x08, 0, 3]) + b"abc")
put("plugin_opts", "unknown_key", bytes([3, 0x0A, 0, 5]) + b"stepz")
put("plugin_opts", "typo", bytes([4, 0x03, 0, 1, 3]))
put("plugin_opts", "text", bytes([5, 0x14, 0, 4]) + b"1e99")
put("plugin_opts", "allowed", bytes([6, 0x0C, 0, 1, 0x0C, 1, 0]))
