-- Noise plugins through hdlm.noise: fields, marginals against the formulas, losses against
-- hand-computed values (including the spec §4.1 worked example's weights), dlogits against finite
-- differences, reverse rows, corruption/limit, and the argument errors. Every noise plugin found
-- also gets the generic contract checks (marginals sum to 1, dlogits = d total).
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function near(a, b, tol, what)
  check(type(a) == "number" and math.abs(a - b) <= tol, what .. (" (got %s, want %.10g)"):format(tostring(a), b))
end
local function check_error(fn, needle, what)
  local ok, err = pcall(fn)
  check(not ok and tostring(err):find(needle, 1, true) ~= nil,
        what .. " (got: " .. tostring(err) .. ")")
end
local function f32(x) return string.unpack("f", string.pack("f", x)) end
local function lse(row, n)
  n = n or #row
  local mx = -math.huge
  for i = 1, n do mx = math.max(mx, row[i]) end
  local z = 0
  for i = 1, n do z = z + math.exp(row[i] - mx) end
  return mx + math.log(z)
end
local function ce(row, y, n) return lse(row, n) - row[y + 1] end -- y is a 0-based token id
local function logits_of(L, Vp, seed)
  local lg = {}
  for i = 1, L do
    lg[i] = {}
    for k = 1, Vp do lg[i][k] = f32(1.3 * math.sin(seed + 0.7 * (i * Vp + k))) end
  end
  return lg
end

-- ---- fields ----
local ab = hdlm.noise{ "absorbing", vocab = 5 }
check(ab.name == "absorbing" and ab.vocab == 5 and ab.n_extra == 1, "absorbing fields")
check(ab.flags.score == false and ab.flags.conditioned == false, "absorbing flags")
check(tostring(ab) == "hdlm.Noise(absorbing, vocab=5, Vp=6)", "tostring: " .. tostring(ab))
check(ab:conditioning(0.5) == nil, "absorbing has no conditioning")
local un = hdlm.noise{ "uniform", vocab = 4 }
check(un.n_extra == 0 and un.vocab == 4, "uniform fields")
local eh = hdlm.noise{ "epsilon_hybrid", vocab = 5, epsilon = 0.01, lambda = 1 }
check(eh.n_extra == 1 and type(eh.version) == "string", "epsilon_hybrid fields")

-- ---- marginals ----
for _, t in ipairs{ 0, 0.25, 0.9 } do
  local m = ab:marginal(2, t)
  check(#m == 6, "absorbing marginal size")
  near(m[3], 1 - t, 1e-15, "absorbing q(x0)")
  near(m[6], t, 1e-15, "absorbing q(M)")
  near(m[1] + m[2] + m[4] + m[5], 0, 0, "absorbing others")
  local u = un:marginal(1, t)
  check(#u == 4, "uniform marginal size")
  near(u[2], 1 - t + t / 4, 1e-15, "uniform q(x0)")
  near(u[1], t / 4, 1e-15, "uniform q(y)")
  local e = eh:marginal(0, t)
  near(e[1], (1 - t) * (0.99 + 0.01 / 5), 1e-15, "eps q(x0)")
  near(e[3], (1 - t) * 0.01 / 5, 1e-15, "eps q(y)")
  near(e[6], t, 1e-15, "eps q(M)")
  for _, row in ipairs{ m, u, e } do
    local s = 0
    for _, p in ipairs(row) do s = s + p end
    near(s, 1, 1e-14, "marginal sums to 1")
  end
end

-- ---- absorbing loss by hand: annealed normalises by the active count ----
do
  local lg = { { 0, 0, 0, 0, 0, 0 }, { 0, 2, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0, 0 }, { 1, 0, 0, 0, 0, 0 } }
  local total, per, dl = ab:loss{ x0 = { 0, 1, 2, 3 }, xt = { 0, 5, 5, 3 }, t = { 0.5, 0.5, 0.25, 0.5 },
                                  logits = lg, states = { "settled", "active", "active", "worthless" } }
  local want = (ce(lg[2], 1) / 0.5 + ce(lg[3], 2) / 0.25) / 2
  near(total, want, 1e-6, "absorbing annealed loss")
  near(per[1] + per[4], 0, 0, "non-active positions weigh 0")
  near(per[2], ce(lg[2], 1) / 0.5 / 2, 1e-6, "per-token loss")
  check(#dl == 4 and #dl[1] == 6, "dlogits shape")
  near(dl[2][2], (math.exp(2 - lse(lg[2])) - 1) / 0.5 / 2, 1e-6, "dlogits at x0")
  near(dl[1][1], 0, 0, "dlogits at a settled position")
  local total_u = ab:loss{ x0 = { 0, 1, 2, 3 }, xt = { 0, 5, 5, 3 }, t = 0.5, logits = lg, annealed = false }
  near(total_u, (ce(lg[2], 1) + ce(lg[3], 2)) / 0.5 / 4, 1e-6, "absorbing unannealed loss (B*L)")
end

-- ---- the spec's worked example (§4.1): weights from the noisy input (3,5,2,5,4,5) ----
do
  local p = f32((1 - 1e-4) * 0.4 + 1e-4)
  near(p, 0.40006, 1e-7, "p of the worked example")
  local x0, xt = { 0, 1, 2, 3, 4, 0 }, { 3, 5, 2, 5, 4, 5 }
  local lg = logits_of(6, 6, 0.3)
  local total, per = eh:loss{ x0 = x0, xt = xt, t = p, logits = lg, annealed = false }
  local want = { 1.65017, 2.49962, 0.016668, 2.49962, 0.016668, 2.49962 }
  local sum = 0
  for i = 1, 6 do
    local c = ce(lg[i], x0[i])
    near(per[i] * 6 / c, want[i], want[i] < 0.1 and 6e-7 or 6e-6, "worked example weight " .. i)
    sum = sum + want[i] * c / 6
  end
  near(total, sum, 1e-4, "worked example loss on our logits")
  -- annealed, reference weights: no 1/(1-p)
  local _, pa = eh:loss{ x0 = x0, xt = xt, t = p, logits = lg }
  near(pa[1] * 6 / ce(lg[1], 0), 0.99, 1e-5, "annealed corrupted weight")
  near(pa[3] * 6 / ce(lg[3], 2), 0.01, 1e-7, "annealed clean weight")
  -- "consistent" keeps the factor
  local ehc = hdlm.noise{ "epsilon_hybrid", vocab = 5, annealed_weights = "consistent" }
  local _, pc = ehc:loss{ x0 = x0, xt = xt, t = p, logits = lg }
  near(pc[1] * 6 / ce(lg[1], 0), 1.65017, 6e-6, "consistent corrupted weight")
end

-- ---- reverse rows ----
do
  local lg = logits_of(4, 6, 1.1)
  local rows = ab:reverse{ logits = lg, xt = { 5, 2, 5, 5 }, t = 0.8, s = 0.2,
                           states = { "active", "active", "active", "settled" } }
  for i, row in ipairs(rows) do
    local s = 0
    for _, p in ipairs(row) do s = s + p end
    near(s, 1, 1e-12, "absorbing reverse row " .. i .. " sums to 1")
  end
  near(rows[1][6], f32(0.2) / f32(0.8), 1e-15, "stay masked with s/t")
  near(rows[2][3], 1, 0, "visible carry-over")
  near(rows[4][6], 1, 0, "non-active row is one-hot on x_t")
  local erows = eh:reverse{ logits = lg, xt = { 5, 2, 5, 5 }, t = 0.8, s = 0.2 }
  near(erows[1][1], rows[1][1], 1e-15, "eps reverse = absorbing reverse")
  local urows = un:reverse{ logits = logits_of(3, 4, 2.0), xt = { 0, 3, 1 }, t = { 0.9, 0.5, 0.05 },
                            s = { 0.5, 0.2, 0.01 } }
  for i, row in ipairs(urows) do
    local s = 0
    for _, p in ipairs(row) do check(p > 0, "uniform reverse p > 0"); s = s + p end
    near(s, 1, 1e-12, "uniform reverse row " .. i .. " sums to 1")
  end
  local total, terms = un:bound{ x0 = { 0, 3, 2 }, xt = { 0, 3, 1 }, t = { 0.9, 0.5, 0.05 },
                                 s = { 0.5, 0.2, 0.01 }, logits = logits_of(3, 4, 2.0) }
  check(total > 0 and #terms == 3 and terms[1] >= 0, "uniform bound terms")
  local bt = ab:bound{ x0 = { 1 }, xt = { 5 }, t = 0.8, s = 0.2, logits = { lg[1] } }
  near(bt, (f32(0.8) - f32(0.2)) / f32(0.8) * ce(lg[1], 1, 5), 1e-6, "absorbing bound term")
end

-- ---- corrupt and limit ----
do
  local x0 = {}
  for i = 1, 400 do x0[i] = i % 5 end
  local a1 = ab:corrupt{ x0 = x0, t = 0.5, seed = 9 }
  local a2 = ab:corrupt{ x0 = x0, t = 0.5, seed = 9 }
  local a3 = ab:corrupt{ x0 = x0, t = 0.5, seed = 10 }
  local same, differ, masked, bad = true, false, 0, 0
  for i = 1, 400 do
    same = same and a1[i] == a2[i]
    differ = differ or a1[i] ~= a3[i]
    if a1[i] == 5 then masked = masked + 1 elseif a1[i] ~= x0[i] then bad = bad + 1 end
  end
  check(same and differ, "corrupt is seeded")
  check(bad == 0 and masked > 150 and masked < 250, "absorbing corrupt: masks only (" .. masked .. ")")
  local c = eh:corrupt{ x0 = { 1, 2, 3 }, t = 0.5, states = { "settled", "active", "worthless" } }
  check(c[1] == 1 and c[3] == 5, "settled keeps x0, worthless is M")
  local lim = ab:limit{ L = 7 }
  check(#lim == 7 and lim[1] == 5 and lim[7] == 5, "absorbing limit is all masks")
  local ul = un:limit{ L = 50, seed = 1 }
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(ul) do lo = math.min(lo, v); hi = math.max(hi, v) end
  check(#ul == 50 and lo >= 0 and hi <= 3 and lo < hi, "uniform limit draws tokens")
end

-- ---- generic contract of every noise plugin found: marginals, dlogits = d total ----
for _, info in ipairs(hdlm.plugins("noise")) do
  local n = hdlm.noise{ info.name, vocab = 5 }
  local Vp = 5 + n.n_extra
  for _, t in ipairs{ 0.1, 0.5, 0.9 } do
    local m, s = n:marginal(1, t), 0
    for _, p in ipairs(m) do check(p >= 0, info.name .. " marginal >= 0"); s = s + p end
    near(s, 1, 1e-12, info.name .. " marginal sums to 1 at t=" .. t)
  end
  local x0 = { 0, 1, 2, 3, 4, 2 }
  local xt = n:corrupt{ x0 = x0, t = 0.6, seed = 3 }
  local lg = logits_of(6, Vp, 0.5)
  for _, annealed in ipairs{ true, false } do
    local args = { x0 = x0, xt = xt, t = 0.6, logits = lg, annealed = annealed }
    local total, per, dl = n:loss(args)
    local sum = 0
    for _, v in ipairs(per) do sum = sum + v end
    near(sum, total, 1e-5 * math.abs(total) + 1e-6, info.name .. " total = sum of per-token")
    local worst = 0
    for i = 1, 6 do
      for k = 1, Vp do
        local x = lg[i][k]
        local xp, xm = f32(x + 1e-3), f32(x - 1e-3)
        lg[i][k] = xp
        local fp = n:loss(args)
        lg[i][k] = xm
        local fm = n:loss(args)
        lg[i][k] = x
        local fd = (fp - fm) / (xp - xm)
        worst = math.max(worst, math.abs(fd - dl[i][k]) / (1e-2 + math.abs(fd)))
      end
    end
    check(worst < 1e-4, ("%s dlogits vs finite differences (annealed=%s): worst %g"):format(info.name, tostring(annealed), worst))
  end
end

-- ---- errors ----
check_error(function() hdlm.noise{ "absorbing" } end, "option 'vocab' (number of real tokens)", "missing vocab")
check_error(function() hdlm.noise{ "epsilon_hybrid", vocab = 5, epsilom = 0.1 } end,
            "did you mean 'epsilon'", "unknown option with suggestion")
check_error(function() hdlm.noise{ "absorbin", vocab = 5 } end, "did you mean 'absorbing'", "unknown plugin")
check_error(function() hdlm.noise{ vocab = 5 } end, "the first entry must be the noise plugin's name", "no name")
check_error(function() hdlm.noise{ "absorbing", vocab = 5, { 1 } } end, "unexpected entry [2]", "extra positional")
check_error(function() hdlm.noise{ "epsilon_hybrid", vocab = 5, epsilon = 2 } end,
            "option 'epsilon' must be in [0, 1], got 2", "plugin's own check")
local lg3 = logits_of(3, 6, 0)
check_error(function() ab:loss{ x0 = { 0, 1, 2 }, xt = { 0, 5 }, t = 0.5, logits = lg3 } end,
            "noise:loss: key 'xt' must have 3 entries (the length of x0), got 2", "xt size")
check_error(function() ab:loss{ x0 = { 0, 1, 2 }, xt = { 0, 5, 5 }, t = { 0.5, 0.5 }, logits = lg3 } end,
            "noise:loss: key 't' must have 3 entries (one per position), got 2", "t size")
check_error(function() ab:loss{ x0 = { 0, 1, 2 }, xt = { 0, 5, 5 }, t = 0.5, logits = { lg3[1], lg3[2] } } end,
            "noise:loss: key 'logits' must have 3 rows (one per position), got 2", "logits rows")
check_error(function() ab:loss{ x0 = { 0, 1, 2 }, xt = { 0, 5, 5 }, t = 0.5, logits = { lg3[1], lg3[2], { 1, 2 } } } end,
            "noise:loss: logits[3] must be an array of 6 numbers (V + n_extra), got 2 entries", "logits row size")
check_error(function() ab:loss{ x0 = { 0, 1, 7 }, xt = { 0, 5, 5 }, t = 0.5, logits = lg3 } end,
            "noise:loss: x0[3] must be an integer token id in 0..4, got 7", "x0 range")
check_error(function() ab:loss{ x0 = { 0, 1, 2 }, xt = { 0, 5, 5 }, t = 0.5, logits = lg3, state = {} } end,
            "unknown key 'state' (did you mean 'states'?)", "unknown key")
check_error(function() ab:loss{ x0 = { 0, 1, 2 }, xt = { 0, 5, 5 }, t = 0.5, logits = lg3, states = { "active", "x", "active" } } end,
            "noise:loss: states[2] must be settled, active or worthless, got x", "bad state")
check_error(function() ab:loss{ xt = { 0, 5, 5 }, t = 0.5, logits = lg3 } end,
            "noise:loss: key 'x0' is required", "missing x0")
check_error(function() ab:reverse{ logits = lg3, xt = { 5, 5, 5 }, t = 0.5, s = 0.7 } end,
            "noise:reverse: absorbing: reverse: position 0 has t = 0.5, s = 0.7", "plugin error through Lua")
check_error(function() ab:marginal(6, 0.5) end, "noise:marginal: x0 must be a token id in 0..5, got 6", "marginal x0")
check_error(function() ab:limit{ L = 0 } end, "key 'L' must be an integer in 1..16777216, got 0", "limit L")

print(("test_noise.lua: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(("%d checks failed"):format(failed)) end
