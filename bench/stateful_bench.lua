-- bench/stateful_bench.lua: print(1) per block run by LocalExecutor with and
-- without `stateful = true`, in the same run, alternating, one executor each
-- (the session started before the timed runs); plus a stateful block that
-- uses the state (x += 1), and restart() followed by the first block (a new
-- session: interpreter start + the first block). Prints median and p95 per
-- row and the load average.
--
--   make all && eval "$(make -s paths)" && lua5.4 bench/stateful_bench.lua [N] [PYTHON]
--
-- N runs per row (default 30); PYTHON the interpreter (default /usr/bin/python3).
local core = require("agentbox.core")
local LocalExecutor = require("agentbox.executor.local")

local N = tonumber(arg[1]) or 30
local PY = arg[2] or "/usr/bin/python3"

local function stats(xs)
  local s = table.move(xs, 1, #xs, 1, {})
  table.sort(s)
  local function q(p) return s[math.max(1, math.ceil(p * #s))] end
  return q(0.5), q(0.95)
end

local function loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("l") or "?"
  if f then f:close() end
  return s
end

local plain = LocalExecutor.new{ python = PY, timeout = 60 }
local st = LocalExecutor.new{ python = PY, timeout = 60, stateful = true }
local rst = LocalExecutor.new{ python = PY, timeout = 60, stateful = true }
local rows = {
  { name = "print(1), plain", ex = plain, code = "print(1)", want = "1\n" },
  { name = "print(1), stateful", ex = st, code = "print(1)", want = "1\n" },
  { name = "x += 1, stateful", ex = st, code = "x = globals().get('x', 0) + 1\nprint(x > 0)", want = "True\n" },
  { name = "restart + print(1)", ex = rst, code = "print(1)", want = "1\n", restart = true },
}
for _, row in ipairs(rows) do
  row.ex:start()
  local r = row.ex:execute{ { lang = "python", code = row.code } }   -- warm-up
  assert(r.exit_code == 0 and r.output == row.want, r.output)
  row.times = {}
end
print("load average before: " .. loadavg())
for _ = 1, N do
  for _, row in ipairs(rows) do
    if row.restart then row.ex:restart() end
    local t0 = core.now()
    local r = row.ex:execute{ { lang = "python", code = row.code } }
    row.times[#row.times + 1] = (core.now() - t0) * 1000
    assert(r.exit_code == 0 and r.output == row.want, r.output)
  end
end
print("load average after:  " .. loadavg())
print(("%d runs each, %s, alternating"):format(N, PY))
print(("%-24s %10s %10s"):format("row", "median ms", "p95 ms"))
for _, row in ipairs(rows) do
  local med, p95 = stats(row.times)
  print(("%-24s %10.1f %10.1f"):format(row.name, med, p95))
end
for _, ex in ipairs({ plain, st, rst }) do ex:close() end
print(("print(1) median, plain / stateful: %.2fx"):format(stats(rows[1].times) / stats(rows[2].times)))
