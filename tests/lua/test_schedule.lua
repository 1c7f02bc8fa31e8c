-- hdlm.schedule through the real binary: the plugin schedules on the worked examples of spec §1
-- and §2.1, float32 times, masks, schedules written in Lua (function and table forms) matching
-- the equivalent plugin, and the error messages.
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
local function row(s, step, L)
  local lv, ns = s:levels(step, L)
  return table.concat(lv, " "), ns
end
local function check_row(s, step, L, want_ns, want)
  local got, ns = row(s, step, L)
  check(got == want and ns == want_ns,
        ("%s step %d: got %s (n_s %s), want %s (n_s %d)"):format(s.name, step, got, ns, want, want_ns))
end
local function f32(x) return (string.unpack("<f", string.pack("<f", x))) end
local function bits(x) return (string.unpack("<I4", string.pack("<f", x))) end

-- ---- plugins on the spec's examples --------------------------------------------------------
local sa = hdlm.schedule{ "simple_annealing", width = 4, tau = 4 }
check(sa.name == "simple_annealing" and sa.n_levels == 4 and sa.growth == "tokens" and sa.block == 1,
      "simple annealing fields")
check(sa.source == "plugin" and sa.version == "1.0.0" and not sa.continuous, "plugin source fields")
check(tostring(sa) == "Schedule(simple_annealing)", "tostring")
check(sa:n_steps(8) == 11, "simple w=4 tau=4 L=8: 11 steps")
check_row(sa, 0, 8, 0, "4 4 4 4 4 4 4 4")
check_row(sa, 1, 8, 0, "3 4 4 4 4 4 4 4")
check_row(sa, 4, 8, 0, "0 1 2 3 4 4 4 4")
check_row(sa, 5, 8, 1, "0 0 1 2 3 4 4 4")
check_row(sa, 6, 8, 2, "0 0 0 1 2 3 4 4")
check_row(sa, 10, 8, 6, "0 0 0 0 0 0 0 1")
check_row(sa, 11, 8, 7, "0 0 0 0 0 0 0 0")
check_row(hdlm.schedule{ "simple_annealing", width = 5, tau = 3 }, 5, 5, 0, "0 0 1 2 2")
local walk = hdlm.schedule{ "simple_annealing", width = 4, tau = 8 }
local w0 = {}
for step = 1, 4 do w0[#w0 + 1] = walk:levels(step, 6)[1] end
check(table.concat(w0, ",") == "7,5,2,0", "w=4 tau=8 walk: " .. table.concat(w0, ","))
check(hdlm.schedule{ "simple_annealing", width = 4, tau = 2 }:n_steps(8) == 7, "w=4 tau=2 L=8: 7 steps")

local ba = hdlm.schedule{ "block_annealing", width = 4, tau = 4 }
check(ba.growth == "blocks" and ba.block == 4 and ba.n_levels == 4, "block fields")
check(ba.options == '{"width": 4, "tau": 4}', "resolved options: " .. tostring(ba.options))
check(ba:n_steps(12) == 12, "block 12 steps")
check_row(ba, 1, 12, 0, "3 3 3 3 4 4 4 4 4 4 4 4")
check_row(ba, 4, 12, 0, "0 0 0 0 4 4 4 4 4 4 4 4")
check_row(ba, 5, 12, 4, "0 0 0 0 3 3 3 3 4 4 4 4")
check_row(ba, 8, 12, 4, "0 0 0 0 0 0 0 0 4 4 4 4")
check_row(ba, 9, 12, 8, "0 0 0 0 0 0 0 0 3 3 3 3")
check_row(ba, 12, 12, 8, "0 0 0 0 0 0 0 0 0 0 0 0")
check(hdlm.schedule{ "block_annealing", width = 3 }.n_levels == 3, "tau defaults to width")

local ha = hdlm.schedule{ "hybrid_annealing", width = 3, tau = 3 }
check(ha:n_steps(7) == 15, "hybrid 15 steps")
check_row(ha, 1, 7, 0, "2 2 2 3 3 3 3")
check_row(ha, 2, 7, 0, "1 2 2 3 3 3 3")
check_row(ha, 3, 7, 0, "0 1 2 3 3 3 3")
check_row(ha, 5, 7, 0, "0 0 0 3 3 3 3")
check_row(ha, 6, 7, 3, "0 0 0 2 2 2 3")
check_row(ha, 13, 7, 6, "0 0 0 0 0 0 0")

local ar = hdlm.schedule{ "autoregressive" }
check(ar.n_levels == 2 and ar.growth == "blocks" and ar.block == 1 and ar:n_steps(4) == 4, "AR fields")
check_row(ar, 3, 4, 2, "0 0 1 2")
local df = hdlm.schedule{ "diffusion", tau = 3 }
check(df:n_steps(5) == 3 and not df.continuous, "diffusion steps")
check_row(df, 1, 5, 0, "2 2 2 2 2")
check_row(df, 3, 5, 0, "0 0 0 0 0")
check(hdlm.schedule{ "diffusion", tau = 3, continuous = true }.continuous, "continuous flag")

-- ---- times (spec §1.8) -----------------------------------------------------------------------
local t, st = ba:times(5, 12)
local tb, sb = {}, {}
for i = 1, 12 do tb[i] = ("%08x"):format(bits(t[i])); sb[i] = st[i] end
check(table.concat(tb, " ") == ("38d1b717 "):rep(4) .. ("3f7fbe77 "):rep(4) .. ("3f7ff972 "):rep(3) .. "3f7ff972",
      "step 5 times: " .. table.concat(tb, " "))
check(t[1] == f32(1e-4) and t[5] == f32(0.999) and t[9] == f32(0.9999), "times are float32 values")
check(table.concat(sb, ",") == ("settled,"):rep(4) .. ("active,"):rep(4) .. ("worthless,"):rep(3) .. "worthless",
      "step 5 states")
t = ba:times(8, 12)
check(bits(t[5]) == 0x3a83126f and t[8] == f32(0.001), "step 8: the middle block at a = 0.001")
t = ba:times(8, 12, { eps = 1e-3 })
check(t[1] == f32(1e-3) and t[5] == f32(0.01) and t[12] == f32(0.999), "eps option")
check_error(function() ba:times(1, 4, { eps = 0.2 }) end, "key 'eps' must be in (0, 0.05)", "eps range")
check_error(function() ba:times(1, 4, { esp = 1e-4 }) end, "unknown key 'esp' (did you mean 'eps'?)", "times keys")

-- ---- masks (spec §2.1) -----------------------------------------------------------------------
local function mask_str(s, step, L, opts) return table.concat(s:mask(step, L, opts), "|") end
local want = table.concat({ "111100000000", "111100000000", "111100000000", "111100000000",
                            "111111110000", "111111110000", "111111110000", "111111110000",
                            "000000000000", "000000000000", "000000000000", "000000000000" }, "|")
check(mask_str(ba, 5, 12) == want, "block mask step 5: " .. mask_str(ba, 5, 12))
local ws = "11000000|11000000|11111100|11111100|11111100|11111100|00000000|00000000"
check(mask_str(sa, 6, 8, { context = "block_causal", width = 4 }) == ws, "simple mask step 6 block_causal")
check(mask_str(sa, 6, 8, { context = "full" }) == ws, "simple mask step 6 full")
check(sa:mask(6, 8, { context = "causal" })[1] == "10000000", "simple mask step 6 causal row 0")
check(sa:mask(6, 8, { block = "causal" })[3] == "11100000", "active block causal")
check_error(function() ba:mask(5, 12, { context = "diagonal" }) end, "must be full, causal or block_causal", "context name")
check_error(function() ba:mask(5, 12, { blokc = "full" }) end, "did you mean 'block'?", "mask keys")

-- ---- schedules written in Lua ------------------------------------------------------------------
local function same(a, b, L, what)
  local n = a:n_steps(L)
  local ok = n == b:n_steps(L)
  for step = 0, n do
    local la, na = a:levels(step, L)
    local lb, nb = b:levels(step, L)
    local ta, sa_ = a:times(step, L)
    local tb_, sb_ = b:times(step, L)
    ok = ok and table.concat(la, ",") == table.concat(lb, ",") and na == nb
    ok = ok and table.concat(ta, ",") == table.concat(tb_, ",") and table.concat(sa_, ",") == table.concat(sb_, ",")
    ok = ok and mask_str(a, step, L) == mask_str(b, step, L)
    ok = ok and mask_str(a, step, L, { context = "causal", block = "causal" }) ==
                mask_str(b, step, L, { context = "causal", block = "causal" })
  end
  check(ok, what)
end

-- function form: block annealing written in Lua
local function block_levels(w, tau)
  return function(step, L)
    local b, k = (step - 1) // tau, (step - 1) % tau
    local lo, hi, lv = b * w, b * w + w, {}
    for i = 0, L - 1 do lv[i + 1] = i < lo and 0 or (i < hi and tau - 1 - k or tau) end
    return lv, lo
  end
end
local lua_ba = hdlm.schedule{ levels = block_levels(4, 4), n_levels = 4, growth = "blocks", block = 4,
                              n_steps = function(L) return 4 * ((L + 3) // 4) end, name = "lua_block" }
check(lua_ba.name == "lua_block" and lua_ba.source == "lua" and lua_ba.growth == "blocks" and lua_ba.block == 4,
      "Lua schedule fields")
same(lua_ba, ba, 12, "function form = block_annealing, L=12")
same(lua_ba, ba, 10, "function form = block_annealing, L=10 (partial block)")

-- table form from the plugin's own rows, with and without explicit settled counts
local function table_of(s, L)
  local rows, settled = {}, {}
  for step = 1, s:n_steps(L) do rows[step], settled[step] = s:levels(step, L) end
  return rows, settled
end
local rows, settled = table_of(sa, 8)
local lua_sa = hdlm.schedule{ levels = rows, settled = settled, n_levels = 4, name = "lua_simple" }
check(lua_sa:n_steps(8) == 11 and lua_sa.growth == "tokens", "table form n_steps")
same(lua_sa, sa, 8, "table form = simple_annealing (explicit settled)")
rows = table_of(ba, 12)
local lua_ba2 = hdlm.schedule{ levels = rows, n_levels = 4, growth = "blocks", block = 4 }
check(lua_ba2.name == "lua_schedule", "default name")
same(lua_ba2, ba, 12, "table form = block_annealing (settled derived: the step after level 0)")
check_row(lua_ba2, 5, 8, 4, "0 0 0 0 3 3 3 3") -- shorter L: rows truncated
check_error(function() lua_ba2:levels(1, 13) end, "level rows have 12 positions, L = 13 is longer", "table too short")
check_error(function() lua_ba2:n_steps(13) end, "L = 13 is longer", "n_steps on too short rows")
check_row(lua_ba2, 0, 12, 0, "4 4 4 4 4 4 4 4 4 4 4 4")

-- errors of Lua schedules name the schedule and the step
local function boom_levels(step, L)
  if step == 2 then error("no step two") end
  local lv = {}
  for i = 1, L do lv[i] = 3 - step end
  if step == 3 then lv[1] = 1; return lv, 2 end -- settled but not clean
  return lv, 0
end
local boom = hdlm.schedule{ name = "boom", n_levels = 3, n_steps = 5, levels = boom_levels }
check(row(boom, 1, 3) == "2 2 2", "function form works")
check_error(function() boom:levels(2, 3) end, "schedule 'boom' step 2: levels() raised:", "Lua error becomes a message")
check_error(function() boom:levels(2, 3) end, "no step two", "original message kept")
check_error(function() boom:levels(3, 3) end, "schedule 'boom' step 3: position 0 is settled (n_settled = 2) but at level 1",
            "hyper check on Lua levels")
check_error(function() boom:levels(4, 3) end, "schedule 'boom' step 4: level [1] must be an integer in 0..3", "level range")
check_error(function() boom:levels(6, 3) end, "step 6 is beyond the last step 5", "step range")
local short = hdlm.schedule{ name = "short", n_levels = 2, n_steps = 1, levels = function() return { 1 }, 0 end }
check_error(function() short:levels(1, 3) end, "returned 1 levels, expected L = 3", "wrong length")
local nons = hdlm.schedule{ name = "nons", n_levels = 2, n_steps = 1, levels = function() return { 1 } end }
check_error(function() nons:levels(1, 1) end, "n_settled is nil, expected an integer", "missing n_settled")
local badn = hdlm.schedule{ name = "badn", n_levels = 2, n_steps = function() error("n_steps broke") end,
                            levels = function() return { 1 }, 0 end }
check_error(function() badn:n_steps(4) end, "n_steps broke", "n_steps error")
check_error(function() badn:levels(1, 4) end, "schedule 'badn': n_steps(4) raised", "n_steps error through levels")

-- a Lua schedule used from a coroutine runs its function on the calling thread
local co = coroutine.wrap(function() local lv, ns = lua_ba:levels(6, 12); coroutine.yield(ns); return lv[5] end)
check(co() == 4 and co() == 2, "Lua schedule inside a coroutine")
check(hdlm.schedule{ levels = rows, n_levels = 4, continuous = true }.continuous, "Lua schedule continuous flag")

-- argument checks
check_error(function() hdlm.schedule{ "block_anealing" } end,
            "unknown schedule plugin 'block_anealing'; known:", "unknown plugin lists known ones")
check_error(function() hdlm.schedule{ "block_anealing" } end, "simple_annealing", "known list")
check_error(function() hdlm.schedule{ "block_annealing", widht = 4 } end,
            "unknown option 'widht'; did you mean 'width'?", "unknown option")
check_error(function() hdlm.schedule{ "simple_annealing", width = 1 } end,
            "use the 'autoregressive' schedule", "width 1 refused")
check_error(function() hdlm.schedule{ "diffusion", tau = 0 } end, "option 'tau' must be in 2..", "tau 0 refused")
check_error(function() hdlm.schedule{ "block_annealing", width = 4, tau = 4, 7 } end,
            "only the plugin name may be positional", "extra positional")
check_error(function() hdlm.schedule{ "block_annealing", width = {} } end, "must be a number, boolean or string", "option type")
check_error(function() hdlm.schedule{ width = 4 } end, "give a plugin name first", "no name")
check_error(function() hdlm.schedule{ levels = rows, n_levles = 4 } end, "did you mean 'n_levels'?", "Lua keys")
check_error(function() hdlm.schedule{ levels = rows } end, "key 'n_levels' (the worthless level W) is required", "n_levels required")
check_error(function() hdlm.schedule{ levels = rows, n_levels = 3 } end, "levels[1][5] must be an integer in 0..3", "row values")
check_error(function() hdlm.schedule{ levels = { { 1, 2 }, { 1 } }, n_levels = 3 } end, "rows must be non-empty and of one length", "ragged rows")
check_error(function() hdlm.schedule{ levels = rows, n_levels = 4, growth = "blocks" } end, "needs key 'block'", "block required")
check_error(function() hdlm.schedule{ levels = rows, n_levels = 4, growth = "rows" } end, "must be 'tokens' or 'blocks'", "growth name")
check_error(function() hdlm.schedule{ levels = function() end, n_levels = 4 } end, "key 'n_steps'", "n_steps required")
check_error(function() hdlm.schedule{ levels = rows, n_levels = 4, settled = { 1 } } end, "key 'settled' must be a table of 12", "settled length")
check_error(function() ba:levels(13, 12) end, "schedule 'block_annealing': step 13 is beyond the last step 12", "plugin step range")
check_error(function() ba:levels(1, -1) end, "must be in 0..", "negative L")

lua_ba, lua_ba2, lua_sa, boom, badn = nil, nil, nil, nil, nil
collectgarbage() -- finalizers release plugin instances and Lua references (checked under ASan)
check(row(ba, 2, 4) == "2 2 2 2", "schedules still usable after a collection")

print(("test_schedule: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
