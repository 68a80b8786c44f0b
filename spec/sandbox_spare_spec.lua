-- The spare sandbox (src/sandbox_spare.c): the spawn server makes the next
-- sandboxed block's namespaces and mounts while the current block runs.
-- What must hold: a spare serves one block (never two blocks in one set of
-- namespaces); a block whose sandbox differs (another executor, work_dir
-- replaced under the same name) never runs in a spare made for another;
-- code cannot reach the spare made for the block after it; nothing of a
-- spare outlives its host. And it is really used: the sandbox's init was
-- started before the block was asked for.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local H = require("spec.support.helpers")
local common = require("agentbox.executor.common")

local dirs = {}
local function tmpdir(tag)
  local d = H.tmpdir("spare-" .. tag)
  dirs[#dirs + 1] = d
  return d
end

local function new(opts)
  opts = opts or {}
  if opts.work_dir == nil then opts.work_dir = tmpdir("ws") .. "/work" end
  opts.timeout = opts.timeout or 10
  opts.sandbox = true
  return agentbox.LocalExecutor(opts)
end

local function sh(ex, code)
  local r = ex:execute{ { lang = "sh", code = code } }
  assert.equal(0, r.exit_code, r.output)
  return r.output
end

local function uptime()
  local f = assert(io.open("/proc/uptime"))
  local s = tonumber(f:read("a"):match("^(%S+)"))
  f:close()
  return s
end

-- The sandbox's init's start, in seconds since boot (the block prints
-- field 22 of /proc/1/stat, in clock ticks: 100 a second).
local INIT_START = [[set -- $(sed 's/.*) //' /proc/1/stat); shift 19; echo "INIT_START $1"]]
local function init_start(out)
  return tonumber(out:match("INIT_START (%d+)")) / 100
end

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

-- the live children of process ppid (a string), from /proc
local function children(ppid)
  local out = {}
  for p in io.popen("ls /proc"):lines() do
    local f = p:match("^%d+$") and io.open("/proc/" .. p .. "/stat")
    local st = f and f:read("a")
    if f then f:close() end
    if st and st:match("%) [^Z] (%d+)") == ppid then out[#out + 1] = p end
  end
  return out
end

describe("spare sandboxes", function()
  after_each(function()
    for i = #dirs, 1, -1 do pcall(H.rm_rf, dirs[i]) dirs[i] = nil end
  end)

  it("are made ahead: the next block's init was started while the block before ran", function()
    local ex <close> = new()
    sh(ex, "sleep 0.5")
    local asked = uptime()
    local started = init_start(sh(ex, INIT_START))
    -- made when the sleeping block was dispatched, ~0.5 s before this one
    assert.is_true(started < asked - 0.2, ("init started at %.2f, block asked at %.2f"):format(started, asked))
  end)

  it("serve one block each: a new PID namespace, /tmp and namespaces in every block", function()
    local ex <close> = new()
    local before = {}
    for i = 1, 25 do
      local out = sh(ex, ([[
for n in user pid mnt net ipc uts; do echo "$n $(readlink /proc/self/ns/$n)"; done
ls /tmp | grep left-by; echo "tmp-end"
: > /tmp/left-by-%d
echo "me $$"
]]):format(i))
      -- nothing the block before left in /tmp
      assert.matches("uts [^\n]*\ntmp%-end\n", out)
      -- the shell is the first process init forked: nobody ran in this PID namespace before
      assert.matches("me 2\n", out)
      -- the spare of this block was made while the block before still ran,
      -- so no id can be one the kernel freed and gave again
      local now = {}
      for n, id in out:gmatch("(%a+) (%a+:%[%d+%])\n") do
        assert.is_nil(before[id], ("block %d shares the %s namespace %s of the block before"):format(i, n, id))
        now[id] = true
      end
      before = now
    end
  end)

  it("cannot be found or signalled by the block before (it is outside that block's PID namespace)", function()
    local ex <close> = new()
    sh(ex, "true")   -- from here on a spare waits beside each block
    local out = sh(ex, [[
n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo "visible $n"
hits=0; p=1
while [ $p -le 4000 ]; do kill -0 $p 2>/dev/null && hits=$((hits+1)); p=$((p+1)); done
echo "signalable $hits"
kill -9 -1 2>/dev/null; echo survived
]])
    -- init, the shell and the subshell of the glob: nothing of the host or of the spare
    local visible = tonumber(out:match("visible (%d+)"))
    assert.is_true(visible <= 4, out)
    assert.is_true(tonumber(out:match("signalable (%d+)")) <= 4, out)
    -- the spare was out of reach: the next block runs in it
    assert.matches("survived", out)
    local asked = uptime()
    local started = init_start(sh(ex, INIT_START))
    assert.is_true(started < asked - 0.001 or started <= asked, ("%.2f %.2f"):format(started, asked))
  end)

  it("never serve another executor's block: two executors alternating each see their own work_dir", function()
    local a <close> = new()
    local b <close> = new()
    for i = 1, 8 do
      for _, e in ipairs({ { a, "A" }, { b, "B" } }) do
        local out = sh(e[1], ("echo %s%d > mine-%d; pwd; ls"):format(e[2], i, i))
        assert.matches(e[1].work_dir, out, 1, true)
        assert.equal(e[2] .. i .. "\n", H.read(e[1].work_dir .. "/mine-" .. i))
      end
    end
    assert.is_nil(H.read(a.work_dir .. "/mine-1"):match("B"))
    local n = 0
    for f in io.popen("ls " .. b.work_dir):lines() do n = n + (f:match("^mine%-") and 1 or 0) end
    assert.equal(8, n)
  end)

  it("are not used when work_dir was removed and made again under the same name", function()
    local wd = tmpdir("again") .. "/work"
    local ex = new({ work_dir = wd })
    sh(ex, "echo one > first")
    ex:close()
    assert.equal("one\n", H.read(wd .. "/first"))
    -- the spare bound the directory that is about to go; a new executor
    -- gets the same name for a new directory
    H.rm_rf(wd)
    assert(core.mkdir_p(wd))
    local again <close> = new({ work_dir = wd })
    local asked = uptime()
    local out = sh(again, "echo two > second; ls; " .. INIT_START)
    assert.equal("two\n", H.read(wd .. "/second"))
    assert.is_nil(out:match("first"))
    -- a sandbox made for this block (not the spare, whose work_dir is gone)
    assert.is_true(init_start(out) >= math.floor(asked * 100) / 100 - 0.01)
  end)

  it("go when their executor closes, and are made only for LocalExecutor's runs (core.spawn's spare = true)", function()
    -- our spawn server's children that were not there before: runs kept by
    -- other specs' executors (a preload template, a stateful session) are
    -- children too, and stay
    local function server_children()
      local out = {}
      for _, server in ipairs(children(my_pid())) do
        for _, k in ipairs(children(server)) do out[k] = true end
      end
      return out
    end
    local before = server_children()
    local function spares()
      local out = {}
      for k in pairs(server_children()) do
        if not before[k] then out[#out + 1] = k end
      end
      return out
    end
    local ex = new()
    sh(ex, "true")
    assert.is_true(#spares() >= 1)
    ex:close()
    local deadline = core.now() + 5
    while #spares() > 0 and core.now() < deadline do core.step(20) end
    assert.same({}, spares())
    -- a sandboxed core.spawn without spare = true leaves none behind
    local p <close> = assert(core.spawn{ argv = { "/bin/true" }, timeout = 10, sup = common.sup_path(),
                                         sandbox = { read_only = { "/usr", "/bin", "/lib", "/lib64" } } })
    while not p:done() do core.step(20) end
    assert.equal(0, p:result().exit_code)
    deadline = core.now() + 2   -- its supervisor's exit, which the server reaps
    while #spares() > 0 and core.now() < deadline do core.step(20) end
    assert.same({}, spares())
  end)

  it("do not outlive their host: its spare goes with it, cgroups included", function()
    -- a host that just exits (not killed with its process group, as a host
    -- that H.lua runs under a supervisor would be): its spawn server reads
    -- EOF, and so does the spare
    local script = tmpdir("host") .. "/host.lua"
    H.write(script, ("package.path, package.cpath = %q, %q\n"):format(package.path, package.cpath) .. [[
      local agentbox = require("agentbox")
      local ex = agentbox.LocalExecutor{ timeout = 10, sandbox = true }
      for _ = 1, 3 do assert(ex:execute{ { lang = "sh", code = "true" } }.exit_code == 0) end
      -- our spawn server's children: the spare, waiting
      local me = io.open("/proc/self/stat"):read("a"):match("^(%d+)")
      local function kids(ppid)
        local out = {}
        for p in io.popen("ls /proc"):lines() do
          local f = p:match("^%d+$") and io.open("/proc/" .. p .. "/stat")
          local st = f and f:read("a")
          if f then f:close() end
          if st and st:match("%) %a (%d+)") == ppid then out[#out + 1] = p end
        end
        return out
      end
      for _, s in ipairs(kids(me)) do
        for _, k in ipairs(kids(s)) do print("SPARE " .. k) end
      end
      os.exit(0)   -- no close: the host just goes
    ]])
    local f = assert(io.popen("lua5.4 " .. script .. " 2>&1"))
    local output = f:read("a")
    f:close()
    local spares = {}
    for p in output:gmatch("SPARE (%d+)") do spares[#spares + 1] = tonumber(p) end
    assert.is_true(#spares >= 1, output)
    local deadline = core.now() + 5
    local alive
    repeat
      alive = 0
      for _, p in ipairs(spares) do if H.alive(p) then alive = alive + 1 end end
      if alive > 0 then core.step(50) end
    until alive == 0 or core.now() > deadline
    assert.equal(0, alive)
    -- and the cgroups it had entered (where it could: root) are gone
    for _, p in ipairs(spares) do
      local find = assert(io.popen("find /sys/fs/cgroup -maxdepth 4 -name agentbox-sb-" .. p .. " 2>/dev/null"))
      local left = find:read("a")
      find:close()
      assert.equal("", left)
    end
  end)
end)
