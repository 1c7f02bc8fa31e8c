-- `hdlm report`: turns any database hdlm wrote into ONE self-contained HTML page (inline CSS,
-- inline SVG charts, a little inline JS; nothing is fetched from the network): the runs with their
-- configs and plugins (grouped per sweep), loss curves, the likelihood bound per schedule, the
-- generation-quality frontier and a sample browser that shows what the sampler corrected.
-- Embedded into the binary at build time and run by cmd_report (core/app/main.c) with
-- hdlm.db_path = the database and hdlm.args.out = the output file. The database was checked by
-- the caller (it exists and hdlm made it); every string taken from it goes through esc().
local hdlm = require "hdlm"

local LN2 = math.log(2)
local MAX_POINTS = 400   -- per series: long runs are downsampled to keep the page small
local MAX_SAMPLES = 200  -- newest samples shown in the browser
local TRAIN_NAMES = { "loss", "train/loss", "train_loss" }   -- what training logs (l_model.c: "loss")
local VALID_NAMES = { "valid_loss", "val/loss", "valid/loss", "val_loss", "val/nll" }
local GEN_METRICS = { "gen_nll", "entropy", "gen_ppl", "gen_ppl_mean", "distinct_1", "distinct_2",
  "distinct_3", "distinct_4", "rep_2", "rep_3", "rep_4" }
local PALETTE = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf" }

-- ---- text helpers ---------------------------------------------------------------------------

-- Invalid UTF-8 bytes (a byte tokenizer can cut a character in half) become \xNN text.
local function utf8_clean(s)
  local out, i = {}, 1
  while true do
    local n, bad = utf8.len(s, i)
    if n then
      out[#out + 1] = s:sub(i)
      return table.concat(out)
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = ("\\x%02X"):format(s:byte(bad))
    i = bad + 1
  end
end

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- HTML-escapes any value for text or a double-quoted attribute; control characters other than
-- tab and newline are shown as \xNN (HTML forbids most of them).
local function esc(v)
  if v == nil then return "" end
  local s = utf8_clean(tostring(v))
  s = s:gsub("[%z\1-\8\11-\31\127]", function(c) return ("\\x%02X"):format(c:byte()) end)
  return (s:gsub("[&<>\"']", ENTITIES))
end

local function fmt_num(v, digits)
  if v == nil then return "—" end
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "NaN" end
  return ("%." .. (digits or 4) .. "g"):format(v)
end

local function fmt_duration(s)
  if not s then return "—" end
  if s < 60 then return ("%.1f s"):format(s) end
  if s < 3600 then return ("%d m %02d s"):format(s // 60, math.floor(s % 60)) end
  return ("%d h %02d m"):format(s // 3600, math.floor(s % 3600) // 60)
end

-- "2024-05-01T12:34:56.789Z" -> "2024-05-01 12:34:56" with the full stamp on hover (HTML); the
-- date is left out when it is same_day's (a run's end shown next to its start).
local function time_cell(ts, same_day)
  if not ts then return "—" end
  local day, time = ts:match("^(%d+%-%d+%-%d+)T(%d+:%d+:%d+)")
  if not day then return esc(ts) end
  local shown = (same_day and same_day:sub(1, 10) == day) and time or (day .. " " .. time)
  return ('<span class="ts" title="%s">%s</span>'):format(esc(ts), shown)
end

local function truncate(s, n)
  if utf8.len(s) and utf8.len(s) > n then return s:sub(1, utf8.offset(s, n) - 1) .. "…" end
  return s
end

local function json(s)
  if not s then return nil end
  local ok, v = pcall(hdlm.json_decode, s)
  return ok and v or nil
end

-- Pretty-prints JSON text as it is (keys keep their stored order): two-space indentation.
local function json_pretty(s)
  local out, depth, i, n = {}, 0, 1, #s
  local function nl() return "\n" .. ("  "):rep(depth) end
  while i <= n do
    local c = s:sub(i, i)
    if c == '"' then
      local j = i + 1
      while j <= n do
        local d = s:sub(j, j)
        if d == "\\" then j = j + 2 elseif d == '"' then break else j = j + 1 end
      end
      out[#out + 1] = s:sub(i, j)
      i = j + 1
    elseif c == "{" or c == "[" then
      local k = s:find("%S", i + 1)
      local close = c == "{" and "}" or "]"
      if k and s:sub(k, k) == close then
        out[#out + 1] = c .. close
        i = k + 1
      else
        depth = depth + 1
        out[#out + 1] = c .. nl()
        i = i + 1
      end
    elseif c == "}" or c == "]" then
      depth = depth - 1
      out[#out + 1] = nl() .. c
      i = i + 1
    elseif c == "," then
      out[#out + 1] = "," .. nl()
      i = i + 1
    elseif c == ":" then
      out[#out + 1] = ": "
      i = i + 1
    elseif c:match("%s") then
      i = i + 1
    else -- number, true, false, null
      local j = (s:find('[%s,:%]}"]', i) or n + 1) - 1
      out[#out + 1] = s:sub(i, j)
      i = j + 1
    end
  end
  return table.concat(out)
end

-- The keys of t (as they are: strings or integers), sorted by their text.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- A short human form of a decoded JSON value: plugin specs as name(k=v, ...), objects as
-- {k=v, ...}, arrays as [a, b].
local function brief(v)
  if type(v) ~= "table" then
    if type(v) == "number" then return fmt_num(v) end
    return tostring(v)
  end
  -- a plugin spec: {"name":..,"options":{..}}, or a Lua spec {"1": name, key = value}, or [name]
  local single = #v == 1 and next(v, next(v)) == nil -- exactly one entry, v[1]
  local name = v.name or v["1"] or (single and v[1]) or nil
  local parts = {}
  if type(name) == "string" then
    local opts = type(v.options) == "table" and v.options or v
    for _, k in ipairs(sorted_keys(opts)) do
      if k ~= 1 and k ~= "1" and k ~= "name" and k ~= "version" and k ~= "options" then
        parts[#parts + 1] = tostring(k) .. "=" .. brief(opts[k])
      end
    end
    return name .. "(" .. table.concat(parts, ", ") .. ")"
  end
  if #v > 0 then
    for _, x in ipairs(v) do parts[#parts + 1] = brief(x) end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = tostring(k) .. "=" .. brief(v[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- ---- SVG charts ---------------------------------------------------------------------------------

-- About five round tick values (1, 2, 5 x 10^k apart) covering [lo, hi].
local function nice_ticks(lo, hi, n)
  if hi - lo < 1e-12 * math.max(1, math.abs(hi)) then
    local pad = math.abs(lo) * 0.1 + (lo == 0 and 1 or 0)
    lo, hi = lo - pad, hi + pad
  end
  local raw = (hi - lo) / (n or 5)
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, m in ipairs{ 1, 2, 5, 10 } do
    if m * mag >= raw then step = m * mag; break end
  end
  local ticks = {}
  local t0 = math.floor(lo / step + 1e-9) * step
  for k = 0, 1000 do
    local t = t0 + k * step
    ticks[#ticks + 1] = t
    if t >= hi - 1e-9 * step then break end
  end
  return ticks, ticks[1], ticks[#ticks]
end

-- Ticks 1, 2, 5 x 10^k (only 10^k over more than three decades) from the one at or below lo
-- to the one at or above hi, for a logarithmic axis (0 < lo <= hi).
local function log_ticks(lo, hi)
  local mults = math.log(hi / lo, 10) > 3 and { 1 } or { 1, 2, 5 }
  local all = {}
  for k = math.floor(math.log(lo, 10)) - 1, math.ceil(math.log(hi, 10)) do
    for _, m in ipairs(mults) do all[#all + 1] = m * 10 ^ k end
  end
  local first, last = 1, nil
  for i, t in ipairs(all) do
    if t <= lo then first = i end
    if t >= hi then last = last or i end
  end
  last = last or #all
  return table.move(all, first, last, 1, {}), all[first], all[last]
end

local function fmt_tick(t)
  if math.abs(t) < 1e-12 then return "0" end
  return ("%.6g"):format(t) -- 10000, not 1e+04
end

local function text_width(s) return math.ceil(6.2 * (utf8.len(s) or #s)) end

-- The frame shared by every chart: plot area, axes with ticks, grid lines, labels, title.
-- Returns the pieces of SVG and x/y mapping functions.
local function svg_axes(o)
  local W, H = o.width, o.height
  local L, R, T, B = o.left or 58, 22, 26, 42
  local pw, ph = W - L - R, H - T - B
  local xt, x0, x1 = nice_ticks(o.xlo, o.xhi, o.xticks or 6)
  local yt, y0, y1
  if o.ylog then
    yt, y0, y1 = log_ticks(o.ylo, o.yhi)
  else
    yt, y0, y1 = nice_ticks(o.ylo, o.yhi, 5)
  end
  local ty = o.ylog and function(y) return math.log(y, 10) end or function(y) return y end
  local function X(x) return L + (x - x0) / (x1 - x0) * pw end
  local function Y(y) return T + ph - (ty(y) - ty(y0)) / (ty(y1) - ty(y0)) * ph end
  local s = {}
  s[#s + 1] = ('<text class="title" x="%d" y="16">%s</text>'):format(L, esc(o.title))
  for _, t in ipairs(o.no_y and {} or yt) do
    s[#s + 1] = ('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>'):format(L, L + pw, Y(t), Y(t))
    s[#s + 1] = ('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>'):format(L - 5, Y(t) + 4, fmt_tick(t))
  end
  for _, t in ipairs(xt) do
    s[#s + 1] = ('<line class="axis" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>'):format(X(t), X(t), T + ph, T + ph + 4)
    s[#s + 1] = ('<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>'):format(X(t), T + ph + 16, fmt_tick(t))
  end
  s[#s + 1] = ('<path class="axis" d="M%d %d V%d H%d"/>'):format(L, T, T + ph, L + pw)
  s[#s + 1] = ('<text class="label" x="%.1f" y="%d" text-anchor="middle">%s</text>'):format(L + pw / 2, T + ph + 32, esc(o.xlabel))
  s[#s + 1] = ('<text class="label" transform="translate(13 %.1f) rotate(-90)" text-anchor="middle">%s</text>'):format(T + ph / 2, esc(o.ylabel))
  return s, X, Y, T + ph
end

-- A legend laid out left to right below the plot, wrapping; returns SVG pieces and its height.
local function svg_legend(entries, width, top)
  local s, x, y = {}, 10, top + 12
  for _, e in ipairs(entries) do
    local label = truncate(e.name, 60)
    local w = 26 + text_width(label) + 14
    if x > 10 and x + w > width then x, y = 10, y + 16 end
    s[#s + 1] = ('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>'):format(
      x, x + 20, y - 4, y - 4, e.color, e.dash and ' stroke-dasharray="5 3"' or "")
    s[#s + 1] = ('<text class="legend" x="%d" y="%d">%s</text>'):format(x + 25, y, esc(label))
    x = x + w
  end
  return s, #entries > 0 and (y - top + 8) or 0
end

-- Keeps at most max points, evenly spaced, always the first and the last.
local function downsample(points, max)
  if #points <= max then return points end
  local out = {}
  for k = 0, max - 1 do out[#out + 1] = points[1 + math.floor(k * (#points - 1) / (max - 1) + 0.5)] end
  return out
end

-- series = { {name=, color=, dash=, points = {{x, y}, ...}} }; returns one <svg class="chart">.
local function svg_line_chart(o)
  local W, H = o.width or 440, o.height or 250
  local xlo, xhi, ylo, yhi = math.huge, -math.huge, math.huge, -math.huge
  for _, sr in ipairs(o.series) do
    for _, p in ipairs(sr.points) do
      xlo, xhi = math.min(xlo, p[1]), math.max(xhi, p[1])
      ylo, yhi = math.min(ylo, p[2]), math.max(yhi, p[2])
    end
  end
  if xlo > xhi then xlo, xhi, ylo, yhi = 0, 1, 0, 1 end
  -- losses of different objectives can differ by orders of magnitude: a log axis keeps them apart
  local ylog = o.auto_log and ylo > 0 and yhi / ylo > 30
  local s, X, Y, bottom = svg_axes{ width = W, height = H, title = o.title, xlabel = o.xlabel,
    ylabel = o.ylabel .. (ylog and " (log scale)" or ""), xlo = xlo, xhi = xhi, ylo = ylo, yhi = yhi,
    ylog = ylog }
  for _, sr in ipairs(o.series) do
    local d = {}
    for k, p in ipairs(sr.points) do d[#d + 1] = ("%s%.1f %.1f"):format(k == 1 and "M" or "L", X(p[1]), Y(p[2])) end
    s[#s + 1] = ('<path class="line" d="%s" stroke="%s"%s><title>%s</title></path>'):format(
      table.concat(d, " "), sr.color, sr.dash and ' stroke-dasharray="5 3"' or "", esc(sr.name))
    if #sr.points <= 40 then -- few points (evaluations): mark each one
      for _, p in ipairs(sr.points) do
        s[#s + 1] = ('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: step %s, %s</title></circle>'):format(
          X(p[1]), Y(p[2]), sr.color, esc(sr.name), fmt_num(p[1]), fmt_num(p[2]))
      end
    end
  end
  local legend, lh = svg_legend(o.series, W, bottom + 36)
  for _, l in ipairs(legend) do s[#s + 1] = l end
  return ('<svg class="chart line-chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">%s</svg>'):format(
    W, H + lh, W, H + lh, table.concat(s, "\n"))
end

-- Horizontal bars (labels can be long): bars = { {label=, value=, err=, color=} }; err is the
-- half-width of the error bar.
local function svg_bar_chart(o)
  local row, W = 24, o.width or 1100
  local lw = 0
  for _, b in ipairs(o.bars) do lw = math.max(lw, text_width(truncate(b.label, 80))) end
  lw = math.min(lw + 16, 560)
  local lo, hi = 0, 0
  for _, b in ipairs(o.bars) do
    lo = math.min(lo, b.value - (b.err or 0))
    hi = math.max(hi, b.value + (b.err or 0))
  end
  local H = 26 + 42 + row * #o.bars
  local s, X, Y = svg_axes{ width = W, height = H, title = o.title, xlabel = o.xlabel, ylabel = "",
    xlo = lo, xhi = hi * 1.08, ylo = 0, yhi = 1, left = lw, xticks = 8, no_y = true }
  for i, b in ipairs(o.bars) do
    local yc = 26 + row * (i - 0.5)
    local x0, x1 = X(0), X(b.value)
    s[#s + 1] = ('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s<title>%s</title></text>'):format(
      lw - 6, yc + 4, esc(truncate(b.label, 80)), esc(b.label))
    s[#s + 1] = ('<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s: %s ± %s</title></rect>'):format(
      math.min(x0, x1), yc - 8, math.abs(x1 - x0), 16, b.color, esc(b.label), fmt_num(b.value), fmt_num(b.err))
    local xe = x1
    if b.err and b.err > 0 then
      local a, c = X(b.value - b.err), X(b.value + b.err)
      s[#s + 1] = ('<path class="err" d="M%.1f %.1f H%.1f M%.1f %.1f V%.1f M%.1f %.1f V%.1f"/>'):format(
        a, yc, c, a, yc - 5, yc + 5, c, yc - 5, yc + 5)
      xe = c
    end
    s[#s + 1] = ('<text class="value" x="%.1f" y="%.1f">%s</text>'):format(xe + 5, yc + 4, fmt_num(b.value))
  end
  return ('<svg class="chart bar-chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">%s</svg>'):format(
    W, H, W, H, table.concat(s, "\n"))
end

-- points = { {x=, y=, label=, short=, color=} }, each marked with its short label beside it and
-- the full one on hover.
local function svg_scatter(o)
  local W, H = o.width or 900, o.height or 420
  local xlo, xhi, ylo, yhi = math.huge, -math.huge, math.huge, -math.huge
  for _, p in ipairs(o.points) do
    xlo, xhi = math.min(xlo, p.x), math.max(xhi, p.x)
    ylo, yhi = math.min(ylo, p.y), math.max(yhi, p.y)
  end
  -- a margin of 5% so that no point sits on an axis
  local px, py = 0.05 * (xhi - xlo), 0.05 * (yhi - ylo)
  local s, X, Y = svg_axes{ width = W, height = H, title = o.title, xlabel = o.xlabel, ylabel = o.ylabel,
    xlo = xlo - px, xhi = xhi + px, ylo = ylo - py, yhi = yhi + py }
  for _, p in ipairs(o.points) do
    local label = truncate(p.short or p.label, 48)
    local x, y = X(p.x), Y(p.y)
    local right = x + 8 + text_width(label) < W - 4
    s[#s + 1] = ('<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s"><title>%s\nentropy %s nats, gen NLL %s nats/token</title></circle>'):format(
      x, y, p.color, esc(p.label), fmt_num(p.x), fmt_num(p.y))
    s[#s + 1] = ('<text class="point" x="%.1f" y="%.1f" text-anchor="%s">%s</text>'):format(
      right and x + 7 or x - 7, y - 6, right and "start" or "end", esc(label))
  end
  return ('<svg class="chart scatter" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">%s</svg>'):format(
    W, H, W, H, table.concat(s, "\n"))
end

-- ---- reading the store ----------------------------------------------------------------------------

local function load_runs(db)
  local runs, by_id = db:query([[
    SELECT id, name, kind, status, error, config, seed, git_rev, git_dirty, host, cpu, blas, threads,
           world_size, script, hdlm_version, started_at, ended_at,
           (julianday(ended_at) - julianday(started_at)) * 86400.0 AS duration
    FROM runs ORDER BY id]]), {}
  for _, r in ipairs(runs) do
    r.cfg = json(r.config) or {}
    r.plugins = {}
    by_id[r.id] = r
  end
  for _, p in ipairs(db:query("SELECT run_id, kind, name, version, options FROM run_plugins ORDER BY run_id, kind, name")) do
    if by_id[p.run_id] then table.insert(by_id[p.run_id].plugins, p) end
  end
  return runs, by_id
end

local function run_label(by_id, id)
  local r = by_id[id]
  if r and r.name and r.name ~= "" then return ("run %d %s"):format(id, r.name) end
  return ("run %d"):format(id)
end

local function sweep_of(r)
  local s = r.cfg.sweep
  if type(s) == "table" then s = s.name or s.id end
  return s ~= nil and tostring(s) or nil
end

-- The loss series of every run: { [run id] = { train = {name=, points=}, valid = {...} } }.
local function load_loss_series(db)
  local names, marks = {}, {}
  for _, n in ipairs(TRAIN_NAMES) do names[#names + 1] = n end
  for _, n in ipairs(VALID_NAMES) do names[#names + 1] = n end
  for i = 1, #names do marks[i] = "?" end
  local rows = db:query(("SELECT run_id, name, step, value FROM metrics WHERE name IN (%s) AND value IS NOT NULL ORDER BY run_id, name, step")
    :format(table.concat(marks, ",")), table.unpack(names))
  local raw = {}
  for _, m in ipairs(rows) do
    raw[m.run_id] = raw[m.run_id] or {}
    raw[m.run_id][m.name] = raw[m.run_id][m.name] or {}
    table.insert(raw[m.run_id][m.name], { m.step, m.value })
  end
  local out = {}
  for id, by_name in pairs(raw) do
    local entry = {}
    for _, n in ipairs(TRAIN_NAMES) do
      if by_name[n] and not entry.train then entry.train = { name = n, points = downsample(by_name[n], MAX_POINTS) } end
    end
    for _, n in ipairs(VALID_NAMES) do
      if by_name[n] and not entry.valid then entry.valid = { name = n, points = downsample(by_name[n], MAX_POINTS) } end
    end
    out[id] = entry
  end
  return out
end

-- ---- HTML sections ----------------------------------------------------------------------------------

local function none(what) return ('<p class="none">no data: %s</p>'):format(esc(what)) end

local function html_table(headers, rows, class)
  local h = { ('<div class="scroll"><table class="%s"><thead><tr>'):format(class or "") }
  for _, x in ipairs(headers) do h[#h + 1] = "<th>" .. esc(x) .. "</th>" end
  h[#h + 1] = "</tr></thead><tbody>"
  for _, r in ipairs(rows) do
    h[#h + 1] = "<tr>"
    for _, cell in ipairs(r) do h[#h + 1] = "<td>" .. cell .. "</td>" end -- cells are HTML already
    h[#h + 1] = "</tr>"
  end
  h[#h + 1] = "</tbody></table></div>"
  return table.concat(h)
end

local function config_cell(r)
  if not r.config then return "—" end
  local parts = {}
  for _, k in ipairs(sorted_keys(r.cfg)) do
    if k ~= "name" then parts[#parts + 1] = tostring(k) .. "=" .. brief(r.cfg[k]) end
  end
  local prov = ("hdlm %s · git %s%s · %s · %s · %s · %s"):format(r.hdlm_version or "?", r.git_rev or "?",
    r.git_dirty == 1 and " (dirty)" or "", r.host or "?", r.cpu or "?", r.blas or "?", r.script or "?")
  return ('<details><summary><code>%s</code></summary><pre class="json">%s</pre><p class="prov">%s</p></details>'):format(
    #parts > 0 and esc(truncate(table.concat(parts, " "), 140)) or "{}", esc(json_pretty(r.config)), esc(prov))
end

local function plugins_cell(r)
  if #r.plugins == 0 then return "—" end
  local items = {}
  for _, p in ipairs(r.plugins) do
    local opts = json(p.options)
    items[#items + 1] = ("<li><b>%s</b>: %s %s %s</li>"):format(esc(p.kind), esc(p.name), esc(p.version or ""),
      opts and next(opts) and ("<code>" .. esc(brief(opts)) .. "</code>") or "")
  end
  return '<ul class="plugins">' .. table.concat(items) .. "</ul>"
end

local function runs_rows(list)
  local rows = {}
  for _, r in ipairs(list) do
    local status = ('<span class="st st-%s">%s</span>'):format(esc(r.status), esc(r.status))
    if r.error then status = status .. '<div class="err-text">' .. esc(r.error) .. "</div>" end
    rows[#rows + 1] = {
      ('<a id="run-%d"></a>%d'):format(r.id, r.id), esc(r.name or ""), esc(r.kind), status,
      time_cell(r.started_at), time_cell(r.ended_at, r.started_at), r.ended_at and fmt_duration(r.duration) or "—",
      esc(r.world_size), esc(r.threads or "—"), esc(r.seed or "—"), config_cell(r), plugins_cell(r),
    }
  end
  return rows
end

local function section_runs(runs)
  local h = { '<section id="runs"><h2>Runs</h2>' }
  if #runs == 0 then
    h[#h + 1] = none("the database has no runs")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  local headers = { "id", "name", "kind", "status", "started", "ended", "duration", "world", "threads",
    "seed", "config", "plugins" }
  local plain, sweeps, order = {}, {}, {}
  for _, r in ipairs(runs) do
    local sw = sweep_of(r)
    if sw then
      if not sweeps[sw] then sweeps[sw] = {}; order[#order + 1] = sw end
      table.insert(sweeps[sw], r)
    else
      plain[#plain + 1] = r
    end
  end
  if #plain > 0 then h[#h + 1] = html_table(headers, runs_rows(plain), "runs") end
  for _, sw in ipairs(order) do
    h[#h + 1] = ('<h3 class="sweep">sweep %s <small>(%d runs)</small></h3>'):format(esc(sw), #sweeps[sw])
    h[#h + 1] = html_table(headers, runs_rows(sweeps[sw]), "runs")
  end
  h[#h + 1] = "</section>"
  return table.concat(h)
end

local function section_losses(runs, by_id, series)
  local h = { '<section id="losses"><h2>Loss curves</h2>' }
  local trained = {}
  for _, r in ipairs(runs) do
    if series[r.id] then trained[#trained + 1] = r end
  end
  if #trained == 0 then
    h[#h + 1] = none("no run logged a training loss (metrics '" .. table.concat(TRAIN_NAMES, "', '") .. "')")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  h[#h + 1] = ('<p class="note">Training loss (metric <code>%s</code>) and validation loss (<code>%s</code>, EMA weights), nats per token; at most %d points per series.</p>'):format(
    esc(table.concat(TRAIN_NAMES, "/")), esc(table.concat(VALID_NAMES, "/")), MAX_POINTS)
  -- the comparison first: valid loss of every run (train loss when a run has no valid)
  local overlay = {}
  for i, r in ipairs(trained) do
    local e = series[r.id]
    local sr = e.valid or e.train
    overlay[#overlay + 1] = { name = run_label(by_id, r.id) .. (e.valid and "" or " (train)"),
      color = PALETTE[(i - 1) % #PALETTE + 1], dash = i > #PALETTE, points = sr.points }
  end
  h[#h + 1] = '<div class="charts">'
  h[#h + 1] = svg_line_chart{ width = 900, height = 320, title = "all runs: validation loss (train loss when a run has none)",
    xlabel = "step", ylabel = "loss (nats/token)", series = overlay, auto_log = true }
  h[#h + 1] = '</div><div class="charts">'
  for _, r in ipairs(trained) do
    local e, sr = series[r.id], {}
    if e.train then sr[#sr + 1] = { name = "train (" .. e.train.name .. ")", color = PALETTE[1], points = e.train.points } end
    if e.valid then sr[#sr + 1] = { name = "valid (" .. e.valid.name .. ")", color = PALETTE[2], points = e.valid.points } end
    h[#h + 1] = svg_line_chart{ title = run_label(by_id, r.id), xlabel = "step", ylabel = "loss (nats/token)", series = sr }
  end
  h[#h + 1] = "</div></section>"
  return table.concat(h)
end

local function settings_cell(s)
  if not s then return "—" end
  return ('<details><summary><code>%s</code></summary><pre class="json">%s</pre></details>'):format(
    esc(truncate(s, 90)), esc(json_pretty(s)))
end

local function key_options(opts)
  if type(opts) ~= "table" then return "" end
  local parts = {}
  for _, k in ipairs(sorted_keys(opts)) do
    if k ~= "vocab" then parts[#parts + 1] = tostring(k) .. "=" .. brief(opts[k]) end
  end
  return truncate(table.concat(parts, ", "), 40)
end

local function spec_name(spec)
  if type(spec) ~= "table" then return spec and tostring(spec) or "?" end
  return tostring(spec.name or spec[1] or spec["1"] or "?") .. "(" .. key_options(spec.options) .. ")"
end

local function section_bounds(evals, by_id)
  local h = { '<section id="bounds"><h2>Likelihood bound vs schedule</h2>' }
  local bars = {}
  for _, ev in ipairs(evals) do
    if ev.metric == "nll_bound" and ev.value then
      local st = json(ev.settings) or {}
      bars[#bars + 1] = {
        label = ("%s · %s · %s"):format(run_label(by_id, ev.run_id), spec_name(st.schedule), tostring(st.estimator or "?")),
        value = ev.value / LN2, err = ev.std_error and 2 * ev.std_error / LN2 or nil,
        color = PALETTE[(ev.run_id - 1) % #PALETTE + 1],
      }
    end
  end
  if #bars == 0 then
    h[#h + 1] = none("no evaluation with metric 'nll_bound'")
  else
    h[#h + 1] = '<p class="note">Negative log-likelihood bound in bits per token (value / ln 2); whiskers ±2 standard errors.</p>'
    h[#h + 1] = '<div class="charts">' .. svg_bar_chart{ title = "NLL bound per evaluation",
      xlabel = "bits per token", bars = bars } .. "</div>"
  end
  h[#h + 1] = "<h3>All evaluations</h3>"
  if #evals == 0 then
    h[#h + 1] = none("the evaluations table is empty")
  else
    local rows = {}
    for _, ev in ipairs(evals) do
      rows[#rows + 1] = { tostring(ev.id), ('<a href="#run-%d">%s</a>'):format(ev.run_id, esc(run_label(by_id, ev.run_id))),
        esc(ev.checkpoint_id or "—"), esc(ev.metric), fmt_num(ev.value, 6), fmt_num(ev.std_error, 3),
        ev.metric == "nll_bound" and ev.value and fmt_num(ev.value / LN2, 5) or "—",
        settings_cell(ev.settings), time_cell(ev.created_at) }
    end
    h[#h + 1] = html_table({ "id", "run", "checkpoint", "metric", "value", "SE", "bits/token", "settings", "created" }, rows, "evals")
  end
  h[#h + 1] = "</section>"
  return table.concat(h)
end

local function gen_label(by_id, run_id, st, short)
  local parts = { short and ("run " .. run_id) or run_label(by_id, run_id), spec_name(st.sampler) }
  if st.temperature then parts[#parts + 1] = "T=" .. fmt_num(st.temperature) end
  if st.steps then parts[#parts + 1] = "steps=" .. fmt_num(st.steps) end
  if st.judge_run and not short then parts[#parts + 1] = "judge run " .. tostring(st.judge_run) end
  return table.concat(parts, " · ")
end

local function section_frontier(evals, by_id)
  local h = { '<section id="frontier"><h2>Generation quality frontier</h2>' }
  local is_gen = {}
  for _, m in ipairs(GEN_METRICS) do is_gen[m] = true end
  -- the metrics of one call share (run_id, settings text)
  local groups, order = {}, {}
  for _, ev in ipairs(evals) do
    if is_gen[ev.metric] then
      local key = ev.run_id .. "\0" .. (ev.settings or "")
      if not groups[key] then
        groups[key] = { run_id = ev.run_id, settings = ev.settings, m = {} }
        order[#order + 1] = key
      end
      groups[key].m[ev.metric] = ev.value
    end
  end
  if #order == 0 then
    h[#h + 1] = none("no evaluation with metrics 'gen_nll' / 'entropy'")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  local points, rows, present = {}, {}, {}
  for _, key in ipairs(order) do
    for m in pairs(groups[key].m) do present[m] = true end
  end
  local cols = {}
  for _, m in ipairs(GEN_METRICS) do if present[m] then cols[#cols + 1] = m end end
  for _, key in ipairs(order) do
    local g = groups[key]
    local st = json(g.settings) or {}
    local label = gen_label(by_id, g.run_id, st)
    if g.m.gen_nll and g.m.entropy then
      points[#points + 1] = { x = g.m.entropy, y = g.m.gen_nll, label = label, short = gen_label(by_id, g.run_id, st, true),
        color = PALETTE[(g.run_id - 1) % #PALETTE + 1] }
    end
    local row = { esc(label) }
    for _, m in ipairs(cols) do row[#row + 1] = fmt_num(g.m[m]) end
    row[#row + 1] = settings_cell(g.settings)
    rows[#rows + 1] = row
  end
  if #points > 0 then
    h[#h + 1] = '<p class="note">One point per generation setting: x = mean unigram entropy of the samples (nats), y = their NLL under the judge model (nats/token). Low NLL at high entropy is better.</p>'
    h[#h + 1] = '<div class="charts">' .. svg_scatter{ title = "gen NLL vs entropy", xlabel = "entropy (nats)",
      ylabel = "gen NLL (nats/token)", points = points } .. "</div>"
  else
    h[#h + 1] = none("no setting has both 'gen_nll' and 'entropy'")
  end
  local headers = { "setting" }
  for _, m in ipairs(cols) do headers[#headers + 1] = m end
  headers[#headers + 1] = "settings"
  h[#h + 1] = html_table(headers, rows, "gen")
  h[#h + 1] = "</section>"
  return table.concat(h)
end

-- ---- sample browser ----------------------------------------------------------------------------------

-- How one token id looks: its byte (bytes) or letter (text8); \xNN for a byte that is not
-- printable ASCII; the mask block for ids past the vocabulary. Returns text and a CSS class.
local bpe_cache = {} -- tokenizer name -> hdlm.Tokenizer, or false when it cannot be loaded here
local function token_text(id, tokenizer)
  if tokenizer == "gpt2" or tokenizer:sub(1, 4) == "bpe:" then
    -- a BPE token: its decoded bytes (the vocabulary, if this machine has it, else the id)
    if bpe_cache[tokenizer] == nil then
      local ok, t = pcall(hdlm.tokenizer, tokenizer)
      bpe_cache[tokenizer] = ok and t or false
    end
    local t = bpe_cache[tokenizer]
    if not t then return ("#%d"):format(id), "x" end
    if id < 0 or id >= t.vocab then return "█", "m" end
    if id == t.eot then return "<|endoftext|>", "x" end
    local s = utf8_clean(t:decode({ id }))
    if s == "\n" then return "↵\n", "x" end
    return s, ""
  end
  if tokenizer == "text8" then
    if id == 0 then return " ", "" end
    if id >= 1 and id <= 26 then return string.char(96 + id), "" end
    return "█", "m"
  end
  if id >= 256 or id < 0 then return "█", "m" end
  if id == 10 then return "↵\n", "x" end
  if id == 9 then return "\\t", "x" end
  if id >= 32 and id < 127 then return string.char(id), "" end
  return ("\\x%02X"):format(id), "x"
end

local function token_plain(id, tokenizer)
  if id == nil then return "∅" end
  local t = token_text(id, tokenizer)
  return t == "↵\n" and "\\n" or ("'" .. t .. "'")
end

local function sample_tokenizer(s, by_id)
  local st = json(s.settings) or {}
  if st.tokenizer and st.tokenizer ~= "none" then return st.tokenizer end
  local cfg = by_id[s.run_id] and by_id[s.run_id].cfg or {}
  local t = cfg.tokenizer or (type(cfg.data) == "table" and cfg.data.tokenizer)
    or (type(cfg.corpus) == "table" and cfg.corpus.tokenizer)
  return type(t) == "string" and t or "bytes"
end

local function sample_html(s, events, by_id)
  local tokenizer = sample_tokenizer(s, by_id)
  local ids = json(s.tokens) or {}
  local hist, mark = {}, {}
  for _, ev in ipairs(events or {}) do
    local p = ev.position
    hist[p] = hist[p] or {}
    table.insert(hist[p], ("step %d: %s→%s (%s)"):format(ev.step, token_plain(ev.old_token, tokenizer),
      token_plain(ev.new_token, tokenizer), ev.kind))
    mark[p] = mark[p] or {}
    mark[p][ev.kind] = true
  end
  local spans, n_corr, n_remask = {}, 0, 0
  for k, id in ipairs(ids) do
    local p = k - 1
    local text, class = token_text(math.tointeger(id) or -1, tokenizer)
    local cls = { "t" }
    if class ~= "" then cls[#cls + 1] = class end
    if mark[p] and mark[p].correct then cls[#cls + 1] = "c"; n_corr = n_corr + 1 end
    if mark[p] and mark[p].remask then cls[#cls + 1] = "r"; n_remask = n_remask + 1 end
    local title = "" -- one line of HTML per span: the tooltip's line breaks as &#10;
    if hist[p] then title = (' title="%s"'):format((esc(("position %d\n"):format(p) .. table.concat(hist[p], "\n")):gsub("\n", "&#10;"))) end
    spans[#spans + 1] = ('<span class="%s"%s>%s</span>'):format(table.concat(cls, " "), title, esc(text))
  end
  local sampler = json(s.sampler) or {}
  local sname = tostring(sampler.name or "?")
  local meta = ("sample %d · %s · %s · %s steps · %s NFE · %s s · %d tokens (%s) · %d corrected, %d remasked positions"):format(
    s.id, run_label(by_id, s.run_id), spec_name(sampler), fmt_num(s.steps), fmt_num(s.nfe),
    fmt_num(s.wall_time, 3), #ids, tokenizer, n_corr, n_remask)
  return ('<div class="sample" data-run="%d" data-sampler="%s"><div class="meta">%s</div><div class="toks">%s</div><details><summary>decoded text</summary><pre class="text">%s</pre></details></div>'):format(
    s.run_id, esc(sname), esc(meta), table.concat(spans), esc(s.text or ""))
end

local function select_html(id, label, values)
  local h = { ('<label>%s <select id="%s"><option value="">all</option>'):format(esc(label), id) }
  for _, v in ipairs(values) do h[#h + 1] = ('<option value="%s">%s</option>'):format(esc(v), esc(v)) end
  h[#h + 1] = "</select></label>"
  return table.concat(h)
end

local function section_samples(db, by_id)
  local h = { '<section id="samples"><h2>Samples</h2>' }
  local total = db:query("SELECT count(*) AS n FROM samples")[1].n
  if total == 0 then
    h[#h + 1] = none("the samples table is empty")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  local samples = db:query([[SELECT id, run_id, text, tokens, sampler, settings, steps, nfe, wall_time
    FROM samples ORDER BY id DESC LIMIT ?]], MAX_SAMPLES)
  local events = {}
  for _, ev in ipairs(db:query([[SELECT sample_id, step, position, old_token, new_token, kind
      FROM sample_events WHERE sample_id IN (SELECT id FROM samples ORDER BY id DESC LIMIT ?)
      ORDER BY sample_id, seq]], MAX_SAMPLES)) do
    events[ev.sample_id] = events[ev.sample_id] or {}
    table.insert(events[ev.sample_id], ev)
  end
  local runs_seen, samplers_seen, run_vals, sampler_vals = {}, {}, {}, {}
  for _, s in ipairs(samples) do
    if not runs_seen[s.run_id] then runs_seen[s.run_id] = true; run_vals[#run_vals + 1] = s.run_id end
    local name = tostring((json(s.sampler) or {}).name or "?")
    if not samplers_seen[name] then samplers_seen[name] = true; sampler_vals[#sampler_vals + 1] = name end
  end
  table.sort(run_vals)
  table.sort(sampler_vals)
  h[#h + 1] = ('<p class="note">%s One span per token; <span class="t c">orange</span> = the sampler corrected the token after unmasking it, <span class="t r">underlined</span> = the position was remasked, <span class="t m">█</span> = still masked, <span class="t x">\\xNN</span> = a byte that is not printable ASCII. Hover a token for the history of its position.</p>'):format(
    #samples < total and ("The newest %d of %d samples."):format(#samples, total) or ("All %d samples, newest first."):format(total))
  for i, v in ipairs(run_vals) do run_vals[i] = tostring(v) end
  h[#h + 1] = '<div class="filter">' .. select_html("f-run", "run", run_vals) .. " "
    .. select_html("f-sampler", "sampler", sampler_vals) .. ' <span id="f-count"></span></div>'
  for _, s in ipairs(samples) do h[#h + 1] = sample_html(s, events[s.id], by_id) end
  h[#h + 1] = "</section>"
  return table.concat(h)
end

-- ---- page ----------------------------------------------------------------------------------------

local CSS = [[
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;padding:0 20px 40px;color:#222}
h1{font-size:22px;margin:18px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:28px}
h3.sweep{margin-bottom:4px}nav a{margin-right:12px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3}code,pre{font:12px/1.35 ui-monospace,"DejaVu Sans Mono",monospace}
pre.json{background:#f8f8f8;padding:6px;margin:4px 0;max-height:420px;overflow:auto}
details summary{cursor:pointer}summary code{white-space:normal;word-break:break-all}td{max-width:520px}ul.plugins{margin:0;padding-left:16px}
.none{color:#777;font-style:italic}.note{color:#555}.prov{color:#666;font-size:12px}
.st-done{color:#2a7a2a}.st-failed{color:#b00}.st-interrupted{color:#b06000}.st-running{color:#0055aa}
.err-text{color:#b00;font-size:12px;max-width:360px}.ts{white-space:nowrap}
table.runs td:nth-child(2){max-width:240px;word-break:break-all}table.runs td:nth-child(11){min-width:340px}.scroll{overflow-x:auto}
.charts{display:flex;flex-wrap:wrap;gap:14px;margin:10px 0}
svg.chart{background:#fff;border:1px solid #e3e3e3}
svg .grid{stroke:#eee}svg .axis{stroke:#555;fill:none}svg .line{fill:none;stroke-width:1.8}
svg .err{stroke:#222;stroke-width:1.3;fill:none}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .title{font-weight:600;font-size:12px}
svg .label{fill:#555}svg .value{fill:#222}svg .point{font-size:10px;fill:#444}
.sample{border:1px solid #ddd;border-radius:4px;padding:6px 8px;margin:8px 0}
.sample .meta{color:#555;font-size:12px;margin-bottom:4px}
.toks{font:13px/1.7 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre-wrap;word-break:break-all}
.t.c{background:#ffb347}.t.r{text-decoration:underline 2px #1f6fd6;color:#1f4f96}
.t.m{color:#999}.t.x{color:#8a5a00;font-size:11px}
.filter{margin:6px 0 10px}#errors{color:#b00;background:#fff0f0;padding:8px;white-space:pre-wrap}
]]

-- Runs after the page is parsed: the sample filter, counts for tests, and data-ready. An error is
-- shown in #errors and sets data-ready="error" instead of disappearing into the console.
local JS = [[
(function () {
  var body = document.body;
  function fail(err) {
    var pre = document.getElementById('errors');
    pre.hidden = false;
    pre.textContent += String(err && err.stack ? err.stack : err) + '\n';
    body.dataset.ready = 'error';
  }
  window.addEventListener('error', function (ev) { fail(ev.error || ev.message); });
  try {
    var run = document.getElementById('f-run'), smp = document.getElementById('f-sampler');
    var count = document.getElementById('f-count');
    var samples = document.querySelectorAll('.sample');
    function apply() {
      var shown = 0;
      for (var i = 0; i < samples.length; i++) {
        var s = samples[i];
        var ok = (!run.value || s.dataset.run === run.value) && (!smp.value || s.dataset.sampler === smp.value);
        s.hidden = !ok;
        if (ok) shown++;
      }
      count.textContent = shown + ' of ' + samples.length + ' shown';
    }
    if (run && smp) {
      run.addEventListener('change', apply);
      smp.addEventListener('change', apply);
      apply();
    }
    body.dataset.charts = String(document.querySelectorAll('svg.chart').length);
    body.dataset.samples = String(samples.length);
    if (body.dataset.ready !== 'error') body.dataset.ready = '1';
  } catch (err) {
    fail(err);
  }
})();
]]

local function header(db, db_path)
  local c = db:query([[SELECT (SELECT count(*) FROM runs) AS runs,
    (SELECT count(DISTINCT run_id) FROM metrics) AS runs_with_metrics, (SELECT count(*) FROM metrics) AS metrics,
    (SELECT count(*) FROM checkpoints) AS checkpoints, (SELECT count(*) FROM evaluations) AS evaluations,
    (SELECT count(*) FROM samples) AS samples, (SELECT count(*) FROM sample_events) AS events]])[1]
  local counts = ("%d runs (%d with metrics) · %d metric values · %d checkpoints · %d evaluations · %d samples · %d sampler events")
    :format(c.runs, c.runs_with_metrics, c.metrics, c.checkpoints, c.evaluations, c.samples, c.events)
  return ('<header><h1>hdlm report</h1><p>database <code>%s</code> · generated %s · hdlm %s</p><p class="counts">%s</p>'
    .. '<nav><a href="#runs">runs</a><a href="#losses">loss curves</a><a href="#bounds">bounds</a>'
    .. '<a href="#frontier">generation frontier</a><a href="#samples">samples</a></nav></header>'):format(
    esc(db_path), esc(os.date("!%Y-%m-%dT%H:%M:%SZ")), esc(hdlm.version), esc(counts)), c
end

local function write_file(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then error("report: cannot write " .. path .. " (" .. tostring(err) .. ")", 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then
    os.remove(tmp)
    error("report: cannot write " .. path .. ": " .. tostring(werr), 0)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    error("report: cannot write " .. path .. ": " .. tostring(rerr), 0)
  end
end

local function main()
  local db_path = hdlm.db_path
  local out = tostring(hdlm.args.out or "report.html")
  local opened, db = pcall(hdlm.open, db_path) -- e.g. a read-only file: one line, no traceback
  if not opened then error("report: " .. tostring(db), 0) end
  local runs, by_id = load_runs(db)
  local evals = db:query([[SELECT id, run_id, checkpoint_id, metric, value, std_error, settings, created_at
    FROM evaluations ORDER BY id]])
  local head, counts = header(db, db_path)
  local body = {
    head,
    section_runs(runs),
    section_losses(runs, by_id, load_loss_series(db)),
    section_bounds(evals, by_id),
    section_frontier(evals, by_id),
    section_samples(db, by_id),
  }
  local page = table.concat{
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>hdlm report: ", esc(db_path), "</title><style>", CSS, "</style></head>\n",
    '<body data-ready="0">\n', '<pre id="errors" hidden></pre>\n', table.concat(body, "\n"),
    "\n<script>", JS, "</script>\n</body></html>\n",
  }
  db:close()
  write_file(out, page)
  local _, charts = page:gsub('<svg class="chart', "")
  print(("report: %s -> %s (%d bytes; %d runs, %d charts, %d evaluations, %d samples)"):format(
    db_path, out, #page, counts.runs, charts, counts.evaluations, math.min(counts.samples, MAX_SAMPLES)))
end

main()
