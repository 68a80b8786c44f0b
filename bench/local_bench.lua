-- bench/local_bench.lua: the Lua side of `make bench` (driven by bench/run.sh).
-- Times LocalExecutor:execute against the bare fork/exec of the same
-- interpreter (bench/bare.c) with one clock (bare.now, CLOCK_MONOTONIC, ns).
--
--   lua5.4 bench/local_bench.lua latency N WARMUP OUT.json
--   lua5.4 bench/local_bench.lua flood SUBJECT BYTES CAP RUNS OUT.json   (SUBJECT: bare | agentbox)
--   lua5.4 bench/local_bench.lua probe
--
-- Environment: BENCH_PYTHON (python3 binary), BENCH_SH (sh binary), BENCH_TMP
-- (scratch dir), BENCH_ON_OUTPUT=noop (pass on_output = function() end to the
-- executor; run.sh sets it only when the plain executor hangs, see probe).
local bare = require("bare")
local core = require("agentbox.core")
local task = require("agentbox.task")
local LocalExecutor = require("agentbox.executor.local")
local cjson = require("cjson")

local PY = os.getenv("BENCH_PYTHON") or "/usr/bin/python3"
local SH = os.getenv("BENCH_SH") or "/bin/sh"
local TMP = os.getenv("BENCH_TMP") or "/tmp/agentbox-bench"
local now = bare.now

local function executor(dir, extra)
  local opts = { work_dir = TMP .. "/" .. dir, timeout = 60, python = PY }
  if os.getenv("BENCH_ON_OUTPUT") == "noop" then opts.on_output = function() end end
  for k, v in pairs(extra or {}) do opts[k] = v end
  return LocalExecutor.new(opts)
end

local function write_json(path, t)
  local f = assert(io.open(path, "w"))
  f:write(cjson.encode(t), "\n")
  f:close()
end

local function check(what, got, want)
  if got ~= want then
    error(("%s: expected %q, got %q"):format(what, want, tostring(got)), 2)
  end
end

-- The C core alone: core.spawn + the reactor until done, as run_block does
-- it, without the executor's Lua (prepare, md5, file write, result builder).
-- The executor hands core.spawn the agentbox-sup program it found (without
-- one the core forks a supervisor in-process); do the same.
local ok_common, common = pcall(require, "agentbox.executor.common")
local SUP = ok_common and common.sup_path and common.sup_path() or nil

local function core_run(argv, ex)
  local p <close> = assert(core.spawn{ argv = argv, cwd = ex.work_dir, env = ex.env, timeout = ex.timeout,
                                       grace = ex.grace, max_output = ex.max_output, stream = false,
                                       sup = SUP, nice = ex.nice })
  repeat
    task.wait(p)
    p:read()
  until p:done()
  return p:result()
end

local ROWS = {
  { name = "python", lang = "python", code = "print(1)", want = "1\n", interp = PY },
  { name = "sh", lang = "sh", code = "echo hi", want = "hi\n", interp = SH },
}

local function latency(n, warm, out)
  local results = { n = n, warmup = warm, python = PY, sh = SH, rows = {}, sup = SUP or "(in-process fork)",
                    on_output_workaround = os.getenv("BENCH_ON_OUTPUT") == "noop" }
  for _, row in ipairs(ROWS) do
    local ex = executor("lat-" .. row.name)
    local block = { { lang = row.lang, code = row.code } }
    local r = ex:execute(block)
    check("agentbox " .. row.name .. " output", r.output, row.want)
    check("agentbox " .. row.name .. " exit code", r.exit_code, 0)
    -- the bare run gets the same file, interpreter, environment and cwd
    local argv = { row.interp, r.code_file }
    local bopts = { env = ex.env, cwd = ex.work_dir }
    local sopts = { env = ex.env, cwd = ex.work_dir, mode = "spawn" }
    local subjects = {
      { "bare", function()
          local o, code = bare.run(argv, bopts)
          return o, code
        end },
      { "bare_spawn", function()
          local o, code = bare.run(argv, sopts)
          return o, code
        end },
      { "core", function()
          local res = core_run(argv, ex)
          return res.output, res.exit_code
        end },
      { "agentbox", function()
          local res = ex:execute(block)
          return res.output, res.exit_code
        end },
    }
    local samples = {}
    for _, s in ipairs(subjects) do samples[s[1]] = {} end
    -- interleaved, in a fresh random order each iteration (fixed seed) so
    -- no subject always runs right after the same other one
    math.randomseed(42)
    local order = {}
    for j = 1, #subjects do order[j] = j end
    for i = 1, warm + n do
      for j = #order, 2, -1 do
        local k = math.random(j)
        order[j], order[k] = order[k], order[j]
      end
      for j = 1, #order do
        local s = subjects[order[j]]
        local t0 = now()
        local o, code = s[2]()
        local dt = now() - t0
        check(s[1] .. " " .. row.name .. " output", o, row.want)
        check(s[1] .. " " .. row.name .. " exit code", code, 0)
        if i > warm then table.insert(samples[s[1]], dt * 1000) end
      end
    end
    results.rows[row.name] = { code = row.code, argv = argv, samples_ms = samples }
  end
  write_json(out, results)
end

local function flood_code(bytes)
  return ("head -c %d /dev/zero | tr '\\0' x"):format(bytes)
end

local function flood(subject, bytes, cap, runs, out)
  local code = flood_code(bytes)
  local ex = executor("flood-" .. subject, { max_output = cap })
  local block = { { lang = "sh", code = code } }
  local hwm0 = bare.hwm()
  local run
  if subject == "agentbox" then
    run = function()
      local r = ex:execute(block)
      check("agentbox flood exit code", r.exit_code, 0)
      local dropped = tonumber(r.output:match("(%d+) bytes dropped"))
      local kept = #r.output:gsub("\n%[agentbox: output truncated.*$", "")
      return kept + (dropped or 0), kept
    end
  elseif subject == "bare" then
    local path = ex.work_dir .. "/flood.sh"
    local f = assert(io.open(path, "w"))
    f:write(code)
    f:close()
    run = function()
      local o, ec, total = bare.run({ SH, path }, { env = ex.env, cwd = ex.work_dir, cap = cap })
      check("bare flood exit code", ec, 0)
      return total, #o
    end
  else
    error("flood: unknown subject " .. tostring(subject))
  end
  run()   -- warm-up
  local samples, seen, kept = {}, nil, nil
  for _ = 1, runs do
    local t0 = now()
    local total, k = run()
    samples[#samples + 1] = (now() - t0) * 1000
    seen, kept = total, k
  end
  if seen ~= bytes then error(("flood %s: accounted for %s bytes of %d"):format(subject, tostring(seen), bytes)) end
  write_json(out, { subject = subject, code = code, bytes = bytes, cap = cap, runs = runs,
                    samples_ms = samples, kept = kept, accounted = seen,
                    hwm_kb_before = hwm0, hwm_kb = bare.hwm(),
                    on_output_workaround = os.getenv("BENCH_ON_OUTPUT") == "noop" })
end

-- A short run of the plain executor: run.sh starts it under `timeout` to see
-- whether LocalExecutor finishes at all in this tree.
local function probe()
  local ex = executor("probe")
  for i = 1, 30 do
    local row = ROWS[i % 2 + 1]
    local r = ex:execute{ { lang = row.lang, code = row.code } }
    check("probe output", r.output, row.want)
  end
  print("probe ok")
end

local mode = arg[1]
if mode == "latency" then
  latency(math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3])), arg[4])
elseif mode == "flood" then
  flood(arg[2], math.tointeger(tonumber(arg[3])), math.tointeger(tonumber(arg[4])),
        math.tointeger(tonumber(arg[5])), arg[6])
elseif mode == "probe" then
  probe()
else
  io.stderr:write("usage: local_bench.lua latency N WARMUP OUT | flood SUBJECT BYTES CAP RUNS OUT | probe\n")
  os.exit(2)
end
