-- DockerExecutor's stateful Python (`stateful = true`): LocalExecutor's
-- session (executor/python_session.lua and its helper agentbox_session.py)
-- run inside the warm container, so stateful turns the warm block server
-- on (warm = false with stateful is an error), as preload does.
--
--   * The helper reaches the container as the supervisor does: a read-only
--     bind mount (/opt/agentbox/session.py, and agentbox_blockproc.py
--     beside it: executor/python_helper.lua).
--   * The keeper K is a resident of the block server (core.spawn's
--     `resident`, src/spawnsrv.c): its real and saved uid are not the
--     sandbox user's, its effective uid is (src/sup.h); its supervisor, a
--     run the server keeps, kills its tree when it dies. The interpreter I
--     (K's fork) keeps K's real and saved uid between blocks, so the
--     sweep before and after each block (kill(-1) as the sandbox user)
--     spares it and the state outlives the block; during a block its real
--     uid is the sandbox user's as well (the saved one takes it back
--     after), so the code and what it starts are the sandbox user. The
--     code may take the saved uid as its real one and signal K (end its
--     own session, as locally: the block says the state was lost, the
--     next runs in a new one), but neither ptrace K nor read its memory
--     (K's effective uid is not its real one, and K is not dumpable), and
--     it reaches neither the block server nor K's supervisor (root).
--   * Each python block's client is agentbox-sup --preload-client
--     (src/preloadcl.c; the keeper takes agentbox_preload.py's request), run
--     by the server like any block: deadline, whole-tree kill, output cap
--     while streaming, sweep. After each block K kills everything below it
--     but I (a setsid'd or double-forked child of the code is still below
--     K, its subreaper).
--   * With `preload`, K imports those modules before it forks I (no
--     template besides).
--   * The workspace quota is the session's too, for its life (its
--     supervisor sees the deleted files I holds).
-- restart() restarts the session, not the container (close still removes
-- it); a replaced container (its server died) takes the session with it,
-- and the next python block says the state was lost.
local core = require("agentbox.core")
local common = require("agentbox.executor.common")
local python_session = require("agentbox.executor.python_session")
local files = require("agentbox.executor.sandbox_files")
local helper = require("agentbox.executor.python_helper")
local warm = require("agentbox.executor.docker_warm")

local M = {}

M.HELPER = files.SUP_DIR .. "/session.py"   -- in the container
local SUP = files.SUP_DIR .. "/sup"

M.check = python_session.check

-- the keeper, as a resident of the block server
local function spawn(self, argv)
  self._session_container = self.container_id
  local q = self.quota
  return core.spawn{ server = self._conn, resident = true, argv = argv, cwd = files.WORKSPACE,
                     grace = self.grace, max_output = 65536, stream = true, seccomp = true,
                     quota = q and { dir = files.WORKSPACE, bytes = q.bytes, files = q.files } or nil }
end

-- the block's client: our static supervisor binary, not a second interpreter
local function client(self, name, _, file)
  return { SUP, "--preload-client", name, tostring(math.floor(self.grace * 1000)), file }
end

--- In _setup, before warm mode's own checks: stateful turns warm on.
function M.setup(self, o, fail)
  self.stateful = o.stateful
  if not o.stateful then return end
  helper.setup_warm(self, o, fail, "stateful")
  self._session_helper = M.HELPER
  self._session_spawn = spawn
  self._session_client = client
end

--- The container's configuration: the helper, read-only (and the code it shares).
function M.config(_, cfg)
  helper.mount(cfg, python_session.HELPER, M.HELPER)
end

--- The container started: the session starts now (its imports are not the
--- first block's time). One that fails is the python blocks' error.
function M.started(self)
  python_session.stop(self)
  python_session.start(self, "python3")
end

--- restart, close, or the container goes
M.stop = python_session.stop

--- One block (DockerExecutor:_run in warm mode).
function M.run(self, argv, prep, out, timeout)
  if prep.info.kind ~= "python" then return warm.run(self, argv, out, timeout) end
  local note0
  if self.container_id and not (self._conn and self._conn:alive()) then
    -- the server died since the last block: its container and the session with it
    warm.replace(self, out, "the warm sandbox's server was gone")
  end
  self:_ensure()
  if self._session and self._session_container ~= self.container_id then
    python_session.stop(self)
    note0 = python_session.GONE_LINE
  end
  local res, note, lost = python_session.run(self, argv[1], argv[#argv], function(a)
    return warm.run(self, a, out, timeout)
  end)
  if not res then return nil, note end
  if res.exit_code == nil then
    -- the keeper's own result: the workspace was over its quota before
    -- anything ran (its supervisor's line, 122)
    out.add(res.output, res.dropped)
    res = { exit_code = common.exit_code(res), quota_exceeded = res.quota_exceeded, container_id = self.container_id }
  end
  if note0 and not note then note = note0 end
  if note then out.add(note) end
  if lost then return { exit_code = 1, timed_out = res.timed_out, container_id = res.container_id } end
  -- the session's supervisor ended it over the quota (the client died of LOST)
  if res.quota_exceeded and not res.timed_out then res.exit_code = common.QUOTA_EXIT end
  res.signal = nil
  return res
end

return M
