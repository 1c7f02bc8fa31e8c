-- hdlm.args through the real binary: a proxy that behaves as a table of the key=value arguments
-- (numbers and booleans converted, indexing, assignment, pairs, #) and records the keys
-- the script read, so that `hdlm run` warns about arguments it never read; `hdlm run -` reads the
-- script from stdin. Sub-runs use hdlm.binary (this test runs without arguments itself).
local hdlm = require "hdlm"

local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL: " .. what .. "\n") end
end

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "w"))
  f:write(text)
  f:close()
  return dir .. "/" .. name
end
-- runs `hdlm run` with the arguments; returns stdout, stderr and whether it exited 0
local function run(args, stdin)
  local out, err = dir .. "/out", dir .. "/err"
  local cmd = ("%s'%s' run %s > %s 2> %s"):format(stdin and ("cat '" .. stdin .. "' | ") or "",
    hdlm.binary, args, out, err)
  local ok = os.execute(cmd)
  local function slurp(p) local f = io.open(p); local s = f:read("a"); f:close(); return s end
  return slurp(out), slurp(err), ok == true
end

-- in this process: no arguments; the proxy still works as a table
local a = hdlm.args
check(type(a) == "table" and a.nothing == nil and #a == 0 and a[nil] == nil and a[0 / 0] == nil,
  "empty hdlm.args")
a.steps = 5
check(a.steps == 5, "assignment then read")
local n = 0
for k, v in pairs(a) do n = n + 1; check(k == "steps" and v == 5, "pairs sees the assigned key") end
check(n == 1, "pairs: one key, got " .. n)

-- values: numbers, booleans, strings; keys are strings
local script = write("values.lua", [[
local a = require("hdlm").args
assert(a.n == 3 and math.type(a.n) == "integer", "n")
assert(a.lr == 0.5, "lr")
assert(a.f == false and a.t == true, "booleans")
assert(a.name == "x y", "string")
assert(a["1"] == "first" and a[1] == nil, "keys stay strings")
print("ok")
]])
local out, err, ok = run(("%s n=3 lr=0.5 f=false t=true 'name=x y' 1=first"):format(script))
check(ok and out == "ok\n" and err == "", "values: " .. out .. err)

-- never-read arguments are warned about once each, with the nearest key the script looked up
script = write("typo.lua", [[
local a = require("hdlm").args
local steps, width = a.steps or 1, a.width or 2
print(steps * width)
]])
out, err, ok = run(("%s stpes=10 widht=3 width=4 seed=9 seed=9"):format(script))
check(ok and out == "4\n", "typo.lua ran: " .. out)
check(err:find("hdlm: warning: argument 'stpes' was never read by " .. script .. " (did you mean 'steps'?)", 1, true),
  "stpes warned with a suggestion: " .. err)
check(err:find("argument 'widht' was never read by " .. script .. " (did you mean 'steps'?)", 1, true) == nil
  and err:find("argument 'widht' was never read", 1, true), "widht warned (width was given, so not suggested): " .. err)
check(select(2, err:gsub("argument 'seed' was never read by " .. script .. "\n", "")) == 1, "seed warned once, no suggestion: " .. err)
check(not err:find("'width' was never", 1, true), "width was read: " .. err)
-- reading with pairs counts as reading everything; so does the script reading a key then failing
-- (no warnings at all after a failure)
script = write("fails.lua", "error('stop here')\n")
out, err, ok = run(script .. " stpes=1")
check(not ok and err:find("stop here", 1, true) and not err:find("never read", 1, true), "no warnings after a failure: " .. err)

-- the script from stdin
local piped = write("piped.lua", "print(require('hdlm').args.k + 1)\n")
out, err, ok = run("- k=41 other=1", piped)
check(ok and out == "42\n", "stdin script: " .. out .. err)
check(err:find("argument 'other' was never read by stdin", 1, true), "stdin named in the warning: " .. err)

os.execute("rm -rf " .. dir)
print(("test_args: %d passed, %d failed"):format(passed, failed))
if failed > 0 then error(failed .. " checks failed") end
