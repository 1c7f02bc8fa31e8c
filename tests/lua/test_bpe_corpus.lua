-- BPE tokenizers end to end through the real binary: train a BPE on a small text
-- (hdlm.train_tokenizer), prepare a corpus with it (documents separated by <|endoftext|>), train a
-- model, sample (decoded text, the prompt kept), reload the run from its checkpoint and sample
-- again, `hdlm samples` decodes, eval reports bits per token and per byte consistently, and a
-- token file made with one tokenizer is refused for another with both named. With GPT-2's files
-- present, the same for tokenizer = "gpt2".
local hdlm = require "hdlm"
local hdlm_run = require "hdlm_run"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end
local function close(a, b, tol) return math.abs(a - b) <= tol * math.max(1, math.abs(b)) end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local words = { "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "a", "cat",
  "sat", "on", "mat", "with", "hat", "red", "blue", "river", "café" }
local f = assert(io.open(dir .. "/c.txt", "w"))
local r = 7
local n_docs = 0
for d = 1, 60 do
  n_docs = n_docs + 1
  for l = 1, 4 do
    local line = {}
    for w = 1, 10 do r = (r * 1103515245 + 12345) % 2147483648; line[w] = words[r % #words + 1] end
    f:write(table.concat(line, " "), ".\n")
  end
  f:write("\n") -- a blank line: a document break
end
f:close()

-- training the tokenizer
local st = hdlm.train_tokenizer{ path = dir .. "/c.txt", vocab = 300, out = dir .. "/bpe" }
check(st.vocab == 300 and st.merges == 43, "300 = 256 bytes + 43 merges + <|endoftext|>: " .. st.vocab)
check(st.words > 20 and st.pieces > st.words, "pieces counted")
local tok = hdlm.tokenizer("bpe:" .. dir .. "/bpe")
check(tok.vocab == 300 and tok.eot == 299 and #tok.sha256 == 64, "the trained tokenizer loads")
local s = "the café\255 sat\n\n on it"
check(tok:decode(tok:encode(s)) == s, "round trip, invalid UTF-8 included")
check(#tok:encode("the quick brown fox") < 19, "merges shorten common words")
local withdocs = tok:encode("a cat\n\nthe dog", "blank")
local eots = 0
for _, id in ipairs(withdocs) do if id == tok.eot then eots = eots + 1 end end
check(eots == 1, "encode with blank-line documents: one <|endoftext|>")
check(tok:bytes(withdocs) == #"a cat\n" + 1 + #"the dog", "bytes: <|endoftext|> counts one (the blank line)")

-- the corpus
local spec = "bpe:" .. dir .. "/bpe"
local data = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = spec, valid = 0.1 }
check(data.vocab == 300 and data.eot == 299, "corpus vocab and eot")
check(data.tokenizer:sub(1, 5) == "bpe:/" and data.tokenizer_sha256 == tok.sha256, "corpus names its tokenizer: " .. data.tokenizer)
check(data.path:find("%.bpe%-" .. tok.sha256:sub(1, 12) .. "%.v0%.1%.s0%.tok$") ~= nil, "token file named by the vocabulary hash: " .. data.path)
local all = {}
for _, split in ipairs({ "train", "valid" }) do
  local n = split == "train" and data.n_train or data.n_valid
  for _, row in ipairs(data:batch(1, n, 1, split)) do for _, id in ipairs(row) do all[#all + 1] = id end end
end
local ne = 0
for _, id in ipairs(all) do if id == 299 then ne = ne + 1 end end
check(ne == n_docs - 1, ("documents separated by <|endoftext|>: %d between %d documents"):format(ne, n_docs))
local p = hdlm.prepare(dir .. "/c.txt", dir .. "/nodocs.tok", { tokenizer = spec, docs = "none" })
local whole = assert(io.open(dir .. "/c.txt", "rb")):read("a")
check(p.docs == 1 and p.train + p.valid == #tok:encode(whole), "docs = none: the text as one document")
-- the same token file asked for with another tokenizer
local ok, err = pcall(hdlm.corpus, { path = data.path, tokenizer = "bytes" })
check(not ok and tostring(err):find("made with tokenizer bpe:/", 1, true) and tostring(err):find("expected bytes", 1, true),
      "mismatching tokenizer refused, both named: " .. tostring(err))
ok, err = pcall(hdlm.corpus, { path = dir .. "/c.txt", tokenizer = "bytes", docs = "blank" })
check(not ok and tostring(err):find("no end-of-text token", 1, true), "docs = blank needs an end-of-text token: " .. tostring(err))
ok, err = pcall(hdlm.corpus, { path = dir .. "/c.txt", tokenizer = spec, docs = "lines" })
check(not ok and tostring(err):find("key 'docs' must be 'blank' or 'none'", 1, true), "bad docs value: " .. tostring(err))

-- train, sample, reload, eval
local db = hdlm.open(dir .. "/runs.db")
local L = 16
local run = db:train{ data = data, noise = { "absorbing" }, schedule = { "autoregressive" }, vectorised = true,
  context = "causal", model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = L }, steps = 60, batch = 8,
  lr = 3e-3, log_every = 30, seed = 1, checkpoint_dir = dir .. "/ck", ckpt_every = 60 }
local smp = run:sample{ n = 2, length = L, prompt = "the quick", seed = 3 }
check(type(smp[1].text) == "string" and smp[1].text:sub(1, 9) == "the quick", "sample decoded, prompt kept: " .. smp[1].text)
local settings = db:query("SELECT settings FROM samples WHERE id = ?", smp[1].id)[1].settings
check(settings:find('"tokenizer":"bpe:/', 1, true) ~= nil, "sample settings name the tokenizer")
local re = hdlm_run.load(db, run.id)
local smp2 = re:sample{ n = 2, length = L, prompt = "the quick", seed = 3 }
check(smp2[1].text == smp[1].text, "a reloaded run decodes with the checkpoint's tokenizer")
local bin = os.getenv("HDLM_BIN")
if bin then
  local h = io.popen(("%s samples --run %d --db %s/runs.db"):format(bin, run.id, dir))
  local out = h:read("a"); h:close()
  check(out:find(smp[1].text:sub(1, 12), 1, true) ~= nil, "hdlm samples decodes BPE tokens")
  -- the report's sample browser shows each BPE token's text
  check(os.execute(("%s report %s/runs.db -o %s/report.html > /dev/null"):format(bin, dir, dir)), "hdlm report")
  local html = assert(io.open(dir .. "/report.html")):read("a")
  check(html:find('<span class="t">the</span>', 1, true) ~= nil, "report: BPE tokens decoded per span")
end
local ev = run:eval{ sequences = 4, mc = 0 }
check(ev.unit == "byte" and ev.tokenizer == data.tokenizer, "eval names tokenizer and unit")
check(ev.bytes_per_token > 1.5, "a BPE token stands for several bytes: " .. ev.bytes_per_token)
check(close(ev.bits_per_byte, ev.bits_per_token / ev.bytes_per_token, 1e-12), "bits per byte = bits per token / bytes per token")
check(close(ev.bits, ev.bits_per_byte, 1e-12) and close(ev.bits_per_unit, ev.bits_per_byte, 1e-12), "bits and bits_per_unit are per byte")
-- the byte count is that of the evaluated tokens' decoding
local seqs = data:batch(4, L, 0, "valid")
local e2 = run:eval{ tokens = seqs, mc = 0, store = false }
local nb = 0
for _, sq in ipairs(seqs) do nb = nb + tok:bytes(sq) end
check(close(e2.bytes_per_token, nb / (4 * L), 1e-12), ("bytes per token from the decoded length: %.4f vs %.4f"):format(e2.bytes_per_token, nb / (4 * L)))

-- GPT-2 itself, when its files were fetched
local have, g = pcall(hdlm.tokenizer, "gpt2")
if have then
  local gd = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "gpt2", valid = 0.1 }
  check(gd.vocab == 50257 and gd.eot == 50256 and gd.tokenizer == "gpt2", "gpt2 corpus")
  check(#gd:encode("Hello world") == 2 and gd:encode("Hello world")[1] == 15496, "gpt2 ids")
  local gr = db:train{ data = gd, noise = { "absorbing" }, schedule = { "autoregressive" }, vectorised = true,
    context = "causal", model = { d_model = 16, n_layer = 1, n_head = 2, seq_len = 8 }, steps = 3, batch = 2,
    lr = 1e-3, log_every = 3, seed = 1 }
  local gs = gr:sample{ n = 1, length = 8, prompt = "The", seed = 1 }
  check(gs[1].text:sub(1, 3) == "The", "gpt2 sample decoded: " .. gs[1].text)
  local ge = gr:eval{ sequences = 2, mc = 0, store = false }
  check(ge.bits_per_byte > 0 and ge.bytes_per_token > 2, ("gpt2 eval per byte: %.3f bits, %.2f bytes/token"):format(ge.bits_per_byte, ge.bytes_per_token))
  check(g:decode(g:encode("naïve\0\255 text")) == "naïve\0\255 text", "gpt2 round trip")
else
  print("test_bpe_corpus: gpt2 part skipped: " .. tostring(g))
end

os.execute("rm -rf " .. dir)
print(("%d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
