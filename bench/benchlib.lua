-- bench/benchlib.lua: what the benchmarks share: JSON files, the same
-- median / nearest-rank p95 as bench/report.lua, Markdown rows, the load
-- average, a block's result check, the alternating timed rounds of the
-- LocalExecutor benches, and the timing of Engine API requests.
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

-- /proc/loadavg's line ("?" where there is none)
function M.loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("l") or "?"
  if f then f:close() end
  return s
end

-- A block's result must be exit 0 and (want given) exactly want; an error
-- at the caller's line otherwise.
function M.check(r, want)
  if r.exit_code ~= 0 or (want and r.output ~= want) then
    error(("unexpected result: exit %s, output %q (want %q)"):format(tostring(r.exit_code), r.output, want), 2)
  end
end

-- The timed rounds of bench/preload_bench.lua and bench/stateful_bench.lua:
-- n rounds, in each every row's python block once, in row order (so that
-- load hits every row alike); its time in ms appended to row.times. A row:
-- { ex = an executor, code = the block, want = its output, restart = true:
-- ex:restart() before each run, untimed }. Prints the load average before
-- and after.
function M.alternate(rows, n, now)
  print("load average before: " .. M.loadavg())
  for _ = 1, n do
    for _, row in ipairs(rows) do
      if row.restart then row.ex:restart() end
      local t0 = now()
      local r = row.ex:execute{ { lang = "python", code = row.code } }
      row.times[#row.times + 1] = (now() - t0) * 1000
      assert(r.exit_code == 0 and r.output == row.want, r.output)
    end
  end
  print("load average after:  " .. M.loadavg())
end

-- The Docker benches' (bench/docker_bench.lua, bench/warm_bench.lua);
-- agentbox is required on first use (their report modes run without it).

-- run fn(i) in k tasks at once; returns the wall time in ms
function M.all(k, fn)
  local agentbox = require("agentbox")
  local now = require("agentbox.core").now
  local t0 = now()
  local ts = {}
  for i = 1, k do ts[i] = agentbox.spawn(fn, i) end
  agentbox.run()
  for i = 1, k do assert(ts[i]:result()) end
  return (now() - t0) * 1000
end

-- One claim of a DockerPool and its first block, as a chat between two
-- fills sees it: the pool filled (untimed), then DockerExecutor{ pool = p }
-- + start() and the first execute of block, timed. take: M.engine_ops's.
-- Returns the executor (open), the block's result, the claim's and the
-- first block's ms, and the Engine API requests of both.
function M.claim_first(pool, block, take)
  local agentbox = require("agentbox")
  local now = require("agentbox.core").now
  assert(pool:fill())
  take()
  local t0 = now()
  local ex = agentbox.DockerExecutor{ pool = pool, timeout = 60 }
  ex:start()
  local t1 = now()
  local r = ex:execute(block)
  local t2 = now()
  return ex, r, (t1 - t0) * 1000, (t2 - t1) * 1000, take()
end

-- One execute of ex (fresh = true, from pool) with the pool filled first,
-- untimed: the steady state where the pool keeps up with the calls. Checks
-- the result against want; returns its ms and its Engine API requests.
function M.fresh_call(pool, ex, block, want, take)
  local now = require("agentbox.core").now
  assert(pool:fill())
  take()
  local t0 = now()
  local r = ex:execute(block)
  local dt = (now() - t0) * 1000
  local o = take()
  M.check(r, want)
  return dt, o
end

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
