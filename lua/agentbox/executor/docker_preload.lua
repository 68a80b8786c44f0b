-- DockerExecutor's preloaded Python (`preload = { "pandas", "numpy" }`):
-- LocalExecutor's template (executor/python_preload.lua and its helper
-- agentbox_preload.py) run inside the warm container, so preload turns the
-- warm block server on (warm = false with preload is an error).
--
--   * The helper reaches the container as the supervisor does: a read-only
--     bind mount (/opt/agentbox/preload.py, and agentbox_blockproc.py
--     beside it: executor/python_helper.lua).
--   * The template is a resident of the block server (core.spawn's
--     `resident`, src/spawnsrv.c; only the host can ask, over the server's
--     private socket): its real and saved uid are not the sandbox user's,
--     its effective uid is (src/sup.h), so the code can neither signal nor
--     ptrace it, and the per-block sweep (kill(-1) as the sandbox user)
--     spares it and its spare sessions. Its supervisor, a run the server
--     keeps, kills its tree when it dies.
--   * Each python block is the template's client (agentbox-sup
--     --preload-client, src/preloadcl.c: the helper's `run` in C), run by the server like any
--     block (deadline, whole-tree kill, output cap while streaming, OOM,
--     sweep); the block itself is a fork of the template that becomes the
--     sandbox user alone, so the sweep kills whatever it leaves, wherever
--     it went.
--   * The template can still die (the OOM killer, a killed container): the
--     next block says so and starts a new one; a block whose template died
--     under it is reported as lost (python_preload.LOST_LINE).
-- Default: no preload (an image declares none: a template costs memory in
-- every container, so it is asked for, not implied).
local core = require("agentbox.core")
local python_preload = require("agentbox.executor.python_preload")
local files = require("agentbox.executor.sandbox_files")
local helper = require("agentbox.executor.python_helper")
local warm = require("agentbox.executor.docker_warm")

local M = {}

M.HELPER = files.SUP_DIR .. "/preload.py"   -- in the container
local SUP = files.SUP_DIR .. "/sup"
local PYTHON = "python3"                     -- the code's python, found on the container's PATH

M.DIED_LINE = "agentbox: the preloaded Python template had died since the last block;"
  .. " a new one was started for this block\n"

M.check = python_preload.check

-- the template, as a resident of the block server
local function spawn(self, argv)
  self._preload_container = self.container_id
  return core.spawn{ server = self._conn, resident = true, argv = argv, cwd = files.WORKSPACE,
                     grace = self.grace, max_output = 65536, stream = true, seccomp = true,
                     no_fallocate = python_preload.no_fallocate(self) }
end

--- In _setup, before warm mode's own checks: preload turns warm on.
function M.setup(self, o, fail)
  self.preload = o.preload
  if not o.preload then return end
  helper.setup_warm(self, o, fail, "preload")
  self._preload_helper = M.HELPER
  self._preload_spawn = spawn
end

--- The container's configuration: the helper, read-only (and the code it shares).
function M.config(_, cfg)
  helper.mount(cfg, python_preload.HELPER, M.HELPER)
end

--- The container started: the template imports now, not in the first
--- block's time. A template that fails is the python blocks' error.
function M.started(self)
  python_preload.stop(self)
  python_preload.template(self, PYTHON)
end

--- close, or the container goes
M.stop = python_preload.stop

--- One block (DockerExecutor:_run in warm mode).
function M.run(self, argv, prep, out, timeout)
  if prep.info.kind ~= "python" then return warm.run(self, argv, out, timeout) end
  self:_ensure()
  local t, noted = self._preload_tpl, false
  if t and self._preload_container ~= self.container_id then
    python_preload.stop(self)   -- the container was replaced: so was its template
  elseif t and t.ready and t.proc:done() then
    out.add(M.DIED_LINE)
    noted = true
    python_preload.stop(self)
  end
  local res, lost
  for _ = 1, 2 do
    local tpl, err = python_preload.template(self, argv[1])
    if not tpl then return nil, err end
    -- the client is our static supervisor binary (src/preloadcl.c), not a
    -- second interpreter: one python start per block fewer
    local cargv = { SUP, "--preload-client", tpl.name, tostring(math.floor(self.grace * 1000)), argv[#argv] }
    res = warm.run(self, cargv, out, timeout)
    local what = python_preload.outcome(self, res)
    lost = what == "lost"
    if what ~= "retry" then break end
    -- no session took the block (nothing ran): the template was gone
    -- before the host had seen it end
    if not noted then out.add(M.DIED_LINE) end
    noted = true
  end
  if lost then
    out.add(python_preload.LOST_LINE)
    return { exit_code = 1, timed_out = res.timed_out, container_id = res.container_id }
  end
  res.signal = nil
  return res
end

return M
