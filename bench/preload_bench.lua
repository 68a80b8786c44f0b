-- bench/preload_bench.lua: a python block that imports pandas, run by
-- LocalExecutor with and without `preload = { "pandas", "numpy" }`, and
-- print(1) both ways (the fixed cost of the preload path), in the same run,
-- alternating, one executor each (the template started and ready before the
-- timed runs). Prints median and p95 per row and the load average.
--
--   make all && eval "$(make -s paths)" && lua5.4 bench/preload_bench.lua [N] [PYTHON]
--
-- N runs per row (default 20); PYTHON an interpreter with pandas
-- (default /usr/bin/python3: Debian's python3-pandas).
local core = require("agentbox.core")
local LocalExecutor = require("agentbox.executor.local")

local N = tonumber(arg[1]) or 20
local PY = arg[2] or "/usr/bin/python3"

-- the sales block of the data-analysis demo, on its ten rows
local BLOCK = [[
import io
import pandas as pd
csv = """date,product,region,revenue,units
2024-01-05,widget,north,120.5,3
2024-01-17,gadget,south,80.0,2
2024-02-02,widget,south,200.0,5
2024-02-14,gizmo,north,55.25,1
2024-02-20,gadget,east,160.0,4
2024-03-01,widget,east,240.0,6
2024-03-09,gizmo,south,110.5,2
2024-03-15,gadget,north,95.0,2
2024-03-28,widget,north,130.0,3
2024-04-02,gizmo,east,60.0,1
"""
df = pd.read_csv(io.StringIO(csv), parse_dates=["date"])
print(df.groupby("region")["revenue"].sum().round(2).to_dict())
print(df.groupby(df["date"].dt.to_period("M"))["revenue"].sum().round(2).to_dict())
]]

local function stats(xs)
  table.sort(xs)
  local function q(p) return xs[math.max(1, math.ceil(p * #xs))] end
  return q(0.5), q(0.95)
end

local function loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("l") or "?"
  if f then f:close() end
  return s
end

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
print("load average before: " .. loadavg())
for _ = 1, N do
  for _, row in ipairs(rows) do
    local t0 = core.now()
    local r = row.ex:execute{ { lang = "python", code = row.code } }
    row.times[#row.times + 1] = (core.now() - t0) * 1000
    assert(r.exit_code == 0 and r.output == row.want, r.output)
  end
end
print("load average after:  " .. loadavg())
print(("%d runs each, %s, alternating"):format(N, PY))
print(("%-28s %10s %10s %12s"):format("row", "median ms", "p95 ms", "first run ms"))
for _, row in ipairs(rows) do
  local med, p95 = stats(row.times)
  print(("%-28s %10.1f %10.1f %12.1f"):format(row.name, med, p95, row.first * 1000))
end
plain:close()
pre:close()
print(("pandas block median ratio: %.1fx"):format(stats(rows[1].times) / stats(rows[2].times)))
