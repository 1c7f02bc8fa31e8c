#!/usr/bin/python3
"""Turn a PyTorch pickle of the reference's DDiT into model.safetensors for `hdlm import`.

hdlm does not read pickles (loading one runs arbitrary code); this script does it with PyTorch
(Debian: apt-get install python3-torch; run it with /usr/bin/python3) and writes the tensors
under their state-dict names in the safetensors format, which `hdlm import` reads.

Inputs it understands:
  * pytorch_model.bin as written by huggingface_hub's ModelHubMixin: a state dict
    {name: tensor} (names possibly under "module." or "backbone."; hdlm import strips those).
  * a training checkpoint .pth of the reference (torch.save of {"model": state_dict,
    "ema": {...}, "optimizer": ..., "step": ...}): the "model" state dict by default; --ema
    takes the EMA weights instead (the EMA's shadow_params list is matched to the model's
    parameters in order, buffers such as rotary_emb.inv_freq excluded).

Usage:
    /usr/bin/python3 scripts/convert_pth.py IN.bin|IN.pth OUT/model.safetensors [--ema]
        [--dtype keep|f32|bf16]
    hdlm import OUT -o models/x           # OUT also needs the release's config.json

Dtypes: keep (default) writes F32/BF16/F16 tensors as they are; hdlm widens BF16/F16 to F32.
"""

import argparse
import json
import os
import struct
import sys


def load_state_dict(path, ema):
    import torch

    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        sd = obj["model"]
        if ema:
            shadow = (obj.get("ema") or {}).get("shadow_params")
            if shadow is None:
                sys.exit(f"{path}: --ema given but the checkpoint has no ema.shadow_params")
            names = [k for k in sd if not k.endswith("inv_freq")]
            if len(names) != len(shadow):
                sys.exit(f"{path}: {len(shadow)} EMA tensors for {len(names)} parameters")
            sd = dict(sd)
            for k, t in zip(names, shadow):
                if tuple(t.shape) != tuple(sd[k].shape):
                    sys.exit(f"{path}: EMA tensor for {k} has shape {tuple(t.shape)}")
                sd[k] = t
        return sd
    if ema:
        sys.exit(f"{path}: --ema needs a training checkpoint with 'model' and 'ema' entries")
    if isinstance(obj, dict):
        return obj
    sys.exit(f"{path}: not a state dict (got {type(obj).__name__})")


def write_safetensors(sd, out, dtype):
    import torch

    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
    header, blobs, off = {}, [], 0
    for k in sorted(sd):
        t = sd[k]
        if not torch.is_tensor(t):
            continue
        t = t.detach().contiguous()
        if dtype == "f32":
            t = t.float()
        elif dtype == "bf16" and t.is_floating_point():
            t = t.to(torch.bfloat16)
        if t.dtype not in names:
            sys.exit(f"tensor {k}: dtype {t.dtype} is not F32/BF16/F16")
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape),
                     "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, out)
    return len(header) - 1, off


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--ema", action="store_true", help="the EMA weights of a training .pth")
    p.add_argument("--dtype", default="keep", choices=["keep", "f32", "bf16"])
    a = p.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("PyTorch is not installed: apt-get install python3-torch, then run this "
                 "script with /usr/bin/python3")
    sd = load_state_dict(a.input, a.ema)
    n, nbytes = write_safetensors(sd, a.output, a.dtype)
    print(f"{a.input}: {n} tensors, {nbytes / 2**20:.1f} MiB -> {a.output}")


if __name__ == "__main__":
    main()
