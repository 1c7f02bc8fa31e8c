-- Threads on a shared machine: how long sampling and training take with each way for idle OpenMP
-- threads to wait, on a quiet machine and with a second CPU-bound process running (a busy loop),
-- against one thread alone. Each case is its own `hdlm run` process with the variable set, so
-- libgomp starts with it; hdlm's own default (GOMP_SPINCOUNT, base/threads.h) is the case
-- "hdlm default" (no variable set).
--   build/hdlm run experiments/bench_threads.lua [rounds=3] [threads=2] [steps=40] [length=256]
-- Prints per case the median over rounds (rounds interleave the cases, so drifts of the machine
-- hit every case alike) and the ratio to the 1-thread quiet time.
local hdlm = require "hdlm"
local args = hdlm.args
local rounds = math.tointeger(tonumber(args.rounds)) or 3
local threads = math.tointeger(tonumber(args.threads)) or 2
local steps = math.tointeger(tonumber(args.steps)) or 40
local length = math.tointeger(tonumber(args.length)) or 256
local exe = hdlm.binary

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
-- the workload: one process, times its own work (not start-up) and prints "sample S train T"
local work = dir .. "/work.lua"
local f = assert(io.open(work, "w"))
f:write(([[
local hdlm = require "hdlm"
local db = hdlm.open(%q)
local data = hdlm.random_corpus{ vocab = 64, n = 200000, valid = 2000, seed = 1 }
local model = hdlm.model{ vocab = 257, mask_id = 256, d_model = 256, n_layer = 4, n_head = 4, seq_len = %d, seed = 1 }
local host = db:run{ name = "bench_threads", kind = "bench" }
local run = db:attach{ run = host.id, model = model, noise = { "absorbing" }, schedule = { "autoregressive" }, context = "causal" }
local t0 = hdlm.time()
run:sample{ n = 1, length = %d, events = false, seed = 1 }
local ts = hdlm.time() - t0
t0 = hdlm.time()
db:train{ data = data, noise = { "absorbing" }, schedule = { "block_annealing", width = 16, tau = 16 }, vectorised = true,
  model = { d_model = 128, n_layer = 4, n_head = 4, seq_len = 128 }, steps = %d, batch = 16, lr = 1e-3, log_every = 1000, seed = 1 }
io.write(("sample %%.6f train %%.6f\n"):format(ts, hdlm.time() - t0))
]]):format(dir .. "/w.db", length, length, steps))
f:close()

local cases = {
  { "hdlm default (GOMP_SPINCOUNT=1000)", "" },
  { "libgomp default (spin 300000)", "GOMP_SPINCOUNT=300000" },
  { "GOMP_SPINCOUNT=10000", "GOMP_SPINCOUNT=10000" },
  { "OMP_WAIT_POLICY=passive", "OMP_WAIT_POLICY=passive" },
  { "hdlm default without adapting (OMP_DYNAMIC=false)", "OMP_DYNAMIC=false" },
}

local function run_case(envs, nthreads)
  local cmd = ("env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY -u OMP_DYNAMIC %s OMP_NUM_THREADS=%d HDLM_PROGRESS=off %s run %s 2>/dev/null")
    :format(envs, nthreads, exe, work)
  local p = io.popen(cmd); local out = p:read("a"); p:close()
  local s, t = out:match("sample ([%d.]+) train ([%d.]+)")
  if not s then error("workload failed: " .. cmd .. "\n" .. out) end
  return tonumber(s), tonumber(t)
end

-- a second CPU-bound process for the loaded case
local function load_start()
  local p = io.popen("sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!")
  local pid = p:read("l"); p:close()
  return pid
end
local function load_stop(pid) os.execute("kill " .. pid .. " 2>/dev/null") end

local times = {} -- times[key] = { sample = {...}, train = {...} }
local function add(key, s, t)
  times[key] = times[key] or { sample = {}, train = {} }
  table.insert(times[key].sample, s); table.insert(times[key].train, t)
end
for r = 1, rounds do
  local s, t = run_case("", 1)
  add("1 thread, quiet", s, t)
  for _, c in ipairs(cases) do
    s, t = run_case(c[2], threads); add(c[1] .. ", quiet", s, t)
  end
  local pid = load_start()
  s, t = run_case("", 1); add("1 thread, loaded", s, t)
  for _, c in ipairs(cases) do
    s, t = run_case(c[2], threads); add(c[1] .. ", loaded", s, t)
  end
  load_stop(pid)
  io.stderr:write(("round %d of %d done\n"):format(r, rounds))
end

local function median(xs)
  local c = {}
  for i, x in ipairs(xs) do c[i] = x end
  table.sort(c)
  return c[(#c + 1) // 2]
end
local base = times["1 thread, quiet"]
local bs, bt = median(base.sample), median(base.train)
print(("threads on a shared machine: %d threads, medians of %d interleaved rounds"):format(threads, rounds))
print(("sample = AR decoding of %d tokens (d 256, 4 layers, KV cache); train = %d steps (d 128, 4 layers, batch 16 x 128)"):format(length, steps))
print(("%-52s %10s %8s %10s %8s"):format("case", "sample s", "vs 1T", "train s", "vs 1T"))
local order = { "1 thread, quiet" }
for _, c in ipairs(cases) do order[#order + 1] = c[1] .. ", quiet" end
order[#order + 1] = "1 thread, loaded"
for _, c in ipairs(cases) do order[#order + 1] = c[1] .. ", loaded" end
for _, k in ipairs(order) do
  local s, t = median(times[k].sample), median(times[k].train)
  print(("%-52s %10.3f %7.2fx %10.3f %7.2fx"):format(k, s, s / bs, t, t / bt))
end
os.execute("rm -rf " .. dir)
