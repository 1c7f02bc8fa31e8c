-- Quickstart: prepare the default corpus, train a small hybrid (ε-hybrid, block annealing) model on
-- it in a few minutes on 2 cores, print the loss curve, then sample with two samplers (ancestral
-- and the adaptive correction sampler) and greedily; everything is recorded in runs.db.
--   build/hdlm run experiments/quickstart.lua [corpus=data/brown.txt] [steps=600]
local hdlm = require "hdlm"

local args = hdlm.args
local corpus_path = args.corpus or "data/brown.txt"
local steps = args.steps or 600
local db = hdlm.open()

local t0 = hdlm.time()
local data = hdlm.corpus{ path = corpus_path, tokenizer = "bytes", valid = 0.05 }
print(("corpus: %s (%s tokenizer, vocabulary %d): %d train / %d valid tokens (%.2f s)"):format(
  corpus_path, data.tokenizer, data.vocab, data.n_train, data.n_valid, hdlm.time() - t0))

t0 = hdlm.time()
local run = db:train{
  name = "quickstart", data = data, seed = 1,
  noise = { "epsilon_hybrid", epsilon = 0.01, lambda = 1 },   -- the paper's ε-hybrid process
  schedule = { "block_annealing", width = 16, tau = 16 },     -- blocks of 16, left to right
  vectorised = true,                                          -- every block trained per pass
  model = { d_model = 128, n_layer = 4, n_head = 4, seq_len = 128 },
  steps = steps, batch = 16, lr = 2e-3, min_lr = 2e-4, warmup = 50, lr_schedule = "cosine",
  weight_decay = 0.1, clip = 1.0, ema = 0.995,
  log_every = 10, eval_every = steps // 4, eval_batches = 8,
  checkpoint_dir = "checkpoints/quickstart", ckpt_every = steps // 2, resume = false,
}
print(("trained %s in %.0f s (%.0f tokens/s), run %d"):format(tostring(run.model),
  hdlm.time() - t0, run.summary.tokens_per_s, run.id))

print("step   train loss   valid loss (the ε-hybrid training loss; valid uses the EMA weights)")
local rows = db:query([[
  SELECT t.step, t.value AS train, v.value AS valid
  FROM metrics t LEFT JOIN metrics v ON v.run_id = t.run_id AND v.step = t.step AND v.name = 'valid_loss'
  WHERE t.run_id = ? AND t.name = 'loss' AND (t.step % ? = 0 OR t.step = 10) ORDER BY t.step]],
  run.id, math.max(10, steps // 10))
for _, r in ipairs(rows) do
  print(("%5d   %10.3f   %10s"):format(r.step, r.train, r.valid and ("%.3f"):format(r.valid) or ""))
end

local function show(title, opts)
  print("\n" .. title)
  for _, s in ipairs(run:sample(opts)) do
    print(("  [%d steps, %d network evaluations, %d corrections] %s"):format(s.steps, s.nfe,
      s.corrections, (s.text:gsub("\n", " "))))
  end
end
show("greedy (ancestral, temperature 0), prompted:", { sampler = "ancestral", temperature = 0, n = 2, prompt = "The ", length = 96 })
show("ancestral sampler (MDLM), temperature 0.9:", { sampler = "ancestral", temperature = 0.9, n = 2, seed = 1, length = 96 })
show("adaptive correction sampler (ACS, eta = 0.05), temperature 0.9:", { sampler = { "acs", eta = 0.05 }, temperature = 0.9, n = 2, seed = 1, length = 96 })

print(("\nruns.db holds run %d, its metrics, checkpoints and samples; try:"):format(run.id))
print(("  build/hdlm samples --run %d"):format(run.id))
print(("  build/hdlm sample --run %d sampler=acs eta=0.05 n=2"):format(run.id))
print(("  build/hdlm query \"SELECT step, name, value FROM metrics WHERE run_id = %d LIMIT 20\""):format(run.id))
