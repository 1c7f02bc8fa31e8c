-- Claim #6 (README "Reproducing the paper's claims"): more sampling steps give better samples, saturating; entropy stays roughly
-- stable. ε = 0.01 model of #4, whole-sequence diffusion sampling with 8..128 steps, ancestral.
--   build/hdlm run experiments/paper/p6_steps.lua [steps=1000] [quick=1]
local c = require "common"
c.header("#6 steps vs quality", "generative NLL decreases with sampling steps and saturates; entropy roughly stable")
local run = c.train{ tag = "p4", noise = { "epsilon_hybrid", epsilon = 0.01, lambda = 1 }, schedule = { "diffusion", tau = 32 }, seed = 1 }
local rows = {}
for _, steps in ipairs(c.quick and { 8, 32 } or { 8, 16, 32, 64, 128 }) do
  local vals, ents = {}, {}
  for _, seed in ipairs{ 1, 2 } do
    local g = c.generate(run, { sampler = "ancestral", schedule = { "diffusion", tau = steps }, seed = seed },
      ("p6 steps %d seed %d"):format(steps, seed))
    vals[#vals + 1], ents[#ents + 1] = g.gen_nll, g.entropy
  end
  local m, sd = c.mean_sd(vals)
  rows[#rows + 1] = { steps, ("%.4f ± %.4f"):format(m, sd), ("%.3f"):format(c.mean_sd(ents)) }
end
c.table(("generative NLL (nats/byte, AR judge), mean ± sd over 2 sampling seeds of %d samples"):format(c.n_samples),
  { "steps", "gen NLL", "entropy" }, rows)
