-- Brings a stored training run back so it can sample: its newest checkpoint (EMA weights when
-- saved), its noise process and hyperschedule as recorded in run_plugins, and its attention
-- layout from the run's config. Used by `hdlm sample --run ID`; from Lua:
--   local run = require("hdlm_run").load(db, 3); run:sample{ sampler = "acs", n = 4 }
local hdlm = require "hdlm"

local M = {}

local function spec(row)
  local t = row.options and hdlm.json_decode(row.options) or {}
  t[1] = row.name
  return t
end

function M.load(db, id)
  id = math.tointeger(id) or error("run id must be an integer, got " .. tostring(id), 2)
  local run = db:query("SELECT id, config FROM runs WHERE id = ?", id)[1]
  if not run then error(("no run %d in %s"):format(id, db.path), 2) end
  local ck = db:query("SELECT path, step FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1", id)[1]
  if not ck then
    error(("run %d has no checkpoint; train with checkpoint_dir = ... and ckpt_every = N to sample or evaluate it later"):format(id), 2)
  end
  local ema = ck.path:gsub("%.safetensors$", ".ema.safetensors")
  local f = io.open(ema)
  if f then f:close() else ema = ck.path end
  local plugins = {}
  for _, p in ipairs(db:query("SELECT kind, name, version, options FROM run_plugins WHERE run_id = ?", id)) do
    plugins[p.kind] = p
  end
  if not plugins.noise or not plugins.schedule then
    error(("run %d was not trained with a noise process and a schedule (objective 'ar'/'mask' models "
      .. "sample with hdlm.model{checkpoint = ...}:generate{...})"):format(id), 2)
  end
  if plugins.schedule.version == "lua" then
    error(("run %d used a schedule written in Lua ('%s'); attach it yourself with db:attach{...}")
      :format(id, plugins.schedule.name), 2)
  end
  local cfg = run.config and hdlm.json_decode(run.config) or {}
  return db:attach{
    run = id, model = hdlm.model{ checkpoint = ema },
    noise = spec(plugins.noise), schedule = spec(plugins.schedule),
    context = cfg.context or "block_causal", block_type = cfg.block_type or "full",
    context_width = cfg.context_width,
  }, ck
end

return M
