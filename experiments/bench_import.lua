-- What the released models (hdlm-base-epsilon-0.01 / hdlm-base-gamma-0.01: DDiT 768 x 12, 12 heads,
-- GPT-2 vocabulary + mask, 1024 positions) cost on this machine: resident memory, one forward
-- over a 1024-token window, cached autoregressive and block-annealing sampling (tokens/s), and the
-- time of the bound (hdlm eval) per 1024-token sequence.
--   build/hdlm run experiments/bench_import.lua [family=both|epsilon|gamma]
--     [checkpoint=models/eps/model.safetensors]   (an imported model; default: random weights
--                                                   of the released shapes, same speed)
--     [ar_length=1024] [ba_length=1024] [ba_width=16] [ba_tau=4] [eval_mc=2] [forwards=2]
-- Speed does not depend on the weights, so without checkpoint= the model is random (untrained:
-- its samples are noise). The bound uses the released schedule (diffusion over the whole window,
-- τ = 1024 for ε and 2048 for γ) with eval_mc Monte-Carlo draws per sequence (mc = 0, every
-- step, would be τ forwards of the window: multiply the per-draw time by τ).
local hdlm = require "hdlm"
local a = hdlm.args
local threads = tonumber(os.getenv("OMP_NUM_THREADS") or "") or 2 -- OMP_NUM_THREADS=N to change

local function status(key)
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match(key .. ":%s*(%d+)")) / 1024 -- MiB
end

local V, MASK = 50257, 50257
local families = a.family == "epsilon" and { "epsilon" } or a.family == "gamma" and { "gamma" }
  or { "epsilon", "gamma" }
local rng = 12345
local function rand_tokens(n)
  local t = {}
  for i = 1, n do
    rng = (rng * 1103515245 + 12345) % 2147483648
    t[i] = rng % V
  end
  return t
end

local dir = os.tmpname(); os.remove(dir)
local db = hdlm.open(dir .. ".db")
local host = db:run{ name = "bench_import", kind = "bench", config = { threads = threads } }
local function loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("l") or "?"
  if f then f:close() end
  return s:match("^(%S+ %S+ %S+)") or s
end
print(("released-model shapes: d 768, 12 layers, 12 heads, V %d + mask, %d threads (load average %s)")
  :format(V, threads, loadavg()))

for _, fam in ipairs(families) do
  local gamma = fam == "gamma"
  local rss0 = status("VmRSS")
  local t0 = hdlm.time()
  local model = a.checkpoint and hdlm.model{ checkpoint = a.checkpoint }
    or hdlm.model{ vocab = V + 1, mask_id = MASK, d_model = 768, n_layer = 12, n_head = 12,
      seq_len = 1024, cond = gamma, gamma = 0.01, seed = 1 }
  local load_s = hdlm.time() - t0
  print(("\n%s: %d parameters, model %.0f MiB resident (load %.1f s)"):format(fam, model.n_params,
    status("VmRSS") - rss0, load_s))
  -- one forward over a full window (after one warm-up pass that sizes the activations)
  local tok = rand_tokens(1024)
  local sig = gamma and 1.0 or nil
  local best = math.huge
  for i = 1, (a.forwards or 2) do
    t0 = hdlm.time()
    model:forward(tok, { sigma = sig, logits = false })
    best = math.min(best, hdlm.time() - t0)
  end
  print(("  forward, 1024 tokens (bidirectional): %.2f s, peak resident %.0f MiB"):format(best,
    status("VmHWM")))
  local noise = gamma and { "gamma_hybrid", vocab = V, gamma = 0.01 }
    or { "epsilon_hybrid", vocab = V, epsilon = 0.01, lambda = 1.0 }
  local sampler = gamma and { "analytic" } or { "ancestral" }
  local function rate(schedule, context, L)
    local run = db:attach{ run = host.id, model = model, noise = noise, schedule = schedule,
      context = context }
    t0 = hdlm.time()
    local s = run:sample{ n = 1, length = L, cache = true, events = false, seed = 1,
      sampler = sampler }
    local dt = hdlm.time() - t0
    return L / dt, dt, s[1]
  end
  local L = a.ar_length or 1024
  local ok, r, dt, s = pcall(rate, { "autoregressive" }, "causal", L)
  if ok then
    print(("  autoregressive, KV cache, %d tokens: %.1f tokens/s (%.1f s, %d network passes)")
      :format(L, r, dt, s.nfe))
  else
    print("  autoregressive: " .. tostring(r))
  end
  L = a.ba_length or 1024
  local w, tau = a.ba_width or 16, a.ba_tau or 4
  ok, r, dt, s = pcall(rate, { "block_annealing", width = w, tau = tau }, "block_causal", L)
  if ok then
    print(("  block_annealing(w %d, tau %d), KV cache, %d tokens: %.1f tokens/s (%.1f s, %d network passes)")
      :format(w, tau, L, r, dt, s.nfe))
  else
    print("  block_annealing: " .. tostring(r))
  end
  -- the bound with the released schedule on one 1024-token sequence
  local sched = { "diffusion", tau = gamma and 2048 or 1024 }
  local run = db:attach{ run = host.id, model = model, noise = noise, schedule = sched,
    context = "block_causal" }
  local mc = a.eval_mc or 2
  t0 = hdlm.time()
  ok, r = pcall(run.eval, run, { tokens = { rand_tokens(1024) }, mc = mc, seed = 1, store = false })
  dt = hdlm.time() - t0
  if ok then
    print(("  bound (diffusion tau %d, %d draws): %.1f s per 1024-token sequence, %d network passes, %.2f s per pass")
      :format(sched.tau, mc, dt, r.forwards, dt / math.max(r.forwards, 1)))
  else
    print("  bound: " .. tostring(r))
  end
  print(("  peak resident %.0f MiB"):format(status("VmHWM")))
  model = nil
  collectgarbage()
end
print(("\nload average at the end: %s (other processes on these cores slow every figure)"):format(loadavg()))
host:finish()
db:close()
os.remove(dir .. ".db")
