-- bench/profile_local.lua: where LocalExecutor:execute spends its time for
-- one tiny block, by wrapping the agentbox.core functions the executor and
-- task scheduler call (the modules look them up on the core table at call
-- time) plus io.open. Not part of `make bench`; run it after bench/run.sh's
-- setup with the same paths:
--   eval "$(make -s paths)"; LUA_CPATH="$PWD/bench/build/?.so;$LUA_CPATH" \
--     lua5.4 bench/profile_local.lua [sh|python] [N]
local bare = require("bare")
local core = require("agentbox.core")
local LocalExecutor = require("agentbox.executor.local")

local lang = arg[1] or "sh"
local n = math.tointeger(tonumber(arg[2] or "500"))
local code = lang == "sh" and "echo hi" or "print(1)"
local now = bare.now

local acc, calls = {}, {}
local function wrap(tbl, name, label)
  local f = tbl[name]
  label = label or name
  acc[label], calls[label] = 0, 0
  tbl[name] = function(...)
    local t0 = now()
    local r = table.pack(f(...))
    acc[label] = acc[label] + (now() - t0)
    calls[label] = calls[label] + 1
    return table.unpack(r, 1, r.n)
  end
end

local dir = (os.getenv("BENCH_TMP") or "/tmp") .. "/agentbox-profile"
local ex = LocalExecutor.new{ work_dir = dir, python = os.getenv("BENCH_PYTHON") or "/usr/bin/python3" }
local block = { { lang = lang, code = code } }
for _ = 1, 20 do ex:execute(block) end   -- warm-up, unwrapped

for _, name in ipairs({ "md5", "mkdir_p", "realpath", "spawn", "step", "utf8_clean", "which" }) do
  if core[name] then wrap(core, name, "core." .. name) end
end
wrap(io, "open", "io.open")

local total = 0
for _ = 1, n do
  local t0 = now()
  local r = ex:execute(block)
  total = total + (now() - t0)
  assert(r.exit_code == 0, r.output)
end

print(("%s `%s`, %d runs: execute %.3f ms/block (wrapped)"):format(lang, code, n, total / n * 1000))
local names = {}
for k in pairs(acc) do names[#names + 1] = k end
table.sort(names, function(a, b) return acc[a] > acc[b] end)
local inside = 0
for _, k in ipairs(names) do
  if calls[k] > 0 then
    print(("  %-16s %8.3f ms/block  %5.1f calls/block"):format(k, acc[k] / n * 1000, calls[k] / n))
    inside = inside + acc[k]
  end
end
print(("  %-16s %8.3f ms/block"):format("(other Lua)", (total - inside) / n * 1000))
