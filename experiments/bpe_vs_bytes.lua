-- Bytes vs trained BPEs at equal training compute: the quickstart's model (ε-hybrid, block
-- annealing, 2L layout, d_model 128, 4 layers, seq_len 128 tokens, batch 16) trained on the same
-- corpus with the bytes tokenizer and with BPEs of 1024 and 4096 tokens learnt on it. Every model
-- gets the same nominal training FLOPs: the bytes model trains `steps` steps, the others
-- steps * C(bytes) / C(V) with C(V) = 6 (non-embedding parameters + output layer) + 12 n_layer
-- (2 seq_len) d_model per token (the output layer grows with V; all see batch x seq_len tokens a
-- step). Reports held-out bits per byte (the schedule-consistent bound, every step) and the word
-- share of 16 samples per sampler (no judge), and prints one sample of each model.
--   build/hdlm run experiments/bpe_vs_bytes.lua [corpus=data/brown.txt] [steps=600] [vocabs=1024,4096]
local hdlm = require "hdlm"

local args = hdlm.args
local corpus_path = args.corpus or "data/brown.txt"
local steps = math.tointeger(tonumber(args.steps or 600))
local vocabs = {}
for v in (args.vocabs or "1024,4096"):gmatch("%d+") do vocabs[#vocabs + 1] = math.tointeger(tonumber(v)) end
local db = hdlm.open()
local M = { d_model = 128, n_layer = 4, n_head = 4, seq_len = 128 }

-- nominal training FLOPs per token of the model for V real tokens (+1: the mask)
local function flops_per_token(V)
  local p1 = hdlm.model{ vocab = V + 1, d_model = M.d_model, n_layer = M.n_layer, n_head = M.n_head, seq_len = M.seq_len, seed = 1 }.n_params
  local p2 = hdlm.model{ vocab = V + 2, d_model = M.d_model, n_layer = M.n_layer, n_head = M.n_head, seq_len = M.seq_len, seed = 1 }.n_params
  local per_symbol = p2 - p1                   -- parameters per vocabulary entry (embedding + output)
  local body = p1 - per_symbol * (V + 1)
  return 6 * (body + (V + 1) * M.d_model) + 12 * M.n_layer * 2 * M.seq_len * M.d_model
end

local configs = { { name = "bytes", tokenizer = "bytes", V = 256 } }
for _, v in ipairs(vocabs) do
  configs[#configs + 1] = { name = ("BPE-%d"):format(v), tokenizer = ("bpe:data/bpe%d"):format(v), V = v, bpe = v }
end
local c_bytes = flops_per_token(256)
local samplers = { { "ancestral" }, { "acs", eta = 0.05 } }

for _, c in ipairs(configs) do
  local t0 = hdlm.time()
  if c.bpe then hdlm.train_tokenizer{ path = corpus_path, vocab = c.bpe, out = ("data/bpe%d"):format(c.bpe) } end
  c.tok_time = hdlm.time() - t0
  local data = hdlm.corpus{ path = corpus_path, tokenizer = c.tokenizer, valid = 0.05 }
  c.steps = math.floor(steps * c_bytes / flops_per_token(c.V) + 0.5)
  c.flops = flops_per_token(c.V) * c.steps * 16 * M.seq_len
  t0 = hdlm.time()
  local run = db:train{
    name = "bpe_vs_bytes " .. c.name, data = data, seed = 1,
    noise = { "epsilon_hybrid", epsilon = 0.01, lambda = 1 },
    schedule = { "block_annealing", width = 16, tau = 16 }, vectorised = true,
    model = M, steps = c.steps, batch = 16, lr = 2e-3, min_lr = 2e-4, warmup = 50, lr_schedule = "cosine",
    weight_decay = 0.1, clip = 1.0, ema = 0.995, log_every = 10,
    checkpoint_dir = "checkpoints/bpe_vs_bytes/" .. c.name, ckpt_every = c.steps,
  }
  c.train_time = run.summary.steps_trained > 0 and hdlm.time() - t0 or nil
  local b = run:eval{ sequences = 64, mc = 0 }
  c.bpb, c.bpb_se, c.bytes_per_token = b.bits_per_byte, b.bits_se, b.bytes_per_token
  c.share = {}
  for i, sp in ipairs(samplers) do
    local s = run:sample{ sampler = sp, n = 16, temperature = 0.9, seed = 2, events = false }
    local g = run:gen_eval{ samples = s }
    c.share[i] = { g.word_share, g.word_share_se, g.words }
    if i == #samplers then c.sample = s[1].text end
  end
  print(("%s: %d steps, trained in %s, %.3f bits/byte"):format(c.name, c.steps,
    c.train_time and ("%.0f s"):format(c.train_time) or "(earlier run)", c.bpb))
end

print(("\nequal nominal training compute: %.3g FLOPs per model (%d x 16 x %d byte tokens for the bytes model)")
  :format(configs[1].flops, steps, M.seq_len))
print("| tokenizer | steps | bytes/token | train s | held-out bits/byte | word share, ancestral T=0.9 | word share, ACS η=0.05 T=0.9 |")
print("|---|---|---|---|---|---|---|")
for _, c in ipairs(configs) do
  print(("| %s | %d | %.2f | %s | %.3f ± %.3f | %.3f ± %.3f (%d words) | %.3f ± %.3f (%d words) |"):format(c.name, c.steps,
    c.bytes_per_token, c.train_time and ("%.0f"):format(c.train_time) or "—", c.bpb, c.bpb_se,
    c.share[1][1], c.share[1][2], c.share[1][3], c.share[2][1], c.share[2][2], c.share[2][3]))
end
print("\nsamples (ACS η=0.05, T=0.9, seed 2, the first of 16):")
for _, c in ipairs(configs) do
  print(("  %s: %s"):format(c.name, (c.sample:gsub("%s+", " "))))
end
