-- Item 8 of issue 8: nice holds. Each run is in a CPU cgroup of its own
-- under agentbox-<owner> (the spawn server, or the host when it forks the
-- supervisor), whose weight is one task's at the run's nice; a child that
-- calls setsid() and renices itself and its autogroup stays inside; the
-- cgroups are gone after the run. The timing side is bench/cpu_fairness.lua.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local H = require("spec.support.helpers")

-- the code's view: its cpu cgroup path, that cgroup's parent's weight, and
-- the same for a setsid'd, reniced child
local PROBE = [[
import os, sys, subprocess
def cpu_cgroup():
    for line in open("/proc/self/cgroup"):
        i, ctrl, path = line.rstrip("\n").split(":", 2)
        if "cpu" in ctrl.split(","):
            return "v1", path
    return "v2", [l for l in open("/proc/self/cgroup") if l.startswith("0::")][0][3:].strip()
def weight_of(kind, path):
    base = "/sys/fs/cgroup/cpu" if kind == "v1" else "/sys/fs/cgroup"
    f = "cpu.shares" if kind == "v1" else "cpu.weight"
    return open(base + path + "/" + f).read().strip()
kind, path = cpu_cgroup()
parent = path.rsplit("/", 1)[0]
print("path=" + path)
print("kind=" + kind)
print("parent_weight=" + weight_of(kind, parent))
print("run_weight=" + weight_of(kind, path))
child = """
import os
os.setsid()
try:
    os.setpriority(os.PRIO_PROCESS, 0, -20)
    open("/proc/self/autogroup", "w").write("-20")
except OSError as e:
    print("renice_error=" + str(e))
print("child_nice=%d" % os.nice(0))
print("child_autogroup=" + open("/proc/self/autogroup").read().strip().replace(" ", "_"))
for line in open("/proc/self/cgroup"):
    i, ctrl, p = line.rstrip("\\n").split(":", 2)
    if "cpu" in ctrl.split(","):
        print("child_path=" + p)
"""
sys.stdout.flush()
subprocess.run([sys.executable, "-c", child])
]]

local function fields(out)
  local v = {}
  for k, val in out:gmatch("([%w_]+)=([^\n]*)") do v[k] = val end
  return v
end

local function sysfs_dir(kind, path)
  return (kind == "v1" and "/sys/fs/cgroup/cpu" or "/sys/fs/cgroup") .. path
end

-- every cgroup directory has a cgroup.procs file
local function dir_exists(p)
  local f = io.open(p .. "/cgroup.procs", "r")
  if f then f:close() end
  return f ~= nil
end

-- Can this process make cgroups where it is (the v1 cpu hierarchy here)?
local function cgroups_writable()
  local f = io.open("/proc/self/cgroup")
  local s = f:read("a")
  f:close()
  local path = s:match("%d+:cpu[^:]*:([^\n]*)") or s:match("%d+:[^:]*,cpu[,:][^:]*:?([^\n]*)")
  local base = path and "/sys/fs/cgroup/cpu" .. path or "/sys/fs/cgroup" .. (s:match("0::([^\n]*)") or "")
  local probe = base .. "/agentbox-spec-probe-" .. math.random(1e9)
  local ok = core.mkdir_p(probe)
  if ok then os.remove(probe) end
  return ok and true or false
end

describe("CPU cgroup per run where cgroups are not writable", function()
  it("the run stays in the host's cgroup and its autogroup is at nice 10 (as uid 65534 when root)", function()
    local root = core.geteuid() == 0
    if not root and cgroups_writable() then
      pending("this user may create cgroups here, so the run gets one (the cases below)")
      return
    end
    local dir = H.tmpdir("nocgroup")
    local work = dir .. "/work"
    assert(core.mkdir_p(work))
    os.execute("chmod 755 '" .. dir .. "' && chmod 777 '" .. work .. "'")
    local src = [[
local agentbox = require("agentbox")
local ex = agentbox.LocalExecutor{ work_dir = os.getenv("SPEC_WORK"), timeout = 20 }
local r = ex:execute{ { lang = "sh", code = "sleep 0.5; cat /proc/self/cgroup /proc/self/autogroup" } }
io.write("exit=", r.exit_code, "\n", r.output)
]]
    local argv = { "lua5.4", "-e", src }
    if root then argv = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "lua5.4", "-e", src } end
    local r = H.run(argv, { env = H.lua_env{ SPEC_WORK = work, HOME = work, PATH = "/usr/bin:/bin" } })
    H.rm_rf(dir)
    local out = r.stdout .. r.stderr
    assert.matches("exit=0\n", out, 1, true)
    assert.is_nil(out:find("agentbox-", 1, true), out)
    -- written by the supervisor just after the exec (the non-dumpable child
    -- cannot, see protect_host): the first instants run at the session's 0
    assert.matches("/autogroup%-%d+ nice 10", out)
  end)
end)

describe("CPU cgroup per run", function()
  local dir
  local writable = cgroups_writable()
  local busted_it = it
  local function it(name, fn)
    busted_it(name, function()
      if not writable then
        pending("cgroups are not writable by this user here: only nice holds (README); run as root for these")
        return
      end
      return fn()
    end)
  end
  before_each(function() dir = H.tmpdir("cgroup") end)
  after_each(function() if dir then H.rm_rf(dir) dir = nil end end)

  it("code of another uid cannot leave the run's cgroup; root code can (no boundary for root)", function()
    local ex <close> = agentbox.LocalExecutor{ work_dir = dir, timeout = 20 }
    local r = ex:execute{ { lang = "python", code = [[
import os
def procs():
    for line in open("/proc/self/cgroup"):
        i, ctrl, p = line.rstrip("\n").split(":", 2)
        if "cpu" in ctrl.split(","):
            return p
    return [l for l in open("/proc/self/cgroup") if l.startswith("0::")][0][3:].strip()
base = "/sys/fs/cgroup/cpu" if os.path.isdir("/sys/fs/cgroup/cpu") else "/sys/fs/cgroup"
top = base + "/cgroup.procs"
pid = os.fork()
if pid == 0:
    os.setgid(65534); os.setuid(65534)
    try:
        open(top, "w").write("0")
        print("user_escape=" + procs())
    except OSError as e:
        print("user_escape=" + e.strerror)
    os._exit(0)
os.waitpid(pid, 0)
open(top, "w").write("0")
print("root_escape=" + procs())
]] } }
    assert.equal(0, r.exit_code, r.output)
    assert.matches("user_escape=Permission denied", r.output, 1, true)
    assert.matches("root_escape=/\n", r.output, 1, true)
  end)

  local function check(v, owner_desc)
    assert.matches("^/.-agentbox%-%d+/run%-%d+$", v.path or "", 1, false, owner_desc)
    if v.kind == "v1" then
      assert.equal("110", v.parent_weight)       -- one task at nice 10
      assert.equal("110", v.run_weight)
    else
      assert.equal("10", v.parent_weight)
    end
    -- setsid + nice -20 + autogroup -20 as root: still in the run's cgroup
    assert.equal(v.path, v.child_path)
    assert.equal("-20", v.child_nice)
    assert.is_nil(v.renice_error)
    -- after the run: the run's cgroup and its parent are gone
    assert.is_false(dir_exists(sysfs_dir(v.kind, v.path)))
    assert.is_false(dir_exists(sysfs_dir(v.kind, v.path:match("^(.*)/"))))
  end

  it("LocalExecutor (spawn server): the run and a setsid'd, reniced child are in agentbox-<server>/run-<sup>, removed after", function()
    local ex <close> = agentbox.LocalExecutor{ work_dir = dir, timeout = 20 }
    local r = ex:execute{ { lang = "python", code = PROBE } }
    assert.equal(0, r.exit_code, r.output)
    check(fields(r.output), r.output)
  end)

  it("a new spawn server removes what a SIGKILLed host's runs left, and only dead owners'", function()
    local f = io.open("/proc/self/cgroup")
    local cg = f:read("a")
    f:close()
    local path = cg:match("%d+:cpu[^:]*:([^\n]*)") or cg:match("%d+:[^:]*,cpu[,:][^:]*:?([^\n]*)")
    local base = path and "/sys/fs/cgroup/cpu" .. path or "/sys/fs/cgroup" .. (cg:match("0::([^\n]*)") or "")
    -- a pid no process has (above pid_max), and pid 1, which always lives
    local dead, live = base .. "/agentbox-2147483000", base .. "/agentbox-1"
    if not core.mkdir_p(dead .. "/run-7") then pending("cgroups are not writable here") return end
    assert(core.mkdir_p(live .. "/run-8"))
    local ok, err = pcall(function()
      -- a fresh process, so a fresh spawn server (this one's is running)
      local r = H.lua(([[
local ex <close> = require("agentbox").LocalExecutor{ work_dir = %q, timeout = 20 }
io.write(ex:execute{ { lang = "sh", code = "echo ok" } }.output)]]):format(dir))
      assert.equal("ok\n", r.stdout, r.output)
      assert.is_false(dir_exists(dead .. "/run-7"))
      assert.is_false(dir_exists(dead))
      assert.is_true(dir_exists(live .. "/run-8"))
    end)
    os.remove(live .. "/run-8")
    os.remove(live)
    os.remove(dead .. "/run-7")
    os.remove(dead)
    assert(ok, err)
  end)

  it("a host killed with its whole process group: the next LocalExecutor kills what its runs left", function()
    if not cgroups_writable() then pending("cgroups are not writable here") return end
    local base = H.tmpdir("group")
    local work, beat, out = base .. "/w", base .. "/beat", base .. "/host.out"
    -- the block leaves a setsid'd, TERM-ignoring heartbeat, then waits; the
    -- host is started by a shell in a session of its own, so that nothing of
    -- ours (a supervisor is a subreaper) adopts what outlives it
    local host = ([[
io.write((io.open("/proc/self/stat"):read("a"):match("^(%%d+)")), "\n") io.stdout:flush()
local ex = require("agentbox").LocalExecutor{ work_dir = %q, timeout = 60 }
ex:execute{ { lang = "sh", code = "setsid sh -c 'trap \"\" TERM; while :; do date +%%s%%N > %s; sleep 0.05; done' " ..
  ">/dev/null 2>&1 </dev/null &\nsleep 60" } }]]):format(work, beat)
    H.write(base .. "/host.lua", host)
    local env = H.lua_env()
    local assigns = {}
    for k, v in pairs(env) do assigns[#assigns + 1] = ("%s='%s'"):format(k, v) end
    assert(os.execute(("env %s setsid lua5.4 %s/host.lua > %s 2>&1 &"):format(table.concat(assigns, " "), base, out)))
    local pid
    for _ = 1, 500 do
      pid = H.exists(beat) and H.read(out):match("^(%d+)\n")
      if pid then break end
      agentbox.sleep(0.02)
    end
    assert(pid, "the host did not start its block: " .. (H.exists(out) and H.read(out) or ""))
    -- host, spawn server and supervisor at once
    assert(os.execute("python3 -c 'import os; os.killpg(" .. pid .. ", 9)'"))
    agentbox.sleep(0.3)
    local b1 = H.read(beat)
    agentbox.sleep(0.3)
    assert.are_not.equal(b1, H.read(beat), "the heartbeat should still run before the fresh start")
    -- a fresh start that only makes an executor (no block, so no spawn server)
    local r = H.lua(("local ex <close> = require('agentbox').LocalExecutor{ work_dir = %q, timeout = 20 }\n"
      .. "io.write('made')"):format(base .. "/fresh"))
    assert.equal("made", r.stdout, r.output)
    agentbox.sleep(0.3)
    local b2 = H.read(beat)
    agentbox.sleep(0.5)
    local b3 = H.read(beat)
    H.rm_rf(base)
    assert.equal(b2, b3, "the heartbeat outlived the fresh start")
  end)

  it("core.spawn without the spawn server: the parent is agentbox-<host pid>", function()
    local f = io.open(dir .. "/probe.py", "w")
    f:write(PROBE)
    f:close()
    local p = assert(core.spawn{ argv = { "python3", dir .. "/probe.py" }, env = { PATH = os.getenv("PATH") },
                                 nice = 10, timeout = 20 })
    while not p:done() do core.step(-1) end
    local r = p:result()
    p:close()
    assert.equal(0, r.exit_code, r.output)
    local v = fields(r.output)
    -- our pid: the supervisor's parent
    local f2 = io.open("/proc/self/stat")
    local mypid = f2:read("a"):match("^(%d+)")
    f2:close()
    assert.matches("/agentbox%-" .. mypid .. "/run%-%d+$", v.path or "", 1, false, r.output)
    check(v, r.output)
  end)

  it("cgroup v2 without the cpu controller (v1 cpu unmounted in a mount namespace): nice alone, nothing left", function()
    local f = io.open("/sys/fs/cgroup/unified/cgroup.controllers")
    if not f then pending("no hybrid cgroup v2 mount at /sys/fs/cgroup/unified here") return end
    f:close()
    local src = [[
local core = require("agentbox.core")
local p = assert(core.spawn{ argv = { "sh", "-c", "sleep 0.2; ls /sys/fs/cgroup/unified; cat /proc/self/cgroup /proc/self/autogroup" },
                             env = { PATH = "/usr/bin:/bin" }, nice = 10, sup = os.getenv("AGENTBOX_SUP") })
while not p:done() do core.step(-1) end
io.write(p:result().output)
]]
    H.write(dir .. "/v2.lua", src)
    local r = H.run({ "unshare", "-m", "--propagation", "private", "sh", "-c",
                      "umount /sys/fs/cgroup/cpu && lua5.4 " .. dir .. "/v2.lua && ls /sys/fs/cgroup/unified" },
                    { env = H.lua_env() })
    assert.equal(0, r.exit_code, r.output)
    assert.is_nil(r.output:find("agentbox-", 1, true), r.output)
    assert.matches("1:cpu:/\n", r.output, 1, true)
    assert.matches("/autogroup%-%d+ nice 10", r.output)
  end)

  it("nice = 0 leaves the run where the host is (no cgroup)", function()
    local ex <close> = agentbox.LocalExecutor{ work_dir = dir, timeout = 20, nice = 0 }
    local r = ex:execute{ { lang = "sh", code = "cat /proc/self/cgroup" } }
    assert.equal(0, r.exit_code, r.output)
    assert.is_nil(r.output:find("agentbox-", 1, true), r.output)
  end)

  it("many concurrent runs of one host share agentbox-<owner>, which is removed once the last leaves", function()
    local exs, tasks = {}, {}
    for i = 1, 6 do
      exs[i] = agentbox.LocalExecutor{ work_dir = dir, timeout = 20 }
      tasks[i] = agentbox.spawn(function()
        return exs[i]:execute{ { lang = "sh", code = "grep -E '(^|[:,])cpu[,:]' /proc/self/cgroup; sleep 0." .. i } }
      end)
    end
    agentbox.run()
    local parents = {}
    for i = 1, 6 do
      local r = assert(tasks[i]:result())
      assert.equal(0, r.exit_code, r.output)
      local path = r.output:match(":cpu[^:]*:(%S+)") or r.output:match(":([^:\n]*agentbox[^\n]*)")
      assert.truthy(path, r.output)
      parents[path:match("^(.*)/run%-%d+$")] = true
      exs[i]:close()
    end
    local n = 0
    for p in pairs(parents) do
      n = n + 1
      assert.is_false(dir_exists("/sys/fs/cgroup/cpu" .. p))
    end
    assert.equal(1, n)
  end)
end)
