-- precision = "bf16" through the bindings: db:train records it in the run's config; a trained
-- model switched to bf16 weights (model:set_precision) gives the float32 logits to bf16 accuracy
-- and the same greedy tokens; without oneDNN or AVX512_BF16 both are refused with a message naming
-- the missing piece; unknown values are refused.
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

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local db = hdlm.open(dir .. "/t.db")
local f = assert(io.open(dir .. "/c.txt", "w"))
for i = 1, 400 do f:write(("line %d: the quick brown fox jumps over the lazy dog.\n"):format(i)) end
f:close()
local c = hdlm.corpus{ path = dir .. "/c.txt", tokenizer = "bytes", valid = 0.1 }
local function train(prec, name)
  return db:train{ name = name, data = c, objective = "ar", precision = prec,
    model = { d_model = 32, n_layer = 2, n_head = 2, seq_len = 32 }, steps = 30, batch = 4, lr = 3e-3,
    log_every = 10, seed = 1, checkpoint_dir = false }
end

check_error(function() train("fp8", "bad") end, "key 'precision' must be 'f32' or 'bf16', got 'fp8'",
  "unknown precision")

local f32 = train("f32", "f32")
local cfg = db:query("SELECT config FROM runs WHERE id = ?", f32.id)[1].config
check(cfg:find('"precision":"f32"', 1, true), "f32 recorded: " .. cfg)
check(f32.model.precision == "f32", "model.precision f32")

local ok, err = pcall(train, "bf16", "bf16")
if not ok then
  -- refused: the message names what is missing
  check(tostring(err):find("oneDNN", 1, true) or tostring(err):find("AVX512_BF16", 1, true),
    "bf16 refused with the missing piece named: " .. tostring(err))
  check_error(function() f32.model:set_precision("bf16") end, "model:set_precision(\"bf16\") needs",
    "set_precision refused too")
  print("bf16 not available here: " .. tostring(err))
else
  local run = err
  cfg = db:query("SELECT config FROM runs WHERE id = ?", run.id)[1].config
  check(cfg:find('"precision":"bf16"', 1, true), "bf16 recorded: " .. cfg)
  check(run.model.precision == "bf16", "the trained model stays bf16")
  -- the f32 model's logits with bf16 weights: close, not identical
  local m = f32.model
  local x = c:encode("line 12: the quick brown fox")
  local a = m:forward(x, { context = "causal" })
  check(m:set_precision("bf16") == m and m.precision == "bf16", "set_precision returns the model")
  local b = m:forward(x, { context = "causal" })
  local d, scale = 0, 0
  for i = 1, #a do
    for v = 1, #a[i] do
      d = math.max(d, math.abs(a[i][v] - b[i][v])); scale = math.max(scale, math.abs(a[i][v]))
    end
  end
  check(d > 0 and d < 0.05 * scale, ("bf16 logits within 5%% of the scale (max diff %.3g of %.3g)"):format(d, scale))
  local g16 = m:generate{ prompt = c:encode("line 3"), n = 24, temperature = 0 }
  m:set_precision("f32")
  local g32 = m:generate{ prompt = c:encode("line 3"), n = 24, temperature = 0 }
  local same = 0
  for i = 1, #g32 do same = same + (g32[i] == g16[i] and 1 or 0) end
  check(#g16 == #g32 and same >= 0.95 * #g32, ("greedy tokens equal on %d of %d"):format(same, #g32))
  check_error(function() m:set_precision("fp16") end, "expected 'f32' or 'bf16', got 'fp16'", "bad set_precision")
end

db:close()
os.execute("rm -rf " .. dir)
print(("test_precision: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
