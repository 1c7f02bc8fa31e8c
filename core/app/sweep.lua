-- `hdlm sweep`: the sweep file, the sweep's rows in the store, the worker loop and the progress
-- table. Embedded into the binary and run by core/app/sweep.c (which starts the workers and
-- decides whether a claimed point's worker is still alive) with hdlm.args:
--   mode = plan | worker | status | final, file = the sweep file, cwd, retry_failed,
--   worker = number, pid, pid_start, host (workers), sweep = NAME_OR_ID (status).
--
-- A sweep file is a Lua chunk that returns a table:
--   return {
--     name = "lr-sweep",                      -- required: names the sweep in the store
--     description = "...",                    -- optional
--     base = { data = "data/brown.txt", model = {...}, steps = 300, ... },   -- db:train options
--     grid = { lr = { 1e-3, 3e-3 }, seed = { 1, 2 } },   -- keys -> lists: the cartesian product
--     -- or: points = { { lr = 1e-3 }, { lr = 3e-3, steps = 600 } },         -- explicit configs
--     eval = { sequences = 16, mc = 2 },      -- optional: run:eval options for each finished run
--     after = function(run, point, db) return value end,  -- optional: stored with the point
--     checkpoints = "checkpoints",            -- optional: root of the per-point checkpoint dirs
--   }
-- base.data is a corpus path or a table of hdlm.corpus options. Grid keys may be dotted paths
-- ("model.d_model"). Each point is base with its parameters set; it trains with db:train into its
-- own checkpoint dir (root/<sweep>/<nnn>_<key>), ckpt_every defaulting to a tenth of the steps,
-- and its run's config carries sweep = name and sweep_key = key.
local hdlm = require "hdlm"

local A = hdlm.args
local FILE = A.file and tostring(A.file)

local function fail(fmt, ...)
  error("sweep: " .. fmt:format(...), 0)
end

-- ---- small helpers ---------------------------------------------------------------------------

local function edit_distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function did_you_mean(key, allowed)
  local best, bd = nil, math.huge
  for _, c in ipairs(allowed) do
    local d = edit_distance(key, c)
    if d < bd then best, bd = c, d end
  end
  return bd <= math.max(2, #key // 3) and (" (did you mean '%s'?)"):format(best) or ""
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number" -- positional entries first
  end)
  return ks
end

-- The shortest decimal text that reads back as the same number (1e-3 -> "0.001").
local function num_text(x)
  if math.type(x) == "integer" then return tostring(x) end
  for p = 15, 17 do
    local s = ("%." .. p .. "g"):format(x)
    if tonumber(s) == x then return s end
  end
  return tostring(x)
end

-- A compact, stable text of a value for point keys: numbers as above, plugin specs as
-- name(k=v,...), lists as [a;b], other tables as {k=v,...}.
local function render(v)
  local t = type(v)
  if t == "number" then return num_text(v) end
  if t == "string" then return v:find("[,=;%s%(%)%[%]{}\"]") and ("%q"):format(v) or v end
  if t ~= "table" then return tostring(v) end
  local ks, n = sorted_keys(v), #v
  local parts = {}
  if n == #ks then
    for i = 1, n do parts[i] = render(v[i]) end
    return "[" .. table.concat(parts, ";") .. "]"
  end
  local named = type(v[1]) == "string" and n == 1
  for _, k in ipairs(ks) do
    if not (named and k == 1) then parts[#parts + 1] = tostring(k) .. "=" .. render(v[k]) end
  end
  if named then return v[1] .. "(" .. table.concat(parts, ",") .. ")" end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- The value with functions replaced by "<function>" (for the JSON of the spec).
local function plain(v)
  if type(v) == "function" then return "<function>" end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = plain(x) end
  return t
end

local function first_line(s)
  return (tostring(s):gsub("\n.*", ""))
end

local function tx(db, fn) -- fn inside one write transaction (BEGIN IMMEDIATE: no lock upgrades)
  db:query("BEGIN IMMEDIATE")
  local ok, res = pcall(fn)
  if ok then
    db:query("COMMIT")
    return res
  end
  pcall(db.query, db, "ROLLBACK")
  error(res, 0)
end

local NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

-- ---- the sweep file ----------------------------------------------------------------------------

local TOP = { "name", "description", "base", "grid", "points", "eval", "after", "checkpoints" }
local RESERVED = {
  checkpoint_dir = "is set by the sweep (one folder per point under 'checkpoints')",
  sweep = "is set by the sweep (its name)",
  sweep_key = "is set by the sweep (the point's parameters)",
}

local function check_options(where, t)
  for k, v in pairs(t) do
    local top = tostring(k):match("^[^.]+")
    if RESERVED[top] then fail("%s: '%s.%s' %s", FILE, where, k, RESERVED[top]) end
    if k == "resume" and v == false then
      fail("%s: '%s.resume' is false: sweep points always resume from their checkpoints", FILE, where)
    end
  end
end

local function load_spec(file)
  local chunk, err = loadfile(file, "t")
  if not chunk then fail("%s", err) end
  local ok, spec = pcall(chunk)
  if not ok then fail("%s: %s", file, first_line(spec)) end
  if type(spec) ~= "table" then
    fail("%s: must return a table (name = ..., base = {...}, grid = {...}), got %s", file, type(spec))
  end
  local allowed = {}
  for _, k in ipairs(TOP) do allowed[k] = true end
  for k in pairs(spec) do
    if not allowed[k] then
      fail("%s: unknown key '%s'%s; allowed: %s", file, tostring(k),
        type(k) == "string" and did_you_mean(k, TOP) or "", table.concat(TOP, ", "))
    end
  end
  if type(spec.name) ~= "string" or spec.name == "" then
    fail("%s: key 'name' must be a non-empty string (the sweep's name in the store), got %s", file,
      type(spec.name))
  end
  if type(spec.base) ~= "table" then
    fail("%s: key 'base' must be a table of db:train options, got %s", file, type(spec.base))
  end
  check_options("base", spec.base)
  if spec.grid ~= nil and spec.points ~= nil then
    fail("%s: give either 'grid' or 'points', not both", file)
  end
  if spec.grid == nil and spec.points == nil then
    fail("%s: needs 'grid' (keys -> lists of values) or 'points' (a list of option tables)", file)
  end
  if spec.grid ~= nil then
    if type(spec.grid) ~= "table" then fail("%s: key 'grid' must be a table, got %s", file, type(spec.grid)) end
    if next(spec.grid) == nil then
      fail("%s: 'grid' is empty: give at least one key with a list of values (lr = {1e-3, 3e-3})", file)
    end
    for k, vals in pairs(spec.grid) do
      if type(k) ~= "string" then fail("%s: grid keys must be option names, got %s", file, tostring(k)) end
      if type(vals) ~= "table" or #vals == 0 then
        fail("%s: 'grid.%s' must be a non-empty list of values (e.g. %s = {1, 2}), got %s", file, k, k,
          type(vals) == "table" and "an empty list" or type(vals))
      end
      check_options("grid", { [k] = vals })
    end
  else
    if type(spec.points) ~= "table" or #spec.points == 0 then
      fail("%s: 'points' must be a non-empty list of option tables", file)
    end
    for i, p in ipairs(spec.points) do
      if type(p) ~= "table" then fail("%s: 'points[%d]' must be a table of db:train options, got %s", file, i, type(p)) end
      check_options(("points[%d]"):format(i), p)
    end
  end
  if spec.eval ~= nil and type(spec.eval) ~= "table" then
    fail("%s: key 'eval' must be a table of run:eval options, got %s", file, type(spec.eval))
  end
  if spec.after ~= nil and type(spec.after) ~= "function" then
    fail("%s: key 'after' must be a function(run, point, db), got %s", file, type(spec.after))
  end
  if spec.checkpoints ~= nil and (type(spec.checkpoints) ~= "string" or spec.checkpoints == "") then
    fail("%s: key 'checkpoints' must be a folder name, got %s", file, type(spec.checkpoints))
  end
  return spec
end

local function set_path(t, path, v)
  local parts = {}
  for p in path:gmatch("[^.]+") do parts[#parts + 1] = p end
  for i = 1, #parts - 1 do
    if type(t[parts[i]]) ~= "table" then t[parts[i]] = {} end
    t = t[parts[i]]
  end
  t[parts[#parts]] = v
end

local function safe_name(s)
  return (s:gsub("[^%w%.%-_=,]", "_"))
end

local function abs_path(p)
  if p:sub(1, 1) == "/" or not A.cwd then return p end
  return tostring(A.cwd) .. "/" .. p
end

-- The points of a spec: { idx, key, config, checkpoint_dir } in file order.
local function expand(spec)
  local params = {} -- one list of {key, value} pairs per point
  if spec.grid then
    local ks = sorted_keys(spec.grid)
    local function product(i, acc)
      if i > #ks then
        params[#params + 1] = copy(acc)
        return
      end
      for _, v in ipairs(spec.grid[ks[i]]) do
        acc[i] = { ks[i], v }
        product(i + 1, acc)
      end
      acc[i] = nil
    end
    product(1, {})
  else
    for _, p in ipairs(spec.points) do
      local list = {}
      for _, k in ipairs(sorted_keys(p)) do list[#list + 1] = { k, p[k] } end
      params[#params + 1] = list
    end
  end
  local root = abs_path(spec.checkpoints or "checkpoints") .. "/" .. safe_name(spec.name)
  local points, seen = {}, {}
  for i, list in ipairs(params) do
    local cfg, parts = copy(spec.base), {}
    for _, kv in ipairs(list) do
      set_path(cfg, kv[1], copy(kv[2]))
      parts[#parts + 1] = kv[1] .. "=" .. render(kv[2])
    end
    local key = #parts > 0 and table.concat(parts, ",") or "base"
    if seen[key] then fail("%s: points %d and %d have the same parameters (%s)", FILE, seen[key], i, key) end
    seen[key] = i
    if cfg.data == nil then
      fail("%s: point %d (%s) has no 'data': set base.data to a corpus path or hdlm.corpus options", FILE, i, key)
    end
    local steps = math.tointeger(cfg.steps or 100) or 100
    if cfg.ckpt_every == nil then cfg.ckpt_every = math.max(1, steps // 10) end
    cfg.name = (cfg.name or spec.name) .. " " .. key
    local dir = ("%s/%03d_%s"):format(root, i - 1, safe_name(key):sub(1, 96))
    points[i] = { idx = i - 1, key = key, config = cfg, checkpoint_dir = dir }
  end
  return points
end

-- Corpora by their options, opened once per process (the plan prepares the token files so that
-- workers do not all tokenize the same text at once).
local corpora = {}
local function corpus_of(data, where)
  local opts = type(data) == "table" and copy(data) or { path = data }
  if type(opts.path) ~= "string" then
    fail("%s: %s 'data' must be a corpus path or hdlm.corpus options, got %s", FILE, where, type(data))
  end
  local id = render(opts)
  if not corpora[id] then
    local ok, c = pcall(hdlm.corpus, opts)
    if not ok then fail("%s: %s 'data': %s", FILE, where, first_line(c)) end
    corpora[id] = c
  end
  return corpora[id]
end

-- ---- the store ----------------------------------------------------------------------------------

local function spec_json(spec)
  return hdlm.json_encode(plain{
    name = spec.name, description = spec.description, base = spec.base, grid = spec.grid,
    points = spec.points, eval = spec.eval, after = spec.after, checkpoints = spec.checkpoints,
  })
end

local function spec_difference(old_json, spec)
  local old = hdlm.json_decode(old_json)
  for _, k in ipairs(TOP) do
    local a = old[k] ~= nil and hdlm.json_encode(old[k]) or "nil"
    local b = spec[k] ~= nil and hdlm.json_encode(plain(spec[k])) or "nil"
    if a ~= b then return ("'%s' was %s, now %s"):format(k, a:sub(1, 80), b:sub(1, 80)) end
  end
  return "the spec differs"
end

local SWEEP_STATUS = ([[UPDATE sweeps SET updated_at = %s, status = CASE
    WHEN EXISTS (SELECT 1 FROM sweep_points WHERE sweep_id = ?1 AND status IN ('pending', 'running')) THEN 'open'
    WHEN EXISTS (SELECT 1 FROM sweep_points WHERE sweep_id = ?1 AND status = 'failed') THEN 'failed'
    ELSE 'done' END WHERE id = ?1]]):format(NOW)

-- Registers the sweep and its points (idempotent); returns the sweep id.
local function plan(db, spec, points, retry_failed)
  for _, p in ipairs(points) do corpus_of(p.config.data, ("point %d (%s):"):format(p.idx + 1, p.key)) end
  local sj = spec_json(spec)
  return tx(db, function()
    local row = db:query("SELECT id, spec FROM sweeps WHERE name = ?", spec.name)[1]
    if row and row.spec ~= sj then
      fail("%s: sweep '%s' already exists in %s with a different spec (%s); rename the sweep to start a new one",
        FILE, spec.name, db.path, spec_difference(row.spec, spec))
    end
    local id = row and row.id or
      db:query("INSERT INTO sweeps (name, spec, file, status) VALUES (?, ?, ?, 'open') RETURNING id",
        spec.name, sj, FILE)[1].id
    for _, p in ipairs(points) do
      local cfg = copy(p.config)
      cfg.sweep, cfg.sweep_key, cfg.checkpoint_dir = spec.name, p.key, p.checkpoint_dir
      db:query([[INSERT OR IGNORE INTO sweep_points (sweep_id, idx, key, config, checkpoint_dir, status)
                 VALUES (?, ?, ?, ?, ?, 'pending')]], id, p.idx, p.key, hdlm.json_encode(plain(cfg)),
        p.checkpoint_dir)
    end
    if retry_failed then
      db:query("UPDATE sweep_points SET status = 'pending', error = NULL WHERE sweep_id = ? AND status = 'failed'", id)
    end
    db:query(SWEEP_STATUS, id)
    return id
  end)
end

-- The training runs of a point, oldest first.
local function point_runs(db, name, key)
  return db:query([[SELECT id, status FROM runs WHERE kind = 'train'
      AND json_extract(config, '$.sweep') = ? AND json_extract(config, '$.sweep_key') = ? ORDER BY id]],
    name, key)
end

local function id_list(runs)
  local ids = {}
  for i, r in ipairs(runs) do ids[i] = tostring(math.tointeger(r.id)) end
  return #ids > 0 and table.concat(ids, ",") or "NULL"
end

local function latest_step(dir) -- the step the point's next training resumes from (0: none)
  local f = io.open(dir .. "/latest")
  if not f then return 0 end
  local s = f:read("l")
  f:close()
  return math.tointeger(tonumber(s or "")) or 0
end

-- ---- the worker -----------------------------------------------------------------------------------

local function claim(db, sid)
  return tx(db, function()
    return db:query(([[UPDATE sweep_points SET status = 'running', worker = ?2, host = ?3, pid = ?4,
        pid_start = ?5, attempts = attempts + 1, claimed_at = %s, ended_at = NULL
      WHERE sweep_id = ?1 AND idx = (SELECT idx FROM sweep_points WHERE sweep_id = ?1
                                     AND status = 'pending' ORDER BY idx LIMIT 1)
      RETURNING idx, key, checkpoint_dir, error]]):format(NOW),
      sid, math.tointeger(A.worker) or 0, tostring(A.host), math.tointeger(A.pid),
      math.tointeger(A.pid_start) or 0)[1]
  end)
end

local function finish(db, sid, p, status, run_id, err, result, loss)
  tx(db, function()
    db:query(([[UPDATE sweep_points SET status = ?3, run_id = ?4, error = ?5, result = ?6, loss = ?7,
        ended_at = %s WHERE sweep_id = ?1 AND idx = ?2 AND status = 'running' AND pid = ?8]]):format(NOW),
      sid, p.idx, status, run_id, err, result, loss, math.tointeger(A.pid))
    db:query(SWEEP_STATUS, sid)
  end)
end

local function last_loss(db, runs)
  local r = db:query(("SELECT value FROM metrics WHERE run_id IN (%s) AND name = 'loss' ORDER BY step DESC, run_id DESC LIMIT 1")
    :format(id_list(runs)))[1]
  return r and r.value
end

local function run_point(db, spec, sid, p, point, n_points)
  local tag = ("[worker %s] point %d/%d %s:"):format(tostring(A.worker), p.idx + 1, n_points, p.key)
  if not point then
    finish(db, sid, p, "failed", nil, ("the point is no longer in %s"):format(FILE))
    return
  end
  local t0 = hdlm.time()
  local runs = point_runs(db, spec.name, p.key)
  local resume = latest_step(p.checkpoint_dir)
  -- An interrupted attempt keeps its metrics up to the checkpoint this attempt resumes from; the
  -- later ones are computed again (bit-identically with the same threads) by the resumed run.
  for _, r in ipairs(runs) do
    if r.status == "running" then
      -- We hold the point, so its earlier worker is gone; the store's reaper may not have seen it
      -- yet (a killed worker stays a zombie until init collects it).
      db:query(("UPDATE runs SET status = 'interrupted', ended_at = %s, error = ? WHERE id = ? AND status = 'running'")
        :format(NOW), "its sweep worker ended while running it", r.id)
      r.status = "interrupted"
    end
    if r.status == "interrupted" then
      db:query("DELETE FROM metrics WHERE run_id = ? AND step > ?", r.id, resume)
    end
  end
  local last = runs[#runs]
  local run
  if last and last.status == "done" then
    -- trained by an earlier attempt that stopped before its eval/after: do not train again
    if spec.eval or spec.after then
      local ok, r = pcall(function() return (require("hdlm_run").load(db, last.id)) end)
      if not ok then
        finish(db, sid, p, "failed", last.id, "cannot reload run " .. last.id .. ": " .. first_line(r))
        return
      end
      run = r
    end
    print(("%s trained by run %d already"):format(tag, last.id))
  else
    print(("%s %s"):format(tag, resume > 0 and ("resuming from step %d"):format(resume) or "starting"))
    local ok, r = pcall(function()
      local opts = copy(point.config)
      opts.data = corpus_of(opts.data, "")
      opts.sweep, opts.sweep_key, opts.checkpoint_dir = spec.name, p.key, p.checkpoint_dir
      return db:train(opts)
    end)
    -- stopped by Ctrl-C/SIGTERM (forwarded by the coordinator): not a failure; leave with the
    -- point 'running' so that the next start reclaims it and resumes from its checkpoint
    if not ok and hdlm.interrupted() then error(r, 0) end
    if not ok then
      local rs = point_runs(db, spec.name, p.key)
      local rid = #rs > #runs and rs[#rs].id or nil
      finish(db, sid, p, "failed", rid, first_line(r))
      print(("%s FAILED: %s"):format(tag, first_line(r)))
      return
    end
    run = r
  end
  local run_id = run and run.id or last.id
  local result, err = {}, nil
  if spec.eval then
    local ok, ev = pcall(run.eval, run, copy(spec.eval))
    if ok then
      result.eval = { estimator = ev.estimator, nats = ev.nats, se = ev.se, bits = ev.bits,
        bits_se = ev.bits_se, unit = ev.unit, sequences = ev.sequences }
    else
      err = "eval: " .. first_line(ev)
    end
  end
  if spec.after and not err then
    local info = { idx = p.idx, key = p.key, config = copy(point.config), sweep = spec.name }
    local ok, v = pcall(spec.after, run, info, db)
    if ok then
      result.after = plain(v)
      local jok, msg = pcall(hdlm.json_encode, result.after)
      if not jok then err = "after: its result cannot be stored as JSON: " .. first_line(msg) end
    else
      err = "after: " .. first_line(v)
    end
  end
  local loss = last_loss(db, point_runs(db, spec.name, p.key))
  local rj = next(result) and hdlm.json_encode(result) or nil
  finish(db, sid, p, err and "failed" or "done", run_id, err, rj, loss)
  print(("%s %s in %.0f s, loss %s (run %d)%s"):format(tag, err and "FAILED" or "done", hdlm.time() - t0,
    loss and ("%.4f"):format(loss) or "-", run_id, err and (": " .. err) or ""))
end

local function worker(db, spec, points)
  io.stdout:setvbuf("line")
  local sid = plan(db, spec, points, false)
  local by_key = {}
  for _, p in ipairs(points) do by_key[p.key] = p end
  while true do
    local p = claim(db, sid)
    if not p then break end
    run_point(db, spec, sid, p, by_key[p.key], #points)
  end
end

-- ---- progress ----------------------------------------------------------------------------------

local function result_text(rj)
  if not rj then return "" end
  local r = hdlm.json_decode(rj)
  local parts = {}
  if r.eval and r.eval.bits then
    parts[#parts + 1] = ("%.4f ± %.4f bits/%s"):format(r.eval.bits, r.eval.bits_se or 0, r.eval.unit or "token")
  end
  if r.after ~= nil then
    local s = render(r.after)
    parts[#parts + 1] = #s > 48 and s:sub(1, 45) .. "..." or s
  end
  return table.concat(parts, "; ")
end

local function find_sweep(db, what)
  local rows = db:query("SELECT id, name, file, status, created_at, updated_at FROM sweeps WHERE name = ? OR id = ? ORDER BY name = ? DESC",
    tostring(what), math.tointeger(tonumber(what)) or -1, tostring(what))
  if rows[1] then return rows[1] end
  local names = {}
  for _, r in ipairs(db:query("SELECT name FROM sweeps ORDER BY id")) do names[#names + 1] = r.name end
  fail("no sweep '%s' in %s (%s)", tostring(what), db.path,
    #names > 0 and "sweeps: " .. table.concat(names, ", ") or "it has no sweeps")
end

-- Prints the sweep's progress; returns the counts by status.
local function show(db, sw)
  local pts = db:query("SELECT * FROM sweep_points WHERE sweep_id = ? ORDER BY idx", sw.id)
  local count = { done = 0, running = 0, pending = 0, failed = 0 }
  local rows = { { "point", "status", "run", "step", "loss", "result", "key", "note" } }
  for _, p in ipairs(pts) do
    count[p.status] = count[p.status] + 1
    local runs = point_runs(db, sw.name, p.key)
    local cfg = hdlm.json_decode(p.config)
    local step = db:query(("SELECT max(step) AS s FROM metrics WHERE run_id IN (%s) AND name = 'loss'")
      :format(id_list(runs)))[1].s
    local loss = p.loss or (#runs > 0 and last_loss(db, runs)) or nil
    local run_id = p.run_id or (runs[#runs] and runs[#runs].id)
    local note = ""
    if p.status == "running" then
      note = ("worker %d, pid %d on %s"):format(p.worker or 0, p.pid or 0, p.host or "?")
    elseif p.status == "failed" then
      note = first_line(p.error or "")
    elseif p.status == "pending" then
      local r = latest_step(p.checkpoint_dir)
      note = (p.error and first_line(p.error) .. "; " or "") .. (r > 0 and ("resumes from step %d"):format(r) or "")
      note = note:gsub("; $", "")
    end
    rows[#rows + 1] = {
      tostring(p.idx + 1), p.status, run_id and tostring(math.tointeger(run_id)) or "-",
      ("%d/%d"):format(math.tointeger(step) or 0, math.tointeger(cfg.steps or 100) or 0),
      loss and ("%.4f"):format(loss) or "-", result_text(p.result), p.key, note,
    }
  end
  print(("sweep %s (id %d) in %s: %d points: %d done, %d running, %d pending, %d failed"):format(
    sw.name, sw.id, db.path, #pts, count.done, count.running, count.pending, count.failed))
  print(("  file %s, created %s, status %s"):format(sw.file or "?", sw.created_at, sw.status))
  local width = {}
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do width[i] = math.max(width[i] or 0, utf8.len(c) or #c) end
  end
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do
      cells[i] = i < #r and c .. (" "):rep(width[i] - (utf8.len(c) or #c)) or c
    end
    print((("  " .. table.concat(cells, "  ")):gsub("%s+$", "")))
  end
  count.total = #pts
  return count
end

-- ---- main ----------------------------------------------------------------------------------------

local mode = A.mode
local db = hdlm.open()
if mode == "status" then
  show(db, find_sweep(db, A.sweep))
  return
end
local spec = load_spec(FILE)
local points = expand(spec)
if mode == "plan" then
  local sid = plan(db, spec, points, A.retry_failed == true)
  local c = { done = 0, running = 0, pending = 0, failed = 0 }
  local resumes = 0
  for _, p in ipairs(db:query("SELECT status, checkpoint_dir FROM sweep_points WHERE sweep_id = ?", sid)) do
    c[p.status] = c[p.status] + 1
    if p.status == "pending" and latest_step(p.checkpoint_dir) > 0 then resumes = resumes + 1 end
  end
  print(("sweep %s (id %d) in %s: %d points: %d done, %d running elsewhere, %d failed, %d to run%s"):format(
    spec.name, sid, db.path, #points, c.done, c.running, c.failed, c.pending,
    resumes > 0 and (" (%d resume from a checkpoint)"):format(resumes) or ""))
elseif mode == "worker" then
  worker(db, spec, points)
elseif mode == "final" then
  local c = show(db, find_sweep(db, spec.name))
  if c.done < c.total then
    fail("%s: %d of %d points not done (%d failed, %d pending, %d running); run the same command again to resume%s",
      spec.name, c.total - c.done, c.total, c.failed, c.pending, c.running,
      c.failed > 0 and " (--retry-failed runs failed points again)" or "")
  end
else
  fail("unknown mode '%s'", tostring(mode))
end
