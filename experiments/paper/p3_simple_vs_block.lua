-- Claim #3 (README "Reproducing the paper's claims"): simple vs block annealing at the same budget, w = 16, τ = 16: similar
-- bounds, both better than one block (w = L); simple annealing needs L + w − 1 steps (here with τ
-- = w: τ·(L/w) + ... see the table) vs τ·L/w for block annealing. Block annealing is trained both
-- with the 2L layout (every block per pass, the default) and with one drawn step per sequence as
-- simple annealing must be, to separate the schedule from the training layout.
--   build/hdlm run experiments/paper/p3_simple_vs_block.lua [steps=1000] [seeds=2] [quick=1]
local c = require "common"
c.header("#3 simple vs block annealing", "similar bounds at w = 16, tau = 16; both beat w = L; steps L+w-1 (simple) vs tau*L/w (block)")
local L = c.L
local configs = {
  { label = "block annealing w=16", schedule = { "block_annealing", width = 16, tau = 16 }, vectorised = true },
  { label = "block annealing w=16, per-step training", schedule = { "block_annealing", width = 16, tau = 16 }, vectorised = false, tag = "p3" },
  { label = "simple annealing w=16", schedule = { "simple_annealing", width = 16, tau = 16 }, vectorised = false, context = "causal" },
  { label = ("one block w=%d"):format(L), schedule = { "block_annealing", width = L, tau = 16 }, vectorised = false },
}
local rows = {}
for _, cf in ipairs(configs) do
  local vals, steps = {}, 0
  for _, seed in ipairs(c.seeds) do
    -- p2 trains the block w=16 and w=L models with the same settings: reuse them (tag p2)
    local run = c.train{ tag = cf.tag or (cf.context and "p3" or "p2"), noise = { "absorbing" }, schedule = cf.schedule,
      vectorised = cf.vectorised, context = cf.context, seed = seed }
    local b = c.bound(run, { label = "p3 " .. cf.label })
    vals[#vals + 1] = b.bits
    steps = b.steps
    io.stderr:write(("  %s seed %d: %.4f ± %.4f bits/byte\n"):format(cf.label, seed, b.bits, b.bits_se))
  end
  local m, sd = c.mean_sd(vals)
  local per = {}
  for k, v in ipairs(vals) do per[k] = ("%.4f"):format(v) end
  rows[#rows + 1] = { cf.label, steps, ("%.4f"):format(m), ("%.4f"):format(sd), table.concat(per, " / ") }
end
c.table("bound (bits/byte), mean and sd over seeds", { "schedule", "sampling steps", "bound", "sd", "per seed" }, rows)
