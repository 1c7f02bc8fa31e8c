-- A small sweep: learning rate x block width of the ε-hybrid process under block annealing, on
-- the default corpus, with a tiny model (~30 s per point on one core); each finished run gets the
-- held-out NLL bound consistent with its schedule. Run it with two workers (one core each):
--   build/hdlm sweep experiments/sweep_example.lua --workers 2
--   build/hdlm sweep --status lr-width            (from another terminal, or afterwards)
-- Interrupt it (Ctrl-C, kill -9) and run the same command again: finished points are kept,
-- interrupted ones resume from their last checkpoint (checkpoints/lr-width/<point>/).
return {
  name = "lr-width",
  description = "learning rate x block width, eps-hybrid + block annealing, tiny model, Brown corpus",
  base = {
    data = "data/brown.txt",                          -- or { path = ..., tokenizer = "text8" }
    noise = { "epsilon_hybrid", epsilon = 0.01 },
    schedule = { "block_annealing", width = 16 },
    vectorised = true,
    model = { d_model = 64, n_layer = 2, n_head = 2, seq_len = 64 },
    steps = 800, batch = 16, warmup = 50, min_lr = 1e-4, lr_schedule = "cosine",
    weight_decay = 0.1, clip = 1.0, ema = 0.99, log_every = 10, seed = 1,
    ckpt_every = 100,
  },
  grid = {
    lr = { 1e-3, 3e-3 },
    ["schedule.width"] = { 8, 16 },                   -- dotted keys reach into nested options
  },
  eval = { sequences = 32, mc = 4 },                  -- run:eval options for each finished run
  after = function(run, point)                        -- optional; its value is stored with the point
    return { tokens_per_s = math.floor(run.summary.tokens_per_s or 0) }
  end,
}
