-- One lua_State of spec/support/states_host.c (STATE = { index, url, live,
-- host_pid }): require agentbox, run a process through the spawn server, an
-- HTTP request and a timer to the end. With STATE.live the state also leaves
-- a process, an HTTP request and a timer running for lua_close to finalize.
local S = STATE   -- luacheck: ignore (set by the host)
require("agentbox")
local core = require("agentbox.core")
local common = require("agentbox.executor.common")

local sup = assert(common.sup_path(), "agentbox-sup not found: set AGENTBOX_SUP")
local env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" }

local function wait(what, cond)
  local deadline = core.now() + 30
  while not cond() do
    assert(core.now() < deadline, what .. " did not finish in 30 s")
    core.step(20)
  end
end

local p = core.spawn{ argv = { "/bin/sh", "-c", "echo state-$1", "sh", tostring(S.index) }, env = env,
                      sup = sup, timeout = 20 }
wait("the process", function() return p:done() end)
local r = p:result()
assert(r.exit_code == 0 and r.stdout == ("state-%d\n"):format(S.index),
  ("process: exit %s, stdout %q, stderr %q"):format(tostring(r.exit_code), tostring(r.stdout), tostring(r.stderr)))

local h = core.http{ url = S.url .. "/models", timeout = 20 }
wait("the HTTP request", function() return h:done() end)
local res = assert(h:result())
assert(res.status == 200, "HTTP status " .. tostring(res.status))

local t = core.timer(0.005)
wait("the timer", function() return t:done() end)

if not S.live then
  -- even states tidy up as a careful host would
  p:close(); h:close(); t:close()
  return
end

-- Work in flight at lua_close: a process tree that would run 60 s (the
-- marker argument lets the spec look for survivors), a request the server
-- answers after 60 s, a timer due in 60 s.
local live = core.spawn{ argv = { "/bin/sh", "-c", "sleep 60; exit 0", "agentbox-lifecycle-" .. S.host_pid },
                         env = env, sup = sup }
wait("the spawn server's answer", function() return live:pid() > 0 end)
local slow = core.http{ url = S.url .. "/chat/completions", method = "POST",
                        headers = { "Content-Type: application/json" },
                        body = '{"model":"m","messages":[{"role":"user","content":"slow"}]}' }
for _ = 1, 3 do core.step(5) end
assert(not slow:done(), "the slow request finished early")
local later = core.timer(60)
-- keep them reachable until the host closes the state
STATE.keep = { live, slow, later, p, h, t }   -- luacheck: ignore
