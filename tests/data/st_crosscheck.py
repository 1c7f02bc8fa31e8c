#!/usr/bin/env python3
"""Independent safetensors reader for test_safetensors: parses a file with only struct, json, zlib
and numpy (no safetensors package), checks the layout rules, and prints one line per item:
    header <N> data_start <8+N>
    meta <key>=<value>                       (sorted by key)
    tensor <name> <dtype> <d0>x<d1> <nbytes> crc=<crc32 hex> sum=<sum, %.6f>   (header order)
Exits 1 with a message on stderr if the file breaks a rule."""
import json
import struct
import sys
import zlib

import numpy as np

NP = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1"}


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def main(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n <= len(raw) - 8, "header length beyond the file"
    header_text = raw[8 : 8 + n].decode("utf-8")
    assert header_text.startswith("{"), "header must start with {"
    header = json.loads(header_text, object_pairs_hook=no_duplicates)
    assert (8 + n) % 8 == 0, "data section not 8-byte aligned"
    data = raw[8 + n :]
    print("header %d data_start %d" % (n, 8 + n))
    meta = header.pop("__metadata__", {})
    for k in sorted(meta):
        assert isinstance(meta[k], str)
        print("meta %s=%s" % (k, meta[k]))
    spans = []
    for name, ent in header.items():
        begin, end = ent["data_offsets"]
        dt = np.dtype(NP[ent["dtype"]])
        shape = ent["shape"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        assert end - begin == count * dt.itemsize, "offsets do not match dtype and shape"
        arr = np.frombuffer(data[begin:end], dtype=dt).reshape(shape)
        total = float(arr.astype(np.float64).sum())
        crc = zlib.crc32(data[begin:end]) & 0xFFFFFFFF
        dims = "x".join(str(d) for d in shape) if shape else "scalar"
        print("tensor %s %s %s %d crc=%08x sum=%.6f" % (name, ent["dtype"], dims, end - begin, crc, total))
        spans.append((begin, end))
    pos = 0
    for begin, end in sorted(spans):
        assert begin == pos, "gap or overlap in the data section"
        pos = end
    assert pos == len(data), "data section not fully covered"


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:  # one line for the C test's log
        print("st_crosscheck: %s: %s" % (sys.argv[1], exc), file=sys.stderr)
        sys.exit(1)
