-- Quickstart: prepare the default corpus, train a small hybrid (ε-hybrid, block annealing) model on
-- it in a few minutes on 2 cores, print the loss curve, then sample with two samplers (ancestral
-- and the adaptive correction sampler) and greedily; bound the held-out NLL consistently with the
-- schedule, score the samples under an autoregressive judge trained alongside, and write the HTML
-- report. Everything is recorded in runs.db.
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
  local out = run:sample(opts)
  for _, s in ipairs(out) do
    print(("  [%d steps, %d network evaluations, %d corrections] %s"):format(s.steps, s.nfe,
      s.corrections, (s.text:gsub("\n", " "))))
  end
  return out
end
show("greedy (ancestral, temperature 0), prompted:", { sampler = "ancestral", temperature = 0, n = 2, prompt = "The ", length = 96 })
show("ancestral sampler (MDLM), temperature 0.9:", { sampler = "ancestral", temperature = 0.9, n = 2, seed = 1, length = 96 })
show("adaptive correction sampler (ACS, eta = 0.05), temperature 0.9:", { sampler = { "acs", eta = 0.05 }, temperature = 0.9, n = 2, seed = 1, length = 96 })

-- the likelihood bound of the validation split, consistent with the block schedule (every step)
t0 = hdlm.time()
local b = run:eval{ sequences = 32, mc = 0 }
print(("\nheld-out NLL bound (block annealing, every step, 2L layout): %.4f ± %.4f bits/byte on %d sequences (%.0f s)")
  :format(b.bits, b.bits_se, b.sequences, hdlm.time() - t0))

-- an autoregressive judge of the same size; generation quality of 16 samples per sampler
t0 = hdlm.time()
local judge = db:train{
  name = "quickstart judge (autoregressive)", data = data, seed = 1,
  noise = { "absorbing" }, schedule = { "autoregressive" }, vectorised = true, context = "causal",
  model = { d_model = 128, n_layer = 4, n_head = 4, seq_len = 128 },
  steps = steps // 2, batch = 16, lr = 2e-3, min_lr = 2e-4, warmup = 50, lr_schedule = "cosine",
  weight_decay = 0.1, clip = 1.0, ema = 0.995, log_every = 10,
}
local jb = judge:eval{ sequences = 32, mc = 0 }
print(("judge trained in %.0f s; its exact NLL on the same data: %.4f bits/byte"):format(hdlm.time() - t0, jb.bits))
print("\ngeneration quality under the judge (16 samples of 128 bytes, temperature 0.9):")
print("  sampler          gen NLL (nats/byte)   gen PPL   entropy   distinct-4   corrections")
for _, sp in ipairs{ { "ancestral" }, { "acs", eta = 0.05 } } do
  local s = run:sample{ sampler = sp, n = 16, temperature = 0.9, seed = 2 }
  local g = run:gen_eval{ judge = judge, samples = s }
  local corr = 0
  for _, x in ipairs(s) do corr = corr + x.corrections end
  print(("  %-16s %8.4f ± %.4f   %7.2f   %7.3f   %10.3f   %8.1f"):format(sp[1] .. (sp.eta and (" " .. sp.eta) or ""),
    g.gen_nll, g.gen_nll_se, g.gen_ppl, g.entropy, g.distinct_4, corr / #s))
end

local report = hdlm.db_path:gsub("[^/]*$", "") .. "report.html" -- next to the database
local ok = os.execute(("%q report %q -o %q > /dev/null"):format(hdlm.binary, hdlm.db_path, report))
print(("\nreport: %s%s"):format(report, ok and "" or " (FAILED to write)"))

print(("\n%s holds runs %d and %d, their metrics, checkpoints, evaluations and samples; try:"):format(hdlm.db_path, run.id, judge.id))
print(("  build/hdlm samples --run %d"):format(run.id))
print(("  build/hdlm sample --run %d sampler=acs eta=0.05 n=2"):format(run.id))
print(("  build/hdlm eval --run %d estimator=reference"):format(run.id))
print(("  build/hdlm query \"SELECT metric, value, std_error FROM evaluations WHERE run_id = %d\""):format(run.id))
