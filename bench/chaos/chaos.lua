-- bench/chaos/chaos.lua: the chaos benchmark's runner (started by
-- bench/chaos/run.sh, which sets the paths). CHAOS_N iterations, alternately
-- LocalExecutor and DockerExecutor: each is a fresh host process
-- (bench/chaos/host.lua) chatting with the scripted model server; the model's
-- code leaves state around (files in the work_dir, a setsid'd background
-- process, a setsid'd TERM-ignoring tree that outlives a short timeout), and
-- the host is SIGKILLed at a random moment. A fresh host process of the same
-- kind follows each one (it must clean up what the dead one left). At the
-- end: leftover processes, containers, volumes and temporary files, and how
-- long after its deadline each block's tree was dead. One Markdown table on
-- stdout, the raw numbers in CHAOS_RESULTS (JSON).
local cjson = require("cjson")
local fake = require("spec.support.fake_openai")

local getenv = os.getenv
local function knob(name, default)
  local v = getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local DIR = assert(getenv("CHAOS_DIR"), "CHAOS_DIR: run bench/chaos/run.sh")
local HOST = assert(getenv("CHAOS_HOST_SCRIPT"))
local LUA = knob("LUA", "lua5.4")
local N = math.tointeger(tonumber(knob("CHAOS_N", "1000"))) or error("CHAOS_N must be an integer")
local function number(name, default)
  local v = tonumber(knob(name, default))
  if not v or v < 0 then error(("%s must be a non-negative number, got %q"):format(name, knob(name, default)), 0) end
  return v
end
local TIMEOUT = number("CHAOS_TIMEOUT", "2")
local SEED = math.tointeger(tonumber(knob("CHAOS_SEED", tostring(os.time())))) or error("CHAOS_SEED must be an integer")
local SPREAD = number("CHAOS_SPREAD", "1.1")      -- kill moment: uniform in [0, SPREAD * unkilled duration]
local SETTLE = number("CHAOS_SETTLE", "3")        -- seconds before the final count
local IMAGE = knob("CHAOS_IMAGE", "agentbox/sandbox:latest")
local DEFAULT_WORKDIR = knob("CHAOS_DEFAULT_WORKDIR", "0") == "1"
local TRANSFER = knob("CHAOS_TRANSFER", "mix")            -- bind | archive | mix (DockerExecutor only)
local KINDS = knob("CHAOS_KINDS", "local,docker")
local RESULTS = getenv("CHAOS_RESULTS")
-- CHAOS_SELFTEST=1: plant one leftover of each kind (a marked process, an
-- owned container, a volume, a temporary entry) to show they are counted
local SELFTEST = knob("CHAOS_SELFTEST", "0") == "1"
-- CHAOS_FRESH_START=0: no fresh start after a chat (a control run: what the
-- dead hosts leave when nothing cleans up)
local FRESH = knob("CHAOS_FRESH_START", "1") ~= "0"
local SELFTEST_CHILD, SELFTEST_PID, SELFTEST_CGROUP
local BEAT = 0.010                                        -- heartbeat period of the tree, seconds
local RUN = ("chaos%d%04x"):format(SEED % 100000, math.random(0, 0xffff))  -- marks this run's processes
local TMP = DIR .. "/tmp"                                 -- TMPDIR of every host process
local SERVER                                              -- the scripted model server

local function log(...) io.stderr:write("chaos: ", string.format(...), "\n") end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end

local function lines(s)
  local t = {}
  for l in (s or ""):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- seconds since boot (10 ms resolution): enough for durations and the kill schedule
local function uptime() return tonumber(read_file("/proc/uptime"):match("^(%S+)")) end

---------------------------------------------------------------- the model's code

-- Turn 1: files in the work_dir, then a background process that leaves the
-- session, ignores TERM and holds the block's stdout. Shell builtins only:
-- these two must finish well inside the timeout even on a loaded machine.
local BLOCK1 = [[
# chaos block 1: files and a sub-directory in the work_dir
mkdir -p chaos/sub
i=0
while [ $i -lt 20 ]; do printf '%4096s' x > chaos/sub/f$i.txt; i=$((i + 1)); done
echo "wrote 20 files"
]]
local BLOCK2 = [[
# chaos block 2: a background process in a session of its own, TERM ignored
setsid sh -c 'trap "" TERM HUP INT; exec sleep 86400' &
echo "left a background process behind"
]]
-- Turn 2: a tree that outlives the short timeout. The first statement stamps
-- the start ($EPOCHREALTIME: microseconds, no fork), so the deadline is
-- start + timeout (the supervisor's clock starts a bash start-up earlier,
-- 1-3 ms). Every process of the tree then writes a heartbeat (first, last,
-- count) to its own file in CHAOS_HB every 10 ms, slowing to 1 s from about
-- five seconds past the deadline (a leaked tree must not load the machine).
-- Bash without forks (a read with a timeout on a FIFO nobody writes is the
-- sleep; the tree re-runs this file, as functions exported to a child bash
-- lose the `1` of `1<>`): at nice 10 on a busy machine a Python tree may not even be up by
-- the deadline. `1<>` rewrites in place: a kill between a truncation and
-- the write would leave an empty file (each line is at least as long as the
-- one before, so nothing stale remains).
local BLOCK3 = [[
# chaos block 3: a setsid'd, TERM-ignoring tree that outlives its deadline
beat() {
  exec 3<> "$CHAOS_HB/idle"
  local first=$EPOCHREALTIME n=0 pause=0.01
  local slow=$(( ${first%.*} + ${CHAOS_TIMEOUT%.*} + 6 ))
  while :; do
    n=$((n + 1))
    echo "$first $EPOCHREALTIME $n" 1<> "$CHAOS_HB/hb.$1.$BASHPID"
    [ "${EPOCHREALTIME%.*}" -lt "$slow" ] || pause=1
    read -t "$pause" -u 3
  done
}
case "$1" in
  detached) trap '' TERM; setsid bash "$0" c1 & beat c2 & beat detached ;;
  c1) beat c1 ;;
  *)
    echo "$EPOCHREALTIME" > "$CHAOS_HB/start"
    mkfifo "$CHAOS_HB/idle"
    setsid bash "$0" detached &
    beat main ;;
esac
]]

local function fence(lang, body) return "```" .. lang .. "\n" .. body .. "```\n" end

local SCRIPT = { rules = {
  { when_last_contains = "CHAOS-START", content = "First some files and a helper.\n"
      .. fence("sh", BLOCK1) .. fence("sh", BLOCK2) },
  { when_last_contains = "exitcode: 124", content = "TERMINATE" },
  { when_last_contains = "exitcode: 0", content = "Now the long job.\n" .. fence("bash", BLOCK3) },
  { content = "TERMINATE" },
} }

---------------------------------------------------------------- one host process

local hosts = {}          -- "pid start" of every host process this run started
local host_pids = {}      -- pid -> true (for temp names agentbox-<pid>-...)

local function parse_log(path)
  local r = { phase = "start" }
  for _, l in ipairs(lines(read_file(path))) do
    local pid, st = l:match("^#CHAOS pid (%d+) (%d+)$")
    if pid then r.pid, r.started = pid, st end
    local at, ph = l:match("^#CHAOS phase (%S+) (.+)$")
    if ph then
      r.phase = ph
      r.at = r.at or {}
      r.at[ph] = tonumber(at)
    end
    local wd = l:match("^#CHAOS work_dir (.+)$")
    if wd then r.work_dir = wd end
  end
  if r.pid then
    hosts[r.pid .. " " .. r.started] = true
    host_pids[r.pid] = true
  end
  return r
end

-- Runs one host process to completion or to its SIGKILL after kill_after
-- seconds (nil: never). coreutils timeout is its parent, so the pid cannot be
-- reused under the kill; --foreground: only the host itself is killed, not
-- its process group.
local function run_host(dir, role, kind, mark, kill_after)
  os.execute("mkdir -p " .. q(dir .. "/cwd") .. " " .. q(dir .. "/hb") .. " && chmod 0777 " .. q(dir .. "/hb"))
  local vars = {
    "CHAOS_ROLE=" .. role, "CHAOS_KIND=" .. kind.executor, "CHAOS_TRANSFER=" .. (kind.transfer or ""),
    "CHAOS_IMAGE=" .. IMAGE, "CHAOS_TIMEOUT=" .. TIMEOUT, "CHAOS_BASE_URL=" .. SERVER.base_url,
    -- a path that does not exist yet: the executor creates it, so it may hand
    -- it to the sandbox user (an existing root-owned one may be refused)
    "CHAOS_WORK_DIR=" .. (DEFAULT_WORKDIR and "" or dir .. "/cwd/work"), "CHAOS_HB=" .. dir .. "/hb",
    "CHAOS_MARK=" .. mark, "TMPDIR=" .. TMP,
  }
  for i, v in ipairs(vars) do vars[i] = q(v) end
  local killer = kill_after and ("timeout --foreground -s KILL %.3f "):format(kill_after) or ""
  local logf = dir .. "/" .. role .. ".log"
  local t0 = uptime()
  local ok, how, code = os.execute(("cd %s && exec env %s %s%s %s > %s 2>&1"):format(
    q(dir .. "/cwd"), table.concat(vars, " "), killer, LUA, q(HOST), q(logf)))
  local r = parse_log(logf)
  r.wall = uptime() - t0
  -- when the timeout block began, from the host's start
  r.to_block3 = r.at and r.at.execute2 and r.at.execute2 - t0
  r.status = ok and 0 or (how == "exit" and code or 128 + (code or 0))
  -- timeout exits 128 + 9 after a SIGKILL (the host never leaves that way
  -- itself, and reaches its last phase when it finishes)
  r.killed = kill_after ~= nil and r.status == 137 and r.phase ~= "exit"
  r.log = logf
  return r
end

local function tail(path, n)
  local ls = lines(read_file(path))
  return table.concat(ls, "\n", math.max(1, #ls - n + 1))
end

---------------------------------------------------------------- heartbeats

-- The tree of block 3: dead at (last heartbeat of its last process) +
-- one period. Returns nil when block 3 never started.
local function tree_of(dir)
  local start = tonumber(read_file(dir .. "/hb/start") or "")
  if not start then return nil end
  local t = { deadline = start + TIMEOUT, last = start, procs = 0, gaps = {} }
  for name in sh("ls " .. q(dir .. "/hb")):gmatch("hb%.[^\n]+") do
    local first, last, n = (read_file(dir .. "/hb/" .. name) or ""):match("^(%S+) (%S+) (%d+)")
    first, last, n = tonumber(first), tonumber(last), tonumber(n)
    if last then
      t.procs = t.procs + 1
      if last > t.last then t.last = last end
      -- the period achieved while beating fast (up to the deadline)
      if n > 1 and last < t.deadline + 5 then t.gaps[#t.gaps + 1] = (last - first) / (n - 1) end
    end
  end
  t.dead_after = t.last + BEAT - t.deadline       -- <= 0: dead before its deadline
  return t
end

---------------------------------------------------------------- leftovers

local function proc_info(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return nil end
  local comm, rest = stat:match("^%d+ %((.*)%) (.*)$")
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  local env = read_file("/proc/" .. pid .. "/environ") or ""
  local cmd = (read_file("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
  return { pid = pid, comm = comm, state = f[1], ppid = f[2], cmd = cmd,
           mark = env:match("CHAOS_MARK=([^%z]+)"), cwd = sh("readlink /proc/" .. pid .. "/cwd 2>/dev/null"):gsub("\n$", "") }
end

-- every process that carries this run's mark in its environment (code gets
-- it through the executor's env, hosts, spawn servers and supervisors
-- through the host's), or whose working directory is under the bench dir
local function leftover_processes()
  local pids = {}
  for pid in sh("grep -lzsF " .. q("CHAOS_MARK=" .. RUN .. "-") .. " /proc/[0-9]*/environ"):gmatch("/proc/(%d+)/") do
    pids[pid] = true
  end
  for pid in sh("find /proc/[0-9]*/cwd -maxdepth 0 -lname " .. q(DIR .. "/*") .. " 2>/dev/null"):gmatch("/proc/(%d+)/") do
    pids[pid] = true
  end
  -- and this runner's descendants (a host or server that never went), but
  -- not the shell and cat of this very scan
  local me = read_file("/proc/self/stat"):match("^(%d+)")
  local scan = sh("echo $$; cat /proc/[0-9]*/stat 2>/dev/null")
  local shell = scan:match("^(%d+)")
  local children = {}
  for pid, ppid in scan:gmatch("\n(%d+) %(.-%) %S+ (%d+)") do
    children[ppid] = children[ppid] or {}
    table.insert(children[ppid], pid)
  end
  local function walk(pid)
    for _, c in ipairs(children[pid] or {}) do
      if c ~= shell then
        pids[c] = true
        walk(c)
      end
    end
  end
  walk(me)
  local out = {}
  for pid in pairs(pids) do
    local p = proc_info(pid)
    if p then out[#out + 1] = p end
  end
  table.sort(out, function(a, b) return tonumber(a.pid) < tonumber(b.pid) end)
  return out
end

local function docker_lines(args) return lines(sh("docker " .. args .. " 2>/dev/null")) end

-- agentbox containers owned by one of this run's host processes (labels
-- agentbox.pid + agentbox.started), or mounting something under the bench dir
local function leftover_containers()
  local out = {}
  for _, l in ipairs(docker_lines("ps -aq --filter label=agentbox=1")) do
    local fmt = '{{.Id}}\t{{index .Config.Labels "agentbox.pid"}}\t{{index .Config.Labels "agentbox.started"}}\t'
      .. '{{.Name}}\t{{.State.Status}}\t{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Source}} {{end}}'
    local info = sh("docker inspect --format " .. q(fmt) .. " " .. l .. " 2>/dev/null"):gsub("\n$", "")
    local id, pid, started, name, status, mounts = info:match("^(%S+)\t(%S*)\t(%S*)\t(%S+)\t(%S+)\t(.*)$")
    if id and (hosts[pid .. " " .. started] or mounts:find(DIR, 1, true)) then
      local vols = {}
      for v in mounts:gmatch("volume:([^:]+):") do vols[#vols + 1] = v end
      out[#out + 1] = { id = id:sub(1, 12), name = name, status = status, owner = pid, volumes = vols }
    end
  end
  return out
end

local function volume_set()
  local s = {}
  for _, v in ipairs(docker_lines("volume ls -q")) do s[v] = true end
  return s
end

local function leftover_temp()
  local out = {}
  for _, l in ipairs(lines(sh("find " .. q(TMP) .. " -mindepth 1 -maxdepth 1 2>/dev/null"))) do out[#out + 1] = l end
  -- a default work_dir made outside TMPDIR still names its owner's pid
  for _, d in ipairs({ "/tmp", "/var/tmp" }) do
    for _, l in ipairs(lines(sh("ls -1 " .. d .. " 2>/dev/null"))) do
      local pid = l:match("^agentbox%-(%d+)%-")
      if pid and host_pids[pid] then out[#out + 1] = d .. "/" .. l end
    end
  end
  return out
end

-- What the hosts of one iteration (the chat and its fresh start) left once
-- the fresh start is done: processes carrying their exact marks (grep -x:
-- "-1" must not match "-12"), containers labelled with their pid and start
-- time, temporary entries named after their pid, and the volumes the dead
-- host's containers had. Anything found is polled for up to LINGER seconds
-- (kills in flight), then counted.
local LINGER = number("CHAOS_LINGER", "2")
local function left_by(hosts_of_it, docker, vols)
  local function look()
    local procs, containers, temp = {}, {}, {}
    local pats = {}
    for _, h in ipairs(hosts_of_it) do pats[#pats + 1] = "-e " .. q("CHAOS_MARK=" .. h.mark) end
    for p in sh("grep -lzsxF " .. table.concat(pats, " ") .. " /proc/[0-9]*/environ"):gmatch("/proc/(%d+)/") do
      local info = proc_info(p)
      if info and info.state ~= "Z" then procs[#procs + 1] = info end
    end
    local names = lines(sh("ls -1 " .. q(TMP) .. " 2>/dev/null"))
    for _, h in ipairs(hosts_of_it) do
      if h.pid and docker then
        for _, c in ipairs(docker_lines(("ps -aq --filter label=agentbox.pid=%s --filter label=agentbox.started=%s")
                                        :format(h.pid, h.started))) do
          containers[#containers + 1] = c
        end
      end
      for _, l in ipairs(h.pid and names or {}) do
        if l:find("^agentbox%-" .. h.pid .. "%-") then temp[#temp + 1] = l end
      end
    end
    local volumes = #vols > 0 and docker_lines("volume inspect --format '{{.Name}}' " .. table.concat(vols, " ")) or {}
    return procs, containers, temp, volumes
  end
  local t0 = uptime()
  local procs, containers, temp, volumes = look()
  while (#procs > 0 or #containers > 0 or #volumes > 0) and uptime() - t0 < LINGER do
    os.execute("sleep 0.1")
    procs, containers, temp, volumes = look()
  end
  return procs, containers, temp, volumes
end

-- The volumes of the containers a dead host left (looked up before its
-- fresh start): they must go with them.
local function volumes_of(pid, started)
  if not pid then return {} end
  local ids = docker_lines(("ps -aq --filter label=agentbox.pid=%s --filter label=agentbox.started=%s"):format(pid, started))
  if #ids == 0 then return {} end
  local vols = {}
  local fmt = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}'
  for v in sh("docker inspect --format " .. q(fmt) .. " " .. table.concat(ids, " ") .. " 2>/dev/null"):gmatch("%S+") do
    vols[#vols + 1] = v
  end
  return vols
end

-- CPU cgroups a LocalExecutor run may make (agentbox-<owner>/run-<pid>)
-- under this process's own cpu cgroup, where the hosts' runs make theirs:
-- the set of agentbox-* directories there now
local function agentbox_cgroups()
  local dirs = {}
  for _, l in ipairs(lines(read_file("/proc/self/cgroup"))) do
    local ctl, path = l:match("^%d+:([^:]*):(.*)$")
    if ctl == "" or (ctl and (","  .. ctl .. ","):find(",cpu,", 1, true)) then
      path = path == "/" and "" or path
      local mounts = ctl == "" and { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" }
        or { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu" }
      for _, m in ipairs(mounts) do dirs[#dirs + 1] = m .. path end
    end
  end
  local found = {}
  for _, d in ipairs(dirs) do
    for _, l in ipairs(lines(sh("find " .. q(d) .. " -mindepth 1 -maxdepth 1 -type d -name 'agentbox-*' 2>/dev/null"))) do
      found[l] = true
    end
  end
  return found
end

---------------------------------------------------------------- stats

local function pct(sorted, p) return sorted[math.max(1, math.ceil(p * #sorted))] end
local function summary(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  if #s == 0 then return nil end
  local med = #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
  return { n = #s, median = med, p95 = pct(s, 0.95), p99 = pct(s, 0.99), max = s[#s], min = s[1] }
end

---------------------------------------------------------------- main

local function kinds()
  local list = {}
  for k in KINDS:gmatch("[^,%s]+") do
    if k == "local" then
      list[#list + 1] = { name = "local", executor = "local" }
    elseif k == "docker" then
      local ts = TRANSFER == "mix" and { "bind", "archive" } or { TRANSFER }
      for _, t in ipairs(ts) do
        if t ~= "bind" and t ~= "archive" then error("CHAOS_TRANSFER must be bind, archive or mix") end
      end
      -- docker iterations alternate between the transfers in ts
      list[#list + 1] = { name = "docker", executor = "docker", transfers = ts }
    else
      error("CHAOS_KINDS: unknown kind " .. k .. " (local, docker)")
    end
  end
  return list
end

local function main()
  math.randomseed(SEED)
  os.execute("mkdir -p " .. q(TMP) .. " " .. q(DIR .. "/it"))
  local KS = kinds()
  local uses_docker = false
  for _, k in ipairs(KS) do uses_docker = uses_docker or k.executor == "docker" end
  if uses_docker and not require("agentbox").docker.available() then
    error("the Docker daemon does not answer: start it, or run CHAOS_KINDS=local", 0)
  end
  local volumes_before = uses_docker and volume_set() or {}
  local cgroups_before = agentbox_cgroups()
  SERVER = fake.start(SCRIPT)
  local load_start = read_file("/proc/loadavg"):match("^(%S+ %S+ %S+)")
  local t_start = uptime()

  -- the variants: local, docker/bind, docker/archive
  local variants, order = {}, {}
  for _, k in ipairs(KS) do
    for _, t in ipairs(k.transfers or { false }) do
      local v = { name = k.name .. (t and ("/" .. t) or ""), executor = k.executor, transfer = t or nil,
                  chats = 0, killed = 0, finished = 0, errors = 0, restart_errors = 0, phases = {} }
      variants[v.name] = v
      order[#order + 1] = v
    end
  end

  local iterations = {}
  local function iteration(i, v, kill_after, calibration)
    local dir = ("%s/it/%04d"):format(DIR, i)
    local r = run_host(dir, "chat", v, ("%s-%d"):format(RUN, i), kill_after)
    local vols = v.executor == "docker" and volumes_of(r.pid, r.started) or {}
    local rr = FRESH and run_host(dir .. "/restart", "restart", v, ("%s-%dr"):format(RUN, i), nil)
      or { status = 0, wall = 0 }
    local it = { i = i, variant = v.name, kill_after = kill_after, killed = r.killed, status = r.status,
                 phase = r.phase, wall = r.wall, dir = dir, calibration = calibration, restart_status = rr.status,
                 work_dir = r.work_dir, restart_wall = rr.wall }
    v.chats = v.chats + 1
    if r.killed then
      v.killed = v.killed + 1
      local ph = r.phase:match("^(%S+)")   -- "executed1 exit 0" -> "executed1"
      v.phases[ph] = (v.phases[ph] or 0) + 1
    elseif r.status == 0 then
      v.finished = v.finished + 1
    else
      v.errors = v.errors + 1
      log("iteration %d (%s): host exited %d in phase %s:\n%s", i, v.name, r.status, r.phase, tail(r.log, 8))
    end
    if rr.status ~= 0 then
      v.restart_errors = v.restart_errors + 1
      log("iteration %d (%s): the fresh start exited %d:\n%s", i, v.name, rr.status, tail(rr.log, 8))
    end
    if SELFTEST and calibration then
      -- a planted leftover of this iteration, as if its fresh start had missed it
      if v.executor == "local" then
        os.execute(("setsid env CHAOS_MARK=%s-%d sleep 600 </dev/null >/dev/null 2>&1 &"):format(RUN, i))
        -- and an unmarked child of this runner
        SELFTEST_CHILD = io.popen("echo $$; exec sleep 600")
        SELFTEST_PID = SELFTEST_CHILD:read("l")
        -- a cpu cgroup of a dead owner, where a run's would be
        local cpu = read_file("/proc/self/cgroup"):match("%d+:[^:\n]*cpu[^:\n]*:([^\n]*)")
        for _, m in ipairs({ "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct" }) do
          local d = m .. (cpu == "/" and "" or cpu) .. "/agentbox-" .. r.pid
          if not SELFTEST_CGROUP and os.execute("mkdir " .. q(d) .. " 2>/dev/null") then SELFTEST_CGROUP = d end
        end
        os.execute("touch " .. q(("%s/agentbox-%s-selftest"):format(TMP, r.pid)))
      elseif v.transfer == "bind" then
        -- agentbox.keep: other executors' reapers leave it alone
        os.execute(("docker run -d --network none --label agentbox=1 --label agentbox.keep=1 --label agentbox.pid=%s "
          .. "--label agentbox.started=%s -v %s-selftest:/x --entrypoint sleep %s 600 >/dev/null"):format(
          r.pid, r.started, RUN, q(IMAGE)))
        vols[#vols + 1] = RUN .. "-selftest"
      end
    end
    local procs, containers, temp, volumes = left_by({
      { mark = ("%s-%d"):format(RUN, i), pid = r.pid, started = r.started },
      { mark = ("%s-%dr"):format(RUN, i), pid = rr.pid, started = rr.started },
    }, v.executor == "docker", vols)
    it.left = { processes = #procs, containers = #containers, temp = #temp, volumes = #volumes }
    it.volumes_seen = #vols
    if #procs + #containers + #temp + #volumes > 0 then
      local what = {}
      for _, pr in ipairs(procs) do what[#what + 1] = pr.pid .. ":" .. pr.comm .. "(" .. pr.state .. ")" end
      for _, c in ipairs(containers) do what[#what + 1] = "container " .. c end
      for _, vname in ipairs(volumes) do what[#what + 1] = "volume " .. vname end
      for _, t in ipairs(temp) do what[#what + 1] = t end
      it.left_detail = table.concat(what, " ")
      log("iteration %d (%s, %s): left after the fresh start + %g s: %s", i, v.name,
        r.killed and ("killed at %.2f s in %s"):format(kill_after, r.phase) or "not killed", LINGER, it.left_detail)
    end
    iterations[#iterations + 1] = it
    return it, r
  end

  -- calibration: unkilled chats give the span the kill moment is drawn
  -- from (the median of a variant's last five); one per variant first (it
  -- must reach the end of the timeout block), then one every RECAL chats of
  -- that variant, since the load of a shared machine drifts
  local RECAL = math.tointeger(tonumber(knob("CHAOS_RECAL", "50"))) or 50
  local i = 0
  local function calibrate(v, first)
    i = i + 1
    local it, r = iteration(i, v, nil, true)
    local text = read_file(r.log) or ""
    if r.status ~= 0 or not text:find("executed2 exit 124", 1, true) then
      local msg = ("calibration chat %d (%s) did not run both turns (exit %d); its log %s ends:\n%s"):format(
        i, v.name, r.status, r.log, tail(r.log, 15))
      if first then error(msg, 0) end
      log("%s", msg)
      return
    end
    v.walls, v.pres = v.walls or {}, v.pres or {}
    table.insert(v.walls, it.wall)
    table.insert(v.pres, r.to_block3)
    if #v.walls > 5 then table.remove(v.walls, 1) table.remove(v.pres, 1) end
    v.span, v.pre = summary(v.walls).median, summary(v.pres).median
    log("calibration %s: an unkilled chat took %.2f s, %.2f s of it before the timeout block", v.name, it.wall, r.to_block3)
  end
  for _, v in ipairs(order) do calibrate(v, true) end

  local per_kind = {}
  local done = 0
  local step = math.max(1, N // 20)
  local MAX_SECONDS = number("CHAOS_MAX_SECONDS", "0")
  for n = 1, N do
    if MAX_SECONDS > 0 and uptime() - t_start > MAX_SECONDS then
      log("CHAOS_MAX_SECONDS=%g reached after %d of %d chats", MAX_SECONDS, n - 1, N)
      break
    end
    done = n
    local k = KS[(n - 1) % #KS + 1]
    per_kind[k.name] = (per_kind[k.name] or 0) + 1
    local v
    if k.transfers then
      v = variants[k.name .. "/" .. k.transfers[(per_kind[k.name] - 1) % #k.transfers + 1]]
    else
      v = variants[k.name]
    end
    v.drawn = (v.drawn or 0) + 1
    if v.drawn % RECAL == 0 then calibrate(v, false) end
    i = i + 1
    -- the timeout block is most of a chat: half of the kills are drawn from
    -- what comes before it (start-up, reaping, container creation, the
    -- model's reply, blocks 1 and 2), where they would otherwise be rare
    local upto = math.random() < 0.5 and SPREAD * v.span or v.pre
    iteration(i, v, math.random() * upto, false)
    if n % step == 0 then log("%d/%d iterations, %.0f s", n, N, uptime() - t_start) end
  end

  SERVER:stop()
  -- every deadline plus grace is long past once the last fresh start is
  -- done; the settle time covers kills still in flight
  os.execute("sleep " .. SETTLE)
  local procs = leftover_processes()
  local containers = uses_docker and leftover_containers() or {}
  local volumes_after = uses_docker and volume_set() or {}
  local temp = leftover_temp()
  -- new agentbox cgroups whose owner (a spawn server or host pid) is gone
  local cgroups = {}
  for d in pairs(agentbox_cgroups()) do
    local owner = d:match("agentbox%-(%d+)$")
    if not cgroups_before[d] and not (owner and read_file("/proc/" .. owner .. "/stat")) then cgroups[#cgroups + 1] = d end
  end
  table.sort(cgroups)
  local load_end = read_file("/proc/loadavg"):match("^(%S+ %S+ %S+)")
  local elapsed = uptime() - t_start

  -- volumes: those of our leftover containers, and new ones no container uses
  local our_vols, new_unused = {}, {}
  for _, c in ipairs(containers) do for _, vname in ipairs(c.volumes) do our_vols[vname] = true end end
  for vname in pairs(volumes_after) do
    if not volumes_before[vname] and not our_vols[vname] and #docker_lines("ps -aq --filter volume=" .. vname) == 0 then
      new_unused[#new_unused + 1] = vname
    end
  end
  local n_our_vols = 0
  for _ in pairs(our_vols) do n_our_vols = n_our_vols + 1 end

  -- files in a host's cwd: with the default work_dir there must be none
  local cwd_files = {}
  if DEFAULT_WORKDIR then
    cwd_files = lines(sh("find " .. q(DIR .. "/it") .. " -path '*/cwd/*' -prune -print 2>/dev/null"))
  end

  -- the tree of block 3, iteration by iteration
  local lat, lat_by, before, not_started, no_beat, gaps, outlived = {}, {}, 0, 0, 0, {}, {}
  local live_marks = {}
  for _, p in ipairs(procs) do if p.mark then live_marks[p.mark] = true end end
  for _, it in ipairs(iterations) do
    local t = tree_of(it.dir)
    it.tree = t
    if not t then
      not_started = not_started + 1
    elseif t.procs == 0 then
      no_beat = no_beat + 1       -- killed before a heartbeat process got going
    elseif live_marks[("%s-%d"):format(RUN, it.i)] and t.last > t.deadline + 5 then
      outlived[#outlived + 1] = it
    elseif t.dead_after <= 0 then
      before = before + 1
    else
      lat[#lat + 1] = t.dead_after
      lat_by[it.variant] = lat_by[it.variant] or {}
      table.insert(lat_by[it.variant], t.dead_after)
    end
    if t then for _, g in ipairs(t.gaps) do gaps[#gaps + 1] = g end end
  end

  ------------------------------------------------------------ the table
  local out = {}
  local function p(...) out[#out + 1] = string.format(...) end
  local cmd = getenv("CHAOS_CMD") or "bash bench/chaos/run.sh"
  p("## Chaos: %s chats SIGKILLed at random moments, each followed by %s",
    done == N and tostring(N) or ("%d (of %d asked: CHAOS_MAX_SECONDS)"):format(done, N),
    FRESH and "a fresh start" or "NO fresh start (CHAOS_FRESH_START=0: a control run)")
  p("")
  p("- command: `%s` (seed %d, timeout %g s, kill moment uniform in [0, %g x an unkilled chat] or, for half of the chats, in [0, the start of its timeout block], work_dir %s)",
    cmd, SEED, TIMEOUT, SPREAD, DEFAULT_WORKDIR and "omitted (the executor's default)" or "a new path per host, created by the executor")
  p("- load (uptime): %s at the start, %s at the end; %.0f s wall; %s", load_start, load_end, elapsed,
    getenv("CHAOS_MACHINE") or "")
  p("- %s", getenv("CHAOS_VERSIONS") or "")
  p("")
  p("| iterations | chats | SIGKILLed | finished first | host errors | fresh-start errors | killed during |")
  p("|---|---|---|---|---|---|---|")
  for _, v in ipairs(order) do
    local ph = {}
    for name, c in pairs(v.phases) do ph[#ph + 1] = { name, c } end
    table.sort(ph, function(a, b) return a[2] > b[2] end)
    for j, x in ipairs(ph) do ph[j] = x[1] .. " " .. x[2] end
    p("| %s | %d | %d | %d | %d | %d | %s |", v.name, v.chats, v.killed, v.finished, v.errors, v.restart_errors,
      table.concat(ph, ", "))
  end
  p("")
  p("(chats include the unkilled calibration chats: one per row first, then one every %d chats of the row;"
    .. " phases: start = before the host's first line, executor = building it, chat = the model's first reply,"
    .. " execute1 = blocks 1-2, executed1 = the second reply, execute2 = the timeout block, executed2 = the last"
    .. " reply, close = closing the executor)", RECAL)
  p("")
  local by_kind = {}
  for _, pr in ipairs(procs) do
    local it_no = pr.mark and tonumber(pr.mark:match("%-(%d+)r?$"))
    local it = it_no and iterations[it_no]
    local kname = it and it.variant or "?"
    by_kind[kname] = (by_kind[kname] or 0) + 1
  end
  local bk = {}
  for k, c in pairs(by_kind) do bk[#bk + 1] = k .. " " .. c end
  table.sort(bk)
  -- per iteration: what its fresh start (+ LINGER) had not cleaned up
  local after = { processes = 0, containers = 0, temp = 0, volumes = 0 }
  local hit = { processes = 0, containers = 0, temp = 0, volumes = 0 }
  local vols_seen = 0
  for _, it in ipairs(iterations) do vols_seen = vols_seen + (it.volumes_seen or 0) end
  for _, it in ipairs(iterations) do
    for k, c in pairs(it.left or {}) do
      after[k] = after[k] + c
      if c > 0 then hit[k] = hit[k] + 1 end
    end
  end
  local function a(k) return ("%d (%d iterations)"):format(after[k], hit[k]) end
  p("| leftovers (goal 0) | after each fresh start + %g s, summed | at the end | |", LINGER)
  p("|---|---|---|---|")
  p("| processes | %s | %d | %s |", a("processes"), #procs, #procs > 0 and ("by iteration kind: " .. table.concat(bk, ", ")) or
    "marked by CHAOS_MARK in their environment, with a cwd under the bench dir, or descended from the runner")
  p("| containers | %s | %d | label agentbox=1 and owned by a bench host, or mounting the bench dir |", a("containers"), #containers)
  p("| volumes | %s | %d | after a fresh start: of the %d volumes a killed host's containers had; at the end: %d of leftover containers, %d new and unused (another user of this daemon could have made them) |",
    a("volumes"), n_our_vols + #new_unused, vols_seen, n_our_vols, #new_unused)
  p("| temporary files and directories | %s | %d | in the hosts' TMPDIR; agentbox-<host pid>-* also in /tmp, /var/tmp |",
    a("temp"), #temp)
  p("| cpu cgroups | - | %d | agentbox-<owner> under this process's cpu cgroup, new since the start, owner gone (anyone's) |",
    #cgroups)
  if DEFAULT_WORKDIR then p("| files in a host's cwd (work_dir omitted) | - | %d | |", #cwd_files) end
  p("")
  local s = summary(lat)
  local function ms(x) return x and ("%.0f ms"):format(x * 1000) or "-" end
  p("| tree dead after its deadline | n | median | p95 | p99 | max |")
  p("|---|---|---|---|---|---|")
  if s then p("| all | %d | %s | %s | %s | %s |", s.n, ms(s.median), ms(s.p95), ms(s.p99), ms(s.max)) end
  for _, v in ipairs(order) do
    local sv = summary(lat_by[v.name] or {})
    if sv then p("| %s | %d | %s | %s | %s | %s |", v.name, sv.n, ms(sv.median), ms(sv.p95), ms(sv.p99), ms(sv.max)) end
  end
  local g = summary(gaps)
  p("")
  p("Method: block 3 stamps its start (bash $EPOCHREALTIME) and every process of its tree (the main one, a"
    .. " setsid'd TERM-ignoring one and its two children, one in a third session) writes a heartbeat to its own"
    .. " file every %.0f ms; the tree is dead at its last heartbeat + %.0f ms, the deadline is start + %g s."
    .. " Resolution: one period (measured mean period %s, median over processes); the supervisor's clock starts"
    .. " 1-3 ms (a bash start-up) before the stamp, so the true latency is that much higher."
    .. " Counted: trees alive at their deadline (%d); %d trees died before it (their host was killed first),"
    .. " %d chats never reached block 3, %d trees were killed before any of their processes beat, %d trees outlived their deadline by more than 5 s and were still alive at the end.",
    BEAT * 1000, BEAT * 1000, TIMEOUT, g and ("%.1f ms"):format(g.median * 1000) or "-", #lat, before,
    not_started, no_beat, #outlived)
  if #procs > 0 then
    p("")
    p("Leftover processes (pid, iteration mark, kind, phase at the kill, state, cwd, command):")
    p("")
    for j, pr in ipairs(procs) do
      if j > 40 then p("- ... %d more", #procs - 40) break end
      local it_no = pr.mark and tonumber(pr.mark:match("%-(%d+)r?$"))
      local it = it_no and iterations[it_no]
      p("- %s `%s` %s %s %s %s `%s`", pr.pid, tostring(pr.mark), it and it.variant or "?",
        it and (it.killed and ("killed at " .. ("%.2f s"):format(it.kill_after) .. " in " .. it.phase) or "not killed") or "?",
        pr.state, pr.cwd, pr.cmd:sub(1, 100))
    end
  end
  if #containers > 0 then
    p("")
    p("Leftover containers:")
    p("")
    for _, c in ipairs(containers) do
      p("- %s %s %s owner pid %s, volumes: %s", c.id, c.name, c.status, c.owner, table.concat(c.volumes, " "))
    end
  end
  if #new_unused > 0 then p("") p("New unused volumes: %s", table.concat(new_unused, " ")) end
  if #temp > 0 then
    p("")
    p("Leftover temporary entries:")
    p("")
    for j, t in ipairs(temp) do
      if j > 20 then p("- ... %d more", #temp - 20) break end
      p("- %s", t)
    end
  end
  if #cgroups > 0 then p("") p("Leftover cgroups: %s", table.concat(cgroups, " ", 1, math.min(10, #cgroups))) end
  if #cwd_files > 0 then p("") p("Files in hosts' cwd, e.g.: %s", table.concat(cwd_files, " ", 1, math.min(4, #cwd_files))) end
  io.stdout:write(table.concat(out, "\n"), "\n")

  if RESULTS then
    local f = io.open(RESULTS, "w")
    if f then
      local its = {}
      for _, it in ipairs(iterations) do
        its[#its + 1] = { i = it.i, variant = it.variant, kill_after = it.kill_after, killed = it.killed,
                          status = it.status, phase = it.phase, wall = it.wall, restart_status = it.restart_status,
                          restart_wall = it.restart_wall,
                          dead_after = it.tree and it.tree.dead_after, tree_procs = it.tree and it.tree.procs,
                          left = it.left }
      end
      f:write(cjson.encode{ command = cmd, seed = SEED, n = done, asked = N, timeout = TIMEOUT, load_start = load_start,
        load_end = load_end, latency = s, leftovers = { processes = #procs, containers = #containers,
        volumes = n_our_vols + #new_unused, temp = #temp, cwd_files = #cwd_files, cgroups = #cgroups }, iterations = its })
      f:close()
    end
  end

  -- Clean up what this run made and left: its marked processes (by pid,
  -- after checking the mark again) and its containers with their volumes.
  for _, pr in ipairs(procs) do
    local again = proc_info(pr.pid)
    if again and again.mark == pr.mark and pr.mark then os.execute("kill -KILL " .. pr.pid .. " 2>/dev/null") end
  end
  if SELFTEST_CHILD then
    os.execute("kill -KILL " .. SELFTEST_PID)
    SELFTEST_CHILD:close()
  end
  if SELFTEST_CGROUP then os.execute("rmdir " .. q(SELFTEST_CGROUP)) end
  for _, c in ipairs(containers) do os.execute("docker rm -fv " .. c.id .. " >/dev/null 2>&1") end
  for _, vname in ipairs(new_unused) do our_vols[vname] = true end
  for vname in pairs(our_vols) do   -- named ones only the self-test makes
    if vname:sub(1, #RUN) == RUN then os.execute("docker volume rm " .. vname .. " >/dev/null 2>&1") end
  end
  local total = #procs + #containers + n_our_vols + #new_unused + #temp + #cwd_files + #cgroups
    + after.processes + after.containers + after.temp + after.volumes
  return total
end

local ok, res = pcall(main)
if SERVER then SERVER:stop() end
if not ok then
  io.stderr:write("chaos: ", tostring(res), "\n")
  os.exit(2)
end
os.exit(res == 0 and 0 or 1)
