-- Bounds never go below the truth: small models trained on a seeded Markov source whose entropy
-- is known exactly (hdlm.synth). The entropy of a window of L symbols per symbol is
-- H_L = (H_1 + (L − 1)·H) / L (H_1 the stationary unigram entropy, H the entropy rate); every
-- schedule-consistent bound must stay >= H_L − 3 standard errors whatever the noise process and
-- schedule, and the autoregressive model must come close to H_L. A bound below the source's
-- entropy would be a bug, not a result.
local hdlm = require "hdlm"
-- Under ASan/UBSan (HDLM_SANITIZED=1) the models train briefly: the bounds must still hold (they
-- hold for any model), only the "AR comes close" check needs real training and is skipped.
local sanitized = os.getenv("HDLM_SANITIZED") == "1"
local STEPS, SEQS = sanitized and 40 or 250, sanitized and 16 or 96

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local src = hdlm.synth{ out = dir .. "/markov.txt", vocab = 6, order = 1, alpha = 0.3, n = 400000, seed = 3 }
local L = 32
local H, H1 = src.entropy_nats, src.unigram_nats
local HL = (src.context_nats + (L - 1) * H) / L -- order 1: the first symbol, then L - 1 transitions
print(("source: entropy rate %.4f nats, unigram %.4f, window entropy H_L %.4f nats/symbol"):format(H, H1, HL))
local data = hdlm.corpus{ path = src.path, tokenizer = "bytes", valid = 0.1 }
local db = hdlm.open(dir .. "/b.db")
local model = { d_model = 48, n_layer = 2, n_head = 2, seq_len = L }
local function train(noise, schedule, extra)
  local o = { data = data, noise = noise, schedule = schedule, model = model, steps = STEPS, batch = 16,
    lr = 3e-3, min_lr = 3e-4, warmup = 20, lr_schedule = "cosine", ema = 0.99, log_every = 50, seed = 1 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return db:train(o)
end

local cases = {
  { "AR (absorbing, autoregressive)", { "absorbing" }, { "autoregressive" }, { vectorised = true, context = "causal" } },
  { "MDLM (absorbing, one block)", { "absorbing" }, { "diffusion", tau = 16 } },
  { "block annealing w=8 (absorbing)", { "absorbing" }, { "block_annealing", width = 8, tau = 8 }, { vectorised = true } },
  { "eps-hybrid, block annealing w=8", { "epsilon_hybrid", epsilon = 0.05 }, { "block_annealing", width = 8, tau = 8 }, { vectorised = true } },
  { "uniform, one block", { "uniform" }, { "diffusion", tau = 16 } },
  { "gamma-hybrid 0, one block", { "gamma_hybrid", gamma = 0 }, { "diffusion", tau = 16 } },
  { "gamma-hybrid 0.01, block annealing w=8", { "gamma_hybrid", gamma = 0.01 }, { "block_annealing", width = 8, tau = 8 } },
  { "gamma-hybrid 0.05, one block", { "gamma_hybrid", gamma = 0.05 }, { "diffusion", tau = 16 } },
  { "MDLM continuous time", { "absorbing" }, { "diffusion", tau = 16, continuous = true } },
}
local ar_nats
for _, cs in ipairs(cases) do
  local run = train(cs[2], cs[3], cs[4])
  local b = run:eval{ sequences = SEQS, mc = cs[3].continuous and 32 or 0, seed = 5, batch = 16 }
  print(("%-34s bound %.4f ± %.4f nats/symbol (%s)"):format(cs[1], b.nats, b.se,
    b.continuous and "continuous time" or b.vectorised and "2L layout" or "per step"))
  check(b.nats >= HL - 3 * b.se, ("%s: bound %.4f >= H_L - 3 se = %.4f"):format(cs[1], b.nats, HL - 3 * b.se))
  check(b.prior_nats >= 0 and b.prior_nats < b.nats, ("%s: prior term %.5f is part of the bound"):format(cs[1], b.prior_nats))
  if cs[2][1] == "gamma_hybrid" then
    -- the prior: KL from the t = 1 marginal to the sampler's start (the same distribution averaged
    -- over the clean token), > 0; at γ = 0 it is A·log V exactly (A = e^{−σ(1)} = 0.005)
    check(b.prior_nats > 0, cs[1] .. ": prior term > 0")
    if cs[2].gamma == 0 then
      check(math.abs(b.prior_nats - 0.005 * math.log(256)) < 1e-9, ("gamma 0 prior %.9f = 0.005 log 256"):format(b.prior_nats))
    end
  end
  if cs[3][1] == "autoregressive" then ar_nats = b.nats end
  if cs[3].continuous then
    -- the discrete-time bound over many steps approaches the continuous-time one
    local d = run:eval{ sequences = SEQS, mc = 0, seed = 5, batch = 16, schedule = { "diffusion", tau = 128 }, store = false }
    check(math.abs(d.nats - b.nats) < 3 * math.sqrt(d.se ^ 2 + b.se ^ 2),
          ("continuous-time bound %.4f ~ 128-step bound %.4f"):format(b.nats, d.nats))
  end
end
check(sanitized or (ar_nats and ar_nats - HL < 0.08), ("the AR model comes close to the source: %.4f vs H_L %.4f"):format(ar_nats or -1, HL))

os.execute("rm -rf " .. dir)
print(("test_bound_entropy: %d passed, %d failed"):format(passed, failed))
if failed > 0 then os.exit(1) end
