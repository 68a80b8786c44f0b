-- bench/stateful_bench.lua: print(1) per block run by LocalExecutor with and
-- without `stateful = true`, in the same run, alternating, one executor each
-- (the session started before the timed runs); plus a stateful block that
-- uses the state (x += 1), and restart() followed by the first block (a new
-- session: interpreter start + the first block). Prints median and p95 per
-- row (bench/benchlib.lua's) and the load average.
--
--   make all && eval "$(make -s paths)" && lua5.4 bench/stateful_bench.lua [N] [PYTHON]
--
-- N runs per row (default 30); PYTHON the interpreter (default /usr/bin/python3).
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path   -- benchlib
local core = require("agentbox.core")
local B = require("benchlib")
local LocalExecutor = require("agentbox.executor.local")

local N = tonumber(arg[1]) or 30
local PY = arg[2] or "/usr/bin/python3"

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
B.alternate(rows, N, core.now)
print(("%d runs each, %s, alternating"):format(N, PY))
print(("%-24s %10s %10s"):format("row", "median ms", "p95 ms"))
for _, row in ipairs(rows) do
  local s = B.stats(row.times)
  print(("%-24s %10.1f %10.1f"):format(row.name, s.median, s.p95))
end
for _, ex in ipairs({ plain, st, rst }) do ex:close() end
print(("print(1) median, plain / stateful: %.2fx"):format(B.stats(rows[1].times).median / B.stats(rows[2].times).median))
