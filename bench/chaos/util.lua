-- bench/chaos/util.lua: small helpers of the chaos benchmark's runner (shell,
-- files, /proc, the clock, knobs, statistics).
local M = {}

function M.log(...) io.stderr:write("chaos: ", string.format(...), "\n") end

function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end

function M.lines(s)
  local t = {}
  for l in (s or ""):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.tail(path, n)
  local ls = M.lines(M.read_file(path))
  return table.concat(ls, "\n", math.max(1, #ls - n + 1))
end

-- seconds since boot (10 ms resolution), the hosts' clock too: enough for
-- durations and the kill schedule
function M.uptime() return tonumber(M.read_file("/proc/uptime"):match("^(%S+)")) end

function M.loadavg() return M.read_file("/proc/loadavg"):match("^(%S+ %S+ %S+)") end

function M.knob(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

function M.number(name, default)
  local v = tonumber(M.knob(name, default))
  if not v or v < 0 then error(("%s must be a non-negative number, got %q"):format(name, M.knob(name, default)), 0) end
  return v
end

function M.integer(name, default)
  local v = math.tointeger(M.number(name, default))
  if not v then error(("%s must be a whole number, got %q"):format(name, M.knob(name, default)), 0) end
  return v
end

function M.docker_lines(args) return M.lines(M.sh("docker " .. args .. " 2>/dev/null")) end

-- What /proc says about a process, or nil once it is gone.
function M.proc_info(pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat")
  if not stat then return nil end
  local comm, rest = stat:match("^%d+ %((.*)%) (.*)$")
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  local env = M.read_file("/proc/" .. pid .. "/environ") or ""
  local cmd = (M.read_file("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
  return { pid = pid, comm = comm, state = f[1], ppid = f[2], cmd = cmd,
           mark = env:match("CHAOS_MARK=([^%z]+)"),
           cwd = (M.sh("readlink /proc/" .. pid .. "/cwd 2>/dev/null"):gsub("\n$", "")) }
end

-- n, median, p95, p99 (nearest rank), min, max; nil for no samples
function M.summary(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  if #s == 0 then return nil end
  local function pct(p) return s[math.max(1, math.ceil(p * #s))] end
  local med = #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
  return { n = #s, median = med, p95 = pct(0.95), p99 = pct(0.99), max = s[#s], min = s[1] }
end

return M
