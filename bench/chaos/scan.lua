-- bench/chaos/scan.lua: what the chaos benchmark finds left over (processes,
-- containers, volumes, temporary entries, cpu cgroups) and how long after
-- its deadline block 3's tree was dead (its heartbeats).
--
--   local scan = require("bench.chaos.scan").new(ctx)
--
-- ctx: dir (the bench directory), tmp (the hosts' TMPDIR), run (the mark
-- prefix of this run), sup (the agentbox-sup the hosts use), timeout, beat,
-- linger and hosts ("pid start" -> true for every host process started).
local U = require("bench.chaos.util")
local q, sh, lines, read_file, docker_lines = U.q, U.sh, U.lines, U.read_file, U.docker_lines

local function new(ctx)
  local S = {}

  -- Host-side processes: the spawn servers and supervisors of the hosts
  -- build the code's environment but keep none of the mark themselves, so
  -- they are found by their program (this build's agentbox-sup; inside a
  -- container the supervisor's path is the container's, so only the host's
  -- match) and by their working directory (the host's, under `under`).
  local function host_side(under)
    local pids = {}
    for pid in sh("find /proc/[0-9]*/cwd -maxdepth 0 -lname " .. q(under .. "/*") .. " 2>/dev/null"):gmatch("/proc/(%d+)/") do
      pids[#pids + 1] = pid
    end
    if ctx.sup then
      for pid in sh("find /proc/[0-9]*/exe -maxdepth 0 -lname " .. q(ctx.sup .. "*") .. " 2>/dev/null"):gmatch("/proc/(%d+)/") do
        pids[#pids + 1] = pid
      end
    end
    return pids
  end

  -- The tree of block 3: dead at (last heartbeat of its last process) +
  -- one period. nil when block 3 never started.
  function S.tree_of(dir)
    local start = tonumber(read_file(dir .. "/hb/start") or "")
    if not start then return nil end
    local t = { deadline = start + ctx.timeout, last = start, procs = 0, gaps = {} }
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
    t.dead_after = t.last + ctx.beat - t.deadline       -- <= 0: dead before its deadline
    return t
  end

  -- Every process that carries this run's mark in its environment (the
  -- code gets it through the executor's env, the hosts their own), a
  -- host-side one (above), or one that descends from this runner.
  function S.processes()
    local pids = {}
    for pid in sh("grep -lzsF " .. q("CHAOS_MARK=" .. ctx.run .. "-") .. " /proc/[0-9]*/environ"):gmatch("/proc/(%d+)/") do
      pids[pid] = true
    end
    for _, pid in ipairs(host_side(ctx.dir)) do pids[pid] = true end
    -- descendants, but not the shell and cat of this very scan
    local me = read_file("/proc/self/stat"):match("^(%d+)")
    local stats = sh("echo $$; cat /proc/[0-9]*/stat 2>/dev/null")
    local shell = stats:match("^(%d+)")
    local children = {}
    for pid, ppid in stats:gmatch("\n(%d+) %(.-%) %S+ (%d+)") do
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
      local p = U.proc_info(pid)
      if p then out[#out + 1] = p end
    end
    table.sort(out, function(a, b) return tonumber(a.pid) < tonumber(b.pid) end)
    return out
  end

  -- agentbox containers owned by one of this run's host processes (labels
  -- agentbox.pid + agentbox.started), or mounting something under the bench dir
  function S.containers()
    local out = {}
    local fmt = '{{.Id}}\t{{index .Config.Labels "agentbox.pid"}}\t{{index .Config.Labels "agentbox.started"}}\t'
      .. '{{.Name}}\t{{.State.Status}}\t{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Source}} {{end}}'
    for _, l in ipairs(docker_lines("ps -aq --filter label=agentbox=1")) do
      local info = sh("docker inspect --format " .. q(fmt) .. " " .. l .. " 2>/dev/null"):gsub("\n$", "")
      local id, pid, started, name, status, mounts = info:match("^(%S+)\t(%S*)\t(%S*)\t(%S+)\t(%S+)\t(.*)$")
      if id and (ctx.hosts[pid .. " " .. started] or mounts:find(ctx.dir, 1, true)) then
        local vols = {}
        for v in mounts:gmatch("volume:([^:]+):") do vols[#vols + 1] = v end
        out[#out + 1] = { id = id:sub(1, 12), name = name, status = status, owner = pid, volumes = vols }
      end
    end
    return out
  end

  function S.volume_set()
    local s = {}
    for _, v in ipairs(docker_lines("volume ls -q")) do s[v] = true end
    return s
  end

  -- Everything in the hosts' TMPDIR, and a default work_dir made outside it
  -- (it names its owner: pid and start time, so a reused pid is not taken
  -- for one of the hosts).
  function S.temp()
    local out = lines(sh("find " .. q(ctx.tmp) .. " -mindepth 1 -maxdepth 1 2>/dev/null"))
    for _, d in ipairs({ "/tmp", "/var/tmp" }) do
      for _, l in ipairs(lines(sh("ls -1 " .. d .. " 2>/dev/null"))) do
        local pid, started = l:match("^agentbox%-(%d+)%-(%d+)%-")
        if pid and ctx.hosts[pid .. " " .. started] then out[#out + 1] = d .. "/" .. l end
      end
    end
    return out
  end

  -- What the hosts of one iteration (the chat and its fresh start) left once
  -- the fresh start is done: processes carrying their exact marks (grep -x:
  -- "-1" must not match "-12") or host-side ones, containers labelled with
  -- their pid and start time, temporary entries named after their pid, the
  -- volumes the dead host's containers had, and cgroups in this run's.
  -- Anything found is polled for up to ctx.linger seconds (kills in flight),
  -- then counted; a table of lists by category.
  local reported = {}   -- host-side leftovers (pids, cgroups) already counted for an earlier iteration
  function S.left_by(dir, hosts_of_it, docker, vols)
    local function look()
      local procs, containers, temp, cgroups = {}, {}, {}, {}
      -- no host runs now: every agentbox cgroup in ours is left over
      if ctx.cg then
        for d in pairs(S.cgroups()) do
          if not reported[d] then cgroups[#cgroups + 1] = d end
        end
      end
      local pats, pids = {}, {}
      for _, h in ipairs(hosts_of_it) do pats[#pats + 1] = "-e " .. q("CHAOS_MARK=" .. h.mark) end
      for p in sh("grep -lzsxF " .. table.concat(pats, " ") .. " /proc/[0-9]*/environ"):gmatch("/proc/(%d+)/") do
        pids[p] = true
      end
      -- no host runs now: any host-side process is left over
      for _, p in ipairs(host_side(dir)) do
        if not reported[p] then pids[p] = true end
      end
      for p in pairs(pids) do
        local info = U.proc_info(p)
        if info and info.state ~= "Z" then procs[#procs + 1] = info end
      end
      local names = lines(sh("ls -1 " .. q(ctx.tmp) .. " 2>/dev/null"))
      for _, h in ipairs(hosts_of_it) do
        if h.pid and docker then
          for _, c in ipairs(docker_lines(("ps -aq --filter label=agentbox.pid=%s --filter label=agentbox.started=%s")
                                          :format(h.pid, h.started))) do
            containers[#containers + 1] = c
          end
        end
        for _, l in ipairs(h.pid and names or {}) do
          if l:find("^agentbox%-" .. h.pid .. "%-" .. h.started .. "%-") then temp[#temp + 1] = l end
        end
      end
      local volumes = #vols > 0 and docker_lines("volume inspect --format '{{.Name}}' " .. table.concat(vols, " ")) or {}
      return { processes = procs, containers = containers, temp = temp, volumes = volumes, cgroups = cgroups }
    end
    local t0 = U.uptime()
    local left = look()
    while (#left.processes > 0 or #left.containers > 0 or #left.volumes > 0 or #left.cgroups > 0)
          and U.uptime() - t0 < ctx.linger do
      os.execute("sleep 0.1")
      left = look()
    end
    for _, p in ipairs(left.processes) do reported[p.pid] = true end
    for _, d in ipairs(left.cgroups) do reported[d] = true end
    return left
  end

  -- The volumes of the containers a dead host left (looked up before its
  -- fresh start): they must go with them.
  function S.volumes_of(pid, started)
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

  -- The directories of this process's cpu cgroup, where a LocalExecutor
  -- run started by one of the hosts makes its agentbox-<owner>/run-<pid>.
  function S.cpu_cgroup_dirs()
    local dirs = {}
    for _, l in ipairs(lines(read_file("/proc/self/cgroup"))) do
      local ctl, path = l:match("^%d+:([^:]*):(.*)$")
      if ctl == "" or (ctl and ("," .. ctl .. ","):find(",cpu,", 1, true)) then
        path = path == "/" and "" or path
        local mounts = ctl == "" and { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" }
          or { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu" }
        for _, m in ipairs(mounts) do dirs[#dirs + 1] = m .. path end
      end
    end
    return dirs
  end

  -- A cpu cgroup of this run's own, named <run>, under this process's, for
  -- the hosts to run in: a LocalExecutor run makes its cgroup under its
  -- host's, so every agentbox-* found there is this run's. nil where none
  -- can be made (then the agentbox-* of anyone, beside this process, count).
  function S.setup_cgroup()
    for _, d in ipairs(S.cpu_cgroup_dirs()) do
      local cg = d .. "/" .. ctx.run
      if read_file(d .. "/cgroup.procs") and os.execute("mkdir " .. q(cg) .. " 2>/dev/null") then
        ctx.cg = cg
        return cg
      end
    end
  end

  -- the set of agentbox-* cgroup directories there now
  function S.cgroups()
    local found = {}
    for _, d in ipairs(ctx.cg and { ctx.cg } or S.cpu_cgroup_dirs()) do
      for _, l in ipairs(lines(sh("find " .. q(d) .. " -mindepth 1 -maxdepth 1 -type d -name 'agentbox-*' 2>/dev/null"))) do
        found[l] = true
      end
    end
    return found
  end

  -- rmdir a cgroup and its children once their tasks are gone (processes
  -- just killed may take a moment)
  function S.remove_cgroup(path)
    for _ = 1, 20 do
      os.execute("find " .. q(path) .. " -depth -type d -exec rmdir {} + 2>/dev/null")
      if not read_file(path .. "/cgroup.procs") then return true end
      os.execute("sleep 0.1")
    end
    U.log("could not remove the cgroup %s", path)
  end

  return S
end

return { new = new }
