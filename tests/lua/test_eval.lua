-- Likelihood evaluation through the real binary: for the autoregressive schedule the consistent
-- bound over every step equals the teacher-forced NLL computed position by position with
-- model:forward (vectorised single pass and per-step passes alike); Monte-Carlo draws average to
-- it; block schedules agree between layouts; the reference estimator and the generation metrics
-- are stored with their settings; bad options are refused with the key named.
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function close(a, b, tol) return math.abs(a - b) <= tol * math.max(1, math.abs(b)) end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 400 do f:write(("line %d: the quick brown fox jumps over the lazy dog again.\n"):format(i)) end
f:close()
local data = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
local db = hdlm.open(dir .. "/e.db")
local L = 24
local model = { d_model = 32, n_layer = 2, n_head = 2, seq_len = L }

local ar = db:train{ data = data, noise = { "absorbing" }, schedule = { "autoregressive" }, vectorised = true,
  context = "causal", model = model, steps = 40, batch = 8, lr = 3e-3, log_every = 20, seed = 1 }

-- teacher-forced NLL, directly: position k masked, [1, k) settled, (k, L] worthless, causal
-- context; CE over the 256 real tokens (the sampler never draws the mask class)
local function direct_nll(tokens)
  local total = 0
  for k = 1, #tokens do
    local x, st = {}, {}
    for i = 1, #tokens do
      x[i] = i < k and tokens[i] or 256
      st[i] = i < k and "settled" or i == k and "active" or "worthless"
    end
    local lg = ar.model:forward(x, { states = st, context = "causal" })[k]
    local mx = -math.huge
    for v = 1, 256 do if lg[v] > mx then mx = lg[v] end end
    local z = 0
    for v = 1, 256 do z = z + math.exp(lg[v] - mx) end
    total = total + (mx + math.log(z) - lg[tokens[k] + 1])
  end
  return total
end

local seqs = data:batch(3, L, 5, "valid")
local exact = ar:eval{ tokens = seqs, mc = 0, seed = 1 }
check(exact.exact and exact.vectorised, "AR exact eval uses the vectorised layout")
check(exact.forwards == 1, "3 sequences in one 2L pass: " .. tostring(exact.forwards))
local per_step = ar:eval{ tokens = seqs, mc = 0, vectorised = false, store = false }
check(not per_step.vectorised and per_step.forwards == 3 * L / 8,
      "per-step layout: L passes per sequence, 8 rows per pass: " .. per_step.forwards)
for b = 1, 3 do
  local d = direct_nll(seqs[b])
  check(close(exact.per_sequence[b], d, 2e-5), ("vectorised = teacher-forced NLL, seq %d: %.7f vs %.7f"):format(b, exact.per_sequence[b], d))
  check(close(per_step.per_sequence[b], d, 2e-5), ("per-step = teacher-forced NLL, seq %d: %.7f vs %.7f"):format(b, per_step.per_sequence[b], d))
end
check(close(exact.nats, (exact.per_sequence[1] + exact.per_sequence[2] + exact.per_sequence[3]) / (3 * L), 1e-12), "nats = total / tokens")
check(close(exact.bits, exact.nats / math.log(2), 1e-12) and exact.unit == "byte", "bits per byte")

-- Monte-Carlo over steps: unbiased, so the mean of many 4-draw estimates approaches the exact value
local mcsum, reps = 0, 24
for r = 1, reps do mcsum = mcsum + ar:eval{ tokens = seqs, mc = 4, seed = r, store = false }.nats end
check(close(mcsum / reps, exact.nats, 0.03), ("MC mean %.4f ~ exact %.4f"):format(mcsum / reps, exact.nats))

-- a block schedule: the 2L layout and per-step passes compute the same bound (exact mode draws
-- nothing over steps; only the noise differs, so compare with many sequences... use one model
-- and the same single-step evaluation through both layouts: mc = 0 sums every step)
local blk = db:train{ data = data, noise = { "absorbing" }, schedule = { "block_annealing", width = 8, tau = 2 },
  vectorised = true, model = model, steps = 30, batch = 8, lr = 3e-3, log_every = 10, seed = 2 }
local many = data:batch(40, L, 9, "valid")
local bv = blk:eval{ tokens = many, mc = 0, seed = 3, store = false }
local bs = blk:eval{ tokens = many, mc = 0, seed = 3, vectorised = false, store = false }
check(bv.vectorised and not bs.vectorised, "block schedule: both layouts ran")
check(math.abs(bv.nats - bs.nats) < 3 * math.sqrt(bv.se ^ 2 + bs.se ^ 2) + 1e-9,
      ("block layouts agree within noise: %.4f vs %.4f (se %.4f)"):format(bv.nats, bs.nats, bv.se))
-- the bound of a block schedule is an upper bound on the AR model's... no order between different
-- models; but a block bound must exceed the entropy of nothing: it is positive and finite
check(bv.nats > 0 and bv.nats < 20, "block bound finite and positive: " .. bv.nats)

-- the corpus split (default) and the stored row
local r = ar:eval{ mc = 0, sequences = 4 }
check(r.sequences == 4 and r.tokens == 4 * L and r.split == "valid", "valid split, 4 sequences")
local row = db:query("SELECT metric, value, std_error, settings FROM evaluations WHERE run_id = ? ORDER BY id DESC LIMIT 1", ar.id)[1]
check(row and row.metric == "nll_bound" and close(row.value, r.nats, 1e-12), "stored nll_bound")
local s = hdlm.json_decode(row.settings)
check(s.estimator == "consistent" and s.exact == true and s.schedule.name == "autoregressive" and s.weights == "ema"
      and s.noise.name == "absorbing" and s.sequences == 4, "settings stored with the value")

-- the reference estimator (spec §4.4): full attention, L-1 denominator
local ref = ar:eval{ estimator = "reference", sequences = 4, B_mc = 4, rounds = 2 }
check(ref.denominator == "L-1" and ref.tokens == 4 * (L - 1) and ref.nats > 0, "reference estimator runs")
check(close(ref.nats_per_token_L, ref.nats * (L - 1) / L, 1e-12), "both denominators reported")

-- generation metrics under a judge (the AR run judges the block run's samples)
local smp = blk:sample{ n = 4, seed = 1, events = false }
local g = blk:gen_eval{ judge = ar, samples = smp }
check(g.n == 4 and g.gen_nll > 0 and close(g.gen_ppl, math.exp(g.gen_nll), 1e-12), "gen_nll and its perplexity")
local pm = 0
for i = 1, 4 do pm = pm + math.exp(g.per_sample_nll[i]) / 4 end
check(close(g.gen_ppl_mean, pm, 1e-12) and g.gen_ppl_mean >= g.gen_ppl - 1e-9, "mean of per-sample perplexities (>= exp of the mean)")
-- the judge's NLL of a sample equals the exact eval of its tokens
local toks = {}
for i = 1, 4 do toks[i] = smp[i].tokens end
local je = ar:eval{ tokens = toks, mc = 0, store = false }
check(close(g.gen_nll, je.nats, 1e-9), "gen_nll = judge's exact NLL of the samples")
check(g.settings.judge_exact == true, "an autoregressive judge is exact")
-- a judge whose schedule is not autoregressive gives a bound: judge_exact false (and a warning)
local gb = blk:gen_eval{ judge = blk, samples = smp, store = false }
check(gb.settings.judge_exact == false and gb.gen_nll > 0, "a block-annealing judge is not exact")
check(g.entropy > 0 and g.entropy <= math.log(L), "unigram entropy in (0, log L]")
check(g.distinct_1 > 0 and g.distinct_1 <= 1 and g.distinct_4 >= g.distinct_1, "distinct-n in (0, 1]")
check(g.rep_2 >= 0 and g.rep_2 < 1, "repeated 2-gram rate in [0, 1)")
local cnt = db:query("SELECT count(*) AS n FROM evaluations WHERE run_id = ? AND metric IN ('gen_nll','entropy','distinct_4','rep_4')", blk.id)[1].n
check(cnt == 4, "generation metrics stored: " .. cnt)
local sm = db:query("SELECT metrics FROM samples WHERE id = ?", smp[1].id)[1].metrics
check(sm and close(hdlm.json_decode(sm).gen_nll, g.per_sample_nll[1], 1e-12), "per-sample metrics stored")

-- unigram entropy and distinct-n of a hand-made sample: "abab..." has entropy log 2
local hand = db:query("INSERT INTO samples (run_id, tokens, n_tokens) VALUES (?, ?, ?) RETURNING id", blk.id,
  hdlm.json_encode((function() local t = {} for i = 1, L do t[i] = i % 2 == 0 and 97 or 98 end return t end)()), L)[1].id
local gh = blk:gen_eval{ judge = ar, samples = { hand }, store = false }
check(close(gh.entropy, math.log(2), 1e-12), "entropy of abab.. = log 2: " .. gh.entropy)
check(close(gh.distinct_1, 2 / L, 1e-12) and close(gh.distinct_2, 2 / (L - 1), 1e-12), "distinct-1/2 of abab..")
check(close(gh.rep_2, 1 - 2 / (L - 1), 1e-12), "rep_2 of abab..")

-- word share of hand-made samples against the corpus' words ("line", numbers, "the quick brown fox
-- jumps over the lazy dog again"): the pieces touching a sample's edges are not words, leading and
-- trailing punctuation is stripped, case is ignored, punctuation-only pieces are no words
check(g.settings.word_vocabulary > 10 and g.words >= 0 and (g.words == 0 or g.word_share >= 0 and g.word_share <= 1),
      "word share with a judge")
local function hand_sample(text)
  assert(#text == L, text)
  local t = {}
  for i = 1, #text do t[i] = text:byte(i) end
  return db:query("INSERT INTO samples (run_id, tokens, n_tokens) VALUES (?, ?, ?) RETURNING id", blk.id,
    hdlm.json_encode(t), L)[1].id
end
local wa = hand_sample("x The FOX zzz (dog) qq y")   -- the fox zzz dog qq: 3 of 5
local wb = hand_sample("ab -- the ... LAZY !! cd")   -- the lazy: 2 of 2
local wc = hand_sample("abcdefghijklmnopqrstuvwx")   -- one piece touching both edges: no word
local gw = blk:gen_eval{ samples = { wa, wb, wc } }  -- no judge: the judge-free metrics only
check(gw.gen_nll == nil and gw.entropy > 0, "no judge: no gen_nll, entropy still computed")
check(gw.words == 7 and gw.known_words == 5 and close(gw.word_share, 5 / 7, 1e-12),
      ("word share 5/7: %s of %s words"):format(tostring(gw.known_words), tostring(gw.words)))
check(close(gw.per_sample_word_share[1], 0.6, 1e-12) and gw.per_sample_word_share[2] == 1
      and gw.per_sample_word_share[3] == false, "per-sample word shares 0.6, 1, none")
-- SE of the pooled ratio over samples: sqrt(sum (k_i - R w_i)^2 / (n (n - 1))) / mean(w)
local R = 5 / 7
local se = math.sqrt(((3 - 5 * R) ^ 2 + (2 - 2 * R) ^ 2) / 6) / (7 / 3)
check(close(gw.word_share_se, se, 1e-12), ("word share SE %.6f vs %.6f"):format(gw.word_share_se, se))
local wrow = db:query("SELECT value, std_error, settings FROM evaluations WHERE run_id = ? AND metric = 'word_share' ORDER BY id DESC LIMIT 1", blk.id)[1]
check(wrow and close(wrow.value, 5 / 7, 1e-12) and close(wrow.std_error, se, 1e-12), "word_share stored as an evaluation")
check(hdlm.json_decode(wrow.settings).words == 7 and hdlm.json_decode(wrow.settings).judge_run == nil, "settings: words, no judge")
local gnl = db:query("SELECT count(*) AS n FROM evaluations WHERE run_id = ? AND metric = 'gen_nll' AND json_extract(settings, '$.first_sample') = ?", blk.id, wa)[1].n
check(gnl == 0, "no gen_nll row without a judge")
local swa = hdlm.json_decode(db:query("SELECT metrics FROM samples WHERE id = ?", wa)[1].metrics)
local swc = hdlm.json_decode(db:query("SELECT metrics FROM samples WHERE id = ?", wc)[1].metrics)
check(close(swa.word_share, 0.6, 1e-12) and swa.words == 5 and swa.known_words == 3, "sample metrics: word_share 0.6 of 5 words")
check(swc.word_share == nil and swc.words == 0, "sample metrics: no word, no share")
-- with a judge and two samples: items are the per-sample shares
local gj = blk:gen_eval{ judge = ar, samples = { wa, wb } }
check(close(gj.word_share, 5 / 7, 1e-12) and gj.gen_nll > 0, "word share next to the judge's metrics")
local items = db:query([[SELECT i.value FROM evaluation_items i JOIN evaluations e ON e.id = i.evaluation_id
  WHERE e.run_id = ? AND e.metric = 'word_share' ORDER BY e.id DESC, i.item LIMIT 2]], blk.id)
check(#items == 2 and close(items[1].value, 0.6, 1e-12) and items[2].value == 1, "word_share items per sample")
local sm2 = hdlm.json_decode(db:query("SELECT metrics FROM samples WHERE id = ?", wa)[1].metrics)
check(sm2.gen_nll and sm2.judge_run == ar.id and close(sm2.word_share, 0.6, 1e-12), "sample metrics merged")
-- another corpus (data =): the samples' words against its training split
local f2 = assert(io.open(dir .. "/d.txt", "w"))
for i = 1, 300 do f2:write("zzz qq fox\n") end
f2:close()
local d2 = hdlm.corpus{ path = dir .. "/d.txt", tokenizer = "bytes", valid = 0.1 }
local gd = blk:gen_eval{ samples = { wa, wb }, data = d2, store = false }
check(gd.word_vocabulary == 3 and gd.known_words == 3 and gd.words == 7, "data = another corpus: 3 of 7 (fox zzz qq)")

-- refusals
local ok, err = pcall(ar.eval, ar, { mc = -1 })
check(not ok and err:find("mc"), "mc < 0 refused: " .. tostring(err))
ok, err = pcall(ar.eval, ar, { sequences = 100000 })
check(not ok and err:find("sequences"), "too many sequences refused: " .. tostring(err))
ok, err = pcall(ar.eval, ar, { estimator = "magic" })
check(not ok and err:find("estimator"), "unknown estimator refused")
ok, err = pcall(ar.eval, ar, { mcc = 3 })
check(not ok and err:find("did you mean 'mc'"), "typo gets a suggestion: " .. tostring(err))
ok, err = pcall(blk.gen_eval, blk, { judge = ar, samples = { 999999 } })
check(not ok and err:find("999999"), "missing sample named: " .. tostring(err))

os.execute("rm -rf " .. dir)
print(("test_eval: %d passed, %d failed"):format(passed, failed))
if failed > 0 then os.exit(1) end
