-- What python_preload.lua and python_session.lua (and their DockerExecutor
-- sides, docker_preload.lua and docker_session.lua) share: where their
-- Python helpers are (agentbox_preload.py, agentbox_session.py,
-- agentbox_blockproc.py, the code both load from their own directory, and
-- agentbox_client.py, the block's client of either), the wait for a
-- server's "ready NAME" line, and in a container the warm block server
-- they live in and the bind mounts that put a helper there with
-- agentbox_blockproc.py beside it (the client there is agentbox-sup's).
local core = require("agentbox.core")
local task = require("agentbox.task")

local M = {}

-- absolute now: blocks run in work_dir, and a module loaded through a
-- relative package.path entry has a relative source
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local DIR = core.realpath(here) or here
local SHARED = "agentbox_blockproc.py"

--- The helper file NAME, shipped beside this module (make install copies it).
function M.path(name)
  return DIR .. "/" .. name
end

--- DockerExecutor's _setup with `what` (preload, stateful) set: it lives in
--- the warm block server, so it turns warm on.
function M.setup_warm(self, o, fail, what)
  if o.warm == false then
    fail(("%s runs in the warm block server: remove warm = false (%s turns warm on)"):format(what, what))
  end
  -- the block's tree is killed at half the grace (by the template's
  -- session, or the keeper), before the supervisor's KILL: with no grace
  -- it would outlive the report
  if o.grace == 0 then fail(what .. " needs a grace > 0 (the block's tree is killed within it)") end
  self.warm = true
end

--- A python block's program on the host: the client of the server NAME.
--- -I -S: nothing of the environment or of site-packages in its start.
function M.client_argv(python, name, grace, file)
  return { python, "-I", "-S", M.path("agentbox_client.py"), name, tostring(math.floor(grace * 1000)), file }
end

--- The container's configuration: the helper (a host path) at target,
--- read-only, and the shared code beside it, where the helper loads it from.
function M.mount(cfg, helper, target)
  local mounts = cfg.HostConfig.Mounts
  for _, m in ipairs({ { helper, target }, { M.path(SHARED), target:match("^(.*/)") .. SHARED } }) do
    mounts[#mounts + 1] = { Type = "bind", Source = core.realpath(m[1]) or m[1], Target = m[2], ReadOnly = true }
  end
end

--- Wait for a server's "ready NAME" line (its imports are done) on proc's
--- stdout -> NAME, or nil and proc's result once it ended without one.
function M.await_ready(proc)
  local seen = ""
  repeat
    task.wait(proc)
    local chunks = proc:read()
    for i = 1, chunks and #chunks or 0, 2 do
      if chunks[i] == "stdout" then seen = seen .. chunks[i + 1] end
    end
    local name = seen:match("^ready (%S+)\n")
    if name then return name end
  until proc:done()
  return nil, proc:result()
end

return M
