-- bench/chaos/chaos.lua: the chaos benchmark's runner (started by
-- bench/chaos/run.sh, which sets the paths). CHAOS_N iterations, alternately
-- LocalExecutor and DockerExecutor: each is a fresh host process
-- (bench/chaos/host.lua) chatting with the scripted model server; the model's
-- code (bench/chaos/model.lua) leaves state around (files in the work_dir, a
-- setsid'd background process, a setsid'd TERM-ignoring tree that outlives a
-- short timeout), and the host is SIGKILLed at a random moment. A fresh host
-- process of the same kind follows each one (it must clean up what the dead
-- one left); then what the two left is checked (bench/chaos/scan.lua). At
-- the end: leftover processes, containers, volumes, temporary files and cpu
-- cgroups, and how long after its deadline each block's tree was dead. One
-- Markdown table on stdout (bench/chaos/report.lua), the raw numbers in
-- CHAOS_RESULTS (JSON).
local fake = require("spec.support.fake_openai")
local U = require("bench.chaos.util")
local model = require("bench.chaos.model")
local report = require("bench.chaos.report")
local q, log, knob, number, read_file, uptime = U.q, U.log, U.knob, U.number, U.read_file, U.uptime

local DIR = assert(os.getenv("CHAOS_DIR"), "CHAOS_DIR: run bench/chaos/run.sh")
local HOST = assert(os.getenv("CHAOS_HOST_SCRIPT"), "CHAOS_HOST_SCRIPT: run bench/chaos/run.sh")
local LUA = knob("LUA", "lua5.4")
local N = U.integer("CHAOS_N", "1000")
local TIMEOUT = number("CHAOS_TIMEOUT", "1")
local SEED = U.integer("CHAOS_SEED", tostring(os.time()))
local SPREAD = number("CHAOS_SPREAD", "1.1")      -- kill moment: uniform in [0, SPREAD * an unkilled chat]
local RECAL = math.max(1, U.integer("CHAOS_RECAL", "50"))
local SETTLE = number("CHAOS_SETTLE", "3")        -- seconds before the final count
local MAX_SECONDS = number("CHAOS_MAX_SECONDS", "0")
local IMAGE = knob("CHAOS_IMAGE", "agentbox/sandbox:latest")
local DEFAULT_WORKDIR = knob("CHAOS_DEFAULT_WORKDIR", "0") == "1"
local TRANSFER = knob("CHAOS_TRANSFER", "mix")    -- bind | archive | mix (DockerExecutor only)
local KINDS = knob("CHAOS_KINDS", "local,docker")
-- CHAOS_SELFTEST=1: plant one leftover of each kind, to show they are counted
local SELFTEST = knob("CHAOS_SELFTEST", "0") == "1"
-- CHAOS_FRESH_START=0: no fresh start after a chat (a control run: what the
-- dead hosts leave when nothing cleans up)
local FRESH = knob("CHAOS_FRESH_START", "1") ~= "0"
-- CHAOS_LATE (0.5): the share of Docker chats killed during the timeout
-- block whose fresh start waits until the block's deadline and grace are
-- past: the container's supervisor must kill the tree with its host dead
-- (an immediate fresh start removes the container first)
local LATE = number("CHAOS_LATE", "0.5")
-- CHAOS_KILL=group: SIGKILL the host's whole process group (as a shell's job
-- control, or coreutils timeout without --foreground, would) instead of the
-- host alone: the spawn server and the supervisors die with it
local KILL = knob("CHAOS_KILL", "host")
if KILL ~= "host" and KILL ~= "group" then error("CHAOS_KILL must be host or group", 0) end
-- marks this run's processes (CHAOS_MARK=<RUN>-<iteration>[r])
local RUN = ("chaos%d%04x"):format(SEED % 100000, math.random(0, 0xffff))
local TMP = DIR .. "/tmp"                         -- TMPDIR of every host process
local LINGER = number("CHAOS_LINGER", "2")        -- how long a fresh start's leftovers may take to go

local hosts = {}                  -- "pid start" -> true: every host process started
local scan = require("bench.chaos.scan").new{
  dir = DIR, tmp = TMP, run = RUN, timeout = TIMEOUT, beat = model.BEAT, linger = LINGER,
  sup = os.getenv("AGENTBOX_SUP") and U.sh("realpath -e " .. q(os.getenv("AGENTBOX_SUP")) .. " 2>/dev/null"):match("[^\n]+"),
  hosts = hosts,
}
local server                      -- the scripted model server
local CG                          -- this run's cpu cgroup (scan.setup_cgroup)
local planted = {}                -- what the self-test planted outside the marks

---------------------------------------------------------------- one host process

local function parse_log(path)
  local r = { phase = "start", at = {} }
  for _, l in ipairs(U.lines(read_file(path))) do
    local pid, st = l:match("^#CHAOS pid (%d+) (%d+)$")
    if pid then r.pid, r.started = pid, st end
    local at, ph = l:match("^#CHAOS phase (%S+) (.+)$")
    if ph then r.phase, r.at[ph] = ph, tonumber(at) end
    local wd = l:match("^#CHAOS work_dir (.+)$")
    if wd then r.work_dir = wd end
  end
  if r.pid then
    hosts[r.pid .. " " .. r.started] = true
  end
  return r
end

-- Runs one host process to completion or to its SIGKILL after kill_after
-- seconds (nil: never). coreutils timeout is its parent, so the pid cannot be
-- reused under the kill; --foreground: only the host itself is killed, not
-- its process group (CHAOS_KILL=group: the group, timeout included).
local function run_host(dir, role, variant, mark, kill_after)
  os.execute("mkdir -p " .. q(dir .. "/cwd") .. " " .. q(dir .. "/hb") .. " && chmod 0777 " .. q(dir .. "/hb"))
  local vars = {
    "CHAOS_ROLE=" .. role, "CHAOS_KIND=" .. variant.executor, "CHAOS_TRANSFER=" .. (variant.transfer or ""),
    "CHAOS_IMAGE=" .. IMAGE, "CHAOS_TIMEOUT=" .. TIMEOUT, "CHAOS_BASE_URL=" .. server.base_url,
    -- a path that does not exist yet: the executor creates it, so it may hand
    -- it to the sandbox user (an existing root-owned one may be refused)
    "CHAOS_WORK_DIR=" .. (DEFAULT_WORKDIR and "" or dir .. "/cwd/work"), "CHAOS_HB=" .. dir .. "/hb",
    "CHAOS_MARK=" .. mark, "TMPDIR=" .. TMP,
  }
  for i, v in ipairs(vars) do vars[i] = q(v) end
  local killer = kill_after and ("timeout %s-s KILL %.3f "):format(KILL == "host" and "--foreground " or "", kill_after)
    or ""
  local logf = dir .. "/" .. role .. ".log"
  local t0, t0_real = uptime(), tonumber(U.sh("date +%s.%N"))
  -- the host runs in this run's cpu cgroup when there is one
  local enter = CG and ("echo $$ > %s && "):format(q(CG .. "/cgroup.procs")) or ""
  local ok, how, code = os.execute(("cd %s && %sexec env %s %s%s %s > %s 2>&1"):format(
    q(dir .. "/cwd"), enter, table.concat(vars, " "), killer, LUA, q(HOST), q(logf)))
  local r = parse_log(logf)
  r.wall = uptime() - t0
  r.to_block3 = r.at.execute2 and r.at.execute2 - t0   -- when the timeout block began
  r.status = ok and 0 or (how == "exit" and code or 128 + (code or 0))
  -- timeout exits 128 + 9 after a SIGKILL (the host never leaves that way
  -- itself, and reaches its last phase when it finishes)
  r.killed = kill_after ~= nil and r.status == 137 and r.phase ~= "exit"
  r.log, r.cwd = logf, dir .. "/cwd"
  -- the kill on the heartbeats' clock (a few ms early: the shell and timeout
  -- start after the stamp)
  r.kill_real = r.killed and t0_real + kill_after or nil
  return r
end

-- CHAOS_SELFTEST: leftovers of this iteration, as if its fresh start had
-- missed them (an unkilled calibration chat, so its host is dead).
local function plant(i, v, r, vols)
  if v.executor == "local" then
    os.execute(("setsid env CHAOS_MARK=%s-%d sleep 600 </dev/null >/dev/null 2>&1 &"):format(RUN, i))
    os.execute("touch " .. q(("%s/agentbox-%s-%s-selftest"):format(TMP, r.pid, r.started)))
    -- an unmarked one in the host's cwd, as a spawn server would be
    os.execute(("cd %s && setsid sleep 600 </dev/null >/dev/null 2>&1 &"):format(q(r.cwd)))
    -- an unmarked child of this runner
    planted.child = io.popen("echo $$; exec sleep 600")
    planted.child_pid = planted.child:read("l")
    -- a cpu cgroup of a dead owner, where a run's would be
    for _, d in ipairs(CG and { CG } or scan.cpu_cgroup_dirs()) do
      local cg = d .. "/agentbox-" .. r.pid
      if not planted.cgroup and os.execute("mkdir " .. q(cg) .. " 2>/dev/null") then planted.cgroup = cg end
    end
  elseif v.transfer == "bind" then
    -- agentbox.keep: other executors' reapers leave it alone
    os.execute(("docker run -d --network none --label agentbox=1 --label agentbox.keep=1 --label agentbox.pid=%s "
      .. "--label agentbox.started=%s -v %s-selftest:/x --entrypoint sleep %s 600 >/dev/null"):format(
      r.pid, r.started, RUN, q(IMAGE)))
    vols[#vols + 1] = RUN .. "-selftest"
  end
end

---------------------------------------------------------------- iterations

local iterations = {}

-- One chat (SIGKILLed after kill_after seconds, or not), its fresh start,
-- and the check of what the two left.
local function iteration(i, v, kill_after, calibration)
  local dir = ("%s/it/%04d"):format(DIR, i)
  local r = run_host(dir, "chat", v, ("%s-%d"):format(RUN, i), kill_after)
  local vols = v.executor == "docker" and scan.volumes_of(r.pid, r.started) or {}
  local late
  if v.executor == "docker" and r.killed and FRESH and math.random() < LATE then
    local start = tonumber(read_file(dir .. "/hb/start") or "")
    local left = start and start + TIMEOUT + 1 - tonumber(U.sh("date +%s.%N"))   -- grace 0.5 s, and as much again
    if left and left > 0 then
      late = true
      os.execute(("sleep %.3f"):format(left))
    end
  end
  local rr = FRESH and run_host(dir .. "/restart", "restart", v, ("%s-%dr"):format(RUN, i), nil)
    or { status = 0, wall = 0 }
  local it = { i = i, variant = v.name, kill_after = kill_after, killed = r.killed, status = r.status,
               phase = r.phase, wall = r.wall, dir = dir, calibration = calibration, restart_status = rr.status,
               work_dir = r.work_dir, restart_wall = rr.wall, late = late, to_block3 = r.to_block3,
               kill_real = r.kill_real }
  v.chats = v.chats + 1
  if r.killed then
    v.killed = v.killed + 1
    local ph = r.phase:match("^(%S+)")   -- "executed1 exit 0" -> "executed1"
    v.phases[ph] = (v.phases[ph] or 0) + 1
  elseif r.status == 0 then
    v.finished = v.finished + 1
  else
    v.errors = v.errors + 1
    log("iteration %d (%s): host exited %d in phase %s:\n%s", i, v.name, r.status, r.phase, U.tail(r.log, 8))
  end
  if rr.status ~= 0 then
    v.restart_errors = v.restart_errors + 1
    log("iteration %d (%s): the fresh start exited %d:\n%s", i, v.name, rr.status, U.tail(rr.log, 8))
  end
  if SELFTEST and calibration and v.chats == 1 then plant(i, v, r, vols) end
  local left = scan.left_by(dir, {
    { mark = ("%s-%d"):format(RUN, i), pid = r.pid, started = r.started },
    { mark = ("%s-%dr"):format(RUN, i), pid = rr.pid, started = rr.started },
  }, v.executor == "docker", vols)
  it.left, it.volumes_seen = {}, #vols
  local n = 0
  for k, list in pairs(left) do
    it.left[k] = #list
    n = n + #list
  end
  if n > 0 then
    local what = {}
    for _, pr in ipairs(left.processes) do what[#what + 1] = pr.pid .. ":" .. pr.comm .. "(" .. pr.state .. ")" end
    for _, c in ipairs(left.containers) do what[#what + 1] = "container " .. c end
    for _, vname in ipairs(left.volumes) do what[#what + 1] = "volume " .. vname end
    for _, e in ipairs(left.temp) do what[#what + 1] = e end
    for _, d in ipairs(left.cgroups) do
      -- its run-<supervisor pid> children and the tasks still in them
      local runs = U.lines(U.sh("cd " .. q(d) .. " 2>/dev/null && for r in run-*; do [ -d \"$r\" ] && echo \"$r:$(wc -l < $r/tasks)\"; done"))
      what[#what + 1] = ("cgroup %s (%s)"):format(d, #runs > 0 and table.concat(runs, " ") or "no runs")
    end
    log("iteration %d (%s, %s): left after the fresh start: %s", i, v.name,
      r.killed and ("killed at %.2f s in %s"):format(kill_after, r.phase) or "not killed", table.concat(what, " "))
  end
  iterations[#iterations + 1] = it
  return it, r
end

-- Calibration: unkilled chats give the span the kill moment is drawn from
-- (the median of a variant's last five); one per variant first (it must
-- reach the end of the timeout block), then one every RECAL chats of that
-- variant, since the load of a shared machine drifts.
local function calibrate(i, v, first)
  local it, r = iteration(i, v, nil, true)
  if r.status ~= 0 or not (read_file(r.log) or ""):find("executed2 exit 124", 1, true) then
    local msg = ("calibration chat %d (%s) did not run both turns (exit %d); its log %s ends:\n%s"):format(
      i, v.name, r.status, r.log, U.tail(r.log, 15))
    if first then error(msg, 0) end
    log("%s", msg)
    return
  end
  v.walls, v.pres = v.walls or {}, v.pres or {}
  table.insert(v.walls, it.wall)
  table.insert(v.pres, r.to_block3)
  if #v.walls > 5 then table.remove(v.walls, 1) table.remove(v.pres, 1) end
  v.span, v.pre = U.summary(v.walls).median, U.summary(v.pres).median
  log("calibration %s: an unkilled chat took %.2f s, %.2f s of it before the timeout block", v.name, it.wall, r.to_block3)
end

-- local, docker/bind, docker/archive (CHAOS_KINDS, CHAOS_TRANSFER); the
-- chats cycle through the kinds, and Docker's through its transfers
local function variants()
  local kinds, all = {}, {}
  for k in KINDS:gmatch("[^,%s]+") do
    if k ~= "local" and k ~= "docker" then error("CHAOS_KINDS: unknown kind " .. k .. " (local, docker)", 0) end
    local ts = { false }
    if k == "docker" then
      ts = TRANSFER == "mix" and { "bind", "archive" } or { TRANSFER }
      if ts[1] ~= "bind" and ts[1] ~= "archive" then error("CHAOS_TRANSFER must be bind, archive or mix", 0) end
    end
    local kind = { name = k, list = {}, drawn = 0 }
    for _, t in ipairs(ts) do
      local v = { name = k .. (t and ("/" .. t) or ""), executor = k, transfer = t or nil,
                  chats = 0, killed = 0, finished = 0, errors = 0, restart_errors = 0, phases = {}, drawn = 0 }
      kind.list[#kind.list + 1] = v
      all[#all + 1] = v
    end
    kinds[#kinds + 1] = kind
  end
  return kinds, all
end

---------------------------------------------------------------- main

local function main()
  math.randomseed(SEED)
  os.execute("mkdir -p " .. q(TMP) .. " " .. q(DIR .. "/it"))
  CG = scan.setup_cgroup()
  log("the hosts run in the cpu cgroup %s", CG or "of this process (a cgroup of the bench's own cannot be made)")
  local kinds, all = variants()
  local uses_docker = false
  for _, v in ipairs(all) do uses_docker = uses_docker or v.executor == "docker" end
  if uses_docker and not require("agentbox").docker.available() then
    error("the Docker daemon does not answer: start it, or run CHAOS_KINDS=local", 0)
  end
  local volumes_before = uses_docker and scan.volume_set() or {}
  local cgroups_before = scan.cgroups()
  server = fake.start(model.SCRIPT)
  local load_start, t_start = U.loadavg(), uptime()

  local i = 0
  for _, v in ipairs(all) do
    i = i + 1
    calibrate(i, v, true)
  end
  local done, step = 0, math.max(1, N // 20)
  for n = 1, N do
    if MAX_SECONDS > 0 and uptime() - t_start > MAX_SECONDS then
      log("CHAOS_MAX_SECONDS=%g reached after %d of %d chats", MAX_SECONDS, n - 1, N)
      break
    end
    done = n
    local kind = kinds[(n - 1) % #kinds + 1]
    kind.drawn = kind.drawn + 1
    local v = kind.list[(kind.drawn - 1) % #kind.list + 1]
    v.drawn = v.drawn + 1
    if v.drawn % RECAL == 0 then
      i = i + 1
      calibrate(i, v, false)
    end
    i = i + 1
    -- the timeout block is most of a chat: half of the kills are drawn from
    -- what comes before it (start-up, reaping, container creation, the
    -- model's reply, blocks 1 and 2), where they would otherwise be rare
    local upto = math.random() < 0.5 and SPREAD * v.span or v.pre
    iteration(i, v, math.random() * upto, false)
    if n % step == 0 then log("%d/%d iterations, %.0f s", n, N, uptime() - t_start) end
  end
  server:stop()

  -- every deadline plus grace is long past once the last fresh start is
  -- done; the settle time covers kills still in flight
  os.execute("sleep " .. SETTLE)
  local R = {
    cmd = os.getenv("CHAOS_CMD") or "bash bench/chaos/run.sh", seed = SEED, kill = KILL, timeout = TIMEOUT, spread = SPREAD,
    default_workdir = DEFAULT_WORKDIR, fresh = FRESH, done = done, n = N, recal = RECAL, linger = LINGER,
    beat = model.BEAT, run = RUN, late = LATE, variants = all, iterations = iterations, results = os.getenv("CHAOS_RESULTS"),
    procs = scan.processes(), containers = uses_docker and scan.containers() or {}, temp = scan.temp(),
    cgroups = {}, cwd_files = {}, new_unused = {}, n_our_vols = 0,
  }
  -- agentbox cgroups: all of those in this run's cgroup, else new ones
  -- beside this process whose owner (a spawn server or host pid) is gone
  for d in pairs(scan.cgroups()) do
    local owner = d:match("agentbox%-(%d+)$")
    if CG or not cgroups_before[d] and not (owner and read_file("/proc/" .. owner .. "/stat")) then
      R.cgroups[#R.cgroups + 1] = d
    end
  end
  R.cg = CG
  table.sort(R.cgroups)
  -- volumes: those of our leftover containers, and new ones no container uses
  local our_vols = {}
  for _, c in ipairs(R.containers) do for _, vname in ipairs(c.volumes) do our_vols[vname] = true end end
  for _ in pairs(our_vols) do R.n_our_vols = R.n_our_vols + 1 end
  for vname in pairs(uses_docker and scan.volume_set() or {}) do
    if not volumes_before[vname] and not our_vols[vname]
       and #U.docker_lines("ps -aq --filter volume=" .. vname) == 0 then
      R.new_unused[#R.new_unused + 1] = vname
    end
  end
  -- with the default work_dir, nothing may land in a host's cwd, and the
  -- cwd stays the bench's (today it is the work_dir, chowned for Docker)
  R.cwd_chowned = {}
  if DEFAULT_WORKDIR then
    R.cwd_files = U.lines(U.sh("find " .. q(DIR .. "/it") .. " -path '*/cwd/*' -prune -print 2>/dev/null"))
    R.cwd_chowned = U.lines(U.sh("find " .. q(DIR .. "/it") .. " -type d -name cwd ! -uid \"$(id -u)\" 2>/dev/null"))
  end
  for _, it in ipairs(iterations) do it.tree = scan.tree_of(it.dir) end
  R.load_start, R.load_end, R.elapsed = load_start, U.loadavg(), uptime() - t_start
  local total = report(R)

  -- Clean up what this run made and left: its processes (by pid, marked or
  -- in the bench dir, checked again), its containers with their volumes,
  -- and what the self-test planted.
  for _, pr in ipairs(R.procs) do
    local again = U.proc_info(pr.pid)
    if again and again.cmd == pr.cmd and ((pr.mark and again.mark == pr.mark) or again.cwd:sub(1, #DIR + 1) == DIR .. "/") then
      os.execute("kill -KILL " .. pr.pid .. " 2>/dev/null")
    end
  end
  if planted.child then
    os.execute("kill -KILL " .. planted.child_pid)
    planted.child:close()
  end
  if planted.cgroup then os.execute("rmdir " .. q(planted.cgroup)) end
  if CG then
    for _, d in ipairs(R.cgroups) do scan.remove_cgroup(d) end
    scan.remove_cgroup(CG)
  end
  for _, c in ipairs(R.containers) do os.execute("docker rm -fv " .. c.id .. " >/dev/null 2>&1") end
  for _, vname in ipairs(R.new_unused) do our_vols[vname] = true end
  for vname in pairs(our_vols) do   -- named ones only the self-test makes
    if vname:sub(1, #RUN) == RUN then os.execute("docker volume rm " .. vname .. " >/dev/null 2>&1") end
  end
  return total
end

local ok, res = pcall(main)
if server then server:stop() end
if not ok then
  io.stderr:write("chaos: ", tostring(res), "\n")
  os.exit(2)
end
os.exit(res == 0 and 0 or 1)
