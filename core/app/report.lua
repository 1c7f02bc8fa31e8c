-- `hdlm report`: turns any database hdlm wrote into ONE self-contained HTML page (inline CSS,
-- inline SVG charts, a little inline JS; nothing is fetched from the network): the runs with their
-- configs and plugins (grouped per sweep); one section per comparable group of runs (same
-- objective / noise family, tokenizer and data) with its loss curves, its likelihood bounds on a
-- zoomed axis and the paired differences to a reference run; the generation-quality frontier per
-- judge; a sample browser that shows what the sampler corrected; every evaluation row.
-- Embedded into the binary at build time and run by cmd_report (core/app/main.c) with
-- hdlm.db_path = the database and hdlm.args.out = the output file. The database was checked by
-- the caller (it exists and hdlm made it); every string taken from it goes through esc(). The
-- table evaluation_items (per-sequence bound values) is used when the database has it.
local hdlm = require "hdlm"

local LN2 = math.log(2)
local MAX_BUCKETS = 200  -- loss curves: long series keep the min and max of 200 buckets
local MAX_SAMPLES = 200  -- newest samples shown in the browser
local TRAIN_NAMES = { "loss", "train/loss", "train_loss" }   -- what training logs (l_model.c: "loss")
local VALID_NAMES = { "valid_loss", "val/loss", "valid/loss", "val_loss", "val/nll" }
local GEN_METRICS = { "gen_nll", "entropy", "word_share", "gen_ppl", "gen_ppl_mean", "distinct_1", "distinct_2",
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
    return #parts > 0 and (name .. "(" .. table.concat(parts, ", ") .. ")") or name
  end
  if #v > 0 then
    for _, x in ipairs(v) do parts[#parts + 1] = brief(x) end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = tostring(k) .. "=" .. brief(v[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- ---- SVG charts ---------------------------------------------------------------------------------
-- Every chart is an <svg class="chart"> with a title, axis labels (class xlabel / ylabel, with
-- units) and a legend (<g class="legend">), inside a <figure class="chart-box"> that may hold
-- several variants of it (log / linear y, spikes clipped or not) of which the page shows one.

-- About n round tick values (1, 2, 5 x 10^k apart) covering [lo, hi].
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
    if math.abs(t) < step * 1e-9 then t = 0 end
    ticks[#ticks + 1] = t
    if t >= hi - 1e-9 * step then break end
  end
  return ticks, ticks[1], ticks[#ticks]
end

-- Ticks for a logarithmic axis (0 < lo <= hi), from the one at or below lo to the one at or
-- above hi: 1, 2, 5 x 10^k, denser over less than a decade (losses: 2 to 5 nats), sparser over
-- more than three.
local function log_ticks(lo, hi)
  local decades = math.log(hi / lo, 10)
  local mults = decades > 3 and { 1 } or decades > 1.5 and { 1, 2, 5 }
    or decades > 0.5 and { 1, 1.5, 2, 3, 5, 7 } or { 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9 }
  local all = {}
  for k = math.floor(math.log(lo, 10)) - 1, math.ceil(math.log(hi, 10)) do
    for _, m in ipairs(mults) do all[#all + 1] = m * 10 ^ k end
  end
  local first, last = 1, nil
  for i, t in ipairs(all) do
    if t <= lo * (1 + 1e-12) then first = i end
    if t >= hi * (1 - 1e-12) then last = last or i end
  end
  last = last or #all
  return table.move(all, first, last, 1, {}), all[first], all[last]
end

local function fmt_tick(t)
  if math.abs(t) < 1e-12 then return "0" end
  return ("%.6g"):format(t) -- 10000, not 1e+04
end

-- Width in pixels of text at the 11 px chart font (a little generous, so that labels placed with
-- it do not touch).
local function text_width(s, px) return math.ceil((px or 11) * 0.6 * (utf8.len(s) or #s)) end

-- The frame shared by every chart: plot area, axes with ticks, grid lines, axis labels, title.
-- o: width, height (of the frame, legend excluded), title, xlabel, ylabel, xlo/xhi, ylo/yhi,
-- ylog, left/right margins, xticks, no_y (no y ticks: rows instead), zero (a line at x = 0).
-- Returns the SVG pieces and the frame: X, Y (data -> pixels), L, T, pw, ph, bottom.
local function svg_axes(o)
  local W, H = o.width, o.height
  local L, R, T, B = o.left or 62, o.right or 22, 26, 44
  local pw, ph = W - L - R, H - T - B
  local xt, x0, x1 = nice_ticks(o.xlo, o.xhi, o.xticks or 6)
  local yt, y0, y1
  if o.no_y then
    yt, y0, y1 = {}, 0, 1
  elseif o.ylog then
    yt, y0, y1 = log_ticks(o.ylo, o.yhi)
  else
    yt, y0, y1 = nice_ticks(o.ylo, o.yhi, 5)
  end
  local ty = o.ylog and function(y) return math.log(y, 10) end or function(y) return y end
  local function X(x) return L + (x - x0) / (x1 - x0) * pw end
  local function Y(y) return T + ph - (ty(y) - ty(y0)) / (ty(y1) - ty(y0)) * ph end
  local s = {}
  s[#s + 1] = ('<text class="title" x="%d" y="16">%s</text>'):format(L, esc(o.title))
  for _, t in ipairs(yt) do
    s[#s + 1] = ('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>'):format(L, L + pw, Y(t), Y(t))
    s[#s + 1] = ('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>'):format(L - 5, Y(t) + 4, fmt_tick(t))
  end
  for _, t in ipairs(xt) do
    if o.no_y then
      s[#s + 1] = ('<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>'):format(X(t), X(t), T, T + ph)
    end
    s[#s + 1] = ('<line class="axis" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>'):format(X(t), X(t), T + ph, T + ph + 4)
    s[#s + 1] = ('<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>'):format(X(t), T + ph + 16, fmt_tick(t))
  end
  if o.zero and x0 < 0 and x1 > 0 then
    s[#s + 1] = ('<line class="zero" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>'):format(X(0), X(0), T, T + ph)
  end
  s[#s + 1] = ('<path class="axis" d="M%d %d V%d H%d"/>'):format(L, T, T + ph, L + pw)
  s[#s + 1] = ('<text class="label xlabel" x="%.1f" y="%d" text-anchor="middle">%s</text>'):format(
    L + pw / 2, T + ph + 33, esc(o.xlabel))
  s[#s + 1] = ('<text class="label ylabel" transform="translate(13 %.1f) rotate(-90)" text-anchor="middle">%s</text>'):format(
    T + ph / 2, esc(o.ylabel))
  return s, { X = X, Y = Y, L = L, T = T, pw = pw, ph = ph, bottom = T + ph, x0 = x0, x1 = x1, y0 = y0, y1 = y1 }
end

-- A legend laid out left to right below the plot, wrapping. entries = { {name=, kind=, color=,
-- dash=} }, kind one of line (default), dot, hollow, err (a ±2 SE whisker), bar, star, zero.
-- Returns the SVG pieces (one <g class="legend">) and its height.
local function svg_legend(entries, width, top)
  if #entries == 0 then return {}, 0 end
  local s, x, y = { ('<g class="legend" data-entries="%d">'):format(#entries) }, 10, top + 14
  for _, e in ipairs(entries) do
    local label = truncate(e.name, 70)
    local w = 26 + text_width(label) + 16
    if x > 10 and x + w > width then x, y = 10, y + 17 end
    local c, kind = e.color or "#444", e.kind or "line"
    if kind == "line" then
      s[#s + 1] = ('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>'):format(
        x, x + 20, y - 4, y - 4, c, e.dash and ' stroke-dasharray="5 3"' or "")
    elseif kind == "dot" or kind == "hollow" then
      s[#s + 1] = ('<circle cx="%d" cy="%d" r="4.5" fill="%s" stroke="%s" stroke-width="1.5"/>'):format(
        x + 10, y - 4, kind == "dot" and c or "#fff", c)
    elseif kind == "err" then
      s[#s + 1] = ('<path class="err" d="M%d %d H%d M%d %d V%d M%d %d V%d"/>'):format(
        x + 2, y - 4, x + 18, x + 2, y - 8, y, x + 18, y - 8, y)
    elseif kind == "bar" then
      s[#s + 1] = ('<rect x="%d" y="%d" width="20" height="10" fill="%s"/>'):format(x, y - 9, c)
    elseif kind == "star" then
      s[#s + 1] = ('<text class="star" x="%d" y="%d" text-anchor="middle">★</text>'):format(x + 10, y)
    elseif kind == "zero" then
      s[#s + 1] = ('<line class="zero" x1="%d" x2="%d" y1="%d" y2="%d"/>'):format(x + 10, x + 10, y - 11, y + 3)
    end
    s[#s + 1] = ('<text class="legend-label" x="%d" y="%d">%s<title>%s</title></text>'):format(
      x + 25, y, esc(label), esc(e.name))
    x = x + w
  end
  s[#s + 1] = "</g>"
  return s, y - top + 10
end

-- The <svg> of a chart; data-x0 .. data-y1 give the axis ranges (for tests and readers of the
-- source).
local function svg_wrap(class, W, H, o, ax, body)
  return ('<svg class="chart %s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" data-xlabel="%s" data-ylabel="%s" data-x0="%s" data-x1="%s"%s>%s</svg>'):format(
    class, W, H, W, H, esc(o.title), esc(o.xlabel), esc(o.ylabel), fmt_tick(ax.x0), fmt_tick(ax.x1),
    o.no_y and "" or (' data-y0="%s" data-y1="%s"'):format(fmt_tick(ax.y0), fmt_tick(ax.y1)), table.concat(body, "\n"))
end

-- Downsamples a series to the minimum and the maximum of each of `buckets` runs of consecutive
-- points (in step order), plus the first and the last point: a spike survives any length.
local function downsample_minmax(points, buckets)
  local n = #points
  if n <= 2 * buckets then return points end
  local out = { points[1] }
  for b = 0, buckets - 1 do
    local i0, i1 = 1 + (b * n) // buckets, ((b + 1) * n) // buckets
    local lo, hi = i0, i0
    for i = i0 + 1, i1 do
      if points[i][2] < points[lo][2] then lo = i end
      if points[i][2] > points[hi][2] then hi = i end
    end
    local a, c = math.min(lo, hi), math.max(lo, hi)
    if points[a] ~= out[#out] then out[#out + 1] = points[a] end
    if c ~= a then out[#out + 1] = points[c] end
  end
  if out[#out] ~= points[n] then out[#out + 1] = points[n] end
  return out
end

-- The top of a loss axis that a spike does not set. A point is a spike when it lies above the
-- median of the symmetric window of up to 5 points either side (shrunk at the ends, so a smooth
-- start or end is never one) by more than 6 robust standard deviations of these residuals and
-- 5% of the series' 5-95% range; the top is the largest value that is not a spike (math.huge
-- when there is no spike or a series is short). Works on the downsampled points, which keep
-- every spike.
local function robust_top(series)
  local top, spikes = -math.huge, false
  for _, sr in ipairs(series) do
    local pts = sr.points
    local n = #pts
    if n < 8 then return math.huge end
    local res, absr, vals = {}, {}, {}
    for i = 1, n do
      local h = math.min(5, i - 1, n - i)
      local w = {}
      for j = i - h, i + h do w[#w + 1] = pts[j][2] end
      table.sort(w)
      res[i] = pts[i][2] - w[h + 1]
      absr[i], vals[i] = math.abs(res[i]), pts[i][2]
    end
    table.sort(absr)
    table.sort(vals)
    local sigma = 1.4826 * absr[(n + 1) // 2]
    local spread = vals[math.max(1, math.floor(0.95 * n))] - vals[math.max(1, math.ceil(0.05 * n))]
    local threshold = math.max(6 * sigma, 0.05 * spread, 1e-12)
    for i = 1, n do
      if res[i] > threshold then spikes = true elseif pts[i][2] > top then top = pts[i][2] end
    end
  end
  return spikes and top or math.huge
end

local clip_ids = 0

-- A line chart. o.series = { {name=, color=, dash=, points = {{x, y}, ...}, raw = all points} };
-- o.ylog: logarithmic y; o.clip: the y axis ends at robust_top and values above it are marked
-- with a triangle at the top edge (the count and the largest in a note). Returns one <svg>.
local function svg_line_chart(o)
  local W, H = o.width or 585, o.height or 290
  local xlo, xhi, ylo, yhi = math.huge, -math.huge, math.huge, -math.huge
  for _, sr in ipairs(o.series) do
    for _, p in ipairs(sr.points) do
      xlo, xhi = math.min(xlo, p[1]), math.max(xhi, p[1])
      ylo, yhi = math.min(ylo, p[2]), math.max(yhi, p[2])
    end
  end
  if xlo > xhi then xlo, xhi, ylo, yhi = 0, 1, 0, 1 end
  local ymax, top = yhi, o.clip and robust_top(o.series) or math.huge
  if top < yhi then yhi = top end
  local s, ax = svg_axes{ width = W, height = H, title = o.title, xlabel = o.xlabel,
    ylabel = o.ylabel .. (o.ylog and ", log scale" or ""), xlo = xlo, xhi = xhi, ylo = ylo, yhi = yhi,
    ylog = o.ylog }
  clip_ids = clip_ids + 1
  s[#s + 1] = ('<clipPath id="clip%d"><rect x="%d" y="%d" width="%d" height="%d"/></clipPath><g clip-path="url(#clip%d)">'):format(
    clip_ids, ax.L, ax.T - 1, ax.pw + 1, ax.ph + 2, clip_ids)
  local above, marks = 0, {}
  for _, sr in ipairs(o.series) do
    local d = {}
    for k, p in ipairs(sr.points) do d[#d + 1] = ("%s%.1f %.1f"):format(k == 1 and "M" or "L", ax.X(p[1]), ax.Y(p[2])) end
    s[#s + 1] = ('<path class="line" d="%s" stroke="%s"%s><title>%s</title></path>'):format(
      table.concat(d, " "), sr.color, sr.dash and ' stroke-dasharray="5 3"' or "", esc(sr.name))
    if #sr.points <= 40 then -- few points (evaluations): mark each one
      for _, p in ipairs(sr.points) do
        if p[2] <= ax.y1 then
          s[#s + 1] = ('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: step %s, %s nats/token</title></circle>'):format(
            ax.X(p[1]), ax.Y(p[2]), sr.color, esc(sr.name), fmt_num(p[1]), fmt_num(p[2]))
        end
      end
    end
    for _, p in ipairs(sr.raw or sr.points) do
      if p[2] > ax.y1 then above = above + 1 end
    end
    for _, p in ipairs(sr.points) do
      if p[2] > ax.y1 and #marks < 60 then marks[#marks + 1] = { p, sr } end
    end
  end
  s[#s + 1] = "</g>"
  for _, m in ipairs(marks) do
    local x = ax.X(m[1][1])
    s[#s + 1] = ('<path class="spike" d="M%.1f %d l-4 7 h8 z" fill="%s"><title>%s: step %s, %s nats/token (above the axis)</title></path>'):format(
      x, ax.T - 1, m[2].color, esc(m[2].name), fmt_num(m[1][1]), fmt_num(m[1][2]))
  end
  if above > 0 then
    s[#s + 1] = ('<text class="clipnote" x="%d" y="%d" text-anchor="end">▲ %d value%s above the axis (max %s); untick “clip spikes” to see all</text>'):format(
      ax.L + ax.pw, 16, above, above == 1 and "" or "s", fmt_num(ymax, 4))
  end
  local legend, lh = svg_legend(o.series, W, ax.bottom + 38)
  table.move(legend, 1, #legend, #s + 1, s)
  return svg_wrap("line-chart " .. (o.class or ""), W, H + lh, o, ax, s)
end

-- Rows of intervals (horizontal; labels can be long). o.rows = { {label=, sub= (a second,
-- smaller line), title=, value=, err= (half-width: 2 SE), color=, star=, hollow=, text= (the
-- printed value)} }; o.bars draws a bar from the left edge of the (zoomed) axis to each value;
-- o.zero includes 0 in the range and draws a line there; o.legend the legend entries; o.unit
-- follows each value in the tooltips.
local function svg_interval_chart(o)
  local two = false
  for _, b in ipairs(o.rows) do two = two or b.sub ~= nil end
  local row, W = two and 36 or 26, o.width or 1100
  local lw = 0
  for _, b in ipairs(o.rows) do
    lw = math.max(lw, text_width((b.star and "★ " or "") .. truncate(b.label, 70)), b.sub and text_width(truncate(b.sub, 80), 10) or 0)
  end
  lw = math.min(lw + 34, 520)
  local lo, hi = math.huge, -math.huge
  for _, b in ipairs(o.rows) do
    lo = math.min(lo, b.value - (b.err or 0))
    hi = math.max(hi, b.value + (b.err or 0))
  end
  if o.zero then lo, hi = math.min(lo, 0), math.max(hi, 0) end
  local pad = (hi - lo) * 0.08
  if pad <= 0 then pad = math.max(math.abs(hi) * 0.01, 1e-3) end
  lo, hi = lo - pad, hi + pad
  if o.bars then lo = math.max(lo, 0) end
  local H = 26 + 44 + row * #o.rows
  local s, ax = svg_axes{ width = W, height = H, title = o.title, xlabel = o.xlabel, ylabel = o.ylabel or "",
    xlo = lo, xhi = hi, left = lw, right = 130, xticks = 8, no_y = true, zero = o.zero }
  for i, b in ipairs(o.rows) do
    local yc = ax.T + row * (i - 0.5)
    local xv = ax.X(b.value)
    local ly = b.sub and yc - 2 or yc + 4
    s[#s + 1] = ('<text class="row-label" x="%d" y="%.1f" text-anchor="end">%s%s<title>%s</title></text>'):format(
      lw - 10, ly, b.star and "★ " or "", esc(truncate(b.label, 70)), esc(b.title or b.label))
    if b.sub then
      s[#s + 1] = ('<text class="row-sub" x="%d" y="%.1f" text-anchor="end">%s</text>'):format(lw - 10, ly + 13, esc(truncate(b.sub, 80)))
    end
    if o.bars then
      s[#s + 1] = ('<rect class="bar" x="%d" y="%.1f" width="%.1f" height="16" fill="%s"/>'):format(
        ax.L, yc - 8, math.max(0, xv - ax.L), b.color)
    end
    local xe = xv
    if b.err and b.err > 0 then
      local a, c = ax.X(b.value - b.err), ax.X(b.value + b.err)
      s[#s + 1] = ('<path class="err" d="M%.1f %.1f H%.1f M%.1f %.1f V%.1f M%.1f %.1f V%.1f"/>'):format(
        a, yc, c, a, yc - 6, yc + 6, c, yc - 6, yc + 6)
      xe = c
    end
    s[#s + 1] = ('<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s" stroke="%s" stroke-width="1.5"><title>%s: %s ± %s (2 SE) %s</title></circle>'):format(
      xv, yc, b.hollow and "#fff" or (o.bars and "#222" or b.color), o.bars and "#222" or b.color,
      esc(b.title or b.label), fmt_num(b.value), fmt_num(b.err), esc(o.unit or ""))
    s[#s + 1] = ('<text class="value" x="%.1f" y="%.1f">%s</text>'):format(math.max(xe, xv) + 6, yc + 4,
      esc(b.text or fmt_num(b.value)))
  end
  local legend, lh = svg_legend(o.legend or {}, W, ax.bottom + 38)
  table.move(legend, 1, #legend, #s + 1, s)
  o.no_y = true
  return svg_wrap("interval-chart", W, H + lh, o, ax, s)
end

-- Places point labels without overlaps: each label tries eight directions around its point at
-- three distances (the farther ones get a leader line) and takes the first spot that overlaps no
-- other label, no point, no error bar and stays inside the plot; a label that fits nowhere is
-- replaced by its number "#n" (the table below the chart has the same numbers), tried the same
-- way. Returns per point {x, y, anchor, text, leader} (nil: left out).
local function place_labels(pts, ax)
  local boxes = {}
  for _, p in ipairs(pts) do
    boxes[#boxes + 1] = { p.px - 6, p.py - 6, p.px + 6, p.py + 6 }
    if p.xerr then boxes[#boxes + 1] = { ax.X(p.x - p.xerr) - 1, p.py - 4, ax.X(p.x + p.xerr) + 1, p.py + 4 } end
    if p.yerr then boxes[#boxes + 1] = { p.px - 4, ax.Y(p.y + p.yerr) - 1, p.px + 4, ax.Y(p.y - p.yerr) + 1 } end
  end
  local function free(b)
    if b[1] < ax.L + 2 or b[3] > ax.L + ax.pw - 2 or b[2] < ax.T + 1 or b[4] > ax.T + ax.ph - 1 then return false end
    for _, c in ipairs(boxes) do
      if b[1] < c[3] and c[1] < b[3] and b[2] < c[4] and c[2] < b[4] then return false end
    end
    return true
  end
  local dirs = { { 1, 0 }, { -1, 0 }, { 0, -1 }, { 0, 1 }, { 0.8, -0.8 }, { 0.8, 0.8 }, { -0.8, -0.8 }, { -0.8, 0.8 } }
  local out = {}
  for i, p in ipairs(pts) do
    for _, text in ipairs{ p.short, "#" .. p.n } do
      local w = text_width(text, 10) + 2
      for _, r in ipairs{ 10, 26, 44 } do
        for _, d in ipairs(dirs) do
          local x, y = p.px + d[1] * r, p.py + d[2] * (r + 2)
          local anchor = d[1] > 0 and "start" or d[1] < 0 and "end" or "middle"
          local x0 = anchor == "start" and x or anchor == "end" and x - w or x - w / 2
          local b = { x0 - 1, y - 7, x0 + w + 1, y + 5 }
          if free(b) then
            boxes[#boxes + 1] = b
            out[i] = { x = x, y = y + 4, anchor = anchor, text = text, leader = r > 10 and { x, y } or nil }
            break
          end
        end
        if out[i] then break end
      end
      if out[i] then break end
    end
  end
  return out
end

-- points = { {x=, y=, xerr=, yerr= (2 SE), n=, short=, label=, color=} }; a legend names the
-- runs by colour. Returns one <svg>.
local function svg_scatter(o)
  local W, H = o.width or 900, o.height or 440
  local xlo, xhi, ylo, yhi = math.huge, -math.huge, math.huge, -math.huge
  for _, p in ipairs(o.points) do
    xlo, xhi = math.min(xlo, p.x - (p.xerr or 0)), math.max(xhi, p.x + (p.xerr or 0))
    ylo, yhi = math.min(ylo, p.y - (p.yerr or 0)), math.max(yhi, p.y + (p.yerr or 0))
  end
  -- a margin so that no point sits on an axis and labels have room
  local px, py = 0.1 * (xhi - xlo), 0.1 * (yhi - ylo)
  if px == 0 then px = math.max(math.abs(xlo) * 0.02, 0.01) end
  if py == 0 then py = math.max(math.abs(ylo) * 0.02, 0.01) end
  local s, ax = svg_axes{ width = W, height = H, title = o.title, xlabel = o.xlabel, ylabel = o.ylabel,
    xlo = xlo - px, xhi = xhi + px, ylo = ylo - py, yhi = yhi + py }
  for _, p in ipairs(o.points) do
    p.px, p.py = ax.X(p.x), ax.Y(p.y)
    if p.xerr and p.xerr > 0 then
      local a, c = ax.X(p.x - p.xerr), ax.X(p.x + p.xerr)
      s[#s + 1] = ('<path class="err" style="stroke:%s" d="M%.1f %.1f H%.1f M%.1f %.1f V%.1f M%.1f %.1f V%.1f"/>'):format(
        p.color, a, p.py, c, a, p.py - 4, p.py + 4, c, p.py - 4, p.py + 4)
    end
    if p.yerr and p.yerr > 0 then
      local a, c = ax.Y(p.y - p.yerr), ax.Y(p.y + p.yerr)
      s[#s + 1] = ('<path class="err" style="stroke:%s" d="M%.1f %.1f V%.1f M%.1f %.1f H%.1f M%.1f %.1f H%.1f"/>'):format(
        p.color, p.px, a, c, p.px - 4, a, p.px + 4, p.px - 4, c, p.px + 4)
    end
  end
  for _, p in ipairs(o.points) do
    s[#s + 1] = ('<circle cx="%.1f" cy="%.1f" r="5" fill="%s" stroke="#fff" stroke-width="1"><title>#%d %s&#10;entropy %s ± %s nats, gen NLL %s ± %s nats/token (± 2 SE)</title></circle>'):format(
      p.px, p.py, p.color, p.n, esc(p.label), fmt_num(p.x), fmt_num(p.xerr), fmt_num(p.y), fmt_num(p.yerr))
  end
  for i, l in pairs(place_labels(o.points, ax)) do
    local p = o.points[i]
    if l.leader then
      local dx, dy = l.leader[1] - p.px, l.leader[2] - p.py
      local len = math.sqrt(dx * dx + dy * dy)
      s[#s + 1] = ('<line class="leader" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>'):format(
        p.px + dx / len * 6, p.py + dy / len * 6, l.leader[1] - dx / len * 2, l.leader[2] - dy / len * 2)
    end
    s[#s + 1] = ('<text class="point-label" x="%.1f" y="%.1f" text-anchor="%s">%s<title>#%d %s</title></text>'):format(
      l.x, l.y, l.anchor, esc(l.text), p.n, esc(p.label))
  end
  local legend, lh = svg_legend(o.legend, W, ax.bottom + 38)
  table.move(legend, 1, #legend, #s + 1, s)
  return svg_wrap("scatter", W, H + lh, o, ax, s)
end

-- A <figure> holding one chart or its variants (only one shown at a time, by CSS classes).
local function figure(kind, svgs)
  return ('<figure class="chart-box" data-chart="%s">%s</figure>'):format(kind, table.concat(svgs))
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
    if type(r.cfg) ~= "table" then r.cfg = {} end
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

-- The loss series of every run: { [run id] = { train = {name=, points=, raw=}, valid = {...} } };
-- points is raw downsampled to the minimum and maximum of MAX_BUCKETS buckets.
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
    for _, kind in ipairs{ { "train", TRAIN_NAMES }, { "valid", VALID_NAMES } } do
      for _, n in ipairs(kind[2]) do
        if by_name[n] and not entry[kind[1]] then
          entry[kind[1]] = { name = n, raw = by_name[n], points = downsample_minmax(by_name[n], MAX_BUCKETS) }
        end
      end
    end
    out[id] = entry
  end
  return out
end

-- Per-sequence bound values (table evaluation_items, when the database has it):
-- { [evaluation id] = { vals = { [item] = nats }, n = count } }, and a note on what was found.
local function load_items(db)
  if #db:query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'evaluation_items'") == 0 then
    return {}, "absent"
  end
  local cols = {}
  for _, c in ipairs(db:query("PRAGMA table_info(evaluation_items)")) do cols[c.name] = true end
  if not (cols.evaluation_id and cols.item and cols.value) then return {}, "unreadable" end
  local items = {}
  for _, r in ipairs(db:query([[SELECT i.evaluation_id AS id, i.item, i.value FROM evaluation_items i
      JOIN evaluations e ON e.id = i.evaluation_id WHERE e.metric = 'nll_bound' AND i.value IS NOT NULL]])) do
    local t = items[r.id]
    if not t then t = { vals = {}, n = 0 }; items[r.id] = t end
    t.vals[r.item] = r.value
    t.n = t.n + 1
  end
  return items, "present"
end

-- ---- comparable groups ----------------------------------------------------------------------------
-- Runs are compared (overlaid on one axis, differenced) only within a group: the same objective
-- (and noise family for the method's objective), tokenizer and data.

local function basename(p) return tostring(p):match("([^/]+)/*$") or tostring(p) end

-- The name of a plugin spec as configs and settings record it: {"name":..}, {"1": name, ...},
-- [name], or the text of a Noise / Schedule userdata, "hdlm.Noise(name, ...)".
local function plugin_name(spec)
  if type(spec) == "string" then return spec:match("^hdlm%.%a+%(([^,%)]+)") or spec end
  if type(spec) == "table" then
    local n = spec.name or spec["1"] or spec[1]
    if type(n) == "string" then return n end
  end
  return nil
end

-- A config's or settings' data value -> the corpus file and its tokenizer when it says: a path,
-- the text of a Corpus ("hdlm.Corpus(path, bytes, ...)"), or {path=, tokenizer=}; hdlm.corpus
-- names the token files it makes <text>.<tokenizer>.v<valid>.s<seed>.tok.
local function data_of(v)
  if type(v) == "table" then
    return v.path ~= nil and tostring(v.path) or nil, type(v.tokenizer) == "string" and v.tokenizer or nil
  end
  if type(v) ~= "string" or v == "" then return nil end
  local path, tok = v:match("^hdlm%.Corpus%((.-), ([%w_]+), ")
  if path then return path, tok end
  return v, v:match("%.(%a[%w_]*)%.v[%d%.e%-]+%.s%-?%d+%.tok$")
end

local function run_fields(r)
  local cfg, noise = r.cfg, nil
  for _, p in ipairs(r.plugins) do
    if p.kind == "noise" then noise = p.name end
  end
  noise = noise or plugin_name(cfg.noise)
  -- db:train: objective "method" when given a noise process, else "ar" (l_model.c)
  local objective = type(cfg.objective) == "string" and cfg.objective or (noise and "method")
    or (r.kind == "train" and "ar") or nil
  local data, tok = data_of(cfg.data)
  if type(cfg.tokenizer) == "string" then tok = cfg.tokenizer end
  return { objective = objective, noise = objective == "method" and noise or nil, tok = tok, data = data,
    sweep = sweep_of(r), id = r.id }
end

-- The group of some fields: its key and its heading. A run that records no objective (a script
-- logging losses) is alone, or with the other runs of its sweep.
local function group_key(f)
  if not f.objective then
    if f.sweep then return "sweep\0" .. f.sweep, "objective not recorded · sweep " .. f.sweep end
    return "run\0" .. f.id, "objective not recorded · run " .. f.id
  end
  local family = f.objective == "method" and ("method's objective, noise family " .. (f.noise or "?"))
    or ("objective " .. f.objective)
  return table.concat({ f.objective, f.noise or "", f.tok or "", f.data or "" }, "\0"),
    ("%s · tokenizer %s · data %s"):format(family, f.tok or "not recorded", f.data and basename(f.data) or "not recorded")
end

-- Groups with something to show (loss curves or bounds), ordered by their first run; each has
-- runs (in id order) with a colour per run, and bounds (nll_bound evaluations).
local function build_groups(runs, by_id, series, evals)
  local groups, list = {}, {}
  local function get(f)
    local key, label = group_key(f)
    local g = groups[key]
    if not g then
      g = { key = key, label = label, fields = f, runs = {}, has_run = {}, bounds = {} }
      groups[key] = g
      list[#list + 1] = g
    end
    return g
  end
  local function add_run(g, id)
    if not g.has_run[id] then g.has_run[id] = true; g.runs[#g.runs + 1] = id end
  end
  for _, r in ipairs(runs) do
    r.fields = run_fields(r)
    if series[r.id] then add_run(get(r.fields), r.id) end
  end
  for _, ev in ipairs(evals) do
    if ev.metric == "nll_bound" and ev.value then
      local r, f = by_id[ev.run_id], {}
      for k, v in pairs(r and r.fields or { id = ev.run_id }) do f[k] = v end
      -- the evaluation's own noise process wins over the run's (its group); its data, when its
      -- settings record them, pair it with others (given token sequences, split "given", pair
      -- only then)
      if f.objective == "method" then f.noise = plugin_name(ev.st.noise) or f.noise end
      local d = data_of(ev.st.data)
      if d then
        ev.data = d
      elseif ev.st.split ~= "given" then
        ev.data = f.data
      end
      local g = get(f)
      g.bounds[#g.bounds + 1] = ev
      add_run(g, ev.run_id)
    end
  end
  for _, g in ipairs(list) do
    table.sort(g.runs)
    g.first = g.runs[1] or math.huge
    g.color, g.dash = {}, {}
    for i, id in ipairs(g.runs) do
      g.color[id] = PALETTE[(i - 1) % #PALETTE + 1]
      g.dash[id] = i > #PALETTE
    end
  end
  table.sort(list, function(a, b) return a.first < b.first end)
  for i, g in ipairs(list) do g.n = i end
  return list
end

-- ---- HTML pieces ----------------------------------------------------------------------------------

local function none(what) return ('<p class="none">no data: %s</p>'):format(esc(what)) end

local function html_table(headers, rows, class)
  local h = { ('<div class="scroll"><table class="%s"><thead><tr>'):format(class or "") }
  for _, x in ipairs(headers) do h[#h + 1] = "<th>" .. esc(x) .. "</th>" end
  h[#h + 1] = "</tr></thead><tbody>"
  for _, r in ipairs(rows) do
    h[#h + 1] = r.class and ('<tr class="%s">'):format(r.class) or "<tr>"
    for _, cell in ipairs(r) do h[#h + 1] = "<td>" .. cell .. "</td>" end -- cells are HTML already
    h[#h + 1] = "</tr>"
  end
  h[#h + 1] = "</tbody></table></div>"
  return table.concat(h)
end

local function pm(v, se, digits)
  if v == nil then return "—" end
  if se == nil or se ~= se then return fmt_num(v, digits) end
  return ("%s <span class=\"se\">± %s</span>"):format(fmt_num(v, digits), fmt_num(se, 2))
end

local function signed(v, digits)
  local s = fmt_num(v, digits)
  return (v and v > 0) and ("+" .. s) or s
end

-- Settings as key=value items that wrap (skip: keys shown in other columns): the keys in `first`
-- that are present, then the others sorted, at most `inline` of them shown (all when nil) and
-- the rest, with the stored JSON (raw), in a details element.
local function kv_cell(st, skip, raw, first, inline)
  local keys, seen = {}, {}
  if type(st) == "table" then
    for _, k in ipairs(first or {}) do
      if st[k] ~= nil and not (skip and skip[k]) then keys[#keys + 1] = k; seen[k] = true end
    end
    for _, k in ipairs(sorted_keys(st)) do
      if not seen[k] and not (skip and skip[k]) then keys[#keys + 1] = k end
    end
  end
  local shown, more = {}, {}
  for i, k in ipairs(keys) do
    local item = ('<span class="kv"><b>%s</b>=%s</span>'):format(esc(k), esc(brief(st[k])))
    if inline and i > inline then more[#more + 1] = item else shown[#shown + 1] = item end
  end
  local h = #shown > 0 and table.concat(shown, " ") or "—"
  if #more > 0 or raw then
    h = h .. ('<details class="raw"><summary>%s</summary>%s%s</details>'):format(
      #more > 0 and ("%d more%s"):format(#more, raw and " · JSON" or "") or "JSON",
      #more > 0 and ('<div class="more">' .. table.concat(more, " ") .. "</div>") or "",
      raw and ('<pre class="json">%s</pre>'):format(esc(json_pretty(raw))) or "")
  end
  return h
end

local function set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

local function key_options(opts, n)
  if type(opts) ~= "table" then return "" end
  local parts = {}
  for _, k in ipairs(sorted_keys(opts)) do
    if k ~= "vocab" then parts[#parts + 1] = tostring(k) .. "=" .. brief(opts[k]) end
  end
  return truncate(table.concat(parts, ", "), n or 40)
end

local function spec_options(spec)
  if type(spec) ~= "table" then return nil end
  if type(spec.options) == "table" then return spec.options end
  local o = {}
  for k, v in pairs(spec) do
    if k ~= "name" and k ~= "version" and k ~= 1 and k ~= "1" then o[k] = v end
  end
  return o
end

local function spec_name(spec, n)
  if type(spec) ~= "table" then return spec and tostring(spec) or "?" end
  local opts = key_options(spec_options(spec), n)
  return tostring(plugin_name(spec) or "?") .. (opts ~= "" and ("(" .. opts .. ")") or "")
end

local function run_link(by_id, id, color)
  local sw = color and ('<span class="sw" style="background:%s"></span>'):format(color) or ""
  return ('%s<a href="#run-%d">%s</a>'):format(sw, id, esc(run_label(by_id, id)))
end

-- ---- runs ------------------------------------------------------------------------------------------

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

-- A failure message: wrapped in its cell however long its words; past 160 characters the first
-- 100 show and the rest opens (the whole text is also the tooltip).
local function error_cell(e)
  if (utf8.len(e) or #e) <= 160 then
    return ('<div class="err-text" title="%s">%s</div>'):format(esc(e), esc(e))
  end
  return ('<details class="err-text" title="%s"><summary>%s</summary><div class="err-full">%s</div></details>'):format(
    esc(e), esc(truncate(e, 100)), esc(e))
end

local function runs_rows(list, group_of)
  local rows = {}
  for _, r in ipairs(list) do
    local status = ('<span class="st st-%s">%s</span>'):format(esc(r.status), esc(r.status))
    if r.error then status = status .. error_cell(r.error) end
    local g = group_of[r.id]
    rows[#rows + 1] = {
      ('<a id="run-%d"></a>%d'):format(r.id, r.id), esc(r.name or ""), esc(r.kind), status,
      g and ('<a href="#group-%d">%d</a>'):format(g.n, g.n) or "—",
      time_cell(r.started_at), time_cell(r.ended_at, r.started_at), r.ended_at and fmt_duration(r.duration) or "—",
      esc(r.world_size), esc(r.threads or "—"), esc(r.seed or "—"), config_cell(r), plugins_cell(r),
    }
  end
  return rows
end

local function section_runs(runs, groups)
  local h = { '<section id="runs"><h2>Runs</h2>' }
  if #runs == 0 then
    h[#h + 1] = none("the database has no runs")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  local group_of = {}
  for _, g in ipairs(groups) do
    for _, id in ipairs(g.runs) do group_of[id] = group_of[id] or g end
  end
  local headers = { "id", "name", "kind", "status", "group", "started", "ended", "duration", "world", "threads",
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
  if #plain > 0 then h[#h + 1] = html_table(headers, runs_rows(plain, group_of), "runs") end
  for _, sw in ipairs(order) do
    h[#h + 1] = ('<h3 class="sweep">sweep %s <small>(%d runs)</small></h3>'):format(esc(sw), #sweeps[sw])
    h[#h + 1] = html_table(headers, runs_rows(sweeps[sw], group_of), "runs")
  end
  h[#h + 1] = "</section>"
  return table.concat(h)
end

-- ---- a group: loss curves ----------------------------------------------------------------------------

-- One figure of the losses `which` ("train" / "valid") of the group's runs on one axis, in up to
-- four variants: linear / log y (log only when every value is positive) x spikes clipped / not
-- (only when clipping cuts something).
local function loss_figure(g, by_id, series, which, title)
  local sr, positive = {}, true
  for _, id in ipairs(g.runs) do
    local e = series[id] and series[id][which]
    if e then
      local default = which == "train" and TRAIN_NAMES[1] or VALID_NAMES[1]
      sr[#sr + 1] = { name = run_label(by_id, id) .. (e.name ~= default and (" (" .. e.name .. ")") or ""),
        color = g.color[id], dash = g.dash[id], points = e.points, raw = e.raw }
      for _, p in ipairs(e.points) do
        if p[2] <= 0 then positive = false end
      end
    end
  end
  if #sr == 0 then return nil end
  local ymax = -math.huge
  for _, s in ipairs(sr) do
    for _, p in ipairs(s.points) do ymax = math.max(ymax, p[2]) end
  end
  local clips = robust_top(sr) < ymax
  local svgs = {}
  for _, ylog in ipairs(positive and { false, true } or { false }) do
    for _, clip in ipairs(clips and { true, false } or { false }) do
      local cls = {}
      if positive then cls[#cls + 1] = ylog and "only-log" or "only-lin" end
      if clips then cls[#cls + 1] = clip and "only-clip" or "only-full" end
      svgs[#svgs + 1] = svg_line_chart{ title = title, xlabel = "training step", ylabel = "loss (nats/token)",
        series = sr, ylog = ylog, clip = clip, class = table.concat(cls, " ") }
    end
  end
  return figure("loss", svgs)
end

-- ---- a group: bounds and paired differences ---------------------------------------------------------

-- Evaluations of the same sequences pair item by item: same split, length, number of sequences
-- and data; with a different number of sequences they are still comparable (unpaired).
local function pair_key(ev)
  local st = ev.st
  if not ev.data or not st.split then return nil end
  return table.concat({ tostring(st.split), tostring(st.length), tostring(st.sequences), ev.data }, "\0")
end

local function comparable_key(ev)
  local st = ev.st
  if not ev.data or not st.split then return nil end
  return table.concat({ tostring(st.split), tostring(st.length), ev.data }, "\0")
end

-- Mean and standard error of the per-item differences a - b (nats), over the items both have.
local function paired_diff(a, b)
  local ds = {}
  for i, v in pairs(a.vals) do
    if b.vals[i] then ds[#ds + 1] = v - b.vals[i] end
  end
  local n = #ds
  if n < 2 then return nil end
  local sum = 0
  for _, d in ipairs(ds) do sum = sum + d end
  local mean, sq = sum / n, 0
  for _, d in ipairs(ds) do sq = sq + (d - mean) ^ 2 end
  return mean, math.sqrt(sq / (n - 1) / n), n
end

local BOUND_SHOWN = set_of{ "estimator", "nats", "se", "bits", "bits_se", "bits_per_token", "bits_per_unit",
  "schedule", "noise", "split", "length", "sequences", "data", "tokens", "unit" }

local function bounds_part(g, by_id, items, items_state)
  local h = {}
  local evs = g.bounds
  if #evs == 0 then
    h[#h + 1] = none("no bound evaluation (metric 'nll_bound') in this group")
    return table.concat(h)
  end
  table.sort(evs, function(a, b) if a.value ~= b.value then return a.value < b.value end return a.id < b.id end)
  -- the reference: the lowest bound among those with per-sequence values, else the lowest
  local ref = evs[1]
  for _, ev in ipairs(evs) do
    if items[ev.id] and items[ev.id].n >= 2 then ref = ev; break end
  end
  -- what tells evaluations apart beyond run, schedule and estimator
  local shapes, nshapes = {}, 0
  for _, ev in ipairs(evs) do
    local k = ("%s L=%s n=%s"):format(tostring(ev.st.split or "?"), tostring(ev.st.length or "?"), tostring(ev.st.sequences or "?"))
    ev.shape = k
    if not shapes[k] then shapes[k] = true; nshapes = nshapes + 1 end
  end
  local bar_rows, diff_rows, rows = {}, {}, {}
  for _, ev in ipairs(evs) do
    local st = ev.st
    local label = run_label(by_id, ev.run_id)
    local sub = ("%s · %s estimator"):format(spec_name(st.schedule, 40), tostring(st.estimator or "?"))
    if nshapes > 1 then sub = sub .. " · " .. ev.shape end
    local title = ("eval %d: %s · %s · %s"):format(ev.id, label, sub, ev.shape)
    local se_bits = ev.std_error and ev.std_error / LN2 or nil
    bar_rows[#bar_rows + 1] = { label = label, sub = sub, title = title, value = ev.value / LN2, err = se_bits and 2 * se_bits,
      color = g.color[ev.run_id] or "#888", star = ev == ref,
      text = se_bits and ("%s (SE %s)"):format(fmt_num(ev.value / LN2, 4), fmt_num(se_bits, 2)) or fmt_num(ev.value / LN2, 4) }
    -- the difference to the reference
    local d, se, n, how
    if ev ~= ref then
      local a, b = items[ev.id], items[ref.id]
      local pk = pair_key(ev)
      if a and b and pk and pk == pair_key(ref) then d, se, n = paired_diff(a, b) end
      if d then
        how = ("paired over %d sequences"):format(n)
      elseif comparable_key(ev) and comparable_key(ev) == comparable_key(ref) then
        d = ev.value - ref.value
        se = (ev.std_error and ref.std_error) and math.sqrt(ev.std_error ^ 2 + ref.std_error ^ 2) or nil
        how = pk and pk == pair_key(ref) and "unpaired (no per-sequence values)" or "unpaired (other sequences)"
      else
        how = "not compared: another split, length or data"
      end
      if d then
        diff_rows[#diff_rows + 1] = { label = label, sub = sub, title = title .. " − ★ reference (" .. how .. ")", value = d / LN2,
          err = se and 2 * se / LN2, color = g.color[ev.run_id] or "#888", hollow = not n,
          text = se and ("%s (SE %s)"):format(signed(d / LN2, 3), fmt_num(se / LN2, 2)) or signed(d / LN2, 3) }
      end
    end
    rows[#rows + 1] = {
      class = ev == ref and "ref" or nil,
      ev == ref and "★" or "", tostring(ev.id), run_link(by_id, ev.run_id, g.color[ev.run_id]),
      esc(st.estimator or "?"), esc(spec_name(st.schedule, 60)), esc(spec_name(st.noise, 60)),
      esc(("%s · %s tokens · %s sequences"):format(tostring(st.split or "?"), tostring(st.length or "?"), tostring(st.sequences or "?"))),
      pm(ev.value / LN2, se_bits, 5) .. "<br><small>" .. pm(ev.value, ev.std_error, 5) .. " nats</small>",
      ev == ref and "reference" or (d and (signed(d / LN2, 4) .. (se and (' <span class="se">± ' .. fmt_num(se / LN2, 2) .. "</span>") or "")
        .. (se and ("<br><small>±2 SE: [%s, %s]</small>"):format(signed((d - 2 * se) / LN2, 3), signed((d + 2 * se) / LN2, 3)) or "")) or "—"),
      esc(ev == ref and (items[ev.id] and ("%d per-sequence values"):format(items[ev.id].n) or "no per-sequence values") or how),
      kv_cell(st, BOUND_SHOWN, ev.settings, { "mc", "weights", "steps", "exact", "process", "label" }, 5),
    }
  end
  h[#h + 1] = '<div class="charts">'
  h[#h + 1] = figure("bound", { svg_interval_chart{ title = "NLL bound per evaluation (lower is better)",
    xlabel = "NLL bound (bits/token) · zoomed axis, not from 0", ylabel = "evaluation", rows = bar_rows, bars = true,
    unit = "bits/token", width = 1100,
    legend = { { kind = "bar", color = "#9ab", name = "bound (bits/token; colour = run)" },
      { kind = "err", name = "± 2 standard errors" }, { kind = "star", name = "reference: lowest bound" .. (items[ref.id] and " with per-sequence values" or "") } } } })
  if #diff_rows > 0 then
    h[#h + 1] = figure("diff", { svg_interval_chart{ title = "difference to the ★ reference (positive = worse than the reference)",
      xlabel = "Δ NLL bound vs ★ (bits/token)", ylabel = "evaluation", rows = diff_rows, zero = true,
      unit = "bits/token", width = 1100,
      legend = { { kind = "dot", color = "#555", name = "paired: mean of per-sequence differences" },
        { kind = "hollow", color = "#555", name = "unpaired: difference of the means" },
        { kind = "err", name = "± 2 standard errors" }, { kind = "zero", name = "no difference" } } } })
  end
  h[#h + 1] = "</div>"
  local note = items_state == "present"
    and "Paired differences use the per-sequence values (table <code>evaluation_items</code>) of evaluations of the same sequences (split, length, number of sequences, data): SE of the mean per-sequence difference. Others are unpaired: SE = √(SE₁² + SE₂²)."
    or "This database has no per-sequence bound values (table <code>evaluation_items</code>), so differences are unpaired: SE = √(SE₁² + SE₂²), usually much wider than a paired SE."
  h[#h + 1] = ('<p class="note">%s Bits per token = nats / ln 2.</p>'):format(note)
  h[#h + 1] = html_table({ "", "eval", "run", "estimator", "schedule", "noise", "sequences",
    "bound (bits/token ± SE)", "Δ vs ★ (bits/token ± SE)", "pairing", "other settings" },
    rows, "bounds")
  return table.concat(h)
end

local function section_groups(groups, by_id, series, items, items_state)
  local h = { '<section id="groups"><h2>Comparable groups: losses and bounds</h2>' }
  if #groups == 0 then
    h[#h + 1] = none("no run logged a loss and no evaluation has metric 'nll_bound'")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  h[#h + 1] = ('<p class="note">One group per objective (noise family for the method\'s objective), tokenizer and data: only runs of one group share an axis. Losses in nats per token (training loss <code>%s</code>, validation loss <code>%s</code>, EMA weights), at most %d buckets per series keeping each bucket\'s minimum and maximum, so spikes stay visible.</p>'):format(
    esc(table.concat(TRAIN_NAMES, "/")), esc(table.concat(VALID_NAMES, "/")), MAX_BUCKETS)
  h[#h + 1] = '<div class="controls">loss curves: <label><input type="checkbox" id="opt-logy"> log y</label> <label><input type="checkbox" id="opt-clip" checked> clip spikes (▲ marks values above the axis)</label></div>'
  for _, g in ipairs(groups) do
    h[#h + 1] = ('<section class="group" id="group-%d"><h3>Group %d: %s</h3>'):format(g.n, g.n, esc(g.label))
    local links = {}
    for _, id in ipairs(g.runs) do links[#links + 1] = run_link(by_id, id, g.color[id]) end
    h[#h + 1] = ('<p class="members">%d run%s: %s%s</p>'):format(#g.runs, #g.runs == 1 and "" or "s",
      table.concat(links, " · "), g.fields.data and (' · data <code title="%s">%s</code>'):format(esc(g.fields.data), esc(g.fields.data)) or "")
    local valid = loss_figure(g, by_id, series, "valid", "validation loss")
    local train = loss_figure(g, by_id, series, "train", "training loss")
    if valid or train then
      h[#h + 1] = '<div class="charts">' .. (valid or "") .. (train or "") .. "</div>"
    end
    h[#h + 1] = bounds_part(g, by_id, items, items_state)
    h[#h + 1] = "</section>"
  end
  h[#h + 1] = "</section>"
  return table.concat(h)
end

-- ---- generation quality --------------------------------------------------------------------------

local GEN_SHOWN = set_of{ "sampler", "temperature", "top_k", "top_p", "steps", "nfe", "n_samples", "judge_run",
  "judge_schedule", "length", "first_sample", "last_sample", "word_share_definition", "words" }

local function section_frontier(evals, by_id)
  local h = { '<section id="frontier"><h2>Generation quality</h2>' }
  local is_gen = set_of(GEN_METRICS)
  -- the metrics of one call share (run_id, settings text)
  local calls, order = {}, {}
  for _, ev in ipairs(evals) do
    if is_gen[ev.metric] then
      local key = ev.run_id .. "\0" .. (ev.settings or "")
      if not calls[key] then
        calls[key] = { run_id = ev.run_id, settings = ev.settings, st = ev.st, m = {}, se = {} }
        order[#order + 1] = calls[key]
      end
      calls[key].m[ev.metric] = ev.value
      calls[key].se[ev.metric] = ev.std_error
    end
  end
  if #order == 0 then
    h[#h + 1] = none("no evaluation with metrics 'gen_nll' / 'entropy'")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  local present = {}
  for _, c in ipairs(order) do
    for m in pairs(c.m) do present[m] = true end
  end
  -- the other metrics' columns: one each, distinct_1..4 and rep_2..4 in one column per family
  local cols, family_seen = {}, {}
  for _, m in ipairs(GEN_METRICS) do
    local family = m:match("^(%a+)_%d$")
    if present[m] and m ~= "gen_nll" and m ~= "entropy" then
      if m == "word_share" then
        cols[#cols + 1] = { head = "word share (± SE)", metrics = { m }, se = true }
      elseif not family then
        cols[#cols + 1] = { head = m, metrics = { m } }
      elseif not family_seen[family] then
        family_seen[family] = true
        local ms, ns = {}, {}
        for _, x in ipairs(GEN_METRICS) do
          if x:match("^" .. family .. "_%d$") then ms[#ms + 1] = x; ns[#ns + 1] = x:match("%d$") end
        end
        cols[#cols + 1] = { head = family .. "_" .. table.concat(ns, "/"), metrics = ms }
      end
    end
  end
  -- one chart per judge and sample length: gen NLL is comparable only under one judge
  local charts, chart_list = {}, {}
  for i, c in ipairs(order) do
    c.n = i
    if c.m.gen_nll and c.m.entropy then
      local key = tostring(c.st.judge_run or "?") .. "\0" .. tostring(c.st.length or "?")
      if not charts[key] then
        charts[key] = { judge = c.st.judge_run, length = c.st.length, calls = {} }
        chart_list[#chart_list + 1] = charts[key]
      end
      table.insert(charts[key].calls, c)
    end
  end
  h[#h + 1] = '<p class="note">One point per generation setting (run × sampler × temperature × steps): x = mean unigram entropy of a sample (nats), y = NLL of the samples under the judge model (nats/token); whiskers ±2 SE over samples. Low NLL at high entropy is better; points are compared only under one judge. Numbers match the table.</p>'
  -- one colour per run, in the charts and the table
  local color, runs_seen = {}, 0
  for _, c in ipairs(order) do
    if not color[c.run_id] then
      runs_seen = runs_seen + 1
      color[c.run_id] = PALETTE[(runs_seen - 1) % #PALETTE + 1]
    end
  end
  h[#h + 1] = '<div class="charts">'
  for _, ch in ipairs(chart_list) do
    local legend, in_legend = {}, {}
    local points = {}
    for _, c in ipairs(ch.calls) do
      if not in_legend[c.run_id] then
        in_legend[c.run_id] = true
        legend[#legend + 1] = { kind = "dot", color = color[c.run_id], name = run_label(by_id, c.run_id) }
      end
      local st = c.st
      local short = ("%s%s"):format(spec_name(st.sampler, 16), st.temperature and (" T=" .. fmt_num(st.temperature)) or "")
      points[#points + 1] = { x = c.m.entropy, y = c.m.gen_nll, n = c.n, short = "#" .. c.n .. " " .. short,
        xerr = c.se.entropy and c.se.entropy == c.se.entropy and 2 * c.se.entropy or nil,
        yerr = c.se.gen_nll and c.se.gen_nll == c.se.gen_nll and 2 * c.se.gen_nll or nil,
        label = ("%s · %s%s · steps=%s"):format(run_label(by_id, c.run_id), spec_name(st.sampler, 60),
          st.temperature and (" · T=" .. fmt_num(st.temperature)) or "", fmt_num(st.steps)),
        color = color[c.run_id] }
    end
    legend[#legend + 1] = { kind = "err", name = "± 2 standard errors" }
    local title = ("gen NLL vs entropy · judge %s%s"):format(ch.judge and run_label(by_id, ch.judge) or "not recorded",
      ch.length and (" · " .. fmt_num(ch.length) .. "-token samples") or "")
    h[#h + 1] = figure("scatter", { svg_scatter{ title = title, xlabel = "entropy of a sample (nats)",
      ylabel = "gen NLL under the judge (nats/token)", points = points, legend = legend, width = 900, height = 430 } })
  end
  h[#h + 1] = "</div>"
  if #chart_list == 0 then h[#h + 1] = none("no setting has both 'gen_nll' and 'entropy'") end
  local headers = { "#", "run", "sampler", "sampler options", "T", "steps", "NFE", "samples",
    "gen NLL (nats/token ± SE)", "entropy (nats ± SE)" }
  for _, col in ipairs(cols) do headers[#headers + 1] = col.head end
  headers[#headers + 1] = "judge"
  headers[#headers + 1] = "other settings"
  local rows = {}
  for _, c in ipairs(order) do
    local st = c.st
    local row = { tostring(c.n), run_link(by_id, c.run_id, color[c.run_id]), esc(plugin_name(st.sampler) or "—"),
      esc(key_options(spec_options(st.sampler), 200) ~= "" and key_options(spec_options(st.sampler), 200) or "—"), fmt_num(st.temperature), fmt_num(st.steps), fmt_num(st.nfe),
      fmt_num(st.n_samples), pm(c.m.gen_nll, c.se.gen_nll), pm(c.m.entropy, c.se.entropy) }
    for _, col in ipairs(cols) do
      local vals = {}
      for _, m in ipairs(col.metrics) do vals[#vals + 1] = col.se and pm(c.m[m], c.se[m], 3) or fmt_num(c.m[m], 3) end
      row[#row + 1] = table.concat(vals, " / ")
    end
    local judge = math.tointeger(st.judge_run)
    row[#row + 1] = judge and (('<a href="#run-%d" title="%s">run %d</a>'):format(judge, esc(run_label(by_id, judge)), judge) ..
      (st.judge_schedule and ("<br><small>" .. esc(spec_name(st.judge_schedule)) .. "</small>") or "")) or "—"
    row[#row + 1] = kv_cell(st, GEN_SHOWN, c.settings, { "top_k", "top_p", "label", "note" }, 3)
    rows[#rows + 1] = row
  end
  h[#h + 1] = html_table(headers, rows, "gen")
  h[#h + 1] = "</section>"
  return table.concat(h)
end

-- ---- every evaluation row ----------------------------------------------------------------------------

local function section_evaluations(evals, by_id)
  local h = { '<section id="evaluations"><h2>All evaluations</h2>' }
  if #evals == 0 then
    h[#h + 1] = none("the evaluations table is empty")
    h[#h + 1] = "</section>"
    return table.concat(h)
  end
  local rows = {}
  for _, ev in ipairs(evals) do
    rows[#rows + 1] = { tostring(ev.id), run_link(by_id, ev.run_id), esc(ev.checkpoint_id or "—"), esc(ev.metric),
      fmt_num(ev.value, 6), fmt_num(ev.std_error, 3),
      ev.metric == "nll_bound" and ev.value and fmt_num(ev.value / LN2, 5) or "—",
      ev.st.sampler and esc(spec_name(ev.st.sampler, 200)) or "—",
      kv_cell(ev.st, { sampler = true }, ev.settings, { "estimator", "schedule", "temperature", "steps", "judge_run", "split", "length", "sequences", "mc" }, 6), time_cell(ev.created_at) }
  end
  h[#h + 1] = ('<details class="all-evals"><summary>%d rows, one per metric (a generation call stores %d)</summary>'):format(
    #evals, #GEN_METRICS)
  h[#h + 1] = html_table({ "id", "run", "checkpoint", "metric", "value", "SE", "bits/token", "sampler", "settings", "created" },
    rows, "evals")
  h[#h + 1] = "</details></section>"
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
section.group{border-left:4px solid #c9d6e3;padding-left:12px;margin:18px 0 26px}section.group h3{margin:6px 0 2px}
.members{margin:2px 0 6px}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:baseline}
.controls{position:sticky;top:0;z-index:2;background:#f6f8fa;border:1px solid #dde3ea;border-radius:4px;padding:4px 10px;margin:8px 0;display:inline-block}
.controls label{margin-left:10px;cursor:pointer}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3}code,pre{font:12px/1.35 ui-monospace,"DejaVu Sans Mono",monospace}
pre.json{background:#f8f8f8;padding:6px;margin:4px 0;max-height:420px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
details summary{cursor:pointer}summary code{white-space:normal;word-break:break-all}td{max-width:520px}ul.plugins{margin:0;padding-left:16px;min-width:220px}
.none{color:#777;font-style:italic}.note{color:#555;max-width:1100px}.prov{color:#666;font-size:12px}
.st-done{color:#2a7a2a}.st-failed{color:#b00}.st-interrupted{color:#b06000}.st-running{color:#0055aa}
.err-text{color:#b00;font-size:12px;min-width:220px;max-width:360px;overflow-wrap:anywhere;word-break:break-word;white-space:pre-wrap}
.err-text summary{white-space:normal}.err-full{margin-top:3px;max-height:240px;overflow:auto}.ts{white-space:nowrap}
table.runs td:nth-child(2){max-width:240px;word-break:break-all}table.runs td:nth-child(12){min-width:340px}.scroll{overflow-x:auto}
table.bounds tr.ref td{background:#fffbe6}.se{color:#666;white-space:nowrap}td .kv{display:inline-block;margin-right:8px;font-size:12px;overflow-wrap:anywhere}
td .kv b{font-weight:600;color:#444}details.raw summary{color:#0055aa;font-size:12px}details.raw .more{margin:2px 0}
table.bounds td:last-child,table.gen td:last-child,table.evals td:nth-child(9){min-width:240px;max-width:460px}table.bounds td:nth-child(5),table.bounds td:nth-child(6){min-width:110px;max-width:190px;overflow-wrap:anywhere}
.charts{display:flex;flex-wrap:wrap;gap:14px;margin:10px 0}figure.chart-box{margin:0}
svg.chart{background:#fff;border:1px solid #e3e3e3;display:block}
body:not(.logy) svg.only-log,body.logy svg.only-lin,body:not(.full) svg.only-full,body.full svg.only-clip{display:none}
svg .grid{stroke:#eee}svg .axis{stroke:#555;fill:none}svg .line{fill:none;stroke-width:1.6}
svg .err{stroke:#222;stroke-width:1.3;fill:none}svg .zero{stroke:#444;stroke-dasharray:4 3}svg .bar{opacity:.55}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .title{font-weight:600;font-size:12px}
svg .label{fill:#444}svg .value{fill:#222}svg .point-label{font-size:10px;fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}svg .leader{stroke:#999;stroke-width:0.8}svg .star{fill:#b08000}
svg .clipnote{fill:#a33;font-size:10px}svg .row-sub{font-size:10px;fill:#666}svg .legend-label{fill:#333}
.sample{border:1px solid #ddd;border-radius:4px;padding:6px 8px;margin:8px 0}
.sample .meta{color:#555;font-size:12px;margin-bottom:4px}
.toks{font:13px/1.7 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre-wrap;word-break:break-all}
.t.c{background:#ffb347}.t.r{text-decoration:underline 2px #1f6fd6;color:#1f4f96}
.t.m{color:#999}.t.x{color:#8a5a00;font-size:11px}
.filter{margin:6px 0 10px}#errors{color:#b00;background:#fff0f0;padding:8px;white-space:pre-wrap}
]]

-- Runs after the page is parsed: the sample filter, the loss-curve toggles (also set by the URL:
-- #logy, #full), checks for tests and data-ready. An error is shown in #errors and sets
-- data-ready="error" instead of disappearing into the console. The checks, on the body:
-- data-charts (figures), data-legends / data-labelled (figures whose shown chart has a legend /
-- both axis labels), data-shown (figures showing exactly one variant), data-overlaps (pairs of
-- point or row labels that overlap in a shown chart), data-err-width (widest error message, px).
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
    var logy = document.getElementById('opt-logy'), clip = document.getElementById('opt-clip');
    function toggles() {
      body.classList.toggle('logy', !!(logy && logy.checked));
      body.classList.toggle('full', !!(clip && !clip.checked));
    }
    if (logy && clip) {
      if (/logy/.test(location.hash)) logy.checked = true;
      if (/full/.test(location.hash)) clip.checked = false;
      logy.addEventListener('change', toggles);
      clip.addEventListener('change', toggles);
    }
    toggles();
    var figs = document.querySelectorAll('figure.chart-box');
    var legends = 0, labelled = 0, single = 0, overlaps = 0;
    for (var f = 0; f < figs.length; f++) {
      var svgs = figs[f].querySelectorAll('svg.chart'), vis = [];
      for (var k = 0; k < svgs.length; k++) if (svgs[k].getBoundingClientRect().width > 0) vis.push(svgs[k]);
      if (vis.length === 1) single++;
      if (!vis.length) continue;
      var svg = vis[0];
      if (svg.querySelector('g.legend text')) legends++;
      var xl = svg.querySelector('text.xlabel'), yl = svg.querySelector('text.ylabel');
      if (xl && yl && xl.textContent.trim() && yl.textContent.trim()) labelled++;
      var labels = svg.querySelectorAll('text.point-label, text.row-label'), boxes = [];
      for (var j = 0; j < labels.length; j++) boxes.push(labels[j].getBBox());
      for (var a = 0; a < boxes.length; a++)
        for (var b = a + 1; b < boxes.length; b++) {
          var p = boxes[a], q = boxes[b];
          if (p.x < q.x + q.width - 0.5 && q.x < p.x + p.width - 0.5 && p.y < q.y + q.height - 0.5 && q.y < p.y + p.height - 0.5) overlaps++;
        }
    }
    var errw = 0, errs = document.querySelectorAll('.err-text');
    for (var e = 0; e < errs.length; e++) errw = Math.max(errw, Math.round(errs[e].getBoundingClientRect().width));
    body.dataset.charts = String(figs.length);
    body.dataset.legends = String(legends);
    body.dataset.labelled = String(labelled);
    body.dataset.shown = String(single);
    body.dataset.overlaps = String(overlaps);
    body.dataset.errWidth = String(errw);
    body.dataset.samples = String(samples.length);
    if (body.dataset.ready !== 'error') body.dataset.ready = '1';
  } catch (err) {
    fail(err);
  }
})();
]]

local function header(db, db_path, groups)
  local c = db:query([[SELECT (SELECT count(*) FROM runs) AS runs,
    (SELECT count(DISTINCT run_id) FROM metrics) AS runs_with_metrics, (SELECT count(*) FROM metrics) AS metrics,
    (SELECT count(*) FROM checkpoints) AS checkpoints, (SELECT count(*) FROM evaluations) AS evaluations,
    (SELECT count(*) FROM samples) AS samples, (SELECT count(*) FROM sample_events) AS events]])[1]
  local counts = ("%d runs (%d with metrics) · %d metric values · %d checkpoints · %d evaluations · %d samples · %d sampler events")
    :format(c.runs, c.runs_with_metrics, c.metrics, c.checkpoints, c.evaluations, c.samples, c.events)
  local glinks = {}
  for _, g in ipairs(groups) do
    glinks[#glinks + 1] = ('<a href="#group-%d" title="%s">group %d</a>'):format(g.n, esc(g.label), g.n)
  end
  return ('<header><h1>hdlm report</h1><p>database <code>%s</code> · generated %s · hdlm %s</p><p class="counts">%s</p>'
    .. '<nav><a href="#runs">runs</a><a href="#groups">groups</a>%s<a href="#frontier">generation quality</a>'
    .. '<a href="#samples">samples</a><a href="#evaluations">all evaluations</a></nav></header>'):format(
    esc(db_path), esc(os.date("!%Y-%m-%dT%H:%M:%SZ")), esc(hdlm.version), esc(counts), table.concat(glinks)), c
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
  for _, ev in ipairs(evals) do
    ev.st = json(ev.settings)
    if type(ev.st) ~= "table" then ev.st = {} end
  end
  local series = load_loss_series(db)
  local items, items_state = load_items(db)
  local groups = build_groups(runs, by_id, series, evals)
  local head, counts = header(db, db_path, groups)
  local body = {
    head,
    section_runs(runs, groups),
    section_groups(groups, by_id, series, items, items_state),
    section_frontier(evals, by_id),
    section_samples(db, by_id),
    section_evaluations(evals, by_id),
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
  local _, charts = page:gsub('<figure class="chart%-box"', "")
  print(("report: %s -> %s (%d bytes; %d runs, %d groups, %d charts, %d evaluations, %d samples)"):format(
    db_path, out, #page, counts.runs, #groups, charts, counts.evaluations, math.min(counts.samples, MAX_SAMPLES)))
end

main()
