-- Claim #8 (README "Reproducing the paper's claims"): temperature trades quality for diversity: lower T gives lower generative
-- NLL and lower unigram entropy, monotonically. ε = 0.01 model of #4, 32 diffusion steps.
--   build/hdlm run experiments/paper/p8_temperature.lua [steps=1000] [quick=1]
local c = require "common"
c.header("#8 temperature", "lower T: lower generative NLL and lower unigram entropy, monotone")
local run = c.train{ tag = "p4", noise = { "epsilon_hybrid", epsilon = 0.01, lambda = 1 }, schedule = { "diffusion", tau = 32 }, seed = 1 }
local rows, nlls, ents = {}, {}, {}
for _, T in ipairs{ 0.7, 0.85, 1.0 } do
  local vals, es = {}, {}
  for _, seed in ipairs{ 1, 2 } do
    local g = c.generate(run, { sampler = "ancestral", temperature = T, seed = seed }, ("p8 T %g seed %d"):format(T, seed))
    vals[#vals + 1], es[#es + 1] = g.gen_nll, g.entropy
  end
  local m, sd = c.mean_sd(vals)
  local em = c.mean_sd(es)
  nlls[#nlls + 1], ents[#ents + 1] = m, em
  rows[#rows + 1] = { T, ("%.4f ± %.4f"):format(m, sd), ("%.3f"):format(em) }
end
c.table(("temperature sweep, %d samples x 2 seeds, float64 draws"):format(c.n_samples), { "T", "gen NLL (AR judge)", "entropy" }, rows)
print(("\nmonotone (NLL and entropy rise with T): %s"):format((nlls[1] <= nlls[2] and nlls[2] <= nlls[3] and ents[1] <= ents[2] and ents[2] <= ents[3]) and "yes" or "NO"))
