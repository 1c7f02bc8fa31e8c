-- Quickstart: prepare the default corpus, train a small autoregressive model on it (a few
-- minutes on 2 cores), print the loss curve and greedy samples; everything is recorded in runs.db.
--   build/hdlm run experiments/quickstart.lua [corpus=data/brown.txt] [steps=600]
local hdlm = require "hdlm"

local args = hdlm.args
local corpus_path = args.corpus or "data/brown.txt"
local steps = args.steps or 1200
local db = hdlm.open()

local t0 = hdlm.time()
local data = hdlm.corpus{ path = corpus_path, tokenizer = "bytes", valid = 0.05 }
print(("corpus: %s (%s tokenizer, vocabulary %d): %d train / %d valid tokens (%.2f s)"):format(
  corpus_path, data.tokenizer, data.vocab, data.n_train, data.n_valid, hdlm.time() - t0))

t0 = hdlm.time()
local run = db:train{
  name = "quickstart", data = data, objective = "ar", seed = 1,
  model = { d_model = 128, n_layer = 4, n_head = 4, seq_len = 128 },
  steps = steps, batch = 16, lr = 2e-3, min_lr = 2e-4, warmup = 50, lr_schedule = "cosine",
  weight_decay = 0.1, clip = 1.0, ema = 0.995,
  log_every = 10, eval_every = steps // 4, eval_batches = 8,
  checkpoint_dir = "checkpoints/quickstart", ckpt_every = steps // 2, resume = false,
}
local model = run.model
print(("trained %s in %.0f s (%.0f tokens/s), run %d"):format(tostring(model), hdlm.time() - t0,
  run.summary.tokens_per_s, run.id))

-- loss curve summary from the store
print("step   train loss   valid loss (nats/token; EMA weights for valid)")
local rows = db:query([[
  SELECT t.step, t.value AS train, v.value AS valid
  FROM metrics t LEFT JOIN metrics v ON v.run_id = t.run_id AND v.step = t.step AND v.name = 'valid_loss'
  WHERE t.run_id = ? AND t.name = 'loss' AND (t.step % ? = 0 OR t.step = 10) ORDER BY t.step]],
  run.id, math.max(10, steps // 10))
for _, r in ipairs(rows) do
  print(("%5d   %10.3f   %10s"):format(r.step, r.train, r.valid and ("%.3f"):format(r.valid) or ""))
end
local last = db:query("SELECT value FROM metrics WHERE run_id = ? AND name = 'valid_loss' ORDER BY step DESC LIMIT 1", run.id)[1]
if last then print(("final valid loss %.3f nats/token = %.3f bits/byte"):format(last.value, last.value / math.log(2))) end

print("\ngreedy samples (KV-cached autoregressive decoding):")
for _, prompt in ipairs{ "The ", "In the morning ", "He said that " } do
  local ids = model:generate{ prompt = data:encode(prompt), n = 80, temperature = 0 }
  print("  " .. data:decode(ids):gsub("\n", " "))
end
print("\nsampled at temperature 0.8:")
local ids = model:generate{ prompt = data:encode("The "), n = 100, temperature = 0.8, seed = 7 }
print("  " .. data:decode(ids):gsub("\n", " "))
print(("\nruns.db holds this run (id %d); try: build/hdlm query \"SELECT step, name, value FROM metrics WHERE run_id = %d LIMIT 20\""):format(run.id, run.id))
