-- Data-parallel throughput: one training run on however many processes started it, e.g.
--   OMP_NUM_THREADS=1 build/hdlm run experiments/bench_mpi.lua db=/tmp/b.db
--   mpirun -np 2 -x OMP_NUM_THREADS=1 build/hdlm run experiments/bench_mpi.lua db=/tmp/b.db
-- (scripts/bench_mpi.sh runs 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread and
-- prints them side by side). The model is the quickstart's (ε-hybrid x block annealing, 2L
-- layout, d_model 128, 4 layers, seq_len 128, batch 16) on random tokens. Rank 0 prints one
--   RESULT world threads ms_per_step tokens_per_s allreduce_ms grad_MiB
-- line: medians over the steps after the third (the first ones allocate).
local hdlm = require "hdlm"

local args = hdlm.args
local steps = tonumber(args.steps or 30)
local threads = tonumber(args.threads or 1)
local db = hdlm.open(args.db or error("bench_mpi: pass db=PATH (the same path on every rank)"))
local data = hdlm.random_corpus{ vocab = 256, n = 1 << 20, seed = 1 }
local run = db:train{
  name = ("bench-mpi-%dx%d"):format(hdlm.world_size, threads), data = data, seed = 1,
  noise = { "epsilon_hybrid", epsilon = 0.01 }, schedule = { "block_annealing", width = 16, tau = 16 },
  vectorised = true, model = { d_model = 128, n_layer = 4, n_head = 4, seq_len = 128 },
  steps = steps, batch = 16, lr = 1e-3, warmup = 0, log_every = 1, ema = 0, threads = threads,
}
if hdlm.rank ~= 0 then return end -- rank 0 has the metrics and speaks for the job

local function median(name)
  local v = {}
  for _, r in ipairs(db:query("SELECT value FROM metrics WHERE run_id = ? AND name = ? AND step > 3 ORDER BY value", run.id, name)) do
    v[#v + 1] = r.value
  end
  return #v > 0 and v[(#v + 1) // 2] or 0
end
local step_s = median("step_time")
print(("RESULT %d %d %.2f %.0f %.3f %.2f"):format(hdlm.world_size, threads, step_s * 1000,
  16 * 128 / step_s, median("allreduce_time") * 1000, run.model.n_params * 4 / 1048576))
