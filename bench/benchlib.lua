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

-- Time every Engine API request and host helper process: core.http and
-- core.spawn are wrapped (engine.lua and the executors look them up on the
-- core table at call time), each request timed from its start to the first
-- done() that says true. Returns take(): the { what, ms } completed since the
-- last take(). The wrapper costs microseconds per request.
function M.engine_ops(core)
  local now = core.now
  -- Engine API path -> what the request is for
  local function classify(o)
    local path = (o.url or ""):match("^%a+://[^/]+(/[^?]*)") or "?"
    path = path:gsub("^/v%d+%.%d+", "")
    local m = o.method or "GET"
    if path == "/_ping" or path == "/version" then return "negotiate " .. path end
    if path == "/containers/create" then return "container create" end
    if path == "/containers/json" then return "container list (reap)" end
    if path:match("^/containers/[^/]+/start$") then return "container start" end
    if path:match("^/containers/[^/]+/exec$") then return "exec create" end
    if path:match("^/exec/[^/]+/start$") then return "exec start (runs the block)" end
    if path:match("^/exec/[^/]+/json$") then return "exec inspect" end
    if path:match("^/containers/[^/]+/json$") then return "container inspect" end
    if m == "DELETE" and path:match("^/containers/") then return "container remove" end
    if path:match("^/images/") then return "image inspect" end
    return m .. " " .. path
  end

  local ops = {}          -- completed { op, ms } since the last take()
  local started = setmetatable({}, { __mode = "k" })
  local function instrument(fname, label)
    local real = core[fname]
    local patched = false
    core[fname] = function(o)
      local h, err = real(o)
      if not h then return h, err end
      started[h] = { now(), label(o) }
      if not patched then   -- the handle type's method table is shared: wrap done() once
        patched = true
        local methods = getmetatable(h).__index
        local done = methods.done
        methods.done = function(self)
          local d = done(self)
          local s = d and started[self]
          if s then
            started[self] = nil
            ops[#ops + 1] = { s[2], (now() - s[1]) * 1000 }
          end
          return d
        end
      end
      return h
    end
  end
  instrument("http", classify)
  instrument("spawn", function(o)
    return (o.server and "block server request: " or "host process: ") .. tostring(o.argv and o.argv[1])
  end)
  local function take()
    local t = ops
    ops = {}
    return t
  end
  return take
end

return M
