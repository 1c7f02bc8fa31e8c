-- Quickstart: prepare the default corpus, train a small hybrid (ε-hybrid, block annealing) model on
-- it in a few minutes on 2 cores, print the loss curve, then sample with two samplers (ancestral
-- and the adaptive correction sampler) and from a prompt; bound the held-out NLL consistently with the
-- schedule, score the samples under an autoregressive judge trained alongside, and write the HTML
-- report. Everything is recorded in runs.db.
--   build/hdlm run experiments/quickstart.lua [corpus=data/brown.txt] [steps=400] [tokenizer=bpe4096]
-- tokenizer: "bpeN" learns an N-token BPE on the corpus first (under a second) and trains on it;
-- "bytes" (or any tokenizer name hdlm.corpus takes) uses that one.
local hdlm = require "hdlm"

local args = hdlm.args
local corpus_path = args.corpus or "data/brown.txt"
local steps = math.tointeger(tonumber(args.steps or 400))
local tokenizer = args.tokenizer or "bpe4096"
local db = hdlm.open()
local t_start = hdlm.time()

local t0 = hdlm.time()
local bpe_size = tokenizer:match("^bpe(%d+)$")
if bpe_size then
  local dir = "data/bpe" .. bpe_size
  local tt = hdlm.train_tokenizer{ path = corpus_path, vocab = math.tointeger(tonumber(bpe_size)), out = dir }
  print(("BPE of %d tokens learnt on %s in %.2f s -> %s"):format(tt.vocab, corpus_path, tt.seconds, dir))
  tokenizer = "bpe:" .. dir
end
local data = hdlm.corpus{ path = corpus_path, tokenizer = tokenizer, valid = 0.05 }
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
show("prompted \"The\" (ancestral, temperature 0.7; greedy decoding repeats \"the\"):", { sampler = "ancestral", temperature = 0.7, n = 2, seed = 1, prompt = "The", length = 96 })
show("ancestral sampler (MDLM), temperature 0.9:", { sampler = "ancestral", temperature = 0.9, n = 2, seed = 1, length = 96 })
show("adaptive correction sampler (ACS, eta = 0.05), temperature 0.9:", { sampler = { "acs", eta = 0.05 }, temperature = 0.9, n = 2, seed = 1, length = 96 })

-- the likelihood bound of the validation split, consistent with the block schedule (every step)
t0 = hdlm.time()
local b = run:eval{ sequences = 32, mc = 0 }
print(("\nheld-out NLL bound (block annealing, every step, 2L layout): %.4f ± %.4f bits/byte on %d sequences (%.0f s)")
  :format(b.bits_per_byte, b.bits_se, b.sequences, hdlm.time() - t0))

-- an autoregressive model of the same size and steps: the judge of generation quality, and the
-- family's autoregressive end (one token per step, left to right) to sample from beside the hybrid
t0 = hdlm.time()
local judge = db:train{
  name = "quickstart judge (autoregressive)", data = data, seed = 1,
  noise = { "absorbing" }, schedule = { "autoregressive" }, vectorised = true, context = "causal",
  model = { d_model = 128, n_layer = 4, n_head = 4, seq_len = 128 },
  steps = steps, batch = 16, lr = 2e-3, min_lr = 2e-4, warmup = 50, lr_schedule = "cosine",
  weight_decay = 0.1, clip = 1.0, ema = 0.995, log_every = 10,
}
local jb = judge:eval{ sequences = 32, mc = 0 }
print(("judge trained in %.0f s; its exact NLL on the same data: %.4f bits/byte"):format(hdlm.time() - t0, jb.bits_per_byte))
print(("\ngeneration quality (16 samples of 128 tokens each): gen NLL under the judge; word share = share of"
  .. "\nthe samples' words found in the training split's words (no judge; README, \"Evaluation\")"))
print("  sampler            T     gen NLL (nats/token)   entropy   distinct-4   corrections   word share")
local vocabulary
local rows_of = {
  { run, { "ancestral" }, 0.9 }, { run, { "acs", eta = 0.05 }, 0.9 }, { run, { "ancestral" }, 0.7 },
  { run, { "acs", eta = 0.05 }, 0.7 }, { run, { "ancestral" }, 0.5 },
  { judge, { "ancestral" }, 0.8 }, { judge, { "ancestral" }, 0.7 },
}
for _, c in ipairs(rows_of) do
  local model, sp, temp = c[1], c[2], c[3]
  local s = model:sample{ sampler = sp, n = 16, temperature = temp, seed = 2 }
  local g = model:gen_eval{ judge = judge, samples = s }
  local corr = 0
  for _, x in ipairs(s) do corr = corr + x.corrections end
  local label = model == judge and "AR model (judge)" or (sp[1] .. (sp.eta and (" " .. sp.eta) or ""))
  print(("  %-16s %5.2f   %8.4f ± %.4f   %7.3f   %10.3f   %11.1f   %.3f ± %.3f (%d words)"):format(
    label, temp, g.gen_nll, g.gen_nll_se, g.entropy, g.distinct_4,
    corr / #s, g.word_share, g.word_share_se, g.words))
  vocabulary = g.word_vocabulary
end
print("  (the AR model's gen NLL is under itself: its own samples, so not comparable to the rows above)")
print(("  (word share against the %d distinct words of the training split)"):format(vocabulary))

local report = hdlm.db_path:gsub("[^/]*$", "") .. "report.html" -- next to the database
local ok = os.execute(("%q report %q -o %q > /dev/null"):format(hdlm.binary, hdlm.db_path, report))
print(("\nreport: %s%s"):format(report, ok and "" or " (FAILED to write)"))

print(("\n%s holds runs %d and %d, their metrics, checkpoints, evaluations and samples; try:"):format(hdlm.db_path, run.id, judge.id))
print(("  build/hdlm samples --run %d"):format(run.id))
print(("  build/hdlm sample --run %d sampler=acs eta=0.05 n=2"):format(run.id))
print(("  build/hdlm eval --run %d estimator=reference"):format(run.id))
print(("  build/hdlm query \"SELECT metric, value, std_error FROM evaluations WHERE run_id = %d\""):format(run.id))
print(("\nquickstart took %.0f s"):format(hdlm.time() - t_start))
