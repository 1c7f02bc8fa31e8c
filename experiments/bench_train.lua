-- Training throughput: hdlm vs PyTorch on the same CPU, side by side in one run.
--   build/hdlm run experiments/bench_train.lua [configs=a,b,c] [steps=10] [rounds=3] [torch=true]
--     [threads=2] [precisions=f32,bf16]
-- precision bf16 (needs oneDNN and AVX512_BF16; left out with a note otherwise) trains with bf16
-- products; PyTorch then also runs under torch.autocast("cpu", dtype=torch.bfloat16).
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
    steps = steps + 3, batch = c.batch, lr = 3e-4, warmup = 0, log_every = 1, threads = threads, ema = 0,
    precision = args.precision or "f32" }
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


-- One round: every config in its own hdlm process, then PyTorch on the same configs. Rounds are
-- interleaved (hdlm, torch, hdlm, torch, ...) so a slow phase of this shared VM hits both systems,
-- and the table reports per-config medians over the rounds (single processes vary by 10-25%).
local function run_ours(name, prec)
  local cmd = ("OMP_NUM_THREADS=%d %q run %q one=%s steps=%d precision=%s 2>/dev/null"):format(
    threads, hdlm.binary, hdlm.script_dir .. "/bench_train.lua", name, steps, prec)
  local p = io.popen(cmd)
  local r
  for line in p:lines() do
    local cfg, ms, tok, gf, rss, np = line:match("^RESULT (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)")
    if cfg then r = { ms = tonumber(ms), tok = tonumber(tok), gflops = tonumber(gf), rss = tonumber(rss), params = tonumber(np) } end
  end
  p:close()
  if not r then error("benchmark child for config " .. name .. " failed: " .. cmd) end
  return r
end

local function run_torch(prec)
  local out_t = {}
  -- torch_reference.py takes one config or "all"
  local out = ""
  for _, name in ipairs(args.configs and want or { "all" }) do
    local cmd = ("/usr/bin/python3 %q --mode train --config %s --threads %d --steps %d%s 2>/dev/null"):format(
      hdlm.script_dir .. "/../scripts/torch_reference.py", name, threads, steps,
      prec == "bf16" and " --autocast-bf16" or "")
    local p = io.popen(cmd)
    out = out .. p:read("a"); p:close()
  end
  for cfg, body in out:gmatch('"config"%s*:%s*"(%w)"(.-)}') do
    out_t[cfg] = {
      ms = tonumber(body:match('"step_ms"%s*:%s*([%d%.eE+-]+)')),
      tok = tonumber(body:match('"tokens_per_s"%s*:%s*([%d%.eE+-]+)')),
      rss = tonumber(body:match('"peak_rss_mib"%s*:%s*([%d%.eE+-]+)')),
    }
  end
  return out_t
end

local function median(xs)
  if #xs == 0 then return nil end
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

-- bf16 is measured when this hdlm can run it (a short probe run says why not otherwise)
local precs = {}
for p in tostring(args.precisions or "f32,bf16"):gmatch("[^,]+") do
  if p == "bf16" then
    local probe = io.popen(("%q run %q one=a steps=1 precision=bf16 2>&1"):format(hdlm.binary,
      hdlm.script_dir .. "/bench_train.lua"))
    local out = probe:read("a"); probe:close()
    if out:find("RESULT", 1, true) then precs[#precs + 1] = p
    else print("bf16 left out: " .. (out:match("(needs[^\n]*)") or out)) end
  else
    precs[#precs + 1] = p
  end
end

local rounds = args.rounds or 3
local use_torch = args.torch ~= false and io.open("/usr/bin/python3") ~= nil
local samples = {} -- samples[cfg][prec] = { ours = {...}, torch = {...} }
for _, name in ipairs(want) do
  samples[name] = {}
  for _, p in ipairs(precs) do samples[name][p] = { ours = {}, torch = {} } end
end
for r = 1, rounds do
  for _, p in ipairs(precs) do
    for _, name in ipairs(want) do
      local o = run_ours(name, p)
      table.insert(samples[name][p].ours, o)
      io.stderr:write(("round %d: hdlm %s %s %.0f tok/s\n"):format(r, p, name, o.tok))
    end
    if use_torch then
      local t = run_torch(p)
      for _, name in ipairs(want) do
        if t[name] then
          table.insert(samples[name][p].torch, t[name])
          io.stderr:write(("round %d: torch %s %s %.0f tok/s\n"):format(r, p, name, t[name].tok))
        end
      end
    end
  end
end

local function med_of(list, key)
  local xs = {}
  for _, x in ipairs(list) do if x[key] then xs[#xs + 1] = x[key] end end
  return median(xs)
end
local function loadavg()
  local f = io.open("/proc/loadavg")
  local l = f and f:read("l") or "?"
  if f then f:close() end
  return l
end

print(("training throughput, %d threads, median of %d steps per process, median of %d rounds (bidirectional + per-token conditioning); load average at the end: %s"):format(threads, steps, rounds, loadavg()))
print("torch bf16 = torch.autocast(\"cpu\", dtype=torch.bfloat16); hdlm bf16 = precision \"bf16\"")
print(("%-6s %-5s %10s %12s %9s %10s | %12s %10s | %8s %9s"):format(
  "config", "prec", "params", "hdlm tok/s", "GFLOP/s", "RSS MiB", "torch tok/s", "torch MiB", "speed-up", "mem ratio"))
local summary = {}
for _, name in ipairs(want) do
  for _, p in ipairs(precs) do
    local so, st = samples[name][p].ours, samples[name][p].torch
    local o = { tok = med_of(so, "tok"), gflops = med_of(so, "gflops"), rss = med_of(so, "rss"), params = so[1].params }
    local t = #st > 0 and { tok = med_of(st, "tok"), rss = med_of(st, "rss") } or {}
    summary[name .. p] = { o = o, t = t }
    print(("%-6s %-5s %10d %12.0f %9.1f %10.0f | %12s %10s | %8s %9s"):format(name, p, o.params, o.tok, o.gflops, o.rss,
      t.tok and ("%.0f"):format(t.tok) or "-", t.rss and ("%.0f"):format(t.rss) or "-",
      t.tok and ("%.2fx"):format(o.tok / t.tok) or "-", t.rss and ("%.2f"):format(o.rss / t.rss) or "-"))
  end
end
if summary[want[1] .. "bf16"] and summary[want[1] .. "f32"] then
  print("hdlm bf16 against: hdlm f32, torch autocast-bf16 (target >= 1.5x), torch f32 (target >= 3x)")
  for _, name in ipairs(want) do
    local b, f = summary[name .. "bf16"], summary[name .. "f32"]
    print(("%-6s %8.2fx %8s %8s"):format(name, b.o.tok / f.o.tok,
      b.t.tok and ("%.2fx"):format(b.o.tok / b.t.tok) or "-", f.t.tok and ("%.2fx"):format(b.o.tok / f.t.tok) or "-"))
  end
end
