-- Every noise x schedule pair trains through db:train (tiny model, a few steps): finite losses,
-- run_plugins provenance recorded, the vectorised layout refused where it cannot apply, resumed
-- method runs refuse a changed noise process.
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 300 do f:write(("%d: a small corpus for method training tests, line after line.\n"):format(i)) end
f:close()
local data = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
local db = hdlm.open(dir .. "/t.db")

local noises = { { "absorbing" }, { "uniform" }, { "epsilon_hybrid", epsilon = 0.05 }, { "gamma_hybrid", gamma = 0.05 } }
local schedules = { { "autoregressive" }, { "diffusion", tau = 4 }, { "diffusion", tau = 4, continuous = true },
                    { "block_annealing", width = 4, tau = 4 }, { "simple_annealing", width = 4, tau = 4 },
                    { "hybrid_annealing", width = 4, tau = 4 } }
for _, noise in ipairs(noises) do
  for _, sched in ipairs(schedules) do
    for _, vec in ipairs{ false, true } do
      local blocky = sched[1] == "autoregressive" or sched[1] == "block_annealing" or sched[1] == "hybrid_annealing"
      local what = noise[1] .. " x " .. sched[1] .. (vec and " (vectorised)" or "")
      local ok, run = pcall(db.train, db, { data = data, noise = noise, schedule = sched, vectorised = vec,
        model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }, steps = 3, batch = 2,
        log_every = 1, ema = 0, low_discrepancy = true, seed = 5 })
      if vec and not blocky then
        check(not ok and tostring(run):find("vectorised", 1, true), what .. " refused: " .. tostring(run))
      else
        check(ok, what .. ": " .. tostring(run))
        if ok then
          local rows = db:query("SELECT value FROM metrics WHERE run_id = ? AND name = 'loss'", run.id)
          local finite = #rows == 3
          for _, r in ipairs(rows) do finite = finite and r.value == r.value and r.value < math.huge end
          check(finite, what .. " finite losses")
          local pl = db:query("SELECT kind, name, hash FROM run_plugins WHERE run_id = ? ORDER BY kind", run.id)
          check(#pl == 2 and pl[1].name == noise[1] and pl[2].name == sched[1] and #pl[1].hash == 64,
                what .. " run_plugins")
        end
      end
    end
  end
end

-- a schedule written in Lua trains like a plugin
local lua_sched = hdlm.schedule{ name = "lua_blocks", n_levels = 2, growth = "blocks", block = 16,
  n_steps = function(L) return 1 end,
  levels = function(step, L) local lv = {} for i = 1, L do lv[i] = 1 end return lv, 0 end }
local ok, run = pcall(db.train, db, { data = data, noise = { "absorbing" }, schedule = lua_sched,
  model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }, steps = 2, batch = 2, ema = 0, log_every = 1 })
check(ok, "Lua schedule trains: " .. tostring(run))

-- resume refuses another noise process
local ck = dir .. "/ck"
local base = { data = data, schedule = { "block_annealing", width = 4 }, checkpoint_dir = ck, ckpt_every = 2,
  model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 16 }, steps = 2, batch = 2, ema = 0 }
base.noise = { "absorbing" }
check(pcall(db.train, db, base), "checkpointed method run")
base.noise = { "epsilon_hybrid" } -- only the noise process differs
local ok2, err2 = pcall(db.train, db, base)
check(not ok2 and tostring(err2):find("different config", 1, true), "resume with another noise refused: " .. tostring(err2))

-- bad pairings and options
local ok3, err3 = pcall(db.train, db, { data = data, noise = { "absorbing" }, model = { seq_len = 16 } })
check(not ok3 and tostring(err3):find("'schedule' is required", 1, true), "schedule required: " .. tostring(err3))
local ok4, err4 = pcall(db.train, db, { data = data, noise = { "absorbng" }, schedule = { "diffusion" }, model = { seq_len = 16 } })
check(not ok4 and tostring(err4):find("absorbing", 1, true), "unknown noise suggests: " .. tostring(err4))

db:close()
os.execute("rm -rf " .. dir)
print(("test_method_train: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
