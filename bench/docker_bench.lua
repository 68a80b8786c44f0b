-- bench/docker_bench.lua: the agentbox side of bench/docker.sh, and its report.
--
--   lua5.4 bench/docker_bench.lua cold N WARMUP OUT.json   executor create -> ready -> first block -> close
--   lua5.4 bench/docker_bench.lua warm N WARMUP OUT.json   per-block latency on a started executor
--   lua5.4 bench/docker_bench.lua conc K M WARMUP OUT.json K executors, K tasks, M timed blocks each
--   lua5.4 bench/docker_bench.lua remote N WARMUP OUT.json through spec/support/tcp_relay.py (a remote
--                                                          daemon): print(1) warm (attach stream) vs exec;
--                                                          and locally, warm's socket vs its attach stream
--   lua5.4 bench/docker_bench.lua pool N WARMUP OUT.json   DockerPool claim -> first print(1), against cold
--                                                          starts of non-pooled executors in the same run
--   lua5.4 bench/docker_bench.lua fresh N WARMUP OUT.json  fresh = true, per execute (pool refilled between
--                                                          calls, and back to back), against the same cold starts
--   lua5.4 bench/docker_bench.lua preload N WARMUP OUT.json  seed 002's sales block (pandas), `warm = true`
--                                                          vs `preload = { "pandas", "numpy" }`, interleaved;
--                                                          prints its own median / p95 table too
--   lua5.4 bench/docker_bench.lua stateful N WARMUP OUT.json python `print(1)` per block with `stateful = true`
--                                                          vs `warm = true` vs `preload = { "pandas", "numpy" }`,
--                                                          interleaved; prints its own median / p95 table
--   lua5.4 bench/docker_bench.lua report DIR OUT.json       the Markdown table (BENCH_* variables)
--
-- Environment: BENCH_IMAGE, BENCH_TMP (scratch dir; work dirs go under it).
--
-- Where the time goes: core.http and core.spawn are wrapped (engine.lua and
-- the executor look them up on the core table at call time), so every
-- Engine API request and host helper process is timed from its start to the
-- first done() that says true. The wrapper costs microseconds per request
-- against blocks of tens of milliseconds.
local B = require("benchlib")

local mode = arg[1]

local check = B.check

local PY = { { lang = "python", code = "print(1)" } }
local SH = { { lang = "sh", code = "echo hi" } }

-- seed 002's sales block (bench/sales_block.py): pandas reads its ten rows, groups by region and by month
local SALES = require("warm_blocks").SALES

---------------------------------------------------------------- measuring modes
local function harness()
  local agentbox = require("agentbox")
  local core = require("agentbox.core")
  local task = require("agentbox.task")
  local docker = require("agentbox.engine")
  local now = core.now
  local IMAGE = os.getenv("BENCH_IMAGE") or "agentbox/sandbox:latest"
  local TMP = os.getenv("BENCH_TMP") or "/tmp/agentbox-bench"
  local tag = os.getenv("BENCH_ROUND") or "0"

  local take = B.engine_ops(core)

  local function executor(name, warm, preload, stateful)
    return agentbox.DockerExecutor{ image = IMAGE, work_dir = ("%s/ab-%s-%s"):format(TMP, tag, name), timeout = 60,
                                    warm = warm, preload = preload, stateful = stateful }
  end

  local H = {}

  function H.cold(n, warm, out)
    local res = { ready_ms = {}, first_ms = {}, close_ms = {}, ops_ready = {}, ops_first = {}, ops_close = {} }
    for i = 1, warm + n do
      take()
      local t0 = now()
      local ex = executor("cold" .. i)
      ex:start()
      local t1 = now()
      local o_ready = take()
      local r = ex:execute(PY)
      local t2 = now()
      local o_first = take()
      check(r, "1\n")
      assert(ex:close())
      local t3 = now()
      if i > warm then   -- the first start in a process also negotiates the API version
        table.insert(res.ready_ms, (t1 - t0) * 1000)
        table.insert(res.first_ms, (t2 - t0) * 1000)
        table.insert(res.close_ms, (t3 - t2) * 1000)
        table.insert(res.ops_ready, o_ready)
        table.insert(res.ops_first, o_first)
        table.insert(res.ops_close, take())
      end
    end
    B.write_json(out, res)
  end

  -- one exec straight through the client (no executor Lua, no file): the floor
  local function raw_exec(ex, cmd)
    return task.sync(function()
      local c = ex.client
      local eid = assert(c:exec_create(ex.container_id, { Cmd = cmd, AttachStdout = true, AttachStderr = true,
                                                          Tty = false }))
      local req <close> = c:exec_start(eid, 65536, 30)
      local res = docker.await(req)
      local info = c:exec_inspect(eid)
      return res.output, info.ExitCode
    end)
  end

  function H.warm(n, warm, out)
    local ex = executor("warm")
    ex:start()
    -- warm = true (the in-container block server), same run, interleaved;
    -- BENCH_NO_SERVER=1 leaves it out
    local srv = os.getenv("BENCH_NO_SERVER") ~= "1" and executor("warmsrv", true) or nil
    if srv then srv:start() end
    local res = { rows = { python = { ms = {}, ops = {} }, sh = { ms = {}, ops = {} },
                           python_server = { ms = {}, ops = {} }, sh_server = { ms = {}, ops = {} } }, floor = {} }
    local rows = { { "python", PY, "1\n", ex }, { "sh", SH, "hi\n", ex } }
    if srv then
      rows[3] = { "python_server", PY, "1\n", srv }
      rows[4] = { "sh_server", SH, "hi\n", srv }
    end
    local files = {}
    math.randomseed(7)
    for i = 1, warm + n do
      local order = {}
      for j = 1, #rows do table.insert(order, math.random(#order + 1), j) end   -- interleaved, random order
      for _, j in ipairs(order) do
        local name, block, want, e = rows[j][1], rows[j][2], rows[j][3], rows[j][4]
        take()
        local t0 = now()
        local r = e:execute(block)
        local dt = (now() - t0) * 1000
        local o = take()
        check(r, want)
        if e == ex then files[name] = r.code_file:match("[^/]+$") end
        if i > warm then
          table.insert(res.rows[name].ms, dt)
          table.insert(res.rows[name].ops, o)
        end
      end
    end
    -- floors: the three API round trips with /bin/true, then with our supervisor in front
    local sup = "/opt/agentbox/sup"
    for _, f in ipairs({ { "true", { "/bin/true" } }, { "sup_true", { sup, "-u", "1000:1000", "-t", "60000", "-g", "500", "--", "/bin/true" } } }) do
      local xs = {}
      for i = 1, warm + n // 2 do
        local t0 = now()
        local _, code = raw_exec(ex, f[2])
        assert(code == 0, f[1] .. " failed")
        if i > warm then xs[#xs + 1] = (now() - t0) * 1000 end
      end
      res.floor[f[1]] = xs
    end
    take()
    -- the interpreters' own start, measured inside the container (posix_spawn + wait from Python)
    local probe = ([[
import os, time, statistics
def run(argv, n=40):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
                             file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
        os.waitpid(pid, 0)
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)
print(run(["/usr/bin/python3", "/workspace/%s"]), run(["/bin/sh", "/workspace/%s"]), run(["/bin/true"]))
]]):format(files.python, files.sh)
    local r = ex:execute{ { lang = "python", code = probe } }
    local p, s, t = r.output:match("^(%S+) (%S+) (%S+)")
    res.inside = { python = tonumber(p), sh = tonumber(s), ["true"] = tonumber(t) }
    local info = task.sync(ex.client.inspect, ex.client, ex.container_id)
    local hc = info.HostConfig
    res.hostconfig = { User = info.Config.User, NetworkMode = hc.NetworkMode, ReadonlyRootfs = hc.ReadonlyRootfs,
                       CapDrop = hc.CapDrop, SecurityOpt = hc.SecurityOpt, Init = hc.Init, PidsLimit = hc.PidsLimit,
                       Memory = hc.Memory, NanoCpus = hc.NanoCpus }
    ex:close()
    if srv then srv:close() end
    B.write_json(out, res)
  end

  -- A remote daemon: the local one behind spec/support/tcp_relay.py
  -- (DOCKER_HOST=tcp://127.0.0.1:PORT). print(1) through the exec path and
  -- through warm mode's attach stream, interleaved in random order.
  function H.remote(n, warm, out)
    local relay = assert(core.spawn{ argv = { "python3", "spec/support/tcp_relay.py", docker.client().ep.socket },
                                     env = { PATH = os.getenv("PATH") }, timeout = 3600, stream = true })
    local got = ""
    while not got:find("\n") and not relay:done() do
      task.wait(relay)
      local c = relay:read()
      for i = 1, c and #c or 0, 2 do if c[i] == "stdout" then got = got .. c[i + 1] end end
    end
    local host = "tcp://127.0.0.1:" .. assert(got:match("^(%d+)\n"), got)
    local function mk(name, w, dh, transfer)
      return agentbox.DockerExecutor{ image = IMAGE, work_dir = ("%s/ab-%s-%s"):format(TMP, tag, name), timeout = 60,
                                      warm = w, docker_host = dh, transfer = transfer }
    end
    -- and, on the local daemon, the two warm channels side by side: the
    -- socket, and the attach stream (transfer = "archive" takes it)
    local exs = { exec = mk("rexec", false, host), warm = mk("rwarm", true, host),
                  local_socket = mk("lsock", true), local_attach = mk("lattach", true, nil, "archive") }
    local names = { "exec", "warm", "local_socket", "local_attach" }
    local res = { rows = {}, cold = {} }
    for _, name in ipairs(names) do res.rows[name] = { ms = {}, ops = {} } end
    for name, e in pairs(exs) do
      local t0 = now()
      e:start()
      res.cold[name] = (now() - t0) * 1000
    end
    math.randomseed(7)
    for i = 1, warm + n do
      local order = {}
      for j = 1, #names do table.insert(order, math.random(#order + 1), names[j]) end   -- random order
      for _, name in ipairs(order) do
        take()
        local t0 = now()
        local r = exs[name]:execute(PY)
        local dt = (now() - t0) * 1000
        local o = take()
        check(r, "1\n")
        if i > warm then
          table.insert(res.rows[name].ms, dt)
          table.insert(res.rows[name].ops, o)
        end
      end
    end
    for _, e in pairs(exs) do e:close() end
    relay:close()
    local f = io.open("/proc/loadavg")
    res.loadavg = f and f:read("l")
    if f then f:close() end
    for _, name in ipairs(names) do
      local st = B.stats(res.rows[name].ms)
      res.rows[name].stats = st
      print(("%-12s print(1): median %.1f ms, p95 %.1f ms (n = %d); start %.0f ms"):format(name, st.median, st.p95,
                                                                                       st.n, res.cold[name]))
    end
    print("load average: " .. tostring(res.loadavg))
    B.write_json(out, res)
  end

  -- the sales block and print(1) on a warm executor and on a preloaded one
  -- (started, template ready), interleaved in random order
  function H.preload(n, warm, out)
    local t0 = now()
    local srv = executor("pl-warm", true)
    srv:start()
    local t1 = now()
    local pre = executor("pl-preload", nil, { "pandas", "numpy" })
    pre:start()
    local t2 = now()
    local res = { start_warm_ms = (t1 - t0) * 1000, start_preload_ms = (t2 - t1) * 1000, rows = {} }
    local want = srv:execute(SALES).output
    assert(want:find("north", 1, true), want)
    local rows = { { "sales_warm", SALES, want, srv }, { "sales_preload", SALES, want, pre },
                   { "python_warm", PY, "1\n", srv }, { "python_preload", PY, "1\n", pre } }
    for _, row in ipairs(rows) do res.rows[row[1]] = {} end
    math.randomseed(11)
    for i = 1, warm + n do
      local order = {}
      for j = 1, #rows do table.insert(order, math.random(#order + 1), j) end
      for _, j in ipairs(order) do
        local name, block, w, e = rows[j][1], rows[j][2], rows[j][3], rows[j][4]
        local s0 = now()
        local r = e:execute(block)
        local dt = (now() - s0) * 1000
        check(r, w)
        if i > warm then table.insert(res.rows[name], dt) end
      end
    end
    srv:close()
    pre:close()
    B.write_json(out, res)
    local f = io.open("/proc/loadavg")
    local load = f and f:read("l") or "?"
    if f then f:close() end
    print(("preload bench: %d blocks per row (+%d warm-up), load average at the end %s"):format(n, warm, load))
    print(("start(): warm = true %.0f ms; preload = { pandas, numpy } %.0f ms (the template's imports)")
      :format(res.start_warm_ms, res.start_preload_ms))
    for _, row in ipairs(rows) do
      local st = B.stats(res.rows[row[1]])
      print(("%-16s median %7.1f ms  p95 %7.1f ms"):format(row[1], st.median, st.p95))
    end
  end

  -- print(1) in the stateful session (state kept between blocks) against
  -- the warm server and the preloaded template, started, interleaved in
  -- random order
  function H.stateful(n, warm, out)
    local exs = { { "python_warm", executor("st-warm", true) },
                  { "python_preload", executor("st-preload", nil, { "pandas", "numpy" }) },
                  { "python_stateful", executor("st-stateful", nil, nil, true) } }
    local res = { rows = {} }
    for _, row in ipairs(exs) do
      row[2]:start()
      res.rows[row[1]] = {}
    end
    math.randomseed(12)
    for i = 1, warm + n do
      local order = {}
      for j = 1, #exs do table.insert(order, math.random(#order + 1), j) end
      for _, j in ipairs(order) do
        local s0 = now()
        local r = exs[j][2]:execute(PY)
        local dt = (now() - s0) * 1000
        check(r, "1\n")
        if i > warm then table.insert(res.rows[exs[j][1]], dt) end
      end
    end
    for _, row in ipairs(exs) do row[2]:close() end
    local f = io.open("/proc/loadavg")
    res.load = f and f:read("l") or "?"
    if f then f:close() end
    B.write_json(out, res)
    print(("stateful bench: %d blocks per row (+%d warm-up), load average at the end %s"):format(n, warm, res.load))
    for _, row in ipairs(exs) do
      local st = B.stats(res.rows[row[1]])
      print(("%-16s median %7.1f ms  p95 %7.1f ms"):format(row[1], st.median, st.p95))
    end
  end

  local all = B.all

  function H.conc(k, m, warm, out)
    local exs = {}
    for i = 1, k do exs[i] = executor("conc" .. i) end
    local res = { k = k, m = m, ms = {} }
    res.start_wall_ms = all(k, function(i) exs[i]:start() return true end)
    all(k, function(i)
      for _ = 1, warm do check(exs[i]:execute(PY), "1\n") end
      return true
    end)
    take()
    res.wall_ms = all(k, function(i)
      for _ = 1, m do
        local t0 = now()
        local r = exs[i]:execute(PY)
        res.ms[#res.ms + 1] = (now() - t0) * 1000
        check(r, "1\n")
      end
      return true
    end)
    res.ops = take()   -- every request of the timed blocks, all executors
    res.close_wall_ms = all(k, function(i) return exs[i]:close() end)
    B.write_json(out, res)
  end

  -- the cold starts pool and fresh are compared with: a non-pooled executor,
  -- created -> first print(1) result, exec path and warm = true
  local function cold_row(res, i, warm)
    for _, w in ipairs({ false, true }) do
      local t0 = now()
      local ex = executor(("cold%s%d"):format(w and "w" or "", i), w)
      local r = ex:execute(PY)
      local dt = (now() - t0) * 1000
      check(r, "1\n")
      assert(ex:close())
      if i > warm then table.insert(w and res.cold_warm_ms or res.cold_ms, dt) end
    end
  end

  local function table_of(title, rows, res)
    local cold = B.stats(res.cold_ms)
    print(("## %s (ms, median / p95 nearest rank; load average %s)"):format(title, io.open("/proc/loadavg"):read("l")))
    print("")
    print(B.row({ "row", "median / p95", "n", "cold start (exec path) / this, median" }))
    print("|---|---|---|---|")
    for _, r in ipairs(rows) do
      local st = B.stats(r[2])
      print(B.row({ r[1], B.pair(st), tostring(st.n), B.ratio(cold.median, st.median) }))
    end
    print("")
  end

  function H.pool(n, warm, out)
    local pool <close> = agentbox.DockerPool{ size = 2, image = IMAGE }
    local res = { claim_first_ms = {}, claim_ms = {}, second_ms = {}, cold_ms = {}, cold_warm_ms = {},
                  ops_claim = {} }
    for i = 1, warm + n do
      local ex, r, claim_ms, first_ms, o = B.claim_first(pool, PY, take)
      check(r, "1\n")
      -- the same block again on that executor: a warm block's cost at this load (the refill has ended)
      assert(pool:fill())
      local t3 = now()
      check(ex:execute(PY), "1\n")
      local t4 = now()
      assert(ex:close())
      if i > warm then
        table.insert(res.claim_first_ms, claim_ms + first_ms)
        table.insert(res.claim_ms, claim_ms)
        table.insert(res.second_ms, (t4 - t3) * 1000)
        table.insert(res.ops_claim, o)
      end
      cold_row(res, i, warm)
    end
    B.write_json(out, res)
    table_of("DockerPool: claim -> first `print(1)` result", {
      { "pool claim -> first print(1) (`DockerExecutor{ pool = p }` + execute)", res.claim_first_ms },
      { "of which the claim (`DockerExecutor{ pool = p }` + `start()`)", res.claim_ms },
      { "a second print(1) on that executor, the pool full again (a warm block at this load)", res.second_ms },
      { "cold start -> first print(1), no pool, exec path", res.cold_ms },
      { "cold start -> first print(1), no pool, warm = true", res.cold_warm_ms } }, res)
  end

  function H.fresh(n, warm, out)
    local pool <close> = agentbox.DockerPool{ size = 2, image = IMAGE }
    local ex <close> = agentbox.DockerExecutor{ pool = pool, fresh = true, timeout = 60 }
    local res = { fresh_ms = {}, fresh_b2b_ms = {}, cold_ms = {}, cold_warm_ms = {} }
    for i = 1, warm + n do
      local dt = B.fresh_call(pool, ex, PY, "1\n", take)
      if i > warm then table.insert(res.fresh_ms, dt) end
    end
    -- back to back: calls faster than the pool refills (a container start each)
    assert(pool:fill())
    for i = 1, warm + n do
      local t0 = now()
      local r = ex:execute(PY)
      local dt = (now() - t0) * 1000
      check(r, "1\n")
      if i > warm then table.insert(res.fresh_b2b_ms, dt) end
    end
    for i = 1, warm + n do cold_row(res, i, warm) end
    B.write_json(out, res)
    table_of("fresh = true: one never-used container per execute", {
      { "fresh, per execute (pool refilled between calls)", res.fresh_ms },
      { "fresh, per execute, back to back (pool of 2 drained)", res.fresh_b2b_ms },
      { "cold start -> first print(1), no pool, exec path", res.cold_ms },
      { "cold start -> first print(1), no pool, warm = true", res.cold_warm_ms } }, res)
  end

  return H
end

---------------------------------------------------------------- report
local function report(dir, out_path)
  local env = os.getenv
  local rounds = tonumber(env("BENCH_ROUNDS") or "1")
  local function load(side, kind)
    local t = {}
    for r = 1, rounds do t[r] = B.read_json(("%s/%s_%s_%d.json"):format(dir, side, kind, r)) end
    return t
  end
  local abc, agc = load("ab", "cold"), load("ag", "cold")
  local abw, agw = load("ab", "warm"), load("ag", "warm")
  local abk, agk = load("ab", "conc"), load("ag", "conc")
  local function gather(runs, f)
    local lists = {}
    for _, r in ipairs(runs) do lists[#lists + 1] = f(r) end
    return B.concat(lists)
  end
  local function walls(runs, field)
    local xs = {}
    for _, r in ipairs(runs) do xs[#xs + 1] = r[field] end
    return xs
  end
  local k, m = abk[1].k, abk[1].m
  -- the preload phase (agentbox only), when it ran
  local abp = {}
  for r = 1, rounds do
    local ok, t = pcall(B.read_json, ("%s/ab_preload_%d.json"):format(dir, r))
    if ok and t then abp[#abp + 1] = t end
  end
  local function preload_rows(name) return gather(abp, function(r) return r.rows[name] end) end
  local spec = {
    { "cold start: create -> container running (agentbox `DockerExecutor{}` + `start()`; AutoGen constructor)",
      gather(abc, function(r) return r.ready_ms end), gather(agc, function(r) return r.ready_ms end) },
    { "cold start: create -> first `print(1)` result",
      gather(abc, function(r) return r.first_ms end), gather(agc, function(r) return r.first_ms end) },
    { "warm block: python `print(1)`",
      gather(abw, function(r) return r.rows.python.ms end), gather(agw, function(r) return r.rows.python end) },
    { "warm block: sh `echo hi`",
      gather(abw, function(r) return r.rows.sh.ms end), gather(agw, function(r) return r.rows.sh end) },
    { "warm block, `warm = true` (block server, no exec): python `print(1)`",
      gather(abw, function(r) return (r.rows.python_server or {}).ms or {} end),
      gather(agw, function(r) return r.rows.python end) },
    { "warm block, `warm = true` (block server, no exec): sh `echo hi`",
      gather(abw, function(r) return (r.rows.sh_server or {}).ms or {} end),
      gather(agw, function(r) return r.rows.sh end) },
    { ("%d executors at once: cold start of all %d (wall)"):format(k, k),
      walls(abk, "start_wall_ms"), walls(agk, "start_wall_ms") },
    { ("%d executors at once: per-block latency, python `print(1)`"):format(k),
      gather(abk, function(r) return r.ms end), gather(agk, function(r) return r.ms end) },
    { ("%d executors at once: %d x %d blocks (wall)"):format(k, k, m),
      walls(abk, "wall_ms"), walls(agk, "wall_ms") },
    { "seed 002's sales block (pandas), `warm = true`",
      preload_rows("sales_warm"), {} },
    { "seed 002's sales block (pandas), `preload = { \"pandas\", \"numpy\" }`",
      preload_rows("sales_preload"), {} },
    { "close / stop (agentbox `close()`; AutoGen `stop()`)",
      gather(abc, function(r) return r.close_ms end), gather(agc, function(r) return r.stop_ms end) },
  }
  local results = { command = env("BENCH_CMD"), machine = env("BENCH_MACHINE"), rows = {} }
  local P = print
  P("## agentbox DockerExecutor vs AutoGen DockerCommandLineCodeExecutor (same image, same daemon)")
  P("")
  P("Command: `" .. tostring(env("BENCH_CMD")) .. "`")
  P("")
  P(("Machine: %s. %s. %s. Image %s. ag2 %s, docker-py %s. %d rounds; in each, agentbox (one Lua process per phase) then AutoGen (one Python process per phase); per round: cold %s (+%s warm-up), warm %s blocks per row (+%s warm-up), concurrency %d executors x %d blocks (+%s warm-up each). Times in ms, median / p95 (nearest rank) over all samples; wall-time rows have one sample per round.")
    :format(env("BENCH_MACHINE"), env("BENCH_LOAD"), env("BENCH_VERSIONS"), env("BENCH_IMAGE"), env("BENCH_AG2_VERSION"),
            env("BENCH_DOCKERPY_VERSION"), rounds, env("BENCH_COLD_N"), env("BENCH_COLD_WARM"), env("BENCH_WARM_N"),
            env("BENCH_WARM_WARM"), k, m, env("BENCH_CONC_WARM")))
  P("")
  P(B.row({ "row", "agentbox median / p95 (ms)", "AutoGen median / p95 (ms)", "AutoGen / agentbox (median / p95)", "n (agentbox, AutoGen)" }))
  P("|---|---|---|---|---|")
  local faster = true
  for _, s in ipairs(spec) do
    local a, g = B.stats(s[2]), B.stats(s[3])
    results.rows[#results.rows + 1] = { name = s[1], agentbox = a, autogen = g, agentbox_ms = s[2], autogen_ms = s[3] }
    if a.n == 0 then   -- a phase that did not run (preload: BENCH_PRELOAD_N=0)
      results.rows[#results.rows] = nil
    elseif g.n > 0 then
      if not (g.median > a.median and g.p95 > a.p95) then faster = false end
      P(B.row({ s[1], B.pair(a), B.pair(g), B.ratio(g.median, a.median) .. " / " .. B.ratio(g.p95, a.p95),
                ("%d, %d"):format(a.n, g.n) }))
    else
      P(B.row({ s[1], B.pair(a), "(not measured)", "", ("%d, 0"):format(a.n) }))
    end
  end
  P("")
  P(("Goal (issue 4): faster than AutoGen on every row: %s."):format(faster and "MET" or "NOT MET"))
  P("")

  -- where agentbox's time goes: median per API request, per block
  local function breakdown(op_lists, totals)
    local per, count, rest = {}, {}, {}
    for i, list in ipairs(op_lists) do
      local sum = 0
      local seen = {}
      for _, o in ipairs(list) do
        per[o[1]] = per[o[1]] or {}
        table.insert(per[o[1]], o[2])
        seen[o[1]] = (seen[o[1]] or 0) + 1
        sum = sum + o[2]
      end
      for op, c in pairs(seen) do count[op] = (count[op] or 0) + c end
      rest[#rest + 1] = totals[i] - sum
    end
    local names = {}
    for op in pairs(per) do names[#names + 1] = op end
    table.sort(names, function(x, y) return B.stats(per[x]).median > B.stats(per[y]).median end)
    local parts = {}
    for _, op in ipairs(names) do
      parts[#parts + 1] = ("%s %.1f ms (x%.2g)"):format(op, B.stats(per[op]).median, count[op] / #op_lists)
    end
    return table.concat(parts, "; "), B.stats(rest).median
  end
  local function ops_of(runs, f)
    local lists, totals = {}, {}
    for _, r in ipairs(runs) do
      local l, t = f(r)
      for i = 1, #l do lists[#lists + 1] = l[i] totals[#totals + 1] = t[i] end
    end
    return lists, totals
  end
  P("Notes (where agentbox's time goes; medians of the requests timed by wrapping `agentbox.core.http`/`spawn`, xN = per operation):")
  local ready_txt, ready_rest = breakdown(ops_of(abc, function(r) return r.ops_ready, r.ready_ms end))
  P(("- cold start to running: %s; outside those (Lua, JSON, reactor): %.1f ms."):format(ready_txt, ready_rest))
  local first_txt, first_rest = breakdown(ops_of(abc, function(r)
    local d = {}
    for i = 1, #r.first_ms do d[i] = r.first_ms[i] - r.ready_ms[i] end
    return r.ops_first, d
  end))
  P(("- first block after start: %s; outside those: %.1f ms."):format(first_txt, first_rest))
  for _, name in ipairs({ "python", "sh" }) do
    local txt, rest = breakdown(ops_of(abw, function(r) return r.rows[name].ops, r.rows[name].ms end))
    P(("- warm %s block: %s; outside those (executor Lua: file write, md5, JSON, scheduling): %.2f ms."):format(name, txt, rest))
  end
  local per = {}
  for _, r in ipairs(abk) do
    for _, o in ipairs(r.ops) do per[o[1]] = per[o[1]] or {} table.insert(per[o[1]], o[2]) end
  end
  local parts = {}
  for _, op in ipairs({ "exec create", "exec start (runs the block)", "exec inspect" }) do
    if per[op] then parts[#parts + 1] = ("%s %s ms"):format(op, B.pair(B.stats(per[op]))) end
  end
  P(("- %d executors at once, per request (median / p95): %s. The daemon serialises part of each exec (containerd + runc), so the exec start stretches with the concurrency on both sides alike."):format(k, table.concat(parts, "; ")))
  local fl_true = B.stats(gather(abw, function(r) return r.floor["true"] end))
  local fl_sup = B.stats(gather(abw, function(r) return r.floor.sup_true end))
  local ag_true = B.stats(gather(agw, function(r) return r.floor_true_ms end))
  local inside = abw[1].inside
  P(("- the floor: one exec of `/bin/true` straight through the client (exec create + start + inspect, no executor Lua) %s ms; with our supervisor in front (`sup -- /bin/true`) %s ms; the same `/bin/true` through docker-py's `exec_run` %s ms. So a warm block is that floor (dockerd + containerd + runc setting up an exec process) plus the interpreter: measured inside the container (posix_spawn + wait, 40 runs) python3 `print(1)` %.1f ms, sh `echo hi` %.1f ms, `/bin/true` %.1f ms.")
    :format(B.pair(fl_true), B.pair(fl_sup), B.pair(ag_true), inside.python, inside.sh, inside["true"]))
  local hc, ahc = abw[1].hostconfig, agw[1].hostconfig
  local function show(h)
    local kv = {}
    for _, key in ipairs({ "User", "NetworkMode", "ReadonlyRootfs", "CapDrop", "SecurityOpt", "Init", "PidsLimit",
                           "Memory", "NanoCpus" }) do
      local v = h[key]
      if type(v) == "table" then v = "[" .. table.concat(v, ",") .. "]"
      elseif type(v) == "userdata" or v == nil then v = "unset"   -- JSON null
      elseif type(v) == "number" then v = ("%.0f"):format(v) end
      kv[#kv + 1] = key .. "=" .. tostring(v)
    end
    return table.concat(kv, " ")
  end
  P("- the containers as the daemon reports them (HostConfig read back): agentbox " .. show(hc) .. "; AutoGen " .. show(ahc)
    .. ". agentbox also runs each block under its supervisor (deadline kills the whole tree) and tini as PID 1; AutoGen runs `timeout 60 <interp> <file>` under `/bin/sh` with a TTY as PID 1.")
  P("- AutoGen's user: it sets none, so the image's (1000:1000 here; root with its default python:3-slim). It runs python blocks as `python`, which this image lacks (Debian ships only python3): the harness maps AutoGen's command for python to `python3` (`code_utils._cmd`), nothing else is changed.")
  P("- AutoGen's constructor ends in `_wait_for_ready`, which sleeps 0.1 s before its first status check (the container object still says \"created\"): part of its cold start. Its `stop()` is `docker stop` of a container whose PID 1 is `/bin/sh` (ignores SIGTERM), so it waits the 10 s grace; agentbox's `close()` is one `DELETE ?force=1`. AutoGen's stop is sampled " .. (#gather(agc, function(r) return r.stop_ms end)) .. " times; the other AutoGen containers were removed with docker-py's `remove(force=True)` (what agentbox's close does): " .. B.pair(B.stats(gather(agc, function(r) return r.remove_ms end))) .. " ms.")
  P(("- agentbox's containers have `NanoCpus` = 1 CPU each; AutoGen's are unlimited (the machine has %s CPUs)."):format(env("BENCH_NPROC") or "?"))
  P("- raw samples: bench/results/docker.json")
  B.write_json(out_path, results)
end

---------------------------------------------------------------- main
if mode == "report" then
  report(arg[2], arg[3])
else
  local H = harness()
  local f = H[mode] or error("usage: docker_bench.lua cold|warm|conc|remote|pool|fresh|preload|stateful|report ...")
  local nums = {}
  for i = 2, #arg - 1 do nums[#nums + 1] = math.tointeger(tonumber(arg[i])) end
  nums[#nums + 1] = arg[#arg]
  f(table.unpack(nums))
end
