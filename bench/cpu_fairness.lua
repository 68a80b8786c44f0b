-- bench/cpu_fairness.lua: does nice 10 hold against code that fights for the
-- CPU? The host (this process, nice 0) runs a fixed CPU-bound Lua loop and
-- measures its rate alone, then while a LocalExecutor block runs an attack:
--   setsid:  8 children, each in a new session (a new autogroup), busy
--   renice:  the same, each also at nice -20 with its autogroup at -20 (root)
-- Alone and attacked windows alternate; each figure is the median of ROUNDS.
-- Usage: lua5.4 bench/cpu_fairness.lua [rounds] [seconds per window]
local agentbox = require("agentbox")
local core = require("agentbox.core")

local ROUNDS = tonumber(arg[1]) or 5
local WINDOW = tonumber(arg[2]) or 2.0
local CHILDREN = 8

local ATTACKS = {
  setsid = ([[
import os
for _ in range(%d):
    if os.fork() == 0:
        os.setsid()
        while True: pass
os.wait()
]]):format(CHILDREN),
  renice = ([[
import os
for _ in range(%d):
    if os.fork() == 0:
        os.setsid()
        os.setpriority(os.PRIO_PROCESS, 0, -20)
        open("/proc/self/autogroup", "w").write("-20")
        while True: pass
os.wait()
]]):format(CHILDREN),
}

-- iterations of a fixed loop per second of wall time, stepping agentbox
-- between chunks as a frame loop would
local function rate(seconds)
  local n, t0 = 0, core.now()
  local x = 0
  while core.now() - t0 < seconds do
    for i = 1, 200000 do x = x + i % 7 end
    n = n + 1
    agentbox.step(0)
  end
  return n * 200000 / (core.now() - t0), x
end

local function settle(seconds)
  local t0 = core.now()
  while core.now() - t0 < seconds do agentbox.step(10) end
end

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

local dir = os.tmpname()
os.remove(dir)
local ex = agentbox.LocalExecutor{ work_dir = dir, timeout = 3600 }
local res = { alone = {}, setsid = {}, renice = {} }
local function uptime()
  local p = io.popen("uptime")
  local s = p:read("a"):gsub("%s+$", "")
  p:close()
  return s
end
print(("# cpu_fairness: %d rounds of %.1f s windows, %d busy children per attack, euid %d, cgroup %s")
  :format(ROUNDS, WINDOW, CHILDREN, core.geteuid(), os.getenv("AGENTBOX_BENCH_LABEL") or "?"))
print("# before: " .. uptime())
for round = 1, ROUNDS do
  for _, name in ipairs({ "setsid", "renice" }) do
    settle(0.3)
    local alone = rate(WINDOW)
    res.alone[#res.alone + 1] = alone
    local t = agentbox.spawn(function() return ex:execute{ { lang = "python", code = ATTACKS[name] } } end)
    settle(0.5)   -- the children are up and busy
    local attacked = rate(WINDOW)
    t:cancel()
    while not t:done() do agentbox.step(10) end
    res[name][#res[name] + 1] = attacked / alone
    io.write(("round %d %-6s alone %.3g it/s, attacked %.1f %%\n"):format(round, name, alone, 100 * attacked / alone))
    io.flush()
  end
end
print("# after: " .. uptime())
print(("host rate kept (median of %d): setsid %.1f %%, renice %.1f %%"):format(
  ROUNDS, 100 * median(res.setsid), 100 * median(res.renice)))
ex:close()
os.execute("rm -rf '" .. dir .. "'")
