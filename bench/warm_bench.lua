-- bench/warm_bench.lua: agentbox's side of bench/warm.sh (issue 11's table).
--
--   lua5.4 bench/warm_bench.lua rows N WARMUP OUT.json     per-block latency, rows interleaved in random order,
--                                                         on started executors: exec path, warm = true, preload,
--                                                         stateful; then where a warm block's time goes
--   lua5.4 bench/warm_bench.lua pool N WARMUP OUT.json     DockerPool claim -> first print(1) result
--   lua5.4 bench/warm_bench.lua fresh N WARMUP OUT.json    fresh = true, per execute (pool refilled between calls,
--                                                         then back to back)
--   lua5.4 bench/warm_bench.lua conc K M WARMUP OUT.json   K executors in K tasks, M print(1) each: warm = true,
--                                                         then the exec path (BENCH_CONC_EXEC=0: warm only)
--   lua5.4 bench/warm_bench.lua tput K SECONDS OUT.json    K warm executors in K tasks, print(1) back to back for
--                                                         SECONDS, then echo hi: completed executions per second
--   lua5.4 bench/warm_bench.lua report DIR OUT.json        the Markdown table (bench/warm_report.lua)
--
-- Environment: BENCH_IMAGE, BENCH_TMP (work dirs go under it), BENCH_ROUND.
local B = require("benchlib")
local W = require("warm_blocks")

local mode = arg[1]
if mode == "report" then
  require("warm_report")(arg[2], arg[3])
  return
end

local agentbox = require("agentbox")
local core = require("agentbox.core")
local task = require("agentbox.task")
local now = core.now
local IMAGE = os.getenv("BENCH_IMAGE") or "agentbox/sandbox:latest"
local TMP = os.getenv("BENCH_TMP") or "/tmp/agentbox-bench"
local tag = os.getenv("BENCH_ROUND") or "0"
local take = B.engine_ops(core)
local PY, SH, SALES = W.PY, W.SH, W.SALES

local check = B.check

local function executor(name, o)
  o = o or {}
  o.image, o.timeout = IMAGE, 60
  o.work_dir = ("%s/ab-%s-%s"):format(TMP, tag, name)
  return agentbox.DockerExecutor(o)
end

local loadavg = B.loadavg

-- one request to a warm executor's block server, straight through its
-- connection (no executor Lua, no code file): the server's floor
local function server_run(ex, argv)
  return task.sync(function()
    local p = assert(core.spawn{ server = ex._conn, argv = argv, cwd = "/workspace", stdin = "", timeout = 60,
                                 grace = 0.5, max_output = 65536, seccomp = true })
    repeat
      task.wait(p)
      p:read()
    until p:done()
    local r = p:result()
    p:close()
    return r
  end)
end

local all = B.all

-- CPU time in ms so far. machine(): the whole machine's busy and idle
-- time (/proc/stat). self(): this Lua process (clock(), microseconds).
-- daemons(pids): dockerd's, containerd's and the shims' (/proc/PID/stat,
-- 10 ms ticks: meaningful summed over many blocks). container(id): the
-- container's cgroup (cgroup v1 cpuacct or v2 cpu.stat; nil when neither is
-- readable): its block server, supervisors, interpreters.
local HZ = 100
local CPU = {}
function CPU.machine()
  local f = assert(io.open("/proc/stat"))
  local user, nice, sys, idle, iowait = f:read("l"):match("^cpu%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)")
  f:close()
  return { busy = (user + nice + sys) * 1000 / HZ, idle = (idle + iowait) * 1000 / HZ }
end
function CPU.self() return os.clock() * 1000 end
function CPU.daemon_pids()
  local p = io.popen("pidof dockerd containerd containerd-shim containerd-shim-runc-v2 runc 2>/dev/null")
  local pids = {}
  for pid in (p:read("a") or ""):gmatch("%d+") do pids[#pids + 1] = pid end
  p:close()
  return pids
end
function CPU.daemons(pids)
  local ms = 0
  for _, pid in ipairs(pids) do
    local g = io.open("/proc/" .. pid .. "/stat")
    if g then
      local ut, st = g:read("l"):match("^%d+ %b() %S+" .. (" %S+"):rep(10) .. " (%d+) (%d+)")
      g:close()
      ms = ms + (tonumber(ut) + tonumber(st)) * 1000 / HZ
    end
  end
  return ms
end
function CPU.container(id)
  if not id then return nil end
  local f = io.open("/sys/fs/cgroup/cpuacct/docker/" .. id .. "/cpuacct.usage")
  if f then
    local ns = tonumber(f:read("l"))
    f:close()
    return ns and ns / 1e6
  end
  f = io.open("/sys/fs/cgroup/system.slice/docker-" .. id .. ".scope/cpu.stat")
  if not f then return nil end
  local us = tonumber((f:read("a") or ""):match("usage_usec (%d+)"))
  f:close()
  return us and us / 1000
end

local H = {}

function H.rows(n, warm, out)
  local exs = {
    warm = executor("warm", { warm = true }),
    preload = executor("preload", { preload = { "pandas", "numpy" } }),
    stateful = executor("stateful", { stateful = true }),
  }
  if os.getenv("BENCH_WARM_EXEC") ~= "0" then exs.exec = executor("exec") end
  local res = { rows = {}, ops = {}, start_ms = {}, load_start = loadavg() }
  for name, ex in pairs(exs) do
    local t0 = now()
    ex:start()
    res.start_ms[name] = (now() - t0) * 1000
  end
  local want = exs.warm:execute(SALES).output
  assert(want:find("north", 1, true), want)
  local rows = {
    { "py_warm", "warm", PY, "1\n" }, { "sh_warm", "warm", SH, "hi\n" }, { "sales_warm", "warm", SALES, want },
    { "py_preload", "preload", PY, "1\n" }, { "sales_preload", "preload", SALES, want },
    { "py_stateful", "stateful", PY, "1\n" }, { "sales_stateful", "stateful", SALES, want },
  }
  if exs.exec then
    rows[#rows + 1] = { "py_exec", "exec", PY, "1\n" }
    rows[#rows + 1] = { "sh_exec", "exec", SH, "hi\n" }
  end
  res.cpu = {}   -- per row: this process's and the container's CPU per block, the daemons' summed
  for _, r in ipairs(rows) do
    res.rows[r[1]], res.ops[r[1]] = {}, {}
    res.cpu[r[1]] = { host = {}, container = {}, daemons_ms = 0 }
  end
  local pids = CPU.daemon_pids()
  math.randomseed(11)
  for i = 1, warm + n do
    local order = {}
    for j = 1, #rows do table.insert(order, math.random(#order + 1), j) end
    for _, j in ipairs(order) do
      local name, ex, block, w = rows[j][1], exs[rows[j][2]], rows[j][3], rows[j][4]
      local d0, c0 = CPU.daemons(pids), CPU.container(ex.container_id)
      take()
      local h0 = CPU.self()
      local t0 = now()
      local r = ex:execute(block)
      local dt = (now() - t0) * 1000
      local h1 = CPU.self()
      local o = take()
      local d1, c1 = CPU.daemons(pids), CPU.container(ex.container_id)
      check(r, w)
      if i > warm then
        local c = res.cpu[name]
        table.insert(res.rows[name], dt)
        table.insert(res.ops[name], o)
        table.insert(c.host, h1 - h0)
        if c0 and c1 then table.insert(c.container, c1 - c0) end
        c.daemons_ms = c.daemons_ms + (d1 - d0)
      end
    end
  end
  -- where a warm block's time goes: the server's round trip with /bin/true
  -- and with `python3 -c pass`, straight through the connection
  res.floor = { srv_true = {}, srv_pypass = {} }
  for i = 1, warm + n do
    for _, f in ipairs({ { "srv_true", { "/bin/true" } }, { "srv_pypass", { "/usr/bin/python3", "-c", "pass" } } }) do
      local t0 = now()
      local r = server_run(exs.warm, f[2])
      local dt = (now() - t0) * 1000
      assert(r.exit_code == 0, f[1] .. " failed: " .. tostring(r.error or r.exit_code))
      if i > warm then table.insert(res.floor[f[1]], dt) end
    end
  end
  -- ... and inside the container, no server: interpreters started by posix_spawn + wait
  local r = exs.warm:execute(W.INSIDE)
  check(r)
  res.inside = W.parse_inside(r.output)
  -- the sales block's own pandas work in a preloaded block (no import: the template has pandas)
  r = exs.preload:execute(W.PANDAS_WORK)
  check(r)
  res.pandas_work_ms = tonumber(r.output:match("^(%S+)"))
  for _, ex in pairs(exs) do ex:close() end
  res.load_end = loadavg()
  B.write_json(out, res)
end

function H.pool(n, warm, out)
  local pool <close> = agentbox.DockerPool{ size = 2, image = IMAGE }
  local res = { claim_first_ms = {}, claim_ms = {}, first_ms = {}, ops = {} }
  for i = 1, warm + n do
    local ex, r, claim_ms, first_ms, o = B.claim_first(pool, PY, take)
    check(r, "1\n")
    assert(ex:close())
    if i > warm then
      table.insert(res.claim_first_ms, claim_ms + first_ms)
      table.insert(res.claim_ms, claim_ms)
      table.insert(res.first_ms, first_ms)
      table.insert(res.ops, o)
    end
  end
  B.write_json(out, res)
end

function H.fresh(n, warm, out)
  local pool <close> = agentbox.DockerPool{ size = 2, image = IMAGE }
  local ex <close> = agentbox.DockerExecutor{ pool = pool, fresh = true, timeout = 60 }
  local res = { fresh_ms = {}, fresh_b2b_ms = {}, ops = {} }
  for i = 1, warm + n do
    local dt, o = B.fresh_call(pool, ex, PY, "1\n", take)
    if i > warm then
      table.insert(res.fresh_ms, dt)
      table.insert(res.ops, o)
    end
  end
  -- back to back: calls faster than the pool refills
  assert(pool:fill())
  local b2b = tonumber(os.getenv("BENCH_FRESH_B2B") or "") or n
  for _ = 1, b2b do
    local t0 = now()
    local r = ex:execute(PY)
    table.insert(res.fresh_b2b_ms, (now() - t0) * 1000)
    check(r, "1\n")
  end
  B.write_json(out, res)
end

function H.conc(k, m, warm, out)
  local res = { k = k, m = m }
  local kinds = { { "warm", { warm = true } } }
  if os.getenv("BENCH_CONC_EXEC") ~= "0" then kinds[2] = { "exec", {} } end
  for _, kind in ipairs(kinds) do
    local name = kind[1]
    local exs = {}
    for i = 1, k do
      local o = {}
      for key, v in pairs(kind[2]) do o[key] = v end
      exs[i] = executor(("conc-%s%d"):format(name, i), o)
    end
    local r = { ms = {} }
    r.start_wall_ms = all(k, function(i) exs[i]:start() return true end)
    all(k, function(i)
      for _ = 1, warm do check(exs[i]:execute(PY), "1\n") end
      return true
    end)
    r.wall_ms = all(k, function(i)
      for _ = 1, m do
        local t0 = now()
        local x = exs[i]:execute(PY)
        r.ms[#r.ms + 1] = (now() - t0) * 1000
        check(x, "1\n")
      end
      return true
    end)
    all(k, function(i) return exs[i]:close() end)
    res[name] = r
  end
  B.write_json(out, res)
end

function H.tput(k, seconds, out)
  local exs = {}
  for i = 1, k do exs[i] = executor("tput" .. i, { warm = true }) end
  all(k, function(i) exs[i]:start() check(exs[i]:execute(PY), "1\n") return true end)
  local res = { k = k, seconds = seconds, load_start = loadavg() }
  for _, row in ipairs({ { "py", PY, "1\n" }, { "sh", SH, "hi\n" } }) do
    local done, ms = 0, {}
    local pids = CPU.daemon_pids()
    local function snap()
      local m, ct = CPU.machine(), 0
      for _, e in ipairs(exs) do ct = ct + (CPU.container(e.container_id) or 0) end
      return { busy = m.busy, idle = m.idle, self = CPU.self(), daemons = CPU.daemons(pids), containers = ct }
    end
    local c0 = snap()
    local t0 = now()
    local stop = t0 + seconds
    local wall = all(k, function(i)
      while now() < stop do
        local s0 = now()
        local x = exs[i]:execute(row[2])
        check(x, row[3])
        ms[#ms + 1] = (now() - s0) * 1000
        done = done + 1
      end
      return true
    end)
    local c1 = snap()
    res[row[1]] = { done = done, wall_ms = wall, per_s = done / (wall / 1000), ms = ms,
                    cpu_busy_ms = c1.busy - c0.busy, cpu_idle_ms = c1.idle - c0.idle,
                    cpu_self_ms = c1.self - c0.self, cpu_daemons_ms = c1.daemons - c0.daemons,
                    cpu_containers_ms = c1.containers - c0.containers }
  end
  all(k, function(i) return exs[i]:close() end)
  res.load_end = loadavg()
  B.write_json(out, res)
end

local f = H[mode] or error("usage: warm_bench.lua rows|pool|fresh|conc|tput|report ...")
local nums = {}
for i = 2, #arg - 1 do nums[#nums + 1] = math.tointeger(tonumber(arg[i])) end
nums[#nums + 1] = arg[#arg]
f(table.unpack(nums))
