-- The store's record of a run, through the real binary (issue #16): the resolved config (defaults
-- included, plugin specs as {"name", "options"}), the script's path, text and SHA-256, plugin
-- .so hashes in samples and evaluations, checkpoint hashes and sizes, a final checkpoint whatever
-- ckpt_every is, a typo leaving no row, a finished training run returned instead of a 0-step
-- copy, per-sequence bound values (evaluation_items) and db:compare's paired statistics checked
-- against a computation from the items themselves.
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function close(a, b, tol) return a and b and math.abs(a - b) <= tol * math.max(1, math.abs(b)) end

local function sh(cmd) -- first line of a command's output
  local p = assert(io.popen(cmd)); local out = p:read("l"); p:close(); return out
end
local function sha256(path) return (sh("sha256sum '" .. path .. "'") or ""):match("^(%x+)") end
local function size(path) return tonumber(sh("stat -c %s '" .. path .. "'")) end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 600 do f:write(("line %d: the quick brown fox jumps over the lazy dog again.\n"):format(i)) end
f:close()
local data = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
local db = hdlm.open(dir .. "/p.db")
local L = 16
local model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = L }
local function count(sql, ...) return db:query(sql, ...)[1].n end

-- ---- a config typo leaves no run behind ----
local ok, err = pcall(db.train, db, { name = "typo", data = data, stesp = 3 })
check(not ok and tostring(err):find("unknown key 'stesp'", 1, true), "typo refused: " .. tostring(err))
local ok2, err2 = pcall(db.train, db, { name = "typo2", data = data, model = { d_model = 30, n_head = 4 } })
check(not ok2 and tostring(err2):find("n_head", 1, true), "bad model refused: " .. tostring(err2))
check(count("SELECT count(*) AS n FROM runs") == 0, "refused trainings left no rows")

-- ---- a block-annealing run: checkpoint_dir with ckpt_every larger than steps ----
local ck = dir .. "/ck_block"
local opts_b = { name = "block", data = data, noise = { "absorbing" }, schedule = { "block_annealing", width = 4 },
  vectorised = true, model = model, steps = 12, batch = 8, lr = 3e-3, log_every = 4, seed = 1,
  checkpoint_dir = ck, ckpt_every = 100 }
local blk = db:train(opts_b)
local rows = db:query("SELECT step, path, hash, bytes FROM checkpoints WHERE run_id = ? ORDER BY step", blk.id)
check(#rows == 1 and rows[1].step == 12, "ckpt_every 100 > steps 12: one checkpoint of the last step (" .. #rows .. " rows)")
check(rows[1] and rows[1].path == ck .. "/step_00000012.safetensors", "checkpoint path absolute: " .. tostring(rows[1] and rows[1].path))
check(rows[1] and rows[1].hash == sha256(rows[1].path), "checkpoints.hash = SHA-256 of the weights file")
check(rows[1] and rows[1].bytes == size(rows[1].path) and rows[1].bytes > 1000, "checkpoints.bytes = file size")

-- resolved config: defaults included, plugin specs in one form, paths absolute
local cfg = hdlm.json_decode(db:query("SELECT config FROM runs WHERE id = ?", blk.id)[1].config)
check(cfg.weight_decay == 0.1 and cfg.beta2 == 0.95 and cfg.ema == 0.999 and cfg.clip == 1 and cfg.accum == 1,
      "defaults recorded (weight_decay, beta2, ema, clip, accum)")
check(close(cfg.min_lr, 3e-4, 1e-12) and cfg.lr_schedule == "cosine" and cfg.warmup == 0, "derived defaults (min_lr = lr / 10)")
check(cfg.model.d_model == 32 and cfg.model.dropout == 0 and cfg.model.gamma == 0.01 and cfg.model.vocab == 257,
      "model config resolved: " .. hdlm.json_encode(cfg.model))
check(cfg.schedule.name == "block_annealing" and cfg.schedule.options.width == 4 and cfg.schedule.options.tau ~= nil
      and cfg.schedule[1] == nil, "schedule spec {name, options}: " .. hdlm.json_encode(cfg.schedule))
check(cfg.noise.name == "absorbing" and cfg.noise.options.vocab == 256, "noise spec {name, options}: " .. hdlm.json_encode(cfg.noise))
check(cfg.checkpoint_dir == ck and cfg.data:sub(1, 1) == "/" and cfg.context == "block_causal",
      "checkpoint_dir, data absolute; layout: " .. tostring(cfg.checkpoint_dir))
check(count("SELECT count(*) AS n FROM runs WHERE json_type(config, '$.schedule') = 'object' AND json_type(config, '$.schedule.\"1\"') IS NULL") == 1,
      "no {\"1\": ...} specs in runs.config")

-- the script: absolute path, its text and hash
local me = debug.getinfo(1, "S").source:gsub("^@", "")
local src = assert(io.open(me, "rb")):read("a")
local r = db:query("SELECT r.script, r.script_sha256, s.text, s.bytes FROM runs r JOIN scripts s ON s.sha256 = r.script_sha256 WHERE r.id = ?", blk.id)[1]
check(r and r.script:sub(1, 1) == "/" and r.script:match("test_store_provenance%.lua$"), "runs.script absolute: " .. tostring(r and r.script))
check(r and r.script_sha256 == sha256(me), "runs.script_sha256 = SHA-256 of the script")
check(r and r.text == src and r.bytes == #src, "scripts.text = the script as run")

-- ---- stop_after and ckpt_every = 0 still end with a checkpoint ----
local part = db:train{ name = "part", data = data, objective = "ar", model = model, steps = 10, stop_after = 3,
  batch = 4, log_every = 1, checkpoint_dir = dir .. "/ck_part", ckpt_every = 0 }
check(part.summary.steps == 3, "stop_after 3 stopped at 3: " .. part.summary.steps)
check(db:query("SELECT group_concat(step) AS s FROM checkpoints WHERE run_id = ?", part.id)[1].s == "3",
      "stop_after: a checkpoint of step 3")
-- the same call again continues the same row (done with stop_after, same config) to the end
local part2 = db:train{ name = "part", data = data, objective = "ar", model = model, steps = 10, stop_after = 0,
  batch = 4, log_every = 1, checkpoint_dir = dir .. "/ck_part", ckpt_every = 0 }
check(part2.id == part.id, ("continued the same run: %d vs %d"):format(part2.id, part.id))
check(db:query("SELECT group_concat(step) AS s FROM checkpoints WHERE run_id = ?", part.id)[1].s == "3,10",
      "checkpoints 3 and 10 in one run")
local rr = db:query("SELECT status, resumes, resumed_from FROM runs WHERE id = ?", part.id)[1]
check(rr.status == "done" and rr.resumes == 1 and rr.resumed_from == nil, "continued run: done, resumes 1")
check(count("SELECT count(*) AS n FROM metrics WHERE run_id = ? AND name = 'loss'", part.id) == 10, "10 losses in one row")

-- ---- the finished script run again: the finished run, no 0-step copy ----
local n_runs = count("SELECT count(*) AS n FROM runs")
local again = db:train(opts_b)
check(again.id == blk.id, ("same run returned: %d vs %d"):format(again.id, blk.id))
check(count("SELECT count(*) AS n FROM runs") == n_runs, "no new row")
check(again.summary.steps_trained == 0 and again.summary.steps == 12, "nothing trained")
local last = db:query("SELECT value FROM metrics WHERE run_id = ? AND name = 'loss' ORDER BY step DESC LIMIT 1", blk.id)[1].value
check(again.summary.loss == last and last > 0, ("summary.loss is the run's last loss %s, not 0: %s"):format(last, again.summary.loss))
-- another name resuming from the same checkpoint: a new row that says where it came from
local opts_c = {}
for k, v in pairs(opts_b) do opts_c[k] = v end
opts_c.name = "block-copy"
local other = db:train(opts_c)
check(other.id ~= blk.id and db:query("SELECT resumed_from FROM runs WHERE id = ?", other.id)[1].resumed_from == blk.id,
      "another name: new row with resumed_from")

-- ---- an autoregressive run; both evaluated on the same sequences ----
local ar = db:train{ name = "ar", data = data, noise = { "absorbing" }, schedule = { "autoregressive" }, vectorised = true,
  context = "causal", model = model, steps = 12, batch = 8, lr = 3e-3, log_every = 4, seed = 2,
  checkpoint_dir = dir .. "/ck_ar" }
local cfg_ar = hdlm.json_decode(db:query("SELECT config FROM runs WHERE id = ?", ar.id)[1].config)
check(cfg_ar.schedule.name == "autoregressive" and next(cfg_ar.schedule.options) == nil,
      "an option-less spec has the same form: " .. hdlm.json_encode(cfg_ar.schedule))
local ea = ar:eval{ sequences = 12, mc = 0, seed = 1 }
local eb = blk:eval{ sequences = 12, mc = 4, seed = 1 }
local items_a = db:query("SELECT item, value FROM evaluation_items WHERE evaluation_id = ? ORDER BY item", ea.evaluation_id)
local items_b = db:query("SELECT item, value FROM evaluation_items WHERE evaluation_id = ? ORDER BY item", eb.evaluation_id)
check(#items_a == 12 and #items_b == 12 and items_a[1].item == 0 and items_a[12].item == 11, "12 items each, 0-based")
local sum, ok_items = 0, true
for i, it in ipairs(items_a) do
  sum = sum + it.value
  ok_items = ok_items and close(it.value, ea.per_sequence[i] / L, 1e-12)
end
check(ok_items, "item = per-sequence total / length")
check(close(sum / #items_a, ea.nats, 1e-12), ("mean of items = the stored value: %.12f vs %.12f"):format(sum / #items_a, ea.nats))
local sa = hdlm.json_decode(db:query("SELECT settings FROM evaluations WHERE id = ?", ea.evaluation_id)[1].settings)
local sb = hdlm.json_decode(db:query("SELECT settings FROM evaluations WHERE id = ?", eb.evaluation_id)[1].settings)
check(sa.sequences_sha256 and #sa.sequences_sha256 == 64 and sa.sequences_sha256 == sb.sequences_sha256,
      "same sequences, same sequences_sha256")
check(sa.data == cfg.data, "settings.data: the corpus file")
-- provenance of the plugins that computed it
local hashes = {}
for _, p in ipairs(db:query("SELECT kind, hash FROM run_plugins WHERE run_id = ?", ar.id)) do hashes[p.kind] = p.hash end
check(sa.schedule.sha256 == hashes.schedule and sa.noise.sha256 == hashes.noise and #hashes.noise == 64,
      "evaluation settings carry the plugins' .so SHA-256")
local files = {}
for _, p in ipairs(hdlm.plugins()) do files[p.name] = p.file end
check(sa.noise.sha256 == sha256(files.absorbing), "... which is the file's SHA-256")

-- the reference estimator's items share its L-1 denominator: their mean is still the value
local er = blk:eval{ estimator = "reference", sequences = 4, B_mc = 2, rounds = 1 }
local m = db:query("SELECT avg(value) AS v, count(*) AS n FROM evaluation_items WHERE evaluation_id = ?", er.evaluation_id)[1]
check(m.n == 4 and close(m.v, er.nats, 1e-12), ("reference estimator: mean of items %.10f = value %.10f"):format(m.v, er.nats))

-- ---- db:compare: the paired difference, recomputed here from the items ----
local c = db:compare{ a = ar.id, b = blk.id }
local d, n = {}, #items_a
local mean = 0
for i = 1, n do d[i] = items_a[i].value - items_b[i].value; mean = mean + d[i] / n end
local ss = 0
for i = 1, n do ss = ss + (d[i] - mean) ^ 2 end
local se = math.sqrt(ss / (n - 1) / n)
check(c.bound and c.bound.n == 12 and c.bound.a.evaluation == ea.evaluation_id and c.bound.b.evaluation == eb.evaluation_id,
      "compare pairs the two evaluations")
check(close(c.bound.diff, mean, 1e-12) and close(c.bound.diff, ea.nats - eb.nats, 1e-9), ("paired diff %.10f = %.10f"):format(c.bound.diff, mean))
check(close(c.bound.se, se, 1e-9), ("paired SE %.10f = %.10f"):format(c.bound.se, se))
check(close(c.bound.unpaired_se, math.sqrt(ea.se ^ 2 + eb.se ^ 2), 1e-9), "unpaired SE from both")
local lower = 0
for i = 1, n do if d[i] < 0 then lower = lower + 1 end end
check(c.bound.a_lower == lower, "a_lower counts the sequences where a is lower")
check(c.gen == nil, "no gen part without gen evaluations")
-- a later evaluation of b on other sequences: compare still uses the latest comparable pair
blk:eval{ sequences = 6, mc = 1 }
local c2 = db:compare{ a = ar.id, b = blk.id }
check(c2.bound.b.evaluation == eb.evaluation_id, "latest comparable evaluation kept")
-- a run evaluated only on other sequences: refused, naming both sets
local okc, errc = pcall(db.compare, db, { a = ar.id, b = part.id })
check(not okc and tostring(errc):find(("run %d has no nll_bound evaluation"):format(part.id), 1, true),
      "nothing to compare: " .. tostring(errc))
other:eval{ sequences = 5, mc = 1 }
okc, errc = pcall(db.compare, db, { a = ar.id, b = other.id })
check(not okc and tostring(errc):find("no bounds on the same sequences", 1, true) and tostring(errc):find("5 valid sequences", 1, true),
      "different sets refused: " .. tostring(errc))
okc, errc = pcall(db.compare, db, { a = ar.id, b = 999 })
check(not okc and tostring(errc):find("no run 999", 1, true), "missing run refused: " .. tostring(errc))

-- ---- gen_nll: unpaired difference, SEs combined; per-sample items; sample provenance ----
local sa_ = ar:sample{ n = 4, seed = 3 }
local sb_ = blk:sample{ n = 4, seed = 3 }
local sampler = hdlm.json_decode(db:query("SELECT sampler FROM samples WHERE id = ?", sa_[1].id)[1].sampler)
check(sampler.name == "ancestral" and sampler.sha256 == sha256(files.ancestral), "samples.sampler carries the .so SHA-256")
-- the recorded form of a spec is taken back as a spec (one form, round trip)
local acs = blk:sample{ n = 1, seed = 4, sampler = { "acs", eta = 0.2 } }
local stored = hdlm.json_decode(db:query("SELECT sampler FROM samples WHERE id = ?", acs[1].id)[1].sampler)
check(stored.name == "acs" and stored.options.eta == 0.2 and stored.sha256 == sha256(files.acs), "acs spec stored")
local okr, again_s = pcall(blk.sample, blk, { n = 1, seed = 4, sampler = stored, schedule = cfg.schedule })
check(okr and again_s[1].text == acs[1].text, "stored sampler + schedule specs reproduce the sample: " .. tostring(okr or again_s))
local okn, rt = pcall(db.train, db, { name = "roundtrip", data = data, noise = cfg.noise, schedule = cfg.schedule,
  vectorised = true, model = model, steps = 2, batch = 4 })
check(okn and hdlm.json_decode(db:query("SELECT config FROM runs WHERE id = ?", rt.id)[1].config).schedule.options.width == 4,
      "db:train takes the stored noise/schedule specs: " .. tostring(okn or rt))
local ck_ar = db:query("SELECT id FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1", ar.id)[1].id
check(db:query("SELECT checkpoint_id FROM samples WHERE id = ?", sa_[1].id)[1].checkpoint_id == ck_ar,
      "samples name the checkpoint they came from")
local ga = ar:gen_eval{ judge = ar, samples = sa_ }
local gb = blk:gen_eval{ judge = ar, samples = sb_ }
local gid = db:query("SELECT id FROM evaluations WHERE run_id = ? AND metric = 'gen_nll' ORDER BY id DESC LIMIT 1", ar.id)[1].id
local gi = db:query("SELECT count(*) AS n, avg(value) AS v FROM evaluation_items WHERE evaluation_id = ?", gid)[1]
check(gi.n == 4 and close(gi.v, ga.gen_nll, 1e-9), "gen_nll items: one per sample, mean = gen_nll")
local c3 = db:compare{ a = ar.id, b = blk.id }
check(c3.gen and c3.gen.judge_run == ar.id and close(c3.gen.diff, ga.gen_nll - gb.gen_nll, 1e-12)
      and close(c3.gen.se, math.sqrt(ga.gen_nll_se ^ 2 + gb.gen_nll_se ^ 2), 1e-12), "gen difference and SE")

print(("test_store_provenance: %d passed, %d failed"):format(passed, failed))
os.execute("rm -rf " .. dir)
if failed > 0 then os.exit(1) end
