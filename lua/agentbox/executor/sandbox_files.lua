-- Files into and out of the sandbox: code files written into the host
-- work_dir (never through what the sandbox planted there), who owns
-- work_dir and who the sandbox runs as, and, for a remote daemon, code and
-- the supervisor delivered through the archive API.
local core = require("agentbox.core")
local docker = require("agentbox.engine")
local workspace = require("agentbox.executor.workspace")

local M = {}

M.WORKSPACE = "/workspace"
M.SUP_DIR = "/opt/agentbox"
local WORKSPACE, SUP_DIR = M.WORKSPACE, M.SUP_DIR
local read_file = docker.read_file

-- Write a code file into the host work_dir through the workspace accessor:
-- the sandbox can write there too (bind mount) and may swap a directory for
-- a link at any moment, so nothing is resolved by path (src/workspace.c).
function M.write_host(self, rel, text)
  return workspace.write(self._ws, rel, text)
end

local function numeric(user)
  local u, g = (user or ""):match("^(%d+):?(%d*)$")
  if not u then return nil end
  return tonumber(u), tonumber(g) or tonumber(u)
end

-- Can uid:gid write st's directory by its mode bits alone?
local function writable_by(st, uid, gid)
  if st.uid == uid then return st.mode & 0x80 ~= 0 end
  if st.gid == gid then return st.mode & 0x10 ~= 0 end
  return st.mode & 0x2 ~= 0
end

-- Decide, when the executor is made, who the sandbox runs as (bind mount;
-- a remote daemon: 1000:1000 in its own volume). agentbox never chowns a
-- directory it did not create:
--   * a work_dir agentbox created (omitted, or a path that did not exist)
--     is handed to the sandbox user: user = "uid:gid", else 1000:1000 when
--     we are root (else our own uid owns it and the sandbox runs as us);
--   * an existing work_dir owned by a non-root user: the sandbox runs as
--     that owner (the code acts as the directory's owner);
--   * an existing root-owned work_dir that 1000:1000 cannot write is
--     refused, unless user = is given: handing it over would let the code
--     replace the files root put there.
function M.prepare_workspace(self)
  if self.transfer ~= "bind" then
    self._default_user = "1000:1000"
    return
  end
  local ws = self._ws
  local st = assert(ws:stat())
  if ws:created() then
    local uid, gid = numeric(self.user or "1000:1000")
    if core.geteuid() == 0 and uid then
      local ok, err = ws:chown(uid, gid)
      if not ok then error("DockerExecutor: " .. err, 0) end
      self._default_user = uid .. ":" .. gid
    else
      self._default_user = st.uid .. ":" .. st.gid
    end
  elseif st.uid ~= 0 then
    self._default_user = st.uid .. ":" .. st.gid
  elseif self.user or writable_by(st, 1000, 1000) then
    self._default_user = "1000:1000"
  else
    error(("DockerExecutor: work_dir %s belongs to root and agentbox did not create it, so it is not handed "
      .. "to the sandbox user (1000:1000), which cannot write it. Omit work_dir (agentbox makes a private "
      .. "temporary one), give a path that does not exist yet (agentbox creates it for the sandbox), chown "
      .. "it to the sandbox user yourself (chown 1000:1000 %s), or pass user = \"uid:gid\" of a user that "
      .. "can write it"):format(self.work_dir, self.work_dir), 0)
  end
end

-- The sandbox user when none is given (prepare_workspace decided it).
function M.default_user(self)
  return self._default_user
end

function M.numeric_user(self)
  local u, g = (self.run_user or ""):match("^(%d+):?(%d*)$")
  u = tonumber(u) or 0
  return u, tonumber(g) or u
end

-- Remote daemon: the supervisor goes into its own volume, root-owned, so
-- the sandbox user cannot replace it.
function M.upload_sup(self, c, sup_path)
  local bin = read_file(sup_path) or error("cannot read " .. sup_path, 0)
  local ok, err = c:put_archive(self.container_id, SUP_DIR, core.tar{ { name = "sup", data = bin, mode = 493 } })
  if not ok then error(err, 0) end
end

-- A new volume copies owner and mode from the image's directory; an image
-- without /workspace gives a root 0755 one and archives cannot change the
-- root of the target. Root without capabilities may still give its own
-- directory to a group it is in, so the sandbox's group gets write access.
function M.fix_workspace(self)
  local _, gid = M.numeric_user(self)
  self.client:exec_run(self.container_id, { "sh", "-c", ("chgrp %d %s 2>/dev/null && chmod 0775 %s; true")
    :format(gid, WORKSPACE, WORKSPACE) }, { user = "0:" .. gid })
end

-- Remote daemon: each code file goes in through the archive API, with
-- explicit directory entries (implied ones would be root 0755).
function M.upload_block(self, rel, text)
  local uid, gid = M.numeric_user(self)
  local entries, prefix = {}, ""
  for seg in rel:gmatch("([^/]+)/") do
    prefix = prefix .. seg
    entries[#entries + 1] = { name = prefix, type = "dir", mode = 493, uid = uid, gid = gid }
    prefix = prefix .. "/"
  end
  entries[#entries + 1] = { name = rel, data = text, mode = 420, uid = uid, gid = gid }
  local ok, err = self.client:put_archive(self.container_id, WORKSPACE, core.tar(entries))
  if not ok then error("DockerExecutor: " .. err, 0) end
end

return M
