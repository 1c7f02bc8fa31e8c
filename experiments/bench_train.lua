-- Training throughput: hdlm vs PyTorch on the same CPU, side by side in one run.
--   build/hdlm run experiments/bench_train.lua [configs=a,b,c] [steps=10] [torch=true] [threads=2]
-- Each config trains in its own process (so peak RSS is per config): bidirectional attention with
-- per-token σ conditioning (adaLN + RADD input mix), masked-token loss, AdamW, 2 threads.
-- Then scripts/torch_reference.py trains the identical model with torch.set_num_threads(2).
local hdlm = require "hdlm"

local CONFIGS = {
  a = { vocab = 256,  d_model = 256, n_layer = 4, n_head = 4, seq_len = 256, batch = 8 },
  b = { vocab = 256,  d_model = 384, n_layer = 6, n_head = 6, seq_len = 256, batch = 8 },
  c = { vocab = 8192, d_model = 512, n_layer = 8, n_head = 8, seq_len = 512, batch = 4 },
}
local args = hdlm.args
local steps = args.steps or 10
local threads = args.threads or 2

-- FLOPs per step, the same count as scripts/torch_reference.py and perf-baseline.md:
-- 6·N_mm·tokens + 12·n_layer·T·d·tokens, N_mm = matmul weights (+ conditioning matmuls).
local function gflop_per_step(c)
  local V = c.vocab + 1
  local nmm = c.n_layer * 12 * c.d_model ^ 2 + V * c.d_model
            + 256 * 128 + 128 * 128 + c.n_layer * 128 * 6 * c.d_model
  local tokens = c.batch * c.seq_len
  return (6 * nmm * tokens + 12 * c.n_layer * c.seq_len * c.d_model * tokens) / 1e9
end

local function peak_rss_mib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) / 1024 end
  end
end

if args.one then -- child: one config, prints one RESULT line
  local c = CONFIGS[args.one] or error("unknown config " .. tostring(args.one))
  local dir = os.tmpname(); os.remove(dir)
  local db = hdlm.open(dir .. ".db")
  local data = hdlm.random_corpus{ vocab = c.vocab, n = 1 << 20, seed = 1 }
  local run = db:train{ name = "bench-" .. args.one, data = data, objective = "mask",
    model = { d_model = c.d_model, n_layer = c.n_layer, n_head = c.n_head, seq_len = c.seq_len, cond = true },
    steps = steps + 3, batch = c.batch, lr = 3e-4, warmup = 0, log_every = 1, threads = threads, ema = 0 }
  local rates = {}
  for _, r in ipairs(db:query("SELECT value FROM metrics WHERE run_id = ? AND name = 'step_time' AND step > 3 ORDER BY value", run.id)) do
    rates[#rates + 1] = r.value
  end
  local ms = rates[(#rates + 1) // 2] * 1000
  local tok = c.batch * c.seq_len / (ms / 1000)
  print(("RESULT %s %.2f %.1f %.2f %.1f %d"):format(args.one, ms, tok, gflop_per_step(c) / (ms / 1000),
    peak_rss_mib(), run.model.n_params))
  db:close(); os.remove(dir .. ".db"); os.remove(dir .. ".db-wal"); os.remove(dir .. ".db-shm")
  return
end

local want = {}
for name in (args.configs or "a,b,c"):gmatch("[^,]+") do want[#want + 1] = name end

local ours = {}
for _, name in ipairs(want) do
  local cmd = ("OMP_NUM_THREADS=%d %q run %q one=%s steps=%d 2>/dev/null"):format(
    threads, hdlm.binary, hdlm.source_dir .. "/experiments/bench_train.lua", name, steps)
  local p = io.popen(cmd)
  for line in p:lines() do
    local cfg, ms, tok, gf, rss, np = line:match("^RESULT (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)")
    if cfg then ours[cfg] = { ms = tonumber(ms), tok = tonumber(tok), gflops = tonumber(gf), rss = tonumber(rss), params = tonumber(np) } end
  end
  p:close()
  if not ours[name] then error("benchmark child for config " .. name .. " failed: " .. cmd) end
end

local torch = {}
if args.torch ~= false and io.open("/usr/bin/python3") then
  local cmd = ("/usr/bin/python3 %q --mode train --config %s --threads %d --steps %d 2>/dev/null"):format(
    hdlm.source_dir .. "/scripts/torch_reference.py", args.configs or "all", threads, steps)
  local p = io.popen(cmd)
  local out = p:read("a"); p:close()
  for cfg, body in out:gmatch('"config"%s*:%s*"(%w)"(.-)}') do
    torch[cfg] = {
      ms = tonumber(body:match('"step_ms"%s*:%s*([%d%.eE+-]+)')),
      tok = tonumber(body:match('"tokens_per_s"%s*:%s*([%d%.eE+-]+)')),
      rss = tonumber(body:match('"peak_rss_mib"%s*:%s*([%d%.eE+-]+)')),
    }
  end
end

print(("training throughput, %d threads, median of %d steps (bidirectional + per-token conditioning)"):format(threads, steps))
print(("%-6s %10s %12s %9s %10s | %12s %10s | %8s %9s"):format(
  "config", "params", "hdlm tok/s", "GFLOP/s", "RSS MiB", "torch tok/s", "torch MiB", "speed-up", "mem ratio"))
for _, name in ipairs(want) do
  local o, t = ours[name], torch[name] or {}
  print(("%-6s %10d %12.0f %9.1f %10.0f | %12s %10s | %8s %9s"):format(name, o.params, o.tok, o.gflops, o.rss,
    t.tok and ("%.0f"):format(t.tok) or "-", t.rss and ("%.0f"):format(t.rss) or "-",
    t.tok and ("%.2fx"):format(o.tok / t.tok) or "-", t.rss and ("%.2f"):format(o.rss / t.rss) or "-"))
end
