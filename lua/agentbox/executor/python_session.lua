-- Stateful Python (the `stateful` option, issue 11; LocalExecutor first):
-- the python blocks of one executor run in one long-lived interpreter, so
-- variables and imports persist between blocks. The helper,
-- agentbox_session.py (shipped beside this file), is the session's keeper
-- and its interpreter, and each block's program is their client,
-- agentbox_client.py (preload's too); its header is the design: how a
-- block's whole tree stays under the supervisor's deadline and kill though
-- it runs in the interpreter, and when the interpreter is replaced (a
-- timeout, a crash, a killed client) with a line in the block's output.
--
-- What is here is the executor's side, written for any executor that runs
-- a program under supervision (a DockerExecutor's block server can run the
-- same client and keeper):
--   M.check(v, what)                  the option: a boolean
--   M.run(self, python, file, run)    one python block: run(argv) runs the
--                                     client under the supervisor and returns
--                                     the core result; -> r, note, lost | nil, message
--                                     (note: a line for the output, lost: the
--                                     block's process died with the session)
--   M.start(self, python)             start the session now (start(), bench)
--   M.stop(self)                      end the session (restart, close)
--
-- An executor may run the session elsewhere: self:_session_spawn(argv)
-- starts the keeper (argv[2] is self._session_helper, the helper's path as
-- its programs see it) and returns its streaming handle;
-- self:_session_client(name, python, file) is the block's client argv
-- (DockerExecutor's block server, executor/docker_session.lua).
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local common = require("agentbox.executor.common")
local helper = require("agentbox.executor.python_helper")

local M = {}

-- the client dies of these (agentbox_client.py LOST, UNAVAILABLE; Linux numbers)
local LOST, UNAVAILABLE, SIGKILL = 10, 12, 9

M.HELPER = helper.path("agentbox_session.py")

local LOST_STATE = "the variables and imports of earlier blocks are lost; a new session runs the next block"
M.LOST_LINE = "\nagentbox: the Python session died during this block (the block was killed with it); "
  .. LOST_STATE .. "\n"
M.HUNG_LINE = "\nagentbox: the Python session did not end this block at its deadline and was replaced; "
  .. LOST_STATE .. "\n"
M.QUOTA_LINE = "\nagentbox: the workspace quota ended the Python session; " .. LOST_STATE .. "\n"
M.GONE_LINE = "\nagentbox: the Python session had ended or did not answer; a new one ran this block: "
  .. "the variables and imports of earlier blocks are lost\n"

function M.check(v, what)
  if v ~= nil and type(v) ~= "boolean" then
    errors.misuse("%s: stateful must be a boolean (true: python blocks share one interpreter)", what)
  end
  return v or false
end

function M.stop(self)
  local s = self._session
  self._session = nil
  if s then pcall(s.proc.close, s.proc) end
end

-- The keeper's name once it is ready (its imports are done), or its end.
local function await_ready(s, modules)
  local name, r = helper.await_ready(s.proc)
  if name then return name end
  return nil, ("agentbox: the Python session failed to start%s:\n%s")
    :format(#modules > 0 and " (preload = { " .. table.concat(modules, ", ") .. " })" or "",
            r.stderr ~= "" and r.stderr or r.output), r
end

-- After the client died of LOST: the keeper's supervisor ends its run a
-- moment after the keeper died (it kills the tree first). Its result, and
-- what it wrote since it was ready (the quota's line), or nil.
local function keeper_end(s)
  for _ = 1, 300 do
    if s.proc:done() then
      local text, chunks = {}, s.proc:read() or {}
      for i = 2, #chunks, 2 do text[#text + 1] = chunks[i] end
      return s.proc:result(), table.concat(text)
    end
    task.sleep(0.01)
  end
end

-- The keeper runs for the executor's life under a supervisor of its own,
-- with the executor's environment, nice, rlimits and seccomp filter; its
-- interpreter inherits them (rlimits therefore count over the
-- interpreter's life: cpu is its total CPU time). The workspace quota is
-- enforced on the session too, for its life: the block's processes are
-- the session's, not the client's, so only this supervisor sees the
-- deleted files they hold, and its filter refuses fallocate; over the
-- quota it ends the whole session (the block's client then dies of LOST).
function M.start(self, python)
  local s = self._session
  if s and (s.proc:done() or s.python ~= python) then
    M.stop(self)
    s = nil
  end
  if s then return s end
  local modules = self.preload or {}
  local argv = { python, self._session_helper or M.HELPER, "serve", tostring(math.floor(self.grace * 1000)),
                 tostring(math.ceil(self.timeout)) }
  table.move(modules, 1, #modules, #argv + 1, argv)
  local proc, err
  if self._session_spawn then
    proc, err = self:_session_spawn(argv)
  else
    proc, err = core.spawn{ argv = argv, cwd = self.work_dir, env = self.env, grace = self.grace,
                            max_output = 65536, stream = true, sup = common.sup_path(),
                            nice = self.nice, rlimits = self.rlimits, seccomp = true,
                            quota = self.quota and { dir = self.work_dir, bytes = self.quota.bytes,
                                                     files = self.quota.files } or false }
  end
  if not proc then return nil, "agentbox: starting the Python session: " .. tostring(err) end
  s = { proc = proc, python = python }
  self._session = s
  local ok, name, why, r = pcall(await_ready, s, modules)
  if not ok or not name then
    M.stop(self)
    if not ok then error(name, 0) end
    return nil, why, r
  end
  s.name = name
  return s
end

function M.run(self, python, file, run)
  local note
  -- a session that ended since the last block (killed from outside): its
  -- state is gone, and the output says so
  if self._session and self._session.proc:done() then
    M.stop(self)
    note = M.GONE_LINE
  end
  for _ = 1, 2 do
    local s, err, kr = M.start(self, python)
    -- a workspace over its quota: the keeper's supervisor ran nothing, as
    -- the block's would not have (122)
    if not s and kr and kr.quota_exceeded then return kr, note end
    if not s then return nil, err end
    local r = run(self._session_client and self:_session_client(s.name, python, file)
                  or helper.client_argv(python, s.name, self.grace, file))
    if r.signal == UNAVAILABLE and not r.timed_out then
      -- nobody took the block (the keeper stopped or gone): nothing ran
      M.stop(self)
      note = M.GONE_LINE
    elseif r.signal == LOST and not r.timed_out then
      -- the keeper died; its supervisor may have ended it over the quota
      -- (122, with the supervisor's line)
      local kend, text = keeper_end(s)
      M.stop(self)
      if not (kend and kend.quota_exceeded) then return r, M.LOST_LINE, true end
      r.quota_exceeded = true
      return r, M.QUOTA_LINE .. text
    else
      if r.timed_out and r.signal == SIGKILL then
        -- KILLed at its deadline before the keeper answered: the keeper
        -- could not end the block (stopped by the code?) and may still
        -- hold its tree; its supervisor kills all of it
        M.stop(self)
        note = M.HUNG_LINE
      elseif r.quota_exceeded then
        -- over the quota the session goes, whoever noticed first (the
        -- keeper's supervisor would end it at its next poll): a rule, not
        -- a race
        M.stop(self)
        note = M.QUOTA_LINE
      end
      return r, note
    end
  end
  return nil, "agentbox: the Python session did not answer twice in a row"
end

return M
