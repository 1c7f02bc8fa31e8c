-- Configurations that cannot work are refused before anything big is allocated, with the numbers:
-- heads that do not divide d_model, odd head sizes, a memory need above the machine's RAM (weights
-- + optimizer state, or activations), sampling/eval lengths above the model's seq_len.
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function refused(opts, pattern, what)
  local ok, err = pcall(function() return hdlm.open(":memory:"):train(opts) end)
  check(not ok and tostring(err):find(pattern), what .. ": " .. tostring(err))
end

local data = hdlm.random_corpus{ vocab = 50, n = 100000, valid = 1000 }
local function cfg(model, batch)
  return { data = data, objective = "ar", model = model, steps = 1, batch = batch or 2 }
end
refused(cfg{ d_model = 64, n_layer = 2, n_head = 3, seq_len = 64 }, "n_head 3 does not divide d_model 64", "heads")
refused(cfg{ d_model = 60, n_layer = 2, n_head = 4, seq_len = 64 }, "head size d_model/n_head = 15 must be even", "odd head size")
refused(cfg{ d_model = 8192, n_layer = 48, n_head = 64, seq_len = 64 }, "GiB of weights and optimizer state.*this machine has", "weights above RAM")
refused(cfg({ d_model = 64, n_layer = 2, n_head = 2, seq_len = 4096 }, 512), "needs about [0-9.]+ GiB.*this machine has", "activations above RAM")

-- the 2L layout with full context would let a block see its own clean tokens
refused({ data = data, noise = { "absorbing" }, schedule = { "block_annealing", width = 4, tau = 4 }, vectorised = true,
  context = "full", model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }, steps = 1, batch = 2 },
  "vectorised training with context 'full' leaks", "vectorised + full context")
refused({ data = data, noise = { "absorbing" }, schedule = { "block_annealing", width = 4, tau = 4 }, context_width = -2,
  model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }, steps = 1, batch = 2 }, "'context_width' must be >= 1", "context_width < 0")

-- lengths above the model's seq_len
local db = hdlm.open(":memory:")
local run = db:train{ data = data, noise = { "absorbing" }, schedule = { "autoregressive" }, model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }, steps = 2, batch = 2 }
local ok, err = pcall(run.sample, run, { length = 17 })
check(not ok and err:find("'length' must be in 1..16"), "sample length above seq_len: " .. tostring(err))
ok, err = pcall(run.eval, run, { length = 17, data = data })
check(not ok and err:find("'length' must be in 2..16"), "eval length above seq_len: " .. tostring(err))

print(("test_config_refusals: %d passed, %d failed"):format(passed, failed))
if failed > 0 then os.exit(1) end
