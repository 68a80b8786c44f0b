-- bench/preload_bench.lua: a python block that imports pandas, run by
-- LocalExecutor with and without `preload = { "pandas", "numpy" }`, and
-- print(1) both ways (the fixed cost of the preload path), in the same run,
-- alternating, one executor each (the template started and ready before the
-- timed runs). Prints median and p95 per row (bench/benchlib.lua's) and
-- the load average.
--
--   make all && eval "$(make -s paths)" && lua5.4 bench/preload_bench.lua [N] [PYTHON]
--
-- N runs per row (default 20); PYTHON an interpreter with pandas
-- (default /usr/bin/python3: Debian's python3-pandas).
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path   -- benchlib, sales_block.py
local core = require("agentbox.core")
local B = require("benchlib")
local LocalExecutor = require("agentbox.executor.local")

local N = tonumber(arg[1]) or 20
local PY = arg[2] or "/usr/bin/python3"

-- the sales block of the data-analysis demo, on its ten rows (bench/sales_block.py)
local BLOCK = require("warm_blocks").SALES_CODE

local plain = LocalExecutor.new{ python = PY, timeout = 60 }
local pre = LocalExecutor.new{ python = PY, timeout = 60, preload = { "pandas", "numpy" } }
local rows = {
  { name = "pandas block, no preload", ex = plain, code = BLOCK },
  { name = "pandas block, preload", ex = pre, code = BLOCK },
  { name = "print(1), no preload", ex = plain, code = "print(1)" },
  { name = "print(1), preload", ex = pre, code = "print(1)" },
}
for _, row in ipairs(rows) do
  local t0 = core.now()
  local r = row.ex:execute{ { lang = "python", code = row.code } }   -- warm-up (and the template's start)
  row.first = core.now() - t0
  assert(r.exit_code == 0, r.output)
  row.want = r.output
  row.times = {}
end
assert(rows[1].want == rows[2].want, "outputs differ:\n" .. rows[1].want .. "\n" .. rows[2].want)
B.alternate(rows, N, core.now)
print(("%d runs each, %s, alternating"):format(N, PY))
print(("%-28s %10s %10s %12s"):format("row", "median ms", "p95 ms", "first run ms"))
for _, row in ipairs(rows) do
  local st = B.stats(row.times)
  print(("%-28s %10.1f %10.1f %12.1f"):format(row.name, st.median, st.p95, row.first * 1000))
end
plain:close()
pre:close()
print(("pandas block median ratio: %.1fx"):format(B.stats(rows[1].times).median / B.stats(rows[2].times).median))
