-- Small helpers shared by specs: temp dirs, file checks, a nested Lua run.
local core = require("agentbox.core")
local task = require("agentbox.task")
local M = {}

function M.tmpdir(tag)
  local base = os.getenv("TMPDIR") or "/tmp"
  local dir = ("%s/agentbox-spec-%s-%d-%d"):format(base, tag or "x", math.floor(core.now() * 1000), math.random(1e9))
  assert(core.mkdir_p(dir))
  return dir
end

function M.rm_rf(dir)
  assert(dir:match("^/tmp/agentbox%-spec") or dir:match("agentbox%-spec"), "refusing to remove " .. dir)
  os.execute("rm -rf '" .. dir .. "'")
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- M.read, but nil where the file cannot be opened (not written yet)
function M.try_read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Blocking run of a command for specs, through the core (no shell quoting).
function M.run(argv, opts)
  opts = opts or {}
  local env = opts.env or { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or "/tmp" }
  local p = assert(core.spawn{ argv = argv, env = env, cwd = opts.cwd, timeout = opts.timeout or 60,
                               stdin = opts.stdin, max_output = opts.max_output })
  -- opts.unscheduled: only the reactor, never the scheduler (which would also
  -- drain the queue of collected executors: executor_gc_spec looks without
  -- releasing); otherwise through the scheduler, which alone calls core.step:
  -- a direct step would swallow the wake-ups of tasks running in the
  -- background (a pool's refill)
  if opts.unscheduled then
    while not p:done() do core.step(-1) end
    local r = p:result()
    p:close()
    return r
  end
  repeat
    task.wait(p)
    p:read()
  until p:done()
  local r = p:result()
  p:close()
  return r
end

-- The environment for a nested Lua process (or the C host) with the
-- project's paths, plus extra.
function M.lua_env(extra)
  local env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or "/tmp",
                LUA_PATH = package.path, LUA_CPATH = package.cpath, AGENTBOX_SUP = os.getenv("AGENTBOX_SUP") }
  -- under `make check`, the sanitized core.so needs the sanitizers' runtime
  -- preloaded, and reports go where the check target collects them
  for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" }) do env[k] = os.getenv(k) end
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- Run a Lua 5.4 chunk in a fresh process with the project's paths.
function M.lua(src, env_extra, timeout)
  return M.run({ "lua5.4", "-e", src }, { env = M.lua_env(env_extra), timeout = timeout })
end

-- M.lua, with a pseudo-terminal as the chunk's stdin, stdout and stderr
-- (spec/support/in_tty.py): for what only happens on a terminal.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
function M.lua_tty(src, env_extra, timeout)
  return M.run({ "/usr/bin/python3", here .. "/in_tty.py", "lua5.4", "-e", src },
               { env = M.lua_env(env_extra), timeout = timeout })
end

-- What a process spawned with stream = true wrote on stdout up to its first
-- newline (or its end, when it ends before one): a server's "ready" line.
function M.first_line(p)
  local got = ""
  while not got:find("\n") and not p:done() do
    task.wait(p)
    local chunks = p:read()
    for i = 1, chunks and #chunks or 0, 2 do if chunks[i] == "stdout" then got = got .. chunks[i + 1] end end
  end
  return got
end

-- Is process pid alive (and not a zombie, nor dead)?
function M.alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local s = f:read("a")
  f:close()
  -- the process may vanish between open and read
  local state = s and s:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

return M
