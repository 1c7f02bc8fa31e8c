#!/usr/bin/env bash
# `hdlm import` end to end from the command line: python3 (no PyTorch needed) writes tiny models
# in the reference's published form (config.json with the Hydra tree; model.safetensors with the
# DDiT's state-dict names, random F32 or BF16 weights, the rotary buffer), `hdlm import` makes
# checkpoints and runs, and `hdlm sample --run`, `hdlm eval --run` (when GPT-2's files are there
# to tokenize a corpus) and `hdlm report` accept them with the run's own schedule and noise.
# Refusals: a pickle without conversion, a wrong vocabulary.
set -euo pipefail
src=${HDLM_SRC:?} bin=${HDLM_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

export_model() { # dir family dtype prefix width tau
    python3 - "$@" <<'EOF'
import json, os, random, struct, sys
d, fam, dtype, prefix, width, tau = sys.argv[1:7]
width, tau = int(width), int(tau)
C, H, L, NB, V = 32, 2, 16, 2, 50258
os.makedirs(d, exist_ok=True)
cfg = {"model_type": "epsilon_hybrid" if fam == "e" else "gamma_hybrid",
       "tokenizer": {"tokens": V - 1, "model": "gpt2"},
       "training": {"epsilon": 0.01, "lambda": 1.0},
       "annealing": {"type": "block", "width": width, "tau": tau, "eval_tau": tau,
                     "attention": {"context_type": "block_causal", "block_type": "full"}},
       "model": {"hidden_size": C, "n_heads": H, "n_blocks": NB, "cond_dim": 128, "length": L}}
if fam == "g":
    cfg["graph"] = {"type": "QGamma", "gamma": 0.01}
    cfg["noise"] = {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 10.0}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
shapes = {"vocab_embed.embedding": (V, C)}
if fam == "g":
    shapes.update({"sigma_map.mlp.0.weight": (128, 256), "sigma_map.mlp.0.bias": (128,),
                   "sigma_map.mlp.2.weight": (128, 128), "sigma_map.mlp.2.bias": (128,)})
for i in range(NB):
    b = f"blocks.{i}."
    shapes.update({b + "norm1.weight": (C,), b + "attn_qkv.weight": (3 * C, C),
                   b + "attn_out.weight": (C, C), b + "norm2.weight": (C,),
                   b + "mlp.0.weight": (4 * C, C), b + "mlp.0.bias": (4 * C,),
                   b + "mlp.2.weight": (C, 4 * C), b + "mlp.2.bias": (C,)})
    if fam == "g":
        shapes.update({b + "adaLN_modulation.weight": (6 * C, 128),
                       b + "adaLN_modulation.bias": (6 * C,)})
shapes.update({"output_layer.norm_final.weight": (C,), "output_layer.linear.weight": (V, C),
               "output_layer.linear.bias": (V,), "rotary_emb.inv_freq": (C // H // 2,)})
rng = random.Random(7)
header, blobs, off = {}, [], 0
for k, shp in shapes.items():
    n = 1
    for s in shp:
        n *= s
    vals = [1.0 + 0.1 * rng.uniform(-1, 1) if "norm" in k else 0.2 * rng.uniform(-1, 1)
            for _ in range(n)]
    raw = struct.pack(f"<{n}f", *vals)
    dt = "F32"
    if dtype == "BF16" and not k.endswith("inv_freq"):
        raw = b"".join(raw[4 * j + 2:4 * j + 4] for j in range(n))  # truncation: a valid bf16
        dt = "BF16"
    header[prefix + k] = {"dtype": dt, "shape": list(shp), "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
h = json.dumps(header).encode()
with open(os.path.join(d, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
EOF
}

export_model eps e F32 module. 4 4
export_model gam g BF16 "" 16 8

out=$("$bin" import eps -o models/eps --db runs.db)
echo "$out"
grep -q "epsilon-hybrid DDiT, 3291826 parameters" <<<"$out"
grep -q "block_annealing{width = 4, tau = 4}" <<<"$out"
grep -q "stored as run 1" <<<"$out"
out=$("$bin" import gam -o models/gam --db runs.db --name gamma-tiny)
echo "$out"
grep -q "gamma-hybrid DDiT" <<<"$out"
grep -q "diffusion{tau = 8}" <<<"$out"
grep -q "BF16 (widened to F32 exactly)" <<<"$out"
[[ -s models/eps/model.safetensors && -s models/eps/reference_config.json ]]

"$bin" query --db runs.db "SELECT id, name, kind, status FROM runs"
[[ $("$bin" query --db runs.db --csv "SELECT count(*) FROM runs WHERE kind = 'import' AND status = 'done'" | tail -1) == 2 ]]
[[ $("$bin" query --db runs.db --csv "SELECT name FROM run_plugins WHERE run_id = 2 AND kind = 'noise'" | tail -1) == gamma_hybrid ]]

# the runs sample with their own noise and schedule
"$bin" sample --run 1 --db runs.db n=1 length=8 seed=1 | tee s1.txt
grep -q "sample 1 (run 1, step 0 checkpoint; ancestral" s1.txt
"$bin" sample --run 2 --db runs.db sampler=analytic n=1 length=8 seed=1 | tee s2.txt
grep -q "(run 2, step 0 checkpoint; analytic" s2.txt

# hdlm.model{checkpoint = ...} reads the import like a trained checkpoint
cat >check.lua <<'EOF'
local hdlm = require "hdlm"
local m = hdlm.model{ checkpoint = "models/gam/model.safetensors" }
assert(m.n_params > 0 and m.vocab == 50258 and m.d_model == 32)
local lg = m:forward({ 1, 2, 50257 }, { sigma = 0.5 })
assert(#lg == 3 and #lg[1] == 50258)
print("checkpoint ok", m.n_params)
EOF
"$bin" run check.lua --db runs.db

# the bound, when a GPT-2 corpus can be made
if [[ -f $src/data/gpt2/encoder.json && -f $src/data/gpt2/vocab.bpe ]]; then
    export HDLM_GPT2_DIR=$src/data/gpt2
    python3 -c "
import random
r = random.Random(1)
w = 'the of and to a in is was he for it with as his on be at by had'.split()
print('\n\n'.join(' '.join(r.choice(w) for _ in range(200)) for _ in range(200)))" >text.txt
    "$bin" data prepare text.txt -o text.tok --tokenizer gpt2 --valid 0.5
    "$bin" import eps -o models/eps2 --db runs.db --name eps-data --data text.tok
    "$bin" eval --run 3 --db runs.db sequences=2 length=16 mc=2 | tee ev.txt
    grep -q "bound on 2" ev.txt
    # output captured first: `| grep -q` may close the pipe early, and under pipefail hdlm's
    # SIGPIPE on its next line would fail the test
    out=$("$bin" eval --run 1 --db runs.db data=text.tok sequences=2 length=16 mc=2)
    grep -q "bound on 2" <<<"$out"
else
    echo "note: GPT-2's files are missing ($src/data/gpt2): hdlm eval --run skipped"
fi
"$bin" report runs.db -o report.html
[[ -s report.html ]]

# a pickled state dict (pytorch_model.bin, and a training .pth with EMA weights) through
# scripts/convert_pth.py gives the same checkpoint, byte for byte (needs python3-torch)
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    mkdir -p pth
    cp eps/config.json pth/
    /usr/bin/python3 -c "
import sys, torch
sys.path.insert(0, '$src/scripts')
from torch_import_check import read_safetensors
sd = read_safetensors('eps/model.safetensors', torch)
torch.save(sd, 'pth/pytorch_model.bin')
names = [k for k in sd if not k.endswith('inv_freq')]
torch.save({'model': {k: torch.zeros_like(v) for k, v in sd.items()},
            'ema': {'decay': 0.9999, 'shadow_params': [sd[k] for k in names]}, 'step': 7},
           'train.pth')"
    if "$bin" import pth -o models/p --no-db 2>err.txt; then exit 1; fi
    grep -q "convert_pth.py" err.txt
    /usr/bin/python3 "$src/scripts/convert_pth.py" pth/pytorch_model.bin pth/model.safetensors
    "$bin" import pth -o models/pth --no-db
    cmp models/pth/model.safetensors models/eps/model.safetensors
    mkdir -p pth2 && cp eps/config.json pth2/
    /usr/bin/python3 "$src/scripts/convert_pth.py" train.pth pth2/model.safetensors --ema
    "$bin" import pth2 -o models/pth2 --no-db
    cmp models/pth2/model.safetensors models/eps/model.safetensors # the EMA, not the zeros
    /usr/bin/python3 "$src/scripts/convert_pth.py" train.pth pth2/model.safetensors --dtype bf16
    out=$("$bin" import pth2 -o models/pth3 --no-db)
    grep -q "from BF16" <<<"$out"
    echo "ok: convert_pth.py (state dict and training .pth --ema)"
else
    echo "note: python3-torch is not installed: scripts/convert_pth.py not exercised"
fi

# refusals
mkdir pickle && cp eps/config.json pickle/ && echo x >pickle/pytorch_model.bin
if "$bin" import pickle -o models/p --no-db 2>err.txt; then exit 1; fi
grep -q "scripts/convert_pth.py" err.txt
mkdir wrongv && python3 -c "
import json; c = json.load(open('eps/config.json')); c['tokenizer']['tokens'] = 1000
json.dump(c, open('wrongv/config.json', 'w'))" && cp eps/model.safetensors wrongv/
if "$bin" import wrongv -o models/w --no-db 2>err.txt; then exit 1; fi
grep -q "expected tokenizer.tokens + 1 = 1001" err.txt
echo "ok"
