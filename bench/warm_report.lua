-- bench/warm_report.lua: bench/warm.sh's Markdown table and bench/results/warm.json,
-- from the JSON files warm_bench.lua and autogen_docker.py wrote into DIR
-- (<side>_<phase>_<round>.json; tput once: <side>_tput.json). Environment:
-- BENCH_CMD, BENCH_MACHINE, BENCH_VERSIONS, BENCH_IMAGE, BENCH_AG2_VERSION,
-- BENCH_LOAD_START, BENCH_LOAD_END, BENCH_ROUNDS and the sample knobs.
local B = require("benchlib")

local function fmt(x, d) return x and ("%." .. (d or 1) .. "f"):format(x) or "?" end

return function(dir, out_path)
  local env = os.getenv
  local rounds = tonumber(env("BENCH_ROUNDS") or "1")
  local function load(side, phase)
    local t = {}
    for r = 1, rounds do
      local ok, x = pcall(B.read_json, ("%s/%s_%s_%d.json"):format(dir, side, phase, r))
      if ok and x then t[#t + 1] = x end
    end
    return t
  end
  local function gather(runs, f)
    local lists = {}
    for _, r in ipairs(runs) do lists[#lists + 1] = f(r) or {} end
    return B.concat(lists)
  end
  local abr, agr = load("ab", "rows"), load("ag", "rows")
  local abp, abf, agc = load("ab", "pool"), load("ab", "fresh"), load("ag", "cold")
  local abk, agk = load("ab", "conc"), load("ag", "conc")
  local okt, abt = pcall(B.read_json, dir .. "/ab_tput.json")
  local okg, agt = pcall(B.read_json, dir .. "/ag_tput.json")
  abt, agt = okt and abt or nil, okg and agt or nil

  local function ab_row(name) return gather(abr, function(r) return r.rows[name] end) end
  local function ag_row(name) return gather(agr, function(r) return r.rows[name] end) end
  local ag_cold = gather(agc, function(r) return r.first_ms end)
  local k = abk[1] and abk[1].k or 0
  local m = abk[1] and abk[1].m or 0

  -- { label, agentbox samples, AutoGen samples, goal text, goal check(a_stats, g_stats) or nil }
  local function ratio_goal(x)
    return ("≥ %gx AutoGen"):format(x), function(a, g) return g.n > 0 and g.median / a.median >= x end
  end
  local r10, g10 = ratio_goal(10)
  local r35, g35 = ratio_goal(35)
  local r25, g25 = ratio_goal(25)
  local spec = {
    { "warm python `print(1)`, `warm = true` (block server)", ab_row("py_warm"), ag_row("python"), r10, g10 },
    { "warm python `print(1)`, `preload = { \"pandas\", \"numpy\" }`", ab_row("py_preload"), ag_row("python"), r10, g10 },
    { "warm python `print(1)`, `stateful = true`", ab_row("py_stateful"), ag_row("python"), r10, g10 },
    { "warm python `print(1)`, exec path (default)", ab_row("py_exec"), ag_row("python") },
    { "warm sh `echo hi`, `warm = true`", ab_row("sh_warm"), ag_row("sh") },
    { "warm sh `echo hi`, exec path (default)", ab_row("sh_exec"), ag_row("sh") },
    { "seed 002's sales block (pandas), `warm = true`, no preload", ab_row("sales_warm"), ag_row("sales") },
    { "seed 002's sales block, `preload = { \"pandas\", \"numpy\" }`", ab_row("sales_preload"), ag_row("sales"),
      r35, g35 },
    { "seed 002's sales block, `stateful = true` (pandas imported by an earlier block)", ab_row("sales_stateful"),
      ag_row("sales") },
    { "pool claim -> first `print(1)` result (AutoGen: cold start, constructor -> first result)",
      gather(abp, function(r) return r.claim_first_ms end), ag_cold, r25, g25 },
    { "  of which the claim (`DockerExecutor{ pool = p }` + `start()`)",
      gather(abp, function(r) return r.claim_ms end), {} },
    { "`fresh = true`, per `execute` of `print(1)`, pool refilled between calls (AutoGen: cold start)",
      gather(abf, function(r) return r.fresh_ms end), ag_cold, "< 20 ms", function(a) return a.median < 20 end },
    { "`fresh = true`, back to back (a pool of 2 drained: each call waits for a container start)",
      gather(abf, function(r) return r.fresh_b2b_ms end), ag_cold },
    { ("%d executors at once, per `print(1)`, `warm = true`"):format(k),
      gather(abk, function(r) return r.warm.ms end), gather(agk, function(r) return r.ms end) },
    { ("%d executors at once, per `print(1)`, exec path"):format(k),
      gather(abk, function(r) return r.exec and r.exec.ms end), gather(agk, function(r) return r.ms end) },
    { ("%d executors at once: %d x %d `print(1)` (wall), `warm = true`"):format(k, k, m),
      gather(abk, function(r) return { r.warm.wall_ms } end), gather(agk, function(r) return { r.wall_ms } end) },
    { ("%d executors at once: cold start of all %d (wall), `warm = true`"):format(k, k),
      gather(abk, function(r) return { r.warm.start_wall_ms } end),
      gather(agk, function(r) return { r.start_wall_ms } end) },
  }
  local results = { command = env("BENCH_CMD"), machine = env("BENCH_MACHINE"), versions = env("BENCH_VERSIONS"),
                    load_start = env("BENCH_LOAD_START"), load_end = env("BENCH_LOAD_END"), rows = {}, notes = {} }
  local P = print
  P("## Warm sandbox (issue 11): agentbox DockerExecutor vs AutoGen DockerCommandLineCodeExecutor (same image, same daemon, one run)")
  P("")
  P("Command: `" .. tostring(env("BENCH_CMD")) .. "`")
  P("")
  P(("Machine: %s. Load average %s at the start, %s at the end. %s. Image %s. ag2 %s. %d rounds (agentbox then AutoGen per phase); per round: %s samples per block row (+%s warm-up), %s pool claims and fresh calls, %s AutoGen cold starts, %d executors x %d blocks; throughput once, %s s per row. Times in ms, median / p95 (nearest rank) over all samples.")
    :format(env("BENCH_MACHINE"), env("BENCH_LOAD_START"), env("BENCH_LOAD_END"), env("BENCH_VERSIONS"),
            env("BENCH_IMAGE"), env("BENCH_AG2_VERSION"), rounds, env("BENCH_WARM_N"), env("BENCH_WARM_WARM"),
            env("BENCH_POOL_N"), env("BENCH_COLD_N"), k, m, env("BENCH_TPUT_S")))
  P("")
  P(B.row({ "row", "agentbox median / p95", "AutoGen median / p95", "AutoGen / agentbox (median)", "goal", "" }))
  P("|---|---|---|---|---|---|")
  local missed = {}
  for _, s in ipairs(spec) do
    local a, g = B.stats(s[2]), B.stats(s[3])
    if a.n > 0 then
      local met = s[5] and s[5](a, g)
      local verdict = s[5] and (met and "met" or "**missed**") or ""
      if s[5] and not met then missed[#missed + 1] = s[1] end
      results.rows[#results.rows + 1] = { name = s[1], agentbox = a, autogen = g, goal = s[4], met = met,
                                          ratio = g.n > 0 and g.median / a.median or nil }
      P(B.row({ s[1], B.pair(a), g.n > 0 and B.pair(g) or "-", g.n > 0 and B.ratio(g.median, a.median) or "-",
                s[4] or "", verdict }))
    end
  end
  -- throughput: executions per second, with the per-block latency under that load
  for _, row in ipairs({ { "py", "`print(1)`" }, { "sh", "`echo hi`" } }) do
    local a, g = abt and abt[row[1]], agt and agt[row[1]]
    if a then
      local as, gs = B.stats(a.ms), g and B.stats(g.ms)
      local met = a.per_s >= 100
      if not met then missed[#missed + 1] = "throughput " .. row[2] end
      local name = ("hardened executions per second, %d warm executors back to back, %s (per block: median / p95)")
        :format(abt.k, row[2])
      results.rows[#results.rows + 1] = { name = name, agentbox_per_s = a.per_s, autogen_per_s = g and g.per_s,
                                          agentbox = as, autogen = gs, goal = ">= 100/s", met = met,
                                          ratio = g and a.per_s / g.per_s or nil }
      P(B.row({ name, ("**%.0f/s** (%s)"):format(a.per_s, B.pair(as)),
                g and ("%.0f/s (%s)"):format(g.per_s, B.pair(gs)) or "-",
                g and B.ratio(a.per_s, g.per_s) .. " (per second)" or "-", "≥ 100/s", met and "met" or "**missed**" }))
    end
  end
  P("")
  local function note(s)
    results.notes[#results.notes + 1] = s
    P("- " .. s)
  end
  P("Where the time goes:")
  local fl_true = B.stats(gather(abr, function(r) return r.floor.srv_true end))
  local fl_py = B.stats(gather(abr, function(r) return r.floor.srv_pypass end))
  local inside = abr[1] and abr[1].inside or {}
  -- per block: wall time against the CPU it cost, by whom
  if abr[1] and abr[1].cpu then
    P("")
    P("| block (agentbox) | wall | host: this Lua process, CPU | container: server, supervisor, program, CPU | dockerd + containerd + runc, CPU (mean) | the rest: waiting for a core, wake-ups |")
    P("|---|---|---|---|---|---|")
    for _, name in ipairs({ "py_warm", "py_preload", "py_stateful", "py_exec", "sh_warm", "sh_exec", "sales_warm",
                            "sales_preload", "sales_stateful" }) do
      local wall = B.stats(ab_row(name))
      if wall.n > 0 then
        local host = B.stats(gather(abr, function(r) return r.cpu[name].host end))
        local ct = B.stats(gather(abr, function(r) return r.cpu[name].container end))
        local dsum, dn = 0, 0
        for _, r in ipairs(abr) do
          dsum, dn = dsum + r.cpu[name].daemons_ms, dn + #r.rows[name]
        end
        local d = dsum / math.max(dn, 1)
        local rest = wall.median - host.median - (ct.median or 0) - d
        results.cpu = results.cpu or {}
        results.cpu[name] = { wall = wall.median, host = host.median, container = ct.median, daemons = d, rest = rest }
        P(B.row({ name, fmt(wall.median), fmt(host.median), ct.n > 0 and fmt(ct.median) or "?", fmt(d), fmt(rest) }))
      end
    end
    P("")
    P("(medians in ms per block; CPU from clock() for the host, the container's cpuacct cgroup, /proc ticks for the daemons summed over the row and shared with other containers on the daemon; the container's CPU also counts work done after the reply, such as a preload template forking its next spare session, so the rest can come out negative)")
    P("")
  end
  note(("floors: the block server's round trip with `/bin/true` (host -> socket -> server -> supervisor with seccomp, the sweep -> report, no executor Lua) %s ms; with `python3 -c pass` %s ms; inside the container with no server (posix_spawn + wait) `python3 -c pass` %s ms, `sh -c true` %s ms, `/bin/true` %s ms.")
    :format(B.pair(fl_true), B.pair(fl_py), fmt(inside.python_pass), fmt(inside.sh_true), fmt(inside["true"])))
  local pp, sp = B.stats(ab_row("py_preload")), B.stats(ab_row("sales_preload"))
  if sp.n > 0 then
    note(("preload: `print(1)` %s ms is a fork of the template instead of a python3 start (the template's client is `sup --preload-client`); the sales block %s ms = that + pandas' own work (read_csv + two groupbys, timed inside a preloaded block: %s ms) + the fork's first writes to the template's pages. Without preload the block imports pandas and numpy (`python3 -c 'import pandas, numpy'` inside the container: %s ms).")
      :format(fmt(pp.median), fmt(sp.median), fmt(abr[1].pandas_work_ms), fmt(inside.python_pandas, 0)))
  end
  local pe = abr[1] and abr[1].ops and abr[1].ops.py_exec
  if pe and #pe > 0 then
    local per = {}
    for _, r in ipairs(abr) do
      for _, list in ipairs(r.ops.py_exec or {}) do
        for _, o in ipairs(list) do per[o[1]] = per[o[1]] or {} table.insert(per[o[1]], o[2]) end
      end
    end
    local parts = {}
    for op, xs in pairs(per) do parts[#parts + 1] = ("%s %s ms"):format(op, fmt(B.stats(xs).median)) end
    table.sort(parts)
    note("exec path `print(1)`, Engine API requests per block (medians): " .. table.concat(parts, "; ")
         .. ": the exec start is dockerd + containerd + runc making a process, which warm mode does not do.")
  end
  local pc, pf = B.stats(gather(abp, function(r) return r.claim_ms end)),
                 B.stats(gather(abp, function(r) return r.first_ms end))
  if pc.n > 0 then
    note(("pool: the claim %s ms (no Engine API call), then the first block %s ms: a warm block's cost."):format(
      B.pair(pc), B.pair(pf)))
  end
  local fr = B.stats(gather(abf, function(r) return r.fresh_ms end))
  if fr.n > 0 and pf.n > 0 then
    note(("fresh: a call %s ms = a claim + the block on a never-used container (the pool's first block above: %s ms) + work_dir copied in and out through the accessor and the used container's removal sent (not waited for): %s.")
      :format(B.pair(fr), fmt(pf.median), fr.median - pf.median - (pc.median or 0) > 0.5
        and ("about %s ms beyond the first block"):format(fmt(fr.median - pf.median - (pc.median or 0)))
        or "no measurable cost beyond the claim and the first block"))
  end
  if abt then
    for _, row in ipairs({ "py", "sh" }) do
      local a = abt[row]
      local total = a.cpu_busy_ms + a.cpu_idle_ms
      local ours = a.cpu_self_ms + a.cpu_daemons_ms + a.cpu_containers_ms
      note(("throughput %s: %d executions in %.1f s; the %s cores were %.0f%% busy. CPU per execution: the containers (servers, supervisors, programs) %.2f ms, this Lua process %.2f ms, dockerd + containerd %.2f ms; the rest of the machine's busy time (other work on the shared VM) %.0f%% of it.")
        :format(row == "py" and "`print(1)`" or "`echo hi`", a.done, a.wall_ms / 1000, env("BENCH_NPROC") or "?",
                100 * a.cpu_busy_ms / total, a.cpu_containers_ms / a.done, a.cpu_self_ms / a.done,
                a.cpu_daemons_ms / a.done, 100 * math.max(0, a.cpu_busy_ms - ours) / a.cpu_busy_ms))
    end
    note(("AutoGen's throughput side: %d DockerCommandLineCodeExecutors, one thread each (how synchronous AutoGen code runs several chats; docker-py releases the GIL while it waits on the daemon), each block a `docker exec`."):format(agt and agt.k or 0))
  end
  note("AutoGen runs python blocks as `python`, which this image lacks: bench/autogen_docker.py maps it to `python3`; nothing else is changed. AutoGen has no stateful, preload, pool or fresh mode: those rows compare with its plain warm block or its cold start.")
  P("")
  P(#missed == 0 and "Goals: all met." or ("Goals missed: " .. table.concat(missed, "; ") .. "."))
  results.missed = missed
  B.write_json(out_path, results)
end
