-- bench/cpu_fairness.lua: does nice 10 hold against code that fights for the
-- CPU? The host (this process, nice 0) and everything it starts are pinned
-- to one CPU. Each window, the host runs a fixed CPU-bound Lua loop for W
-- seconds while a LocalExecutor-style run (core.spawn through the spawn
-- server, nice 10, as LocalExecutor does) runs an attack for the same W
-- seconds:
--   setsid:  8 children, each in a new session (a new autogroup), busy
--   renice:  the same, each also at nice -20 with its autogroup at -20 (root)
-- Each child reports the CPU time it got. The figure is the host's share of
-- the CPU time the two got together (host / (host + code)): other load on
-- the machine slows both alike, so the share does not depend on it, unlike
-- a rate. The host's loop rate against an alone window just before is
-- printed too (noisy on a shared machine). Median of ROUNDS windows.
-- Usage: lua5.4 bench/cpu_fairness.lua [rounds] [seconds per window] [cpu]
local core = require("agentbox.core")
local common = require("agentbox.executor.common")

local ROUNDS = tonumber(arg[1]) or 5
local WINDOW = tonumber(arg[2]) or 2.0
local CPU = tonumber(arg[3]) or 0
local CHILDREN = 8

local ATTACK = [[
import os, sys, time
mode, n, w = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + w
kids = []
for _ in range(n):
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        if mode == "renice":
            os.setpriority(os.PRIO_PROCESS, 0, -20)
            open("/proc/self/autogroup", "w").write("-20")
        while time.time() < end:
            pass
        t = os.times()
        os.write(wfd, ("%f" % (t.user + t.system)).encode())
        os._exit(0)
    os.close(wfd)
    kids.append(r)
total = 0.0
for r in kids:
    total += float(os.read(r, 64) or b"0")
print("code_cpu=%f" % total)
]]

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local function uptime()
  local p = io.popen("uptime")
  local s = p:read("a"):gsub("^%s+", ""):gsub("%s+$", "")
  p:close()
  return s
end

-- iterations per wall second, and the CPU seconds this process got
local function loop(seconds)
  local n, t0, c0 = 0, core.now(), os.clock()
  local x = 0
  while core.now() - t0 < seconds do
    for i = 1, 100000 do x = x + i % 7 end
    n = n + 1
    core.step(0)
  end
  return n * 100000 / (core.now() - t0), os.clock() - c0, x
end

local f = io.open("/proc/self/stat")
local me = f:read("a"):match("^(%d+)")
f:close()
assert(os.execute(("taskset -pc %d %s >/dev/null"):format(CPU, me)), "taskset failed")
local py = core.which("python3", "/usr/bin:/bin:" .. (os.getenv("PATH") or ""))
local sup = common.sup_path()
print(("# cpu_fairness: %d rounds of %.1f s, %d busy children per attack, all on CPU %d, euid %d, %s")
  :format(ROUNDS, WINDOW, CHILDREN, CPU, core.geteuid(), os.getenv("AGENTBOX_BENCH_LABEL") or ""))
print("# " .. uptime())
local share, kept = { setsid = {}, renice = {} }, { setsid = {}, renice = {} }
for round = 1, ROUNDS do
  for _, mode in ipairs({ "setsid", "renice" }) do
    local alone = loop(WINDOW / 2)
    local p = assert(core.spawn{ argv = { py, "-c", ATTACK, mode, tostring(CHILDREN), tostring(WINDOW) },
                                 env = { PATH = "/usr/bin:/bin" }, nice = 10, sup = sup, timeout = 60 })
    local rate, host_cpu = loop(WINDOW)
    while not p:done() do core.step(-1) end
    local r = p:result()
    p:close()
    local code_cpu = tonumber(r.output:match("code_cpu=([%d.]+)")) or error("attack failed: " .. r.output)
    local s = host_cpu / (host_cpu + code_cpu)
    share[mode][#share[mode] + 1] = s
    kept[mode][#kept[mode] + 1] = rate / alone
    io.write(("round %d %-6s host %.2f s CPU, code %.2f s CPU: host share %.1f %%; rate vs alone %.1f %%\n")
      :format(round, mode, host_cpu, code_cpu, 100 * s, 100 * rate / alone))
    io.flush()
  end
end
print("# " .. uptime())
for _, mode in ipairs({ "setsid", "renice" }) do
  print(("%s: host share of the CPU median %.1f %% (min %.1f, max %.1f); rate vs alone median %.1f %%")
    :format(mode, 100 * median(share[mode]), 100 * math.min(table.unpack(share[mode])),
            100 * math.max(table.unpack(share[mode])), 100 * median(kept[mode])))
end
