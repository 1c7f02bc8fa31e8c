-- Shared set-up of the reproduction suite (README "Reproducing the paper's claims"): the corpus, the model size, the training
-- budget, a get-or-train cache of runs in runs.db (so that later claims reuse earlier models), the
-- autoregressive judge, and table printing. Every script takes key=value arguments:
--   corpus=data/brown.txt  steps=N (training steps per model)  seeds=2  quick=1 (a smoke run)
local hdlm = require "hdlm"
local hdlm_run = require "hdlm_run"

local M = {}
local a = hdlm.args
M.args = a
M.quick = a.quick ~= nil and a.quick ~= 0 and a.quick ~= "0"
M.db = hdlm.open()
M.data = hdlm.corpus{ path = a.corpus or "data/brown.txt", tokenizer = "bytes", valid = 0.05 }
M.L = 64
M.model = { d_model = 96, n_layer = 3, n_head = 3, seq_len = M.L }
M.steps = math.tointeger(a.steps) or (M.quick and 20 or 1000)
M.batch = 16
M.seeds = {}
for s = 1, math.tointeger(a.seeds) or (M.quick and 1 or 2) do M.seeds[s] = s end
M.eval_sequences = M.quick and 8 or 128
M.n_samples = M.quick and 4 or 32

local function key_of(spec)
  local parts = { spec[1] }
  local keys = {}
  for k in pairs(spec) do if type(k) == "string" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(spec[k]) end
  return table.concat(parts, ",")
end
M.key_of = key_of

-- Trains a model (or reuses a finished run of the same name): noise and schedule specs, seed.
-- The name encodes everything that defines the run, so a re-run of a script skips training.
function M.train(opts)
  local vec = opts.vectorised
  local name = ("paper/%s/%s/%s/seed%d/steps%d/L%d"):format(opts.tag or "m", key_of(opts.noise),
    key_of(opts.schedule), opts.seed or 1, M.steps, M.L)
  local row = M.db:query("SELECT id FROM runs WHERE name = ? AND status = 'done' ORDER BY id DESC LIMIT 1", name)[1]
  if row then
    local ok, run = pcall(hdlm_run.load, M.db, row.id)
    if ok then return run, true end
  end
  local t0 = hdlm.time()
  local run = M.db:train{
    name = name, data = M.data, seed = opts.seed or 1,
    noise = opts.noise, schedule = opts.schedule, vectorised = vec, context = opts.context,
    model = M.model, steps = M.steps, batch = M.batch, lr = 2e-3, min_lr = 2e-4,
    warmup = math.min(50, M.steps // 5), lr_schedule = "cosine", weight_decay = 0.1, clip = 1.0,
    ema = 0.995, log_every = 10, eval_every = math.max(1, M.steps // 5), eval_batches = 4,
    checkpoint_dir = "checkpoints/" .. name, ckpt_every = M.steps, resume = false,
  }
  io.stderr:write(("  trained %s in %.0f s (%.0f tokens/s)\n"):format(name, hdlm.time() - t0,
    run.summary.tokens_per_s))
  -- reload from the checkpoint so that a fresh and a reused run behave identically
  return hdlm_run.load(M.db, run.id), false
end

-- The reference scorer: the same model size trained with the autoregressive schedule.
function M.judge()
  if not M._judge then
    M._judge = M.train{ tag = "judge", noise = { "absorbing" }, schedule = { "autoregressive" },
      vectorised = true, context = "causal", seed = 1 }
  end
  return M._judge
end

-- The schedule-consistent bound on held-out data (every step; Monte-Carlo over the noise only).
function M.bound(run, extra)
  local o = { sequences = M.eval_sequences, mc = 0, seed = 7, batch = 16 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return run:eval(o)
end

-- Samples with a sampler and returns the generation metrics under the judge.
function M.generate(run, opts, label)
  local o = { n = M.n_samples, length = M.L, seed = opts.seed or 1, events = opts.events or false }
  for k, v in pairs(opts) do o[k] = v end
  local s = run:sample(o)
  local g = run:gen_eval{ judge = M.judge(), samples = s, label = label }
  local corr = 0
  for _, x in ipairs(s) do corr = corr + x.corrections end
  g.corrections = corr / #s
  g.text = s[1].text
  -- how spread out the denoising is: the share of the steps that unmask at least one position
  -- (per sample, averaged): 1/steps for a one-shot sampler, up to 1 when every step unmasks
  local spread = 0
  for _, x in ipairs(s) do
    local r = M.db:query("SELECT count(DISTINCT step) AS n FROM sample_events WHERE sample_id = ? AND kind = 'unmask'", x.id)[1]
    spread = spread + (r.n or 0) / math.max(1, x.steps or 1)
  end
  g.unmask_spread = spread / #s
  return g
end

function M.mean_sd(xs)
  local n, s, q = #xs, 0, 0
  for _, x in ipairs(xs) do s = s + x end
  local m = s / n
  for _, x in ipairs(xs) do q = q + (x - m) ^ 2 end
  return m, n > 1 and math.sqrt(q / (n - 1)) or 0
end

-- Prints a table: header (array of names) and rows (arrays of strings/numbers).
function M.table(title, header, rows)
  print("\n" .. title)
  local w = {}
  local function cell(v)
    if type(v) == "number" then
      return math.type(v) == "integer" and tostring(v) or ("%.4f"):format(v)
    end
    return tostring(v)
  end
  for i, h in ipairs(header) do w[i] = #h end
  for _, r in ipairs(rows) do for i, v in ipairs(r) do w[i] = math.max(w[i], #cell(v)) end end
  local function line(r)
    local out = {}
    for i, v in ipairs(r) do out[i] = ("%-" .. w[i] .. "s"):format(cell(v)) end
    print("| " .. table.concat(out, " | ") .. " |")
  end
  line(header)
  local sep = {}
  for i = 1, #header do sep[i] = ("-"):rep(w[i]) end
  print("|-" .. table.concat(sep, "-|-") .. "-|")
  for _, r in ipairs(rows) do line(r) end
end

function M.header(title, claim)
  print(("== %s ==\nclaim: %s\nsetup: corpus %s (%d train tokens), model d=%d x %d layers, L=%d, %d steps x batch %d per model, seeds %s%s")
    :format(title, claim, a.corpus or "data/brown.txt", M.data.n_train, M.model.d_model, M.model.n_layer,
      M.L, M.steps, M.batch, table.concat(M.seeds, ","), M.quick and " (QUICK smoke run: numbers mean nothing)" or ""))
end

return M
