-- An executor's work_dir on the host, through the workspace accessor
-- (core.workspace, src/workspace.c): the user's directory, opened without
-- following a link anywhere in its path, or a fresh private directory that
-- agentbox creates, owns and removes at close. Directories of dead owners
-- are reaped when an executor starts.
local core = require("agentbox.core")
local docker = require("agentbox.engine")

local M = {}

-- agentbox-<pid>-<process start time>-<random>: the owner identity the
-- Docker reaper uses, so a later start can tell the owner is gone
local NAME = "^agentbox%-(%d+)%-(%d+)%-%x+$"

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
    local pid, started = name:match(NAME)
    if pid and docker.process_start(pid) ~= started then
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

local function fresh(what)
  local path = tmp_base()
  local err
  local id = docker.identity()
  for _ = 1, 8 do
    local name = ("agentbox-%s-%s-%08x%08x"):format(id.pid, id.started, math.random(0, 0x7fffffff),
      math.random(0, 0x7fffffff))
    local ws
    ws, err = core.workspace(path .. "/" .. name, { create = true, exclusive = true, mode = 448 })  -- 0700
    if ws then return ws end
  end
  error(what .. ": cannot create a private work_dir in " .. path .. ": " .. tostring(err), 0)
end

--- The workspace of an executor: work_dir (created when missing) or, when
--- nil, a fresh private directory. Returns ws, temporary.
function M.open(work_dir, what)
  reap_tmp()
  if work_dir == nil then return fresh(what), true end
  if type(work_dir) ~= "string" or work_dir == "" then
    error(what .. ": work_dir must be a non-empty string (or nil for a fresh private directory)", 0)
  end
  local ws, err = core.workspace(work_dir, { create = true })
  if not ws then error(what .. ": " .. err, 0) end
  return ws, false
end

--- Attach the workspace to an executor (ex.work_dir, ex._ws) from opts.
function M.attach(self, opts, what)
  if opts.keep_work_dir ~= nil and type(opts.keep_work_dir) ~= "boolean" then
    error(what .. ": keep_work_dir must be a boolean", 0)
  end
  self._ws, self.work_dir_temp = M.open(opts.work_dir, what)
  self.work_dir = self._ws:path()
  self.keep_work_dir = opts.keep_work_dir or false
end

--- At close: a temporary work_dir goes unless keep_work_dir; the user's stays.
function M.detach(self)
  local ws = self._ws
  if not ws then return true end
  self._ws = nil
  if self.work_dir_temp and not self.keep_work_dir then return ws:destroy() end
  ws:close()
  return true
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
