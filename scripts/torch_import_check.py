#!/usr/bin/python3
"""Logits of a model folder in the reference's published form, computed by PyTorch.

An independent check of `hdlm import`: reads FOLDER/config.json and FOLDER/model.safetensors
(F32/BF16/F16, the reference DDiT's state-dict names, optional module./backbone. prefix), loads
the tensors into scripts/torch_reference.py's DDiT (its own implementation of the reference's
model), runs one bidirectional forward over the given tokens (σ per token for the conditioned γ
model, with the RADD input mix γ = graph.gamma) and writes the logits (T x V') as little-endian
float32 to OUT. tests/unit/test_import.c compares them with hdlm's; it skips this part when
PyTorch is missing (exit status 77).

Usage: /usr/bin/python3 scripts/torch_import_check.py FOLDER "1,2,3" "0.5,0.5,0.5" OUT
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

RENAME = [  # reference name suffix -> torch_reference attribute
    ("vocab_embed.embedding", "embed"),
    ("sigma_map.mlp.0.", "sig1."),
    ("sigma_map.mlp.2.", "sig2."),
    ("output_layer.norm_final.weight", "lnf_w"),
    ("output_layer.linear.", "head."),
    (".norm1.weight", ".ln1_w"),
    (".norm2.weight", ".ln2_w"),
    (".attn_qkv.", ".qkv."),
    (".attn_out.", ".out."),
    (".mlp.0.", ".fc1."),
    (".mlp.2.", ".fc2."),
    (".adaLN_modulation.", ".ada."),
]


def read_safetensors(path, torch):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        raw = bytearray(data[a:b])
        if v["dtype"] == "F32":
            t = torch.frombuffer(raw, dtype=torch.float32)
        elif v["dtype"] == "BF16":
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16).float()
        elif v["dtype"] == "F16":
            t = torch.frombuffer(raw, dtype=torch.float16).float()
        else:
            sys.exit(f"{path}: {k}: dtype {v['dtype']}")
        out[k] = t.reshape(v["shape"]) if v["shape"] else t.reshape(())
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    folder, toks, sigmas, out = sys.argv[1:]
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: skipped", file=sys.stderr)
        sys.exit(77)
    sys.path.insert(0, HERE)
    import torch_reference as tr

    cfg = json.load(open(os.path.join(folder, "config.json")))
    if "model" not in cfg and "config" in cfg:
        cfg = cfg["config"]
    m = cfg["model"]
    gamma_family = cfg.get("model_type") == "gamma_hybrid" or (
        "model_type" not in cfg and "graph" in cfg)
    if gamma_family:
        tr.EMBED_GAMMA = float(cfg["graph"]["gamma"])
    sd = read_safetensors(os.path.join(folder, "model.safetensors"), torch)
    for p in ("module.backbone.", "module.", "backbone.", "model."):
        if any(k.startswith(p + "vocab_embed") for k in sd):
            sd = {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
            break
    vocab = cfg["tokenizer"]["tokens"]
    DDiT = tr.build_model_class()
    net = DDiT(vocab, m["hidden_size"], m["n_blocks"], m["n_heads"], m["length"], gamma_family)
    mine = net.state_dict()
    renamed = {}
    for k, v in sd.items():
        if k.endswith("inv_freq"):
            continue
        nk = k
        for a, b in RENAME:
            nk = nk.replace(a, b)
        if nk not in mine:
            sys.exit(f"{k} -> {nk}: not a parameter of torch_reference's DDiT")
        renamed[nk] = v
    missing = set(mine) - set(renamed)
    if missing:
        sys.exit(f"missing tensors: {sorted(missing)[:5]}")
    net.load_state_dict(renamed)
    x = torch.tensor([[int(t) for t in toks.split(",")]])
    s = torch.tensor([[float(t) for t in sigmas.split(",")]]) if gamma_family else None
    with torch.no_grad():
        lg = net(x, s)[0].float().contiguous()
    with open(out, "wb") as f:
        f.write(lg.numpy().astype("<f4").tobytes())
    print(f"{folder}: logits {tuple(lg.shape)} -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
