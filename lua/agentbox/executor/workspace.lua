-- An executor's work_dir on the host, through the workspace accessor
-- (core.workspace, src/workspace.c): the user's directory, opened without
-- following a link anywhere in its path, or a fresh private directory that
-- agentbox creates, owns and removes at close. Directories of dead owners
-- are reaped when an executor starts.
local core = require("agentbox.core")
local errors = require("agentbox.errors")
local gc_queue = require("agentbox.executor.gc_queue")

local M = {}

-- agentbox-<owner>-<random>, owner being core.owner() ("<pid>-<start
-- time>", src/owner.c), the identity the Docker reaper uses, so a later start
-- can tell the owner is gone
local NAME = "^agentbox%-(%d+%-%d+)%-%x+$"

-- TMPDIR is the host's own configuration, so it is resolved (a work_dir a
-- user passes never is); a relative or empty one is ignored
local function tmp_base()
  local t = os.getenv("TMPDIR")
  if not t or t:sub(1, 1) ~= "/" then t = "/tmp" end
  return core.realpath(t) or t
end

--- Remove the temporary work_dirs of dead owners in the temp directory
--- (base: an open workspace of it). Returns how many went.
function M.reap(base)
  local n = 0
  for _, name in ipairs(base:list() or {}) do
    local owner = name:match(NAME)
    if owner and not core.owner_alive(owner) then
      local st = base:stat(name)
      if st and st.type == "dir" and base:remove(name) then n = n + 1 end
    end
  end
  return n
end

-- Reap the temp directory; a failure must not stop an executor that does
-- not need it
local function reap_tmp()
  local base = core.workspace(tmp_base())
  if base then
    pcall(M.reap, base)
    base:close()
  end
end

--- A new private (0700, exclusive) directory in the temp directory, named
--- agentbox-<owner>-<random> so that a dead owner's is reaped (NAME):
--- ws | nil, message, where ("owner": no identity; else the temp directory)
function M.private()
  local path = tmp_base()
  local id, err = core.owner()
  if not id then return nil, err, "owner" end
  for _ = 1, 8 do
    local name = ("agentbox-%s-%08x%08x"):format(id, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
    local ws
    ws, err = core.workspace(path .. "/" .. name, { create = true, exclusive = true, mode = 448 })  -- 0700
    if ws then return ws end
  end
  return nil, tostring(err), path
end

local function fresh(what)
  local ws, err, where = M.private()
  if ws then return ws end
  if where == "owner" then errors.misuse("%s: %s", what, err) end
  errors.misuse("%s: cannot create a private work_dir in %s: %s", what, where, err)
end

--- The workspace of an executor: work_dir (created when missing) or, when
--- nil, a fresh private directory. Returns ws, temporary. work_dir was
--- checked by the executor base (a non-empty string or nil).
function M.open(work_dir, what)
  reap_tmp()
  if work_dir == nil then return fresh(what), true end
  local ws, err = core.workspace(work_dir, { create = true })
  if not ws then
    -- ENOTDIR: a component of the path is a file
    if err:find(": Not a directory$") then err = err:gsub(": Not a directory$", " exists and is not a directory") end
    errors.misuse("%s: %s", what, err)
  end
  return ws, false
end

--- Attach the workspace to an executor (self.work_dir, self._ws) from the
--- checked options. The workspace is held (gc_queue.hold) until detach, so
--- its own finalizer cannot close it before the executor's release runs.
function M.attach(self, opts, what)
  if self._adopt_ws then
    -- a pooled container's own private directory (docker_pool.lua), handed
    -- over with its container: a temporary work_dir like any other
    self._ws, self.work_dir_temp, self._adopt_ws = self._adopt_ws, true, nil
  else
    self._ws, self.work_dir_temp = M.open(opts.work_dir, what)
  end
  self.work_dir = self._ws:path()
  self.keep_work_dir = opts.keep_work_dir or false
  gc_queue.hold(self._ws)
end

--- What detach does, as a function of its own (no reference to the
--- executor): at close, or queued by a collected executor. A temporary
--- work_dir goes unless keep_work_dir; the user's stays.
function M.releaser(self)
  local ws, remove = self._ws, self.work_dir_temp and not self.keep_work_dir
  local path = self.work_dir
  self._ws = nil
  if not ws then return function() return true end end
  return function()
    gc_queue.let_go(ws)
    if not remove then return pcall(ws.close, ws) end
    if not pcall(ws.path, ws) then
      -- lua_close finalized the workspace first (it was made after the
      -- queue's sentinel): open the private directory again, by the same walk
      ws = core.workspace(path)
      if not ws then return true end
    end
    return ws:destroy()
  end
end

--- At close.
function M.detach(self)
  return M.releaser(self)()
end

--- Write a code file: path | nil, message (AutoGen's message for a name that
--- leads out of the workspace, here through a link).
function M.write(ws, rel, text)
  local ok, err, kind = ws:write(rel, text)
  if not ok then
    if kind == "link" then return nil, "Filename is not in the workspace" end
    return nil, err
  end
  return ws:path() .. "/" .. rel
end

return M
