-- bench/warm_blocks.lua: the blocks bench/warm_bench.lua runs, and its probes
-- run inside the container. The sales block is bench/sales_block.py (seed
-- 002's: pandas reads ten rows, groups by region and by month), the file
-- bench/autogen_docker.py runs too.
local M = {}

local dir = assert(package.searchpath("warm_blocks", package.path)):match("^(.*)/[^/]+$") or "."
local f = assert(io.open(dir .. "/sales_block.py"))
M.SALES_CODE = f:read("a")
f:close()

M.PY = { { lang = "python", code = "print(1)" } }
M.SH = { { lang = "sh", code = "echo hi" } }
M.SALES = { { lang = "python", code = M.SALES_CODE } }

-- interpreters started inside the container by posix_spawn + wait (no
-- server, no supervisor): medians in ms of python3 -c pass, python3 -c
-- 'import pandas, numpy', sh -c true, /bin/true
M.INSIDE = { { lang = "python", code = [[
import os, time, statistics
def run(argv, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"})
        os.waitpid(pid, 0)
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)
print(run(["/usr/bin/python3", "-c", "pass"], 30), run(["/usr/bin/python3", "-c", "import pandas, numpy"], 5),
      run(["/bin/sh", "-c", "true"], 30), run(["/bin/true"], 30))
]] } }

function M.parse_inside(s)
  local p, pd, sh, t = s:match("^(%S+) (%S+) (%S+) (%S+)")
  return { python_pass = tonumber(p), python_pandas = tonumber(pd), sh_true = tonumber(sh), ["true"] = tonumber(t) }
end

-- the sales block's pandas work (read_csv and the two groupbys, no import,
-- no print) repeated in one preloaded block: its median in ms
M.PANDAS_WORK = { { lang = "python", code = "import statistics, time\n" .. M.SALES_CODE:gsub("\nprint%(", "\n_ = (")
  :gsub("\ndf = ", "\ndef work():\n    df = ", 1):gsub("\n_ = %(", "\n    _ = (") .. [[
ts = []
for _ in range(30):
    t = time.perf_counter()
    work()
    ts.append((time.perf_counter() - t) * 1000)
print(statistics.median(ts))
]] } }

return M
