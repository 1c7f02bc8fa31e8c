-- Sampling through the real binary: cached = uncached tokens, prompt and infill never change,
-- temperature -> 0 is greedy, acs(eta = 0) = ancestral, samples and trajectories in the store,
-- incompatible sampler/noise pairs refused.
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function same(a, b)
  for i = 1, #a do if a[i].text ~= b[i].text then return false end end
  return #a == #b
end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 400 do f:write(("line %d: the quick brown fox jumps over the lazy dog again.\n"):format(i)) end
f:close()
local data = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
local db = hdlm.open(dir .. "/s.db")
local model = { d_model = 32, n_layer = 2, n_head = 2, seq_len = 32 }

local eps = db:train{ data = data, noise = { "epsilon_hybrid", epsilon = 0.05 },
  schedule = { "block_annealing", width = 8, tau = 4 }, vectorised = true, model = model,
  steps = 30, batch = 8, lr = 3e-3, log_every = 10, seed = 1 }

-- the KV cache is exact: the same tokens with and without it. (Cached logits equal recomputed ones
-- to ~1e-6, not bit for bit — BLAS sums in another order for other shapes — so a draw flips only
-- when u falls within ~1e-7 of a boundary. `confidence` is left out: it ranks positions by
-- confidence, and the near-ties of a barely trained model are within that 1e-6.)
for _, s in ipairs{ "ancestral", { "acs", eta = 0.3 }, { "remask", eta = 0.05 } } do
  local name = type(s) == "table" and s[1] or s
  local ok, a = pcall(eps.sample, eps, { sampler = s, n = 3, seed = 11, cache = true })
  local ok2, b = pcall(eps.sample, eps, { sampler = s, n = 3, seed = 11, cache = false })
  check(ok and ok2 and same(a, b), name .. ": cached = uncached (" .. tostring(ok and ok2 or (a or b)) .. ")")
end

-- The same on a model that is sensitive to every token and position: random weights of
-- trained-like scale (a barely trained model's logits hardly depend on the attention, so a KV
-- cache with wrong rotary positions went unnoticed above). The weights replace those of a 1-step
-- run's checkpoint (safetensors: 8-byte header length, JSON header, float32 data): matrices
-- U(+-1.5/sqrt(fan_in)), vectors U(+-1.5/sqrt(C)), LayerNorm weights 1 + U(+-0.3).
local function randomize_checkpoint(src, dst, seed)
  local f = assert(io.open(src, "rb")); local blob = f:read("a"); f:close()
  local n = string.unpack("<I8", blob)
  local header = hdlm.json_decode(blob:sub(9, 8 + n))
  local C = hdlm.json_decode(header.__metadata__.config).d_model
  local tensors = {}
  for name, t in pairs(header) do
    if name ~= "__metadata__" then
      assert(t.dtype == "F32", name .. " is " .. tostring(t.dtype))
      tensors[#tensors + 1] = { name = name, shape = t.shape, lo = math.tointeger(t.data_offsets[1]),
                                hi = math.tointeger(t.data_offsets[2]) }
    end
  end
  table.sort(tensors, function(a, b) return a.lo < b.lo end)
  math.randomseed(seed)
  local out, at = { blob:sub(1, 8 + n) }, 0
  for _, t in ipairs(tensors) do
    out[#out + 1] = blob:sub(9 + n + at, 8 + n + t.lo) -- padding between tensors, if any
    local norm = t.name:find("norm", 1, true) ~= nil
    local a = norm and 0.3 or (#t.shape == 2 and 1.5 / math.sqrt(t.shape[2]) or 1.5 / math.sqrt(C))
    local vals = {}
    for i = 1, (t.hi - t.lo) // 4 do vals[i] = string.pack("<f", (norm and 1 or 0) + (2 * math.random() - 1) * a) end
    out[#out + 1] = table.concat(vals)
    at = t.hi
  end
  out[#out + 1] = blob:sub(9 + n + at)
  f = assert(io.open(dst, "wb")); f:write(table.concat(out)); f:close()
end
do
  local one = db:train{ data = data, noise = { "epsilon_hybrid", epsilon = 0.05 },
    schedule = { "block_annealing", width = 8, tau = 4 }, vectorised = true, model = model,
    steps = 1, batch = 2, seed = 3, checkpoint_dir = dir .. "/one", ckpt_every = 1 }
  local ck = db:query("SELECT path FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1", one.id)[1].path
  randomize_checkpoint(ck, dir .. "/random.safetensors", 7)
  local rnd = db:attach{ run = one.id, model = hdlm.model{ checkpoint = dir .. "/random.safetensors" },
    noise = { "epsilon_hybrid", epsilon = 0.05 }, schedule = { "block_annealing", width = 8, tau = 4 },
    context = "block_causal" }
  -- not a degenerate model: its samples differ from one another
  local distinct = {}
  for _, s in ipairs(rnd:sample{ n = 8, seed = 1, events = false }) do distinct[s.text] = true end
  local nd = 0
  for _ in pairs(distinct) do nd = nd + 1 end
  check(nd == 8, "random-weights model: 8 different samples, got " .. nd)
  -- 4 blocks of 8 (block annealing), 4 blocks with a diagonal inside (hybrid annealing), token by
  -- token (simple annealing); 32 samples each
  for _, sch in ipairs{ false, { "hybrid_annealing", width = 8, tau = 4 }, { "simple_annealing", width = 8, tau = 4 } } do
    local sname = sch and sch[1] or "block_annealing"
    local a = rnd:sample{ n = 32, seed = 21, cache = true, events = false, schedule = sch or nil }
    local b = rnd:sample{ n = 32, seed = 21, cache = false, events = false, schedule = sch or nil }
    local diff = 0
    for i = 1, 32 do if a[i].text ~= b[i].text then diff = diff + 1 end end
    check(#a == 32 and #b == 32 and diff == 0,
          ("random-weights model, %s: cached = uncached for 32 samples (%d differ)"):format(sname, diff))
  end
end

-- prompt and infill positions never change
local prompt = "line 7"
local out = eps:sample{ n = 4, seed = 2, prompt = prompt, infill = { [20] = "fox" } }
for i, s in ipairs(out) do
  check(s.text:sub(1, #prompt) == prompt, "prompt kept in sample " .. i .. ": " .. s.text)
  check(s.text:sub(20, 22) == "fox", "infill kept in sample " .. i .. ": " .. s.text)
end

-- acs with eta = 0 is ancestral, draw for draw
check(same(eps:sample{ sampler = "ancestral", n = 3, seed = 4 }, eps:sample{ sampler = { "acs", eta = 0 }, n = 3, seed = 4 }),
      "acs(eta = 0) = ancestral")
-- acs corrects visible tokens (events of kind 'correct') when eta > 0
local c = eps:sample{ sampler = { "acs", eta = 1 }, n = 4, seed = 5 }
local corr = 0
for _, s in ipairs(c) do corr = corr + s.corrections end
check(corr > 0, "acs(eta = 1) corrects tokens: " .. corr)

-- temperature -> 0 is greedy: no randomness left on the autoregressive schedule
local ar = db:train{ data = data, noise = { "absorbing" }, schedule = { "autoregressive" }, vectorised = true,
  model = model, steps = 30, batch = 8, lr = 3e-3, log_every = 10, seed = 1 }
local g1 = ar:sample{ n = 2, seed = 1, temperature = 0, prompt = "line" }
local g2 = ar:sample{ n = 2, seed = 99, temperature = 0, prompt = "line" }
local g3 = ar:sample{ n = 2, seed = 7, temperature = 1e-6, prompt = "line" }
check(same(g1, g2) and same(g1, g3), "temperature 0 (and -> 0) is greedy and seed-free")
check(g1[1].nfe == 32 - 4, "AR sampling: one network evaluation per generated token, got " .. g1[1].nfe)
local t1 = ar:sample{ n = 4, seed = 1, temperature = 1 }
check(not same(t1, ar:sample{ n = 4, seed = 2, temperature = 1 }), "temperature 1 depends on the seed")

-- the store holds every sample with provenance and its trajectory
local rows = db:query("SELECT count(*) AS n FROM samples WHERE run_id = ?", eps.id)
check(rows[1].n >= 30, "samples stored: " .. rows[1].n)
local s1 = db:query("SELECT id, sampler, noise, schedule, settings, nfe, steps, n_tokens FROM samples WHERE run_id = ? ORDER BY id LIMIT 1", eps.id)[1]
check(s1.sampler:find('"name":"ancestral"', 1, true) and s1.noise:find("epsilon_hybrid", 1, true)
      and s1.schedule:find("block_annealing", 1, true) and s1.settings:find("float64", 1, true), "sample provenance")
check(s1.n_tokens == 32 and s1.steps == 16 and s1.nfe == 16, "steps and nfe: " .. s1.steps .. " " .. s1.nfe)
local ev = db:query("SELECT count(*) AS n, sum(kind = 'unmask') AS u FROM sample_events WHERE sample_id = ?", s1.id)[1]
check(ev.n >= 32 and ev.u == 32, "one unmask event per position: " .. ev.n .. " " .. ev.u)
local ce = db:query("SELECT count(*) AS n FROM sample_events WHERE sample_id BETWEEN ? AND ? AND kind = 'correct'", c[1].id, c[#c].id)[1]
check(ce.n == corr, "correct events stored: " .. ce.n .. " vs " .. corr)

-- refusals
local ok, err = pcall(eps.sample, eps, { sampler = "analytic" })
check(not ok and tostring(err):find("score", 1, true), "analytic refused with a masking process: " .. tostring(err))
ok, err = pcall(eps.sample, eps, { sampler = "ancestrl" })
check(not ok and tostring(err):find("did you mean 'ancestral'", 1, true), "unknown sampler suggests: " .. tostring(err))
ok, err = pcall(eps.sample, eps, { length = 999 })
check(not ok and tostring(err):find("length", 1, true), "length checked: " .. tostring(err))
ok, err = pcall(eps.sample, eps, { top_p = 0 })
check(not ok and tostring(err):find("top_p", 1, true), "top_p checked")

db:close()
os.execute("rm -rf " .. dir)
print(("test_sampling: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
