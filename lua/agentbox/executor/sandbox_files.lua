-- Files into and out of the sandbox: code files written into the host
-- work_dir (never through what the sandbox planted there), the sandbox
-- user, and, for a remote daemon, code and the supervisor delivered through
-- the archive API.
local core = require("agentbox.core")
local docker = require("agentbox.docker")

local M = {}

M.WORKSPACE = "/workspace"
M.SUP_DIR = "/opt/agentbox"
local WORKSPACE, SUP_DIR = M.WORKSPACE, M.SUP_DIR
local read_file = docker.read_file

function M.inside(dir, real)
  return real == dir or real:sub(1, #dir + 1) == dir .. "/"
end

-- Write a code file into the host work_dir. The sandbox can write there
-- too (bind mount), so every existing directory component is resolved
-- first (a planted link must not carry the file out) and the file itself
-- is unlinked and created anew, never written through a link (we may be
-- root on the host). No sandbox process runs meanwhile (the supervisor
-- ends each block's whole tree, and a block whose supervisor died gets its
-- container replaced), so the checks cannot race.
function M.write_host(dir, rel, text)
  local cur = dir
  local parts = {}
  for seg in rel:gmatch("[^/]+") do parts[#parts + 1] = seg end
  for i = 1, #parts - 1 do
    cur = cur .. "/" .. parts[i]
    local real = core.realpath(cur)
    if real and not M.inside(dir, real) then return nil, "Filename is not in the workspace" end
    if not real then
      local ok, err = core.mkdir_p(cur)
      if not ok then return nil, err end
    end
  end
  local path = cur .. "/" .. parts[#parts]
  -- a link (even a dangling one) is never written through, a FIFO never opened
  local ok, err = core.write_file(path, text)
  if not ok then return nil, err end
  return path
end

-- The sandbox user when none is given. Bind mount: the owner of work_dir,
-- so files the code writes belong to the user who owns the directory. A
-- root-owned work_dir (we run as root) would mean root in the container,
-- so the sandbox gets 1000:1000 and, as we are root, the directory itself
-- is handed to it (not recursively; not when it is shared, sticky or
-- world-writable, e.g. /tmp). Remote daemon: 1000:1000.
function M.default_user(self)
  if self.transfer ~= "bind" then return "1000:1000" end
  local st = core.stat(self.work_dir)
  if not st then return "1000:1000" end
  if st.uid ~= 0 then return st.uid .. ":" .. st.gid end
  -- not world-writable (0002), not sticky (01000)
  if core.geteuid() == 0 and st.type == "dir" and st.mode & 0x202 == 0 then
    core.chown(self.work_dir, 1000, 1000)
  end
  return "1000:1000"
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
