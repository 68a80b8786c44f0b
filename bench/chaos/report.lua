-- bench/chaos/report.lua: the chaos benchmark's Markdown table and its JSON
-- record, from what the runner gathered (R, built in bench/chaos/chaos.lua).
-- Returns the total of leftovers found (the run's exit status is 1 unless 0).
local cjson = require("cjson")
local U = require("bench.chaos.util")

local function ms(x) return x and ("%.0f ms"):format(x * 1000) or "-" end

-- the iteration a leftover process belongs to: by its mark, else by its
-- working directory (a host's spawn server or supervisor)
local function iteration_of(R, pr)
  local n = pr.mark and tonumber(pr.mark:match("%-(%d+)r?$")) or tonumber((pr.cwd or ""):match("/it/(%d+)/"))
  return n and R.iterations[n]
end

-- Block 3's trees, classified: alive at their deadline (the latency
-- samples), dead before it, never started, never beat, still alive.
local function trees(R)
  local t = { lat = {}, by = {}, before = 0, not_started = 0, no_beat = 0, outlived = 0, gaps = {},
              orphan = {}, orphan_by = {} }
  local live = {}
  for _, p in ipairs(R.procs) do if p.mark then live[p.mark] = true end end
  for _, it in ipairs(R.iterations) do
    local tr = it.tree
    if not tr then
      t.not_started = t.not_started + 1
    elseif tr.procs == 0 then
      t.no_beat = t.no_beat + 1          -- killed before a heartbeat process got going
    elseif live[("%s-%d"):format(R.run, it.i)] and tr.last > tr.deadline + 5 then
      t.outlived = t.outlived + 1
    elseif tr.dead_after <= 0 then
      t.before = t.before + 1
    else
      t.lat[#t.lat + 1] = tr.dead_after
      t.by[it.variant] = t.by[it.variant] or {}
      table.insert(t.by[it.variant], tr.dead_after)
    end
    for _, g in ipairs(tr and tr.gaps or {}) do t.gaps[#t.gaps + 1] = g end
    -- a tree alive when its host was killed before the deadline: how long it outlived the host
    if tr and tr.procs > 0 and it.kill_real and it.kill_real < tr.deadline and tr.last >= it.kill_real
       and not live[("%s-%d"):format(R.run, it.i)] then
      local d = tr.last + R.beat - it.kill_real
      t.orphan[#t.orphan + 1] = d
      t.orphan_by[it.variant] = t.orphan_by[it.variant] or {}
      table.insert(t.orphan_by[it.variant], d)
    end
  end
  return t
end

return function(R)
  local out = {}
  local function p(...) out[#out + 1] = string.format(...) end
  p("## Chaos: %s chats %sSIGKILLed at random moments, each followed by %s",
    R.done == R.n and tostring(R.n) or ("%d (of %d asked: CHAOS_MAX_SECONDS)"):format(R.done, R.n),
    R.kill == "group" and "(the host's whole process group) " or "",
    R.fresh and "a fresh start" or "NO fresh start (CHAOS_FRESH_START=0: a control run)")
  p("")
  p("- command: `%s` (seed %d, timeout %g s, kill moment uniform in [0, %g x an unkilled chat] or, for half"
    .. " of the chats, in [0, the start of its timeout block], work_dir %s)", R.cmd, R.seed, R.timeout, R.spread,
    R.default_workdir and "omitted (the executor's default)" or "a new path per host, created by the executor")
  p("- load (uptime): %s at the start, %s at the end; %.0f s wall; %s", R.load_start, R.load_end, R.elapsed,
    os.getenv("CHAOS_MACHINE") or "")
  p("- %s", os.getenv("CHAOS_VERSIONS") or "")
  p("")

  local late = {}
  for _, it in ipairs(R.iterations) do if it.late then late[it.variant] = (late[it.variant] or 0) + 1 end end
  p("| iterations | chats | SIGKILLed | finished first | host errors | fresh-start errors | fresh start after the deadline | killed during |")
  p("|---|---|---|---|---|---|---|---|")
  for _, v in ipairs(R.variants) do
    local ph = {}
    for name, c in pairs(v.phases) do ph[#ph + 1] = { name, c } end
    table.sort(ph, function(a, b) return a[2] > b[2] end)
    for j, x in ipairs(ph) do ph[j] = x[1] .. " " .. x[2] end
    p("| %s | %d | %d | %d | %d | %d | %d | %s |", v.name, v.chats, v.killed, v.finished, v.errors, v.restart_errors,
      late[v.name] or 0, table.concat(ph, ", "))
  end
  p("")
  p("(chats include the unkilled calibration chats: one per row first, then one every %d chats of the row;"
    .. " phases: start = before the host's first line, executor = building it, chat = the model's first reply,"
    .. " execute1 = blocks 1-2, executed1 = the second reply, execute2 = the timeout block, executed2 = the last"
    .. " reply, close = closing the executor; with CHAOS_LATE=%g, that share of the Docker chats killed in the"
    .. " timeout block get their fresh start only after its deadline and grace, so that the container's supervisor"
    .. " kills the tree of a dead host)", R.recal, R.late)
  p("")

  -- per iteration: what its fresh start (+ linger) had not cleaned up
  local after = { processes = 0, containers = 0, temp = 0, volumes = 0, cgroups = 0 }
  local hit = { processes = 0, containers = 0, temp = 0, volumes = 0, cgroups = 0 }
  local vols_seen = 0
  for _, it in ipairs(R.iterations) do
    vols_seen = vols_seen + (it.volumes_seen or 0)
    for k, c in pairs(it.left or {}) do
      after[k] = after[k] + c
      if c > 0 then hit[k] = hit[k] + 1 end
    end
  end
  local function a(k) return ("%d (%d iterations)"):format(after[k], hit[k]) end
  local by_kind = {}
  for _, pr in ipairs(R.procs) do
    local it = iteration_of(R, pr)
    local kname = it and it.variant or "?"
    by_kind[kname] = (by_kind[kname] or 0) + 1
  end
  local bk = {}
  for k, c in pairs(by_kind) do bk[#bk + 1] = k .. " " .. c end
  table.sort(bk)
  local n_vols = R.n_our_vols + #R.new_unused
  p("| leftovers (goal 0) | after each fresh start + %g s, summed | at the end | |", R.linger)
  p("|---|---|---|---|")
  p("| processes | %s | %d | %s |", a("processes"), #R.procs, #R.procs > 0 and ("by iteration kind: " .. table.concat(bk, ", "))
    or "marked by CHAOS_MARK in their environment, running this build's agentbox-sup, with a cwd under the bench dir, or descended from the runner")
  p("| containers | %s | %d | label agentbox=1 and owned by a bench host, or mounting the bench dir |",
    a("containers"), #R.containers)
  p("| volumes | %s | %d | after a fresh start: of the %d volumes a killed host's containers had; at the end: %d of"
    .. " leftover containers, %d new and unused (another user of this daemon could have made them) |",
    a("volumes"), n_vols, vols_seen, R.n_our_vols, #R.new_unused)
  p("| temporary files and directories | %s | %d | in the hosts' TMPDIR; agentbox-<host pid>-<its start>-* also in /tmp, /var/tmp |",
    a("temp"), #R.temp)
  if R.cg then
    p("| cpu cgroups | %s | %d | agentbox-<owner> in %s, the bench's own, where the hosts run |", a("cgroups"), #R.cgroups, R.cg)
  else
    p("| cpu cgroups | - | %d | agentbox-<owner> beside this process, new since the start, owner gone (anyone's) |",
      #R.cgroups)
  end
  if R.default_workdir then
    p("| files in a host's cwd (work_dir omitted) | - | %d | |", #R.cwd_files)
    p("| hosts' cwd given to another owner (work_dir omitted) | - | %d | |", #R.cwd_chowned)
  end
  p("")

  local t = trees(R)
  local s = U.summary(t.lat)
  p("| tree dead after its deadline | n | median | p95 | p99 | max |")
  p("|---|---|---|---|---|---|")
  if s then p("| all | %d | %s | %s | %s | %s |", s.n, ms(s.median), ms(s.p95), ms(s.p99), ms(s.max)) end
  for _, v in ipairs(R.variants) do
    local sv = U.summary(t.by[v.name] or {})
    if sv then p("| %s | %d | %s | %s | %s | %s |", v.name, sv.n, ms(sv.median), ms(sv.p95), ms(sv.p99), ms(sv.max)) end
  end
  local o = U.summary(t.orphan)
  if o then
    p("")
    p("| tree dead after its host's SIGKILL (host killed during the timeout block, before the deadline) | n | median | p95 | p99 | max |")
    p("|---|---|---|---|---|---|")
    p("| all | %d | %s | %s | %s | %s |", o.n, ms(o.median), ms(o.p95), ms(o.p99), ms(o.max))
    for _, v in ipairs(R.variants) do
      local sv = U.summary(t.orphan_by[v.name] or {})
      if sv then p("| %s | %d | %s | %s | %s | %s |", v.name, sv.n, ms(sv.median), ms(sv.p95), ms(sv.p99), ms(sv.max)) end
    end
    p("")
    p("(Docker: until the fresh start removes the container, or, for a fresh start held past the deadline, until"
      .. " the container's supervisor kills the tree at it; the kill time is taken a few ms early)")
  end
  local g = U.summary(t.gaps)
  p("")
  p("Method: block 3 stamps its start (bash $EPOCHREALTIME) and every process of its tree (the main one, a"
    .. " setsid'd TERM-ignoring one and its two children, one in a third session) writes a heartbeat to its own"
    .. " file every %.0f ms; the tree is dead at its last heartbeat + %.0f ms, the deadline is start + %g s."
    .. " Resolution: one period (measured mean period %s, median over processes); the supervisor's clock starts"
    .. " 1-3 ms (a bash start-up) before the stamp, so the true latency is that much higher."
    .. " Counted: trees alive at their deadline (%d); %d trees died before it (their host was killed first),"
    .. " %d chats never reached block 3, %d trees were killed before any of their processes beat, %d trees"
    .. " outlived their deadline by more than 5 s and were still alive at the end.",
    R.beat * 1000, R.beat * 1000, R.timeout, g and ("%.1f ms"):format(g.median * 1000) or "-", #t.lat, t.before,
    t.not_started, t.no_beat, t.outlived)

  if #R.procs > 0 then
    p("")
    p("Leftover processes (pid, iteration mark, kind, phase at the kill, state, cwd, command):")
    p("")
    for j, pr in ipairs(R.procs) do
      if j > 40 then p("- ... %d more", #R.procs - 40) break end
      local it = iteration_of(R, pr)
      p("- %s `%s` %s %s %s %s `%s`", pr.pid, tostring(pr.mark), it and it.variant or "?",
        it and (it.killed and ("killed at %.2f s in %s"):format(it.kill_after, it.phase) or "not killed") or "?",
        pr.state, pr.cwd, pr.cmd:sub(1, 100))
    end
  end
  if #R.containers > 0 then
    p("")
    p("Leftover containers:")
    p("")
    for _, c in ipairs(R.containers) do
      p("- %s %s %s owner pid %s, volumes: %s", c.id, c.name, c.status, c.owner, table.concat(c.volumes, " "))
    end
  end
  if #R.new_unused > 0 then p("") p("New unused volumes: %s", table.concat(R.new_unused, " ")) end
  if #R.temp > 0 then
    p("")
    p("Leftover temporary entries:")
    p("")
    for j, e in ipairs(R.temp) do
      if j > 20 then p("- ... %d more", #R.temp - 20) break end
      p("- %s", e)
    end
  end
  if #R.cgroups > 0 then p("") p("Leftover cgroups: %s", table.concat(R.cgroups, " ", 1, math.min(10, #R.cgroups))) end
  if #R.cwd_files > 0 then
    p("")
    p("Files in hosts' cwd, e.g.: %s", table.concat(R.cwd_files, " ", 1, math.min(4, #R.cwd_files)))
  end
  io.stdout:write(table.concat(out, "\n"), "\n")

  local total = #R.procs + #R.containers + n_vols + #R.temp + #R.cwd_files + #R.cwd_chowned + #R.cgroups
    + after.processes + after.containers + after.temp + after.volumes + after.cgroups
  if R.results then
    local f = io.open(R.results, "w")
    if f then
      local its = {}
      for _, it in ipairs(R.iterations) do
        its[#its + 1] = { i = it.i, variant = it.variant, kill_after = it.kill_after, killed = it.killed,
                          status = it.status, phase = it.phase, wall = it.wall, restart_status = it.restart_status,
                          restart_wall = it.restart_wall, dead_after = it.tree and it.tree.dead_after,
                          tree_procs = it.tree and it.tree.procs, left = it.left, late = it.late,
                          to_block3 = it.to_block3, kill_real = it.kill_real }
      end
      f:write(cjson.encode{ command = R.cmd, seed = R.seed, n = R.done, asked = R.n, timeout = R.timeout,
        load_start = R.load_start, load_end = R.load_end, latency = s, after_host_kill = o, total_leftovers = total,
        leftovers_after_fresh_start = after,
        leftovers = { processes = #R.procs, containers = #R.containers, volumes = n_vols, temp = #R.temp,
                      cwd_files = #R.cwd_files, cwd_chowned = #R.cwd_chowned, cgroups = #R.cgroups },
        iterations = its })
      f:close()
    end
  end
  return total
end
