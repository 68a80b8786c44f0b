-- The sandbox's cgroup (issue 12): one cgroup per sandboxed run where a
-- hierarchy is writable (root here: cgroup v1's memory and pids; v2 where a
-- memory controller is delegated), holding sandbox.memory, pids.max from
-- nproc and the CPU weight. The attacks: a block that allocates and touches
-- far more memory than the limit, a tmpfs write past it, a fork bomb as
-- root (whom the kernel exempts from RLIMIT_NPROC). Elsewhere (a normal user
-- here: scripts/specs_as_user.sh) require = { "cgroup" } must fail closed.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local common = require("agentbox.executor.common")
local H = require("spec.support.helpers")

local MiB = 1024 * 1024

local read = H.try_read

-- Where this process's runs put their memory cgroups: v1's memory
-- hierarchy at our own cgroup, or (v2) our cgroup when its subtree_control
-- enables memory (the root), else its parent when we sit in a leaf of a
-- cgroup delegated to us. nil when neither is writable.
local function memory_base()
  local s = read("/proc/self/cgroup") or ""
  local v1 = s:match("%d+:memory:([^\n]*)")
  if v1 then
    local dir = "/sys/fs/cgroup/memory" .. (v1 == "/" and "" or v1)
    local probe = dir .. "/agentbox-spec-probe-" .. math.random(1e9)
    if core.mkdir_p(probe) then
      os.remove(probe)
      return dir, 1
    end
    return nil
  end
  local v2 = s:match("0::([^\n]*)")
  if not v2 then return nil end
  local dir = "/sys/fs/cgroup" .. (v2 == "/" and "" or v2)
  local function usable(d)
    local sc = read(d .. "/cgroup.subtree_control") or ""
    if not (sc:find("memory") and sc:find("pids") and core.mkdir_p(d .. "/agentbox-spec-p")) then return false end
    os.remove(d .. "/agentbox-spec-p")
    return true
  end
  if usable(dir) then return dir, 2 end
  -- the parent only when it is delegated to us (owned by our uid), never for root
  local parent = dir:match("^(.*)/[^/]*$")
  local p = parent and io.popen("stat -c %u '" .. parent .. "'")
  local owner = p and tonumber(p:read("l"))
  if p then p:close() end
  local uid = core.geteuid()
  if parent and uid ~= 0 and owner == uid and usable(parent) then return parent, 2 end
  return nil
end

local function pids_base()
  local s = read("/proc/self/cgroup") or ""
  local v1 = s:match("%d+:pids:([^\n]*)")
  return v1 and "/sys/fs/cgroup/pids" .. (v1 == "/" and "" or v1) or nil
end

-- the agentbox-sb-<pid> directories under dir
local function run_dirs(dir)
  local out = {}
  local p = io.popen("ls -1 '" .. dir .. "' 2>/dev/null")
  for name in p:lines() do
    if name:match("^agentbox%-sb%-%d+$") then out[#out + 1] = name end
  end
  p:close()
  return out
end

local function new(opts)
  opts.work_dir = opts.work_dir or H.tmpdir("sbcg") .. "/work"
  opts.timeout = opts.timeout or 30
  return agentbox.LocalExecutor(opts)
end

local HOG = [[
b = bytearray(256 * 1024 * 1024)
for i in range(0, len(b), 4096):
    b[i] = 1
print("ALLOCATED", len(b))
]]

local base, version = memory_base()

-- Root here (v1 memory, pids and cpu hierarchies writable), or a user whose
-- v2 memory controller is delegated; elsewhere a run gets no cgroup, which
-- the next describe checks instead.
if base then
  describe("sandbox cgroup (memory, pids, cpu weight)", function()
    it("a block that touches 256 MiB under memory = 64 MiB is killed and says out of memory; the next block runs",
      function()
      local ex <close> = new{ sandbox = { memory = 64 * MiB } }
      local r = ex:execute{ { lang = "python", code = HOG } }
      assert.not_matches("ALLOCATED", r.output)
      assert.matches("agentbox: out of memory", r.output, 1, true)
      assert.is_true(r.exit_code ~= 0)
      r = ex:execute{ { lang = "python", code = "print('NEXT', sum(range(10)))" } }
      assert.equal(0, r.exit_code, r.output)
      assert.matches("NEXT 45", r.output)
    end)

    it("tmpfs (/tmp, /dev/shm) counts: writing 200 MiB to /tmp under memory = 64 MiB is killed", function()
      local ex <close> = new{ sandbox = { memory = 64 * MiB, tmp_size = 512 * MiB } }
      local r = ex:execute{ { lang = "sh", code = "head -c 200M /dev/zero > /dev/shm/x; ls -l /tmp/x; echo DONE" } }
      assert.matches("agentbox: out of memory", r.output, 1, true)
      assert.not_matches("209715200", r.output)
    end)

    it("a fork bomb as root is bounded by pids.max (rlimits.nproc), and dies with the block", function()
      local ex <close> = new{ sandbox = true, rlimits = { nproc = 40 } }
      local r = ex:execute{ { lang = "python", code = [[
import os
n = 0
for i in range(400):
    try:
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "30"])
        n += 1
    except OSError as e:
        break
print("FORKED", n)
]] } }
      local n = tonumber(r.output:match("FORKED (%d+)"))
      assert.is_not_nil(n, r.output)
      assert.is_true(n < 40, "forked " .. n)
    end)

    it("require = { \"cgroup\" } passes and enforced() reports the controllers", function()
      local ex <close> = new{ sandbox = { require = { "cgroup" }, memory = 64 * MiB } }
      local e = ex:enforced()
      assert.equal(version, e.cgroup.version)
      assert.is_true(e.cgroup.memory)
      assert.is_true(e.cgroup.pids)
      assert.matches(("^rlimits, cgroup v%d: memory 67108864, pids 1024"):format(version), e.limits)
      assert.equal(1024, e.nproc)
      assert.equal(64 * MiB, e.memory)
      local r = ex:execute{ { lang = "sh", code = "echo ok" } }
      assert.equal("ok\n", r.output)
    end)

    it("the run's cgroup exists during the run and is gone after it (memory and pids hierarchies)", function()
      local pbase = pids_base()
      local before = {}
      for _, n in ipairs(run_dirs(base)) do before[n] = true end
      local p <close> = assert(core.spawn{ argv = { "/bin/sleep", "1" }, timeout = 10, sup = common.sup_path(),
        sandbox = { read_only = { "/usr", "/bin", "/lib", "/lib64" }, memory = 64 * MiB } })
      -- the run's own: named for its supervisor (p:pid()), not any other
      -- sandbox's that comes and goes meanwhile (a spare made or retired)
      local seen
      local deadline = core.now() + 5
      while not seen and core.now() < deadline do
        local sup = p:pid()
        for _, n in ipairs(run_dirs(base)) do
          if not before[n] and sup and n == "agentbox-sb-" .. sup then seen = n end
        end
        if not seen then core.step(10) end
      end
      assert.is_not_nil(seen, "no agentbox-sb-<supervisor pid> cgroup appeared under " .. base)
      assert.equal(tostring(64 * MiB), (read(base .. "/" .. seen .. (version == 1 and "/memory.limit_in_bytes"
        or "/memory.max")) or ""):match("%d+"))
      if pbase and version == 1 then assert.is_true(H.exists(pbase .. "/" .. seen)) end
      while not p:done() do core.step(20) end
      assert.equal(0, p:result().exit_code)
      assert.is_false(H.exists(base .. "/" .. seen))
      if pbase and version == 1 then assert.is_false(H.exists(pbase .. "/" .. seen)) end
    end)

    it("a SIGKILLed supervisor's cgroup is removed by the next core.reap_runs()", function()
      local before = {}
      for _, n in ipairs(run_dirs(base)) do before[n] = true end
      -- the fork path (no spawn server): the supervisor is our child
      local p <close> = assert(core.spawn{ argv = { "/bin/sleep", "30" }, timeout = 60,
        sandbox = { read_only = { "/usr", "/bin", "/lib", "/lib64" }, memory = 64 * MiB } })
      local seen
      local deadline = core.now() + 5
      while not seen and core.now() < deadline do
        for _, n in ipairs(run_dirs(base)) do
          if not before[n] and p:pid() and n == "agentbox-sb-" .. p:pid() then seen = n end
        end
        if not seen then core.step(10) end
      end
      assert.is_not_nil(seen)
      local sup = tonumber(seen:match("(%d+)$"))
      os.execute("kill -9 " .. sup)
      deadline = core.now() + 5
      while not p:done() and core.now() < deadline do core.step(20) end
      assert.is_true(H.exists(base .. "/" .. seen), "the killed supervisor removed its cgroup itself?")
      core.reap_runs()
      assert.is_false(H.exists(base .. "/" .. seen))
      local pbase = pids_base()
      if pbase and version == 1 then assert.is_false(H.exists(pbase .. "/" .. seen)) end
    end)
  end)
end

-- No writable cgroup (a normal user here): the limits are rlimits, and the
-- report and require say so.
if not base then
  describe("sandbox without a writable cgroup", function()
    it("require = { \"cgroup\" } fails closed, naming what is missing and how to get it", function()
      local ok, err = pcall(new, { sandbox = { require = { "cgroup" } } })
      assert.is_false(ok)
      assert.matches("sandbox.require names cgroup", err, 1, true)
      assert.matches("Delegate=yes", err, 1, true)
    end)

    it("a run that requires its cgroup (sandbox.require) refuses to start without it", function()
      local p <close> = assert(core.spawn{ argv = { "/bin/echo", "RAN" }, timeout = 10, sup = common.sup_path(),
        sandbox = { read_only = { "/usr", "/bin", "/lib", "/lib64" }, memory = 64 * MiB, cgroup_required = true } })
      while not p:done() do core.step(20) end
      local r = p:result()
      assert.not_matches("RAN", r.output)
      assert.matches("refusing to run the program: the sandbox's cgroup is required", r.output, 1, true)
      assert.equal(127, r.exit_code)
    end)

    it("enforced() says rlimits and why; a block over memory is not stopped by a cgroup", function()
      local ex <close> = new{ sandbox = { memory = 64 * MiB } }
      local e = ex:enforced()
      assert.matches("^rlimits %(no writable cgroup: ", e.limits)
      assert.is_false(e.cgroup)
      assert.matches("not enforced", e.memory)
      -- what that means: the 256 MiB block runs to its end
      local r = ex:execute{ { lang = "python", code = HOG } }
      assert.matches("ALLOCATED 268435456", r.output)
    end)
  end)
end

describe("sandbox.memory setting", function()
  it("is an integer number of bytes, or false", function()
    local ok, err = pcall(new, { sandbox = { memory = "64m" } })
    assert.is_false(ok)
    assert.matches("sandbox.memory must be an integer number of bytes", err, 1, true)
    ok, err = pcall(new, { sandbox = { memory = 1000 } })
    assert.is_false(ok)
    assert.matches("sandbox.memory", err, 1, true)
    local ex <close> = new{ sandbox = { memory = false } }
    assert.is_false(ex:enforced().memory)
  end)
end)
