-- bench/landlock_bench.lua: what Landlock and the sandbox seccomp profile
-- cost one core.spawn. `/bin/true` (the start dominates) and `echo hi`
-- through the spawn server, with seccomp = true (today's LocalExecutor),
-- seccomp = "sandbox", and "sandbox" plus a Landlock domain of the sandbox's
-- paths (9 read-only system paths, work_dir, /tmp and /dev/null
-- read-write); the variants take turns so load drifts hit them alike.
-- Prints milliseconds, median / p95, and the load average.
--
--   lua5.4 bench/landlock_bench.lua [N]
local core = require("agentbox.core")
local B = require("bench.benchlib")

local n = tonumber(arg[1] or "") or 300
local sup = assert(os.getenv("AGENTBOX_SUP"), "set AGENTBOX_SUP (make paths)")
local work = (os.getenv("TMPDIR") or "/tmp") .. "/agentbox-landlock-bench"
assert(core.mkdir_p(work))
local SYSTEM = { "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc", "/opt" }
local LL = { read = SYSTEM, write = { work, "/tmp", "/dev/null" } }

local VARIANTS = {
  { "seccomp = true", { seccomp = true } },
  { "seccomp = \"sandbox\"", { seccomp = "sandbox" } },
  { "\"sandbox\" + landlock", { seccomp = "sandbox", landlock = LL } },
}
local PROGRAMS = { { "/bin/true", { "/bin/true" } }, { "sh -c 'echo hi'", { "/bin/sh", "-c", "echo hi" } } }

local function once(argv, extra)
  local o = { argv = argv, env = { PATH = "/usr/bin:/bin" }, cwd = work, sup = sup, timeout = 30 }
  for k, v in pairs(extra) do o[k] = v end
  local t0 = core.now()
  local p = assert(core.spawn(o))
  while not p:done() do core.step(-1) end
  local r = p:result()
  p:close()
  assert(r.exit_code == 0, r.output)
  return (core.now() - t0) * 1000
end

local load0 = io.open("/proc/loadavg"):read("l")
local times = {}
for pi, prog in ipairs(PROGRAMS) do
  times[pi] = {}
  for vi in ipairs(VARIANTS) do times[pi][vi] = {} end
  for _ = 1, 10 do for _, v in ipairs(VARIANTS) do once(prog[2], v[2]) end end   -- warm up
  for _ = 1, n do
    for vi, v in ipairs(VARIANTS) do table.insert(times[pi][vi], once(prog[2], v[2])) end
  end
end
local load1 = io.open("/proc/loadavg"):read("l")

print(("core.spawn through the spawn server, ms median / p95, N = %d each, interleaved"):format(n))
print(("load average: %s (start), %s (end)"):format(load0, load1))
print(B.row({ "program", VARIANTS[1][1], VARIANTS[2][1], VARIANTS[3][1] }))
print(B.row({ "---", "---", "---", "---" }))
for pi, prog in ipairs(PROGRAMS) do
  local cells = { prog[1] }
  for vi in ipairs(VARIANTS) do cells[#cells + 1] = B.pair(B.stats(times[pi][vi]), "%.2f") end
  print(B.row(cells))
end
os.execute("rm -rf '" .. work .. "'")
