-- hdlm.synth through the real binary: the returned numbers, the file it writes (letters only,
-- reproducible per seed), the byte-tokenizer corpus made from it, and refused options.
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
local function slurp(path)
  local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s
end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))

local n = 400000
local s = hdlm.synth{ out = dir .. "/a.txt", vocab = 8, order = 2, alpha = 0.5, n = n, seed = 7 }
check(s.path == dir .. "/a.txt" and s.n == n, "path and n returned")
check(math.abs(s.entropy_bits - s.entropy_nats / math.log(2)) < 1e-12, "bits = nats / log 2")
check(s.entropy_nats > 0 and s.entropy_nats <= s.unigram_nats and s.unigram_nats <= math.log(8) + 1e-12,
      ("0 < H <= H(unigram) <= log 8: %g %g"):format(s.entropy_nats, s.unigram_nats))
check(math.abs(s.empirical_nats - s.entropy_nats) < 0.015,
      ("empirical %.5f within 0.015 of the entropy rate %.5f"):format(s.empirical_nats, s.entropy_nats))
check(s.context_nats >= s.unigram_nats + s.entropy_nats - 1e-12 and s.context_nats <= 2 * s.unigram_nats + 1e-12,
      "joint entropy of the 2-symbol context between H1 + H and 2 H1")

local text = slurp(s.path)
check(#text == n, "one byte per symbol, no trailing newline: " .. #text)
check(not text:find("[^a-h]"), "only the letters a..h")

-- same seed: same bytes and numbers; another seed: another source
local s2 = hdlm.synth{ out = dir .. "/b.txt", vocab = 8, order = 2, alpha = 0.5, n = n, seed = 7 }
check(slurp(s2.path) == text and s2.entropy_nats == s.entropy_nats, "same seed, same file")
local s3 = hdlm.synth{ out = dir .. "/c.txt", vocab = 8, order = 2, alpha = 0.5, n = n, seed = 8 }
check(slurp(s3.path) ~= text and s3.entropy_nats ~= s.entropy_nats, "another seed, another source")

-- defaults (vocab 8, order 2, alpha 0.5, seed 1) and the uniform limit
local d = hdlm.synth{ out = dir .. "/d.txt", n = 1000 }
check(d.n == 1000 and #slurp(d.path) == 1000, "defaults accepted")
local u = hdlm.synth{ out = dir .. "/u.txt", vocab = 26, order = 1, alpha = 1e8, n = 1000 }
check(math.abs(u.entropy_nats - math.log(26)) < 1e-6, "alpha huge: H = log 26, got " .. u.entropy_nats)

-- the byte tokenizer turns it into a 256-token corpus with every symbol a token
local c = hdlm.corpus{ path = s.path, tokenizer = "bytes", valid = 0.1 }
check(c.vocab == 256 and c.n_train + c.n_valid == n, "bytes corpus of n tokens")
local ids = c:encode("abh")
check(ids[1] == 97 and ids[2] == 98 and ids[3] == 104, "letters are their byte values")

-- refusals: unknown keys, ranges naming the key, types, a missing out
check_error(function() hdlm.synth{ out = dir .. "/x.txt", vocabb = 8 } end, "unknown key 'vocabb' (did you mean 'vocab'?)", "unknown key")
check_error(function() hdlm.synth{ out = dir .. "/x.txt", vocab = 40 } end, "hdlm.synth: key 'vocab' must be in 2..26, got 40", "vocab range")
check_error(function() hdlm.synth{ out = dir .. "/x.txt", order = 0 } end, "key 'order' must be in 1..4, got 0", "order range")
check_error(function() hdlm.synth{ out = dir .. "/x.txt", alpha = -1 } end, "key 'alpha' must be in (0, 1e+09], got -1", "alpha range")
check_error(function() hdlm.synth{ out = dir .. "/x.txt", order = 3, n = 3 } end, "key 'n' must be in 4..", "n range")
check_error(function() hdlm.synth{ out = dir .. "/x.txt", alpha = "big" } end, "key 'alpha' must be a number, got string", "alpha type")
check_error(function() hdlm.synth{ vocab = 8 } end, "key 'out' is required", "out required")
check_error(function() hdlm.synth{ out = dir .. "/no/such/dir/x.txt", n = 10 } end, "cannot create", "unwritable path")
local f = io.open(dir .. "/x.txt", "rb")
check(f == nil, "nothing written on a refusal")
if f then f:close() end

os.execute("rm -rf " .. dir)
print(("test_synth: %d passed, %d failed"):format(passed, failed))
if failed > 0 then os.exit(1) end
