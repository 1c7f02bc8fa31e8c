-- Bindings through the real binary: store round trip, argument checks, corpus, JSON config.
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function check_error(fn, needle, what)
  local ok, err = pcall(fn)
  check(not ok and tostring(err):find(needle, 1, true) ~= nil,
        what .. " (got: " .. tostring(err) .. ")")
end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local dbpath = dir .. "/t.db"

-- store round trip
local db = hdlm.open(dbpath)
check(db.path == dbpath, "db.path")
local run = db:run{ name = "lua-test", kind = "script", seed = 7,
                    config = { lr = 0.001, layers = { 4, 8 }, name = "x", flag = true } }
check(run.id >= 1 and run.open, "run opened")
for step = 1, 300 do run:log(step, "loss", 1 / step) end
run:log(300, { lr = 0.5, tokens = 1234 })
run:finish()
check(not run.open, "run finished")
local rows = db:query("SELECT name, status, seed, config FROM runs WHERE id = ?", run.id)
check(#rows == 1 and rows[1].status == "done" and rows[1].seed == 7, "run row")
check(rows[1].config == '{"flag":true,"layers":[4,8],"lr":0.001,"name":"x"}',
      "config JSON sorted and typed: " .. tostring(rows[1].config))
local m = db:query("SELECT count(*) AS n, sum(value) AS s FROM metrics WHERE run_id = ? AND name = 'loss'", run.id)
check(m[1].n == 300, "300 metrics")
check(math.abs(m[1].s - 6.2826638) < 1e-5, "metric values")
local lr = db:query("SELECT value FROM metrics WHERE name = 'lr'")
check(#lr == 1 and lr[1].value == 0.5, "table form of log")

-- provenance
local p = db:query("SELECT git_rev, host, cpu, blas, threads, hdlm_version, started_at, ended_at FROM runs")[1]
check(p.host ~= nil and #p.host > 0, "host recorded")
check(p.blas:find("OpenBLAS", 1, true) ~= nil, "blas recorded: " .. tostring(p.blas))
check(p.threads >= 1, "threads recorded")
check(p.hdlm_version == hdlm.version, "version recorded")
check(p.started_at:match("^%d%d%d%d%-%d%d%-%d%dT") ~= nil and p.ended_at ~= nil, "timestamps")

-- argument checks
check_error(function() db:run{ nmae = "x" } end, "unknown key 'nmae' (did you mean 'name'?)", "unknown key suggestion")
check_error(function() db:run{ seed = "one" } end, "key 'seed' must be an integer, got string", "wrong type")
check_error(function() db:run{ seed = 1.5 } end, "key 'seed' must be an integer, got 1.5", "non-integer")
check_error(function() db:query("SELECT * FROM nope") end, "no such table: nope", "SQL error")
check_error(function() run:log(1, "loss", 1) end, "already finished", "log after finish")
check_error(function() hdlm.corpus{ path = dir .. "/missing.txt" } end, "missing.txt", "missing corpus")

-- corpus: prepare from text, encode/decode, batches
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 400 do f:write(("line %d: the quick brown fox jumps over the lazy dog.\n"):format(i)) end
f:close()
local c = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
check(c.vocab == 256 and c.tokenizer == "bytes", "corpus vocab")
check(c.n_train + c.n_valid > 20000, "corpus size")
check(c:decode(c:encode("héllo")) == "héllo", "utf-8 round trip")
local b1, b2 = c:batch(2, 16, 5), c:batch(2, 16, 5)
check(#b1 == 2 and #b1[1] == 16 and table.concat(b1[1], ",") == table.concat(b2[1], ","), "seeded batch")
local t8 = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "text8", valid = 0.1 }
check(t8.vocab == 27 and t8:decode(t8:encode("Hello, World!")) == "hello world ", "text8")

local trained
-- a reloaded checkpoint computes the trained model's logits, whatever the tokenizer: the mask id and
-- the input mix of a conditioned model are recorded in the checkpoint (a random corpus's tokenizer
-- name does not say its vocabulary)
for _, cs in ipairs{ { "random", hdlm.random_corpus{ vocab = 30, n = 20000, valid = 1000, seed = 2 } }, { "bytes", c } } do
  local ck = dir .. "/reload_" .. cs[1]
  local run = db:train{ data = cs[2], noise = { "gamma_hybrid", gamma = 0.05 }, schedule = { "block_annealing", width = 4, tau = 4 },
    model = { d_model = 32, n_layer = 2, n_head = 2, seq_len = 16 }, steps = 20, batch = 4, lr = 3e-3, ema = 0,
    log_every = 10, seed = 1, checkpoint_dir = ck, ckpt_every = 20 }
  trained = run.model
  local path = db:query("SELECT path FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1", run.id)[1].path
  local back = hdlm.model{ checkpoint = path }
  local V = cs[2].vocab
  local x = {}
  for i = 1, 16 do x[i] = (i * 7) % V end
  x[3], x[9] = V, V -- masked positions: the input mix of the mask id matters here
  local a = run.model:forward(x, { sigma = 0.7 })
  local b = back:forward(x, { sigma = 0.7 })
  local d = 0
  for i = 1, 16 do for v = 1, #a[i] do d = math.max(d, math.abs(a[i][v] - b[i][v])) end end
  check(d == 0, ("%s corpus: reloaded logits = trained logits (max diff %.3g)"):format(cs[1], d))
end

-- model:forward honours positions: rotary attention is relative, so shifting every position by
-- a constant leaves the logits unchanged (to rounding), while other relative positions change them
-- (a trained model: at initialisation the zero-initialised output layers hide attention)
do
  local m = trained
  local x = { 3, 14, 15, 9, 26, 5, 35, 8 }
  local base = m:forward(x, { sigma = 0.5 })
  local shifted = m:forward(x, { sigma = 0.5, positions = { 100, 101, 102, 103, 104, 105, 106, 107 } })
  local spread = m:forward(x, { sigma = 0.5, positions = { 0, 1, 2, 3, 8, 9, 10, 11 } })
  local dmax, dspread = 0, 0
  for i = 1, #x do
    for v = 1, #base[i] do
      dmax = math.max(dmax, math.abs(base[i][v] - shifted[i][v]))
      dspread = math.max(dspread, math.abs(base[i][v] - spread[i][v]))
    end
  end
  check(dmax < 1e-4, ("positions shifted by 100: logits equal (max diff %.3g)"):format(dmax))
  check(dspread > 1e-3, ("other relative positions change the logits (max diff %.3g)"):format(dspread))
  local ok, err = pcall(m.forward, m, x, { sigma = 0.5, positions = { 1, 2 } })
  check(not ok and tostring(err):find("positions", 1, true), "positions of the wrong length refused: " .. tostring(err))
end

-- args from the command line: none given here
check(type(hdlm.args) == "table", "hdlm.args")

db:close()
os.execute("rm -rf " .. dir)
print(("test_bindings: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
