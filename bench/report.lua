-- bench/report.lua: turns the harness outputs of bench/run.sh into one
-- Markdown table on stdout and bench/results/local.json.
--   lua5.4 bench/report.lua TMPDIR OUT.json   (the rest comes from BENCH_* variables)
local cjson = require("cjson")

local dir, out_path = arg[1], arg[2]

local function load(name)
  local f = assert(io.open(dir .. "/" .. name))
  local t = cjson.decode(f:read("a"))
  f:close()
  return t
end

local function stats(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  local med = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
  local p95 = s[math.max(1, math.ceil(0.95 * n))]          -- nearest rank
  local sum = 0
  for _, x in ipairs(s) do sum = sum + x end
  return { n = n, median = med, p95 = p95, min = s[1], max = s[n], mean = sum / n }
end

-- the latency harnesses ran in alternating rounds: concatenate the samples
local function merge(prefix)
  local all
  for r = 1, tonumber(os.getenv("BENCH_ROUNDS") or "1") do
    local t = load(("%s_%d.json"):format(prefix, r))
    if not all then
      all = t
    else
      all.n = all.n + t.n
      for name, row in pairs(t.rows) do
        local dst = all.rows[name]
        if row.samples_ms[1] ~= nil then           -- AutoGen: a plain array
          for _, x in ipairs(row.samples_ms) do table.insert(dst.samples_ms, x) end
        else                                      -- Lua: subject -> array
          for subject, xs in pairs(row.samples_ms) do
            for _, x in ipairs(xs) do table.insert(dst.samples_ms[subject], x) end
          end
        end
      end
    end
  end
  return all
end
local lat_lua, lat_ag = merge("lat_lua"), merge("lat_ag")
local fl = { bare = load("flood_bare.json"), agentbox = load("flood_agentbox.json"), autogen = load("flood_autogen.json") }
local env = os.getenv
local cap = tonumber(env("BENCH_CAP"))
local maxrss = { bare = tonumber(env("BENCH_MAXRSS_BARE")), agentbox = tonumber(env("BENCH_MAXRSS_AGENTBOX")),
                 autogen = tonumber(env("BENCH_MAXRSS_AUTOGEN")) }

local results = {
  command = env("BENCH_CMD"), machine = env("BENCH_MACHINE"), load = env("BENCH_LOAD"), versions = env("BENCH_VERSIONS"),
  ag2 = env("BENCH_AG2_VERSION"), date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  n = lat_lua.n, warmup = lat_lua.warmup, rounds = tonumber(os.getenv("BENCH_ROUNDS") or "1"),
  on_output_workaround = lat_lua.on_output_workaround, sup = lat_lua.sup,
  autogen_python = { on_path = lat_ag.python_on_path, realpath = lat_ag.python_realpath,
                     sys_executable = lat_ag.sys_executable },
  latency = {}, flood = {},
}

local function f2(x) return ("%.2f"):format(x) end
local function pair(s) return f2(s.median) .. " / " .. f2(s.p95) end
local function ratio(a, b) return ("%.1fx"):format(a / b) end

local rows = {}
local goal_overhead, goal_faster = true, true
local notes = {}
for _, name in ipairs({ "python", "sh" }) do
  local L = lat_lua.rows[name]
  local st = {}
  for subject, xs in pairs(L.samples_ms) do st[subject] = stats(xs) end
  st.autogen = stats(lat_ag.rows[name].samples_ms)
  local over_med = st.agentbox.median - st.bare.median
  local over_p95 = st.agentbox.p95 - st.bare.p95
  results.latency[name] = { code = L.code, argv = L.argv, stats_ms = st, samples_ms = L.samples_ms,
                            autogen_samples_ms = lat_ag.rows[name].samples_ms,
                            overhead_ms = { median = over_med, p95 = over_p95 },
                            autogen_over_agentbox = { median = st.autogen.median / st.agentbox.median,
                                                      p95 = st.autogen.p95 / st.agentbox.p95 } }
  if over_med >= 1 then goal_overhead = false end
  if st.autogen.median <= st.agentbox.median or st.autogen.p95 <= st.agentbox.p95 then goal_faster = false end
  local label = name == "python" and "python `print(1)`" or "sh `echo hi`"
  rows[#rows + 1] = { label, pair(st.bare), pair(st.agentbox), ("%+.2f (p95 %+.2f)"):format(over_med, over_p95),
                      pair(st.autogen), ratio(st.autogen.median, st.agentbox.median) .. " / " ..
                      ratio(st.autogen.p95, st.agentbox.p95) }
  notes[#notes + 1] = ("%s: core.spawn alone (C core + supervisor, no executor Lua) %s ms; posix_spawn baseline %s ms (median / p95); minimum over the run: bare %.2f, posix_spawn %.2f, core.spawn %.2f, agentbox %.2f, AutoGen %.2f ms")
    :format(name, pair(st.core), pair(st.bare_spawn), st.bare.min, st.bare_spawn.min, st.core.min, st.agentbox.min,
            st.autogen.min)
end

-- flood
local fst = {}
for subject, r in pairs(fl) do
  local s = stats(r.samples_ms)
  s.mb_per_s = r.bytes / 1e6 / (s.median / 1000)
  s.hwm_mb = r.hwm_kb / 1024
  s.hwm_before_mb = r.hwm_kb_before / 1024
  s.maxrss_time_mb = maxrss[subject] and maxrss[subject] / 1024
  s.bytes = r.bytes
  s.kept = r.kept
  fst[subject] = s
  results.flood[subject] = { code = r.code, bytes = r.bytes, cap = r.cap, kept = r.kept, stats_ms = s,
                             samples_ms = r.samples_ms, hwm_kb = r.hwm_kb, hwm_kb_before = r.hwm_kb_before,
                             maxrss_kb_time = maxrss[subject] }
end
local function fcell(s)
  return ("%.0f / %.0f ms, %.0f MB/s, RSS %.1f MB"):format(s.median, s.p95, s.mb_per_s, s.hwm_mb)
end
local same_size = fst.autogen.bytes == fst.agentbox.bytes
local ag_cmp = same_size and ratio(fst.autogen.median, fst.agentbox.median) .. " time, " or
  ("%.1fx throughput, "):format(fst.agentbox.mb_per_s / fst.autogen.mb_per_s)
rows[#rows + 1] = { ("flood %d MB -> %d KiB cap (sh)"):format(fst.agentbox.bytes // 1000000, cap // 1024),
                    fcell(fst.bare), fcell(fst.agentbox),
                    ("%+.0f ms (%+.0f%%)"):format(fst.agentbox.median - fst.bare.median,
                                                  100 * (fst.agentbox.median / fst.bare.median - 1)),
                    fcell(fst.autogen) .. (same_size and "" or (" (at %d MB)"):format(fst.autogen.bytes // 1000000)),
                    ag_cmp .. ("%.0fx RSS"):format(fst.autogen.hwm_mb / fst.agentbox.hwm_mb) }
if same_size then
  if fst.autogen.median <= fst.agentbox.median then goal_faster = false end
elseif fst.autogen.mb_per_s >= fst.agentbox.mb_per_s then
  goal_faster = false
end
results.goals = { overhead_under_1ms = goal_overhead, faster_than_autogen_every_row = goal_faster }

-- print
local P = print
P("## agentbox LocalExecutor vs bare fork/exec vs AutoGen LocalCommandLineCodeExecutor")
P("")
P("Command: `" .. results.command .. "`")
P("")
P(("Machine: %s (%s). %s. ag2 %s. %d timed iterations per row in %d rounds (each after %d warm-up): in each round agentbox and bare interleaved in random order in one Lua process, then AutoGen in a Python process. Flood: %d timed runs after 1 warm-up, each subject in its own process; RSS is that process's VmHWM.")
  :format(results.machine, results.load, results.versions, results.ag2, results.n, results.rounds, results.warmup,
          #fl.bare.samples_ms))
P("")
P("| block | bare fork/exec median / p95 (ms) | agentbox median / p95 (ms) | agentbox overhead over bare, median (ms) | AutoGen median / p95 (ms) | AutoGen / agentbox (median / p95) |")
P("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do P("| " .. table.concat(r, " | ") .. " |") end
P("")
P(("Goals: overhead over bare fork/exec < 1 ms per block: %s. Faster than AutoGen on every row: %s.")
  :format(goal_overhead and "MET" or "NOT MET", goal_faster and "MET" or "NOT MET"))
P("")
P("Notes:")
for _, n in ipairs(notes) do P("- " .. n) end
P("- agentbox's supervisor: " .. tostring(lat_lua.sup))
P(("- all three start the same binaries: %s for python (AutoGen runs `python` from PATH, here %s -> %s, not its venv's sys.executable), %s for sh; bare and agentbox run the same file with the same environment and cwd."):format(
  lat_lua.python, lat_ag.python_on_path, lat_ag.python_realpath, lat_lua.sh))
P(("- flood peak RSS by /usr/bin/time -v (largest of the process and its reaped children): bare %.1f MB, agentbox %.1f MB, AutoGen %.1f MB; VmHWM before the flood: bare %.1f, agentbox %.1f, AutoGen %.1f MB.")
  :format(fst.bare.maxrss_time_mb or 0, fst.agentbox.maxrss_time_mb or 0, fst.autogen.maxrss_time_mb or 0,
          fst.bare.hwm_before_mb, fst.agentbox.hwm_before_mb, fst.autogen.hwm_before_mb))
if not same_size then
  P(("- AutoGen's flood ran at %d bytes, not %d: it keeps the whole output in memory."):format(fst.autogen.bytes, fst.agentbox.bytes))
end
if results.on_output_workaround then
  P("- WORKAROUND: the plain LocalExecutor did not finish a 30-block probe in 30 s (it spins when a block prints before it exits), so agentbox was measured with `on_output = function() end`.")
end
P("- raw samples: bench/results/local.json")

local f = assert(io.open(out_path, "w"))
f:write(cjson.encode(results), "\n")
f:close()
