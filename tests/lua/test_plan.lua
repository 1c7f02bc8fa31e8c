-- The schedule invariants are checked when a run starts (diffusion/plan.c): schedules written in
-- Lua that break one are refused by db:train, run:sample and run:eval with a message naming the
-- schedule, the step, the position and the values; a sound Lua schedule equal to a plugin gives
-- the plugin's samples and bound exactly.
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function check_error(fn, needles, what)
  local ok, err = pcall(fn)
  local good = not ok
  for _, n in ipairs(needles) do good = good and tostring(err):find(n, 1, true) ~= nil end
  check(good, what .. " (got: " .. tostring(err) .. ")")
end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 200 do f:write(("line %d: the quick brown fox jumps over the lazy dog.\n"):format(i)) end
f:close()
local data = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
local db = hdlm.open(dir .. "/p.db")
local L = 8
local model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = L }

-- block annealing (blocks of 4, tau = 2) written in Lua; `patch(step, lv, n)` breaks it
local function ba(name, patch)
  return hdlm.schedule{ name = name, n_levels = 2, growth = "blocks", block = 4,
    n_steps = function(len) return 2 * ((len + 3) // 4) end,
    levels = function(step, len)
      local b, k = (step - 1) // 2, (step - 1) % 2
      local lv = {}
      for i = 0, len - 1 do lv[i + 1] = i < 4 * b and 0 or (i < 4 * b + 4 and 1 - k or 2) end
      local n = 4 * b
      if patch then n = patch(step, lv, n) or n end
      return lv, n
    end }
end

local broken = {
  { ba("rises", function(step, lv) if step == 2 then lv[2] = 2 end end),
    { "schedule 'rises' step 2", "position 1 rises from level 1 at step 1 to 2" }, "rising level" },
  { ba("shrinks", function(step, lv, n) if step == 4 then return 0 end end),
    { "schedule 'shrinks' step 4", "n_settled = 0 is below 4 at step 3" }, "shrinking settled prefix" },
  { ba("partial", function(step, lv, n) if step == 3 then lv[5] = 0 return 5 end end),
    { "schedule 'partial' step 3", "n_settled = 5 is not a whole number of blocks of 4" }, "partial block" },
  { ba("stuck", function(step, lv) if step >= 3 then lv[8] = 2 end end),
    { "schedule 'stuck' step 4 (the last)", "position 7 is still at level W = 2" }, "never denoised" },
}

-- training refuses each broken schedule before the first step
for _, b in ipairs(broken) do
  check_error(function()
    db:train{ data = data, noise = { "absorbing" }, schedule = b[1], model = model, steps = 1, batch = 2,
      ema = 0, checkpoint_dir = false }
  end, b[2], "db:train refuses a " .. b[3])
end

-- a run trained with the sound Lua schedule; sampling and evaluation refuse the broken ones
local good = ba("lua_block")
local run = db:train{ data = data, noise = { "absorbing" }, schedule = good, model = model, steps = 3, batch = 4,
  ema = 0, seed = 2, checkpoint_dir = dir .. "/ck" }
local seqs = data:batch(2, L, 1, "valid")
for _, b in ipairs(broken) do
  check_error(function() run:sample{ n = 1, seed = 1, schedule = b[1] } end, b[2], "run:sample refuses a " .. b[3])
  check_error(function() run:eval{ tokens = seqs, mc = 0, schedule = b[1], store = false } end, b[2],
              "run:eval refuses a " .. b[3])
end

-- the same chain as the plugin, through every consumer: identical samples and bounds
local plugin = { "block_annealing", width = 4, tau = 2 }
local function texts(s) local t = {} for i, x in ipairs(s) do t[i] = x.text end return table.concat(t, "|") end
for _, cache in ipairs{ true, false } do
  check(texts(run:sample{ n = 3, seed = 7, cache = cache, schedule = good, events = false }) ==
        texts(run:sample{ n = 3, seed = 7, cache = cache, schedule = plugin, events = false }),
        "Lua schedule samples = plugin samples (cache " .. tostring(cache) .. ")")
end
for _, vec in ipairs{ true, false } do
  local a = run:eval{ tokens = seqs, mc = 0, seed = 3, schedule = good, vectorised = vec, store = false }
  local b = run:eval{ tokens = seqs, mc = 0, seed = 3, schedule = plugin, vectorised = vec, store = false }
  check(a.nats == b.nats and a.vectorised == vec and b.vectorised == vec and a.steps == b.steps,
        ("Lua schedule bound = plugin bound (vectorised %s): %.17g vs %.17g"):format(tostring(vec), a.nats, b.nats))
end

db:close()
os.execute("rm -rf " .. dir)
print(("test_plan: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
