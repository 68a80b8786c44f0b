-- The host side of spec/landlock_spec.lua's attacks, as a module so that a
-- nested Lua host can run them as another uid: the places the attacks aim
-- at (a directory and a secret outside every allowed path, binaries there
-- and in the work directory), a process of the host to signal and an
-- abstract unix socket of the host, then spec/support/landlock_probe.py
-- with and without Landlock. Returns { off = {check = verdict}, on = {...},
-- alive = {off = bool, on = bool}, result = the landlocked run's result }.
local core = require("agentbox.core")

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
M.PROBE = here .. "/landlock_probe.py"

-- what an interpreter needs read-only; a missing one is skipped
M.SYSTEM = { "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc", "/opt" }
M.ENV = { PATH = "/usr/bin:/bin" }

local function wait(p)
  while not p:done() do core.step(-1) end
  local r = p:result()
  p:close()
  return r
end
M.wait = wait

-- A host process that prints its first line once ready; returns the handle
-- and that line.
local function start(argv)
  local p = assert(core.spawn{ argv = argv, env = M.ENV, timeout = 120 })
  local out = ""
  local deadline = core.now() + 20
  while not out:find("\n") and not p:done() and core.now() < deadline do
    core.step(100)
    local chunks = p:read()
    for i = 1, chunks and #chunks or 0, 2 do
      if chunks[i] == "stdout" then out = out .. chunks[i + 1] end
    end
  end
  assert(out:find("\n"), "the host process did not start: " .. out)
  return p, out:match("^([^\n]*)")
end

local LISTENER = [[
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind('\0' + sys.argv[1])
s.listen(8)
print('ready', flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b'hello')
    c.close()
]]

local function sh(cmd)
  assert(os.execute(cmd), cmd)
end

-- opts.sup: through the spawn server; opts.landlock: the option (default:
-- M.SYSTEM read-only, work and /dev/null read-write)
function M.run(opts)
  opts = opts or {}
  local tag = ("%d-%d"):format(math.floor(core.now() * 1000), math.random(1e9))
  local work = "/tmp/agentbox-spec-ll-work-" .. tag
  local base = "/var/tmp/agentbox-spec-ll-" .. tag
  local outside = base .. "/outside"
  assert(core.mkdir_p(work) and core.mkdir_p(outside))
  -- open to every uid: what stops the attacks must be Landlock, not the modes
  sh(("chmod 755 '%s' && chmod 777 '%s' && cp /bin/true '%s/true' && cp /bin/true '%s/true' && cp '%s' '%s/probe.py'")
    :format(base, outside, outside, work, M.PROBE, work))
  sh(("echo s3cret > '%s/secret' && chmod 644 '%s/secret' && echo x > '%s/existing' && chmod 666 '%s/existing'")
    :format(base, base, outside, outside))
  local abstract = "agentbox-spec-ll-" .. tag
  local listener = start({ "/usr/bin/python3", "-c", LISTENER, abstract })
  local ll = opts.landlock or { read = M.SYSTEM, write = { work, "/dev/null" } }
  local got, alive = {}, {}
  local result
  for _, mode in ipairs({ "off", "on" }) do
    local target, pid = start({ "sh", "-c", "echo $$; exec sleep 120" })
    local r = wait(assert(core.spawn{
      argv = { "/usr/bin/python3", work .. "/probe.py", work, outside, base .. "/secret", pid, abstract },
      env = M.ENV, timeout = 60, landlock = mode == "on" and ll or nil,
      sup = opts.sup and os.getenv("AGENTBOX_SUP") or nil }))
    got[mode] = {}
    for name, v in r.stdout:gmatch("(%S+) (%S+)") do got[mode][name] = v end
    got[mode].raw = r.output
    core.step(50)   -- let a TERMed target die before we look
    local f = io.open("/proc/" .. pid .. "/stat")
    local st = f and f:read("a")
    if f then f:close() end
    alive[mode] = st ~= nil and st:match("%) (%a)") ~= "Z"
    target:close()
    if mode == "on" then result = r end
  end
  listener:close()
  sh(("rm -rf '%s' '%s'"):format(work, base))
  return { off = got.off, on = got.on, alive = alive, result = result }
end

return M
