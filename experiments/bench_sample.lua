-- Sampling throughput: tokens/s at batch 1 and 8, L = 256 and 512, for the autoregressive and
-- block_annealing(16) hyperschedules, with and without the KV cache, on the three model configs of
-- bench_train; then PyTorch's KV-cache sampler for the same models, side by side.
--   build/hdlm run experiments/bench_sample.lua [configs=a,b,c] [threads=2] [torch=true] [full=false]
--     [rounds=3] [grid=true]
--     [schedules=autoregressive,block_annealing] [lengths=256,512] [batches=1,8]
-- grid=false skips the grid and runs only the comparison with PyTorch.
-- bf16=true (the default when this hdlm can run bf16: oneDNN + AVX512_BF16) adds bf16 weights
-- against float32, cached, both schedules, batch 1 and 8, L 256, interleaved rounds (rounds=3).
-- Untrained weights (speed does not depend on them); ancestral sampler over the absorbing process.
-- Without full=true the uncached runs are batch 1 only (they are the slow baseline).
local hdlm = require "hdlm"
local args = hdlm.args
local threads = args.threads or 2
local CONFIGS = {
  a = { vocab = 256,  d_model = 256, n_layer = 4, n_head = 4 },
  b = { vocab = 256,  d_model = 384, n_layer = 6, n_head = 6 },
  c = { vocab = 8192, d_model = 512, n_layer = 8, n_head = 8 },
}
local function list(s, default)
  local out = {}
  for v in tostring(s or default):gmatch("[^,]+") do out[#out + 1] = tonumber(v) or v end
  return out
end
local want = list(args.configs, "a,b,c")
local lengths, batches = list(args.lengths, "256,512"), list(args.batches, "1,8")
local schedules = {}
for _, name in ipairs(list(args.schedules, "autoregressive,block_annealing")) do
  schedules[#schedules + 1] = name == "block_annealing" and { "block_annealing", width = 16, tau = 16 } or { name }
end

local dir = os.tmpname(); os.remove(dir)
local db = hdlm.open(dir .. ".db")
local host = db:run{ name = "bench_sample", kind = "bench", config = { threads = threads } }

local results = {}
print(("sampling throughput (tokens/s), %d threads, ancestral sampler, absorbing process"):format(threads))
print(("%-6s %-18s %5s %4s %9s %9s %8s"):format("config", "schedule", "L", "B", "cached", "uncached", "speed-up"))
for _, name in ipairs(args.grid ~= false and want or {}) do
  local c = CONFIGS[name] or error("unknown config " .. name)
  local model = hdlm.model{ vocab = c.vocab + 1, mask_id = c.vocab, d_model = c.d_model,
    n_layer = c.n_layer, n_head = c.n_head, seq_len = 512, seed = 1 }
  for _, sched in ipairs(schedules) do
    local run = db:attach{ run = host.id, model = model, noise = { "absorbing" }, schedule = sched,
      context = sched[1] == "autoregressive" and "causal" or "block_causal" }
    for _, L in ipairs(lengths) do
      for _, B in ipairs(batches) do
        local function rate(cache)
          local t0 = hdlm.time()
          run:sample{ n = B, length = L, cache = cache, events = false, seed = 1 }
          return B * L / (hdlm.time() - t0)
        end
        local cached = rate(true)
        local uncached = (B == 1 or args.full) and rate(false) or nil
        results[#results + 1] = { config = name, schedule = sched[1], L = L, B = B, cached = cached, uncached = uncached }
        print(("%-6s %-18s %5d %4d %9.0f %9s %8s"):format(name, sched[1], L, B, cached,
          uncached and ("%.0f"):format(uncached) or "-", uncached and ("%.1fx"):format(cached / uncached) or "-"))
      end
    end
  end
end

-- bf16 weights (model:set_precision) against float32, the same model and sampler; f32 and bf16
-- alternate within each round so a slow phase of the shared machine hits both.
local function median_of(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end
if args.bf16 ~= false then
  local probe = hdlm.model{ vocab = 16, d_model = 16, n_layer = 1, n_head = 2, seq_len = 8 }
  local ok, err = pcall(probe.set_precision, probe, "bf16")
  if not ok then
    print("\nbf16 weights left out: " .. tostring(err))
  else
    local rounds = args.rounds or 3
    local L = 256
    print(("\nbf16 weights vs float32, cached, L %d, %d threads, median of %d interleaved rounds (tokens/s)"):format(L, threads, rounds))
    print(("%-6s %-18s %4s %10s %10s %8s"):format("config", "schedule", "B", "f32", "bf16", "ratio"))
    for _, name in ipairs(want) do
      local c = CONFIGS[name]
      local model = hdlm.model{ vocab = c.vocab + 1, mask_id = c.vocab, d_model = c.d_model,
        n_layer = c.n_layer, n_head = c.n_head, seq_len = 512, seed = 1 }
      for _, sched in ipairs(schedules) do
        local run = db:attach{ run = host.id, model = model, noise = { "absorbing" }, schedule = sched,
          context = sched[1] == "autoregressive" and "causal" or "block_causal" }
        for _, B in ipairs(batches) do
          local r32, r16 = {}, {}
          for r = 1, rounds do
            for _, prec in ipairs{ "f32", "bf16" } do
              model:set_precision(prec)
              local t0 = hdlm.time()
              run:sample{ n = B, length = L, cache = true, events = false, seed = r }
              table.insert(prec == "f32" and r32 or r16, B * L / (hdlm.time() - t0))
            end
          end
          model:set_precision("f32")
          local a, b = median_of(r32), median_of(r16)
          print(("%-6s %-18s %4d %10.0f %10.0f %7.2fx"):format(name, sched[1], B, a, b, b / a))
        end
      end
    end
  end
end

-- hdlm vs PyTorch: autoregressive, batch 1, KV cache. Interleaved rounds (hdlm, torch, hdlm, ...)
-- and medians, as in bench_train: single decoding runs on this shared VM vary by 20-40%.
if args.torch ~= false and io.open("/usr/bin/python3") then
  local rounds = args.rounds or 3
  local function median(xs)
    table.sort(xs)
    local n = #xs
    if n == 0 then return nil end
    return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
  end
  local ar = {}
  for _, name in ipairs(want) do
    local c = CONFIGS[name]
    local model = hdlm.model{ vocab = c.vocab + 1, mask_id = c.vocab, d_model = c.d_model,
      n_layer = c.n_layer, n_head = c.n_head, seq_len = 512, seed = 1 }
    ar[name] = { run = db:attach{ run = host.id, model = model, noise = { "absorbing" },
      schedule = { "autoregressive" }, context = "causal" }, ours = {}, torch = {} }
  end
  for r = 1, rounds do
    for _, name in ipairs(want) do
      local L = name == "c" and 512 or 256
      -- the same protocol as the PyTorch script: one warm-up generation, median of 3 timed
      local runs = {}
      for k = 0, 3 do
        local t0 = hdlm.time()
        ar[name].run:sample{ n = 1, length = L, cache = true, events = false, seed = 10 * r + k }
        if k > 0 then runs[#runs + 1] = L / (hdlm.time() - t0) end
      end
      local ours = median(runs)
      local cmd = ("/usr/bin/python3 %q --mode sample --config %s --threads %d 2>/dev/null"):format(
        hdlm.script_dir .. "/../scripts/torch_reference.py", name, threads)
      local p = io.popen(cmd); local out = p:read("a"); p:close()
      local tps = tonumber(out:match('"tokens_per_s"%s*:%s*([%d%.eE+-]+)'))
      table.insert(ar[name].ours, ours)
      if tps then table.insert(ar[name].torch, tps) end
      io.stderr:write(("round %d: %s hdlm %.0f torch %s tok/s\n"):format(r, name, ours,
        tps and ("%.0f"):format(tps) or "-"))
    end
  end
  print(("\nautoregressive, batch 1, KV cache: hdlm vs PyTorch (scripts/torch_reference.py), median of %d interleaved rounds"):format(rounds))
  print(("%-6s %5s %12s %12s %8s"):format("config", "L", "hdlm tok/s", "torch tok/s", "ratio"))
  for _, name in ipairs(want) do
    local L = name == "c" and 512 or 256
    local ours, tps = median(ar[name].ours), median(ar[name].torch)
    print(("%-6s %5d %12.0f %12s %8s"):format(name, L, ours, tps and ("%.0f"):format(tps) or "-",
      tps and ("%.1fx"):format(ours / tps) or "-"))
  end
end
host:finish()
db:close()
os.remove(dir .. ".db"); os.remove(dir .. ".db-wal"); os.remove(dir .. ".db-shm")
