-- Claim #2 (README "Reproducing the paper's claims"): hyperschedules interpolate between diffusion and autoregression. Block
-- annealing with widths L, L/4, L/16, 4 (τ = 16 levels per block) and the autoregressive end
-- point (width 1), ε = 0 (absorbing), equal token budget; the bound on held-out data is computed
-- consistently with each schedule (every step, the sampler's attention layout).
--   build/hdlm run experiments/paper/p2_hyperschedules.lua [steps=1000] [seeds=2] [quick=1]
local c = require "common"
c.header("#2 hyperschedules: diffusion -> autoregression",
  "the bound falls monotonically as the block width shrinks and approaches the AR NLL; w = L (MDLM) is worst; sampling steps grow as tau*L/w")

local L = c.L
local configs = {
  { label = ("w=%d (MDLM)"):format(L), schedule = { "block_annealing", width = L, tau = 16 }, vectorised = false },
  { label = ("w=%d"):format(L // 4), schedule = { "block_annealing", width = L // 4, tau = 16 }, vectorised = true },
  { label = ("w=%d"):format(L // 16), schedule = { "block_annealing", width = L // 16, tau = 16 }, vectorised = true },
  { label = "w=1 (AR)", schedule = { "autoregressive" }, vectorised = true },
}
local rows, bits = {}, {}
for i, cf in ipairs(configs) do
  local vals, steps = {}, 0
  for _, seed in ipairs(c.seeds) do
    local run = c.train{ tag = "p2", noise = { "absorbing" }, schedule = cf.schedule,
      vectorised = cf.vectorised, seed = seed }
    local b = c.bound(run, { label = "p2 " .. cf.label })
    vals[#vals + 1] = b.bits
    steps = b.steps
    io.stderr:write(("  %s seed %d: %.4f ± %.4f bits/byte\n"):format(cf.label, seed, b.bits, b.bits_se))
  end
  local m, sd = c.mean_sd(vals)
  bits[i] = m
  local per = {}
  for k, v in ipairs(vals) do per[k] = ("%.4f"):format(v) end
  rows[#rows + 1] = { cf.label, steps, ("%.4f"):format(m), ("%.4f"):format(sd), table.concat(per, " / ") }
end
c.table("bound (bits/byte) per schedule, mean and sd over seeds", { "schedule", "sampling steps", "bound", "sd", "per seed" }, rows)
local mono = true
for i = 2, #bits do mono = mono and bits[i] <= bits[i - 1] end
print(("\nmonotone decrease from w=L to AR: %s; w=L minus AR: %.4f bits/byte"):format(mono and "yes" or "NO", bits[1] - bits[#bits]))
