-- Quickstart: prepare the default corpus, record a run in runs.db and show what the store holds.
--   build/hdlm run experiments/quickstart.lua [corpus=data/brown.txt]
local hdlm = require "hdlm"

local corpus_path = hdlm.args.corpus or "data/brown.txt"
local db = hdlm.open()

local t0 = hdlm.time()
local data = hdlm.corpus{ path = corpus_path, tokenizer = "bytes", valid = 0.05 }
print(("corpus: %s (%s tokenizer, vocabulary %d)"):format(data.path, data.tokenizer, data.vocab))
print(("        %d train / %d valid tokens, prepared in %.2f s"):format(
  data.n_train, data.n_valid, hdlm.time() - t0))

local run = db:run{
  name = "quickstart", kind = "prepare", seed = 0,
  config = { corpus = corpus_path, tokenizer = "bytes", valid = 0.05, token_file = data.path },
}
run:log(0, { train_tokens = data.n_train, valid_tokens = data.n_valid, vocab = data.vocab })

-- a peek at the data: the first window of a seeded batch, decoded
local batch = data:batch(1, 80, 1)
print("sample window: " .. data:decode(batch[1]):gsub("\n", " "))
run:finish()

local plugins = hdlm.plugins()
print(("plugins found: %d"):format(#plugins))
for _, row in ipairs(db:query(
    "SELECT id, name, status, git_rev, host FROM runs ORDER BY id DESC LIMIT 3")) do
  print(("run %d  %-12s %-8s git %s on %s"):format(row.id, row.name, row.status,
    (row.git_rev or "?"):sub(1, 10), row.host))
end
print("The model and trainer come next (see README, 'Status'): this quickstart prepares data and")
print("records runs; query them with: build/hdlm query \"SELECT * FROM runs\"")
