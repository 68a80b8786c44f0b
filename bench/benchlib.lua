-- bench/benchlib.lua: what bench/docker_bench.lua and bench/concurrency_bench.lua
-- share: JSON files, the same median / nearest-rank p95 as bench/report.lua,
-- Markdown rows, and the machine line of the table headers.
local cjson = require("cjson")

local M = {}

function M.read_json(path)
  local f = assert(io.open(path))
  local t = cjson.decode(f:read("a"))
  f:close()
  return t
end

function M.write_json(path, t)
  local f = assert(io.open(path, "w"))
  f:write(cjson.encode(t), "\n")
  f:close()
end

-- percentile by nearest rank (p = 0.95, 0.99); median interpolated as report.lua does
function M.stats(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return { n = 0 } end
  local function pct(p) return s[math.max(1, math.ceil(p * n))] end
  local med = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
  local sum = 0
  for _, x in ipairs(s) do sum = sum + x end
  return { n = n, median = med, p95 = pct(0.95), p99 = pct(0.99), min = s[1], max = s[n], mean = sum / n }
end

-- concatenate arrays
function M.concat(lists)
  local out = {}
  for _, l in ipairs(lists) do
    for _, x in ipairs(l) do out[#out + 1] = x end
  end
  return out
end

function M.row(cells) return "| " .. table.concat(cells, " | ") .. " |" end

-- "a / b" with a fixed number of decimals
function M.pair(s, fmt)
  fmt = fmt or "%.1f"
  return (fmt .. " / " .. fmt):format(s.median, s.p95)
end

function M.ratio(a, b) return ("%.1fx"):format(a / b) end

return M
