-- bench/sandbox_bench.lua: LocalExecutor{ sandbox = true } against the plain
-- LocalExecutor (issue 12), in one run, interleaved so that load hits both:
--   * per block: `print(1)` (python) and `echo hi` (sh), N blocks each;
--   * time to a first result from nothing: construction (the sandbox's probe
--     included), one `echo hi` block, close; M times.
-- With BENCH_DOCKER=1 also a warm DockerExecutor per block and a
-- DockerExecutor's cold start (construction + first block), for the issue's
-- comparison (shared daemon: run it alone).
--
--   eval "$(make -s paths)"; LUA_PATH="bench/?.lua;$LUA_PATH" lua5.4 bench/sandbox_bench.lua [N] [M]
--
-- Prints medians and p95 in ms and the load average before and after.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local lib = require("benchlib")

local N = tonumber(arg[1]) or 40
local M = tonumber(arg[2]) or 15
local PY = os.getenv("BENCH_PYTHON") or "/usr/bin/python3"

local function loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("l") or "?"
  if f then f:close() end
  return s:match("^(%S+ %S+ %S+)") or s
end

local function ms(t0) return (core.now() - t0) * 1000 end

local BLOCKS = {
  ["print(1)"] = { lang = "python", code = "print(1)", want = "1\n" },
  ["echo hi"] = { lang = "sh", code = "echo hi", want = "hi\n" },
}

local KINDS = {
  { name = "plain", opts = {} },
  { name = "sandbox", opts = { sandbox = true } },
}
if os.getenv("BENCH_DOCKER") == "1" then
  KINDS[#KINDS + 1] = { name = "docker-warm", docker = true,
                        opts = { image = os.getenv("AGENTBOX_IMAGE") or "agentbox/sandbox:latest", warm = true } }
end

local function new(kind)
  local o = { timeout = 30 }
  for k, v in pairs(kind.opts) do o[k] = v end
  if kind.docker then return agentbox.DockerExecutor(o) end
  o.python = PY
  return agentbox.LocalExecutor(o)
end

local function block(ex, b)
  local t0 = core.now()
  local r = ex:execute{ { lang = b.lang, code = b.code } }
  local t = ms(t0)
  assert(r.exit_code == 0 and r.output == b.want, ("unexpected result: %d %q"):format(r.exit_code, r.output))
  return t
end

local load0 = loadavg()
local per = {}
local exs = {}
for _, k in ipairs(KINDS) do
  exs[k.name] = new(k)
  for _, b in pairs(BLOCKS) do block(exs[k.name], b) end   -- warm-up
end
for _ = 1, N do
  for _, k in ipairs(KINDS) do
    for name, b in pairs(BLOCKS) do
      local key = k.name .. " " .. name
      per[key] = per[key] or {}
      table.insert(per[key], block(exs[k.name], b))
    end
  end
end
for _, ex in pairs(exs) do ex:close() end

local first = {}
local firsts = { { name = "plain", opts = {} }, { name = "sandbox", opts = { sandbox = true } } }
if os.getenv("BENCH_DOCKER") == "1" then
  firsts[#firsts + 1] = { name = "docker-cold", docker = true,
                          opts = { image = os.getenv("AGENTBOX_IMAGE") or "agentbox/sandbox:latest" } }
end
for _ = 1, M do
  for _, k in ipairs(firsts) do
    local t0 = core.now()
    local ex = new(k)
    block(ex, BLOCKS["echo hi"])
    local t = ms(t0)
    ex:close()
    first[k.name] = first[k.name] or {}
    table.insert(first[k.name], t)
  end
end
local load1 = loadavg()

print(("sandbox_bench: N=%d blocks per row, M=%d first results; load average before %s, after %s; %s")
  :format(N, M, load0, load1, lib.machine and lib.machine() or ""))
print("| what | median ms | p95 ms |")
print("|---|---|---|")
local keys = {}
for k in pairs(per) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do
  local s = lib.stats(per[k])
  print(("| per block, %s | %.2f | %.2f |"):format(k, s.median, s.p95))
end
for _, k in ipairs(firsts) do
  local s = lib.stats(first[k.name])
  print(("| first result from construction, %s | %.2f | %.2f |"):format(k.name, s.median, s.p95))
end
