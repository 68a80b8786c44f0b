-- DockerExecutor's warm mode (`warm = true`, experimental, local daemon
-- only): the container's main process is our static supervisor as a block
-- server (`agentbox-sup --listen /run/agentbox/sock -u uid:gid`,
-- src/blocksrv.c), and a block is one message on its socket instead of a
-- `docker exec`. The socket lives in a private root-owned 0700 host
-- directory bind-mounted at /run/agentbox, so the sandbox user cannot reach,
-- replace or impersonate it (and the host checks by SO_PEERCRED that the
-- peer is root); the server runs as root with CAP_KILL, SETUID and SETGID
-- only, non-dumpable, so the code can neither signal nor ptrace it.
-- The request is the spawn server's (src/spawnproto.c): the program's pipes
-- travel as SCM_RIGHTS, so its output reaches the host directly and
-- core.spawn's handle supervises the run on the host side (deadline,
-- output cap while streaming, on_output chunks); the server adds its own
-- terms (the sandbox uid, the sweep of its processes, seccomp, the
-- container's environment). A reply that is missing or malformed is an
-- error of that block; a dead server means a dead container, replaced.
local core = require("agentbox.core")
local task = require("agentbox.task")
local common = require("agentbox.executor.common")
local workspace = require("agentbox.executor.workspace")
local attach = require("agentbox.executor.docker_attach")

local M = {}

M.DIR = "/run/agentbox"        -- in the container: the host's private directory
local SOCK = "sock"
M.SOCK = M.DIR .. "/" .. SOCK
local CONNECT_WAIT = 30        -- seconds for the server's socket after the start (a loaded daemon)
local OOM_MSG = "\nagentbox: the program was killed: out of memory (the container's memory limit)\n"

--- Before the container is created: the private directory for the socket,
--- named as temporary work_dirs are (agentbox-<owner>-<random>) so a dead
--- owner's is reaped with them. Raises.
function M.prepare(self)
  if self._warm_ws or self._warm_attach then return end
  local ws, err, where = workspace.private()
  if ws then
    self._warm_ws, self._warm_dir = ws, ws:path()
    return
  end
  if where == "owner" then error("DockerExecutor: " .. tostring(err), 0) end
  error("DockerExecutor: warm: cannot create the server's private directory: " .. tostring(err), 0)
end

--- The container's configuration for warm mode (sup: the supervisor's
--- path in the container): the block server is its main process.
function M.config(self, cfg, sup)
  if self._warm_attach then return attach.config(self, cfg, sup) end
  cfg.Entrypoint = { sup, "--listen" }
  cfg.Cmd = { M.SOCK, "-u", self.run_user }
  -- a host that is not root (a member of the docker group) owns the
  -- directory: the server makes the socket as that uid (src/blocksrv.c)
  local me = core.geteuid()
  if me ~= 0 then
    cfg.Cmd[#cfg.Cmd + 1] = "--owner"
    cfg.Cmd[#cfg.Cmd + 1] = tostring(me)
  end
  local mounts = cfg.HostConfig.Mounts
  mounts[#mounts + 1] = { Type = "bind", Source = self._warm_ws:path(), Target = M.DIR, ReadOnly = false }
end

local function disconnect(self)
  local conn = self._conn
  self._conn = nil
  if conn then conn:close() end
end

--- After the container started: connect to its server (it binds the socket
--- a few ms after the start). Raises when it does not answer.
function M.connect(self)
  disconnect(self)
  if self._warm_attach then
    self._conn = attach.connect(self)
    return
  end
  local path = self._warm_ws:path() .. "/" .. SOCK
  local t0 = core.now()
  local err
  local look = t0 + 1
  repeat
    local conn, cerr = core.spawn_connect(path, 0)
    if conn then
      self._conn = conn
      return
    end
    err = cerr
    if cerr:find("refused$") then break end   -- a peer that is not root: never retried
    if core.now() > look then
      -- a loaded daemon may be slow to start it; a container that stopped never will
      look = core.now() + 1
      local info = self.client:inspect(self.container_id)
      if type(info) == "table" and type(info.State) == "table" and info.State.Running == false then break end
    end
    task.sleep(0.002)
  until core.now() > t0 + CONNECT_WAIT
  local state = ""
  local info = self.container_id and self.client:inspect(self.container_id)
  if type(info) == "table" and type(info.State) == "table" then
    state = (" (the container is %s, exit code %s)"):format(tostring(info.State.Status), tostring(info.State.ExitCode))
  end
  error("DockerExecutor: warm: the block server did not answer on " .. path .. ": " .. tostring(err) .. state, 0)
end

--- The container is going (close, restart, replaced): the connection and
--- the socket go with it.
function M.release(self)
  disconnect(self)
  local ws = self._warm_ws
  if ws then ws:remove(SOCK) end
end

--- At close: the private directory too.
function M.destroy(self)
  disconnect(self)
  local ws = self._warm_ws
  self._warm_ws = nil
  if ws then ws:destroy() end
end

--- The container is suspect or dead: a new one for the next block (also
--- docker_session.lua's, when the server died between blocks).
local function replace(self, out, why)
  M.release(self)
  self:_drop_container()
  out.add("\nagentbox: " .. why .. "; the sandbox container was replaced\n")
end

M.replace = replace

local function spawn(self, argv, out, timeout)
  if self._warm_attach then return attach.spawn(self, argv, out, timeout) end
  local q = self.quota
  return core.spawn{ server = self._conn, argv = argv, cwd = self._workspace, stdin = "",
                     timeout = timeout, grace = self.grace, max_output = out.budget(),
                     stream = self.on_output ~= nil, seccomp = true,
                     quota = q and { dir = self._workspace, bytes = q.bytes, files = q.files } or nil }
end

M.snapshot = attach.snapshot
M.deliver = attach.deliver

--- One block: { exit_code, timed_out, oom, quota_exceeded, container_id }.
function M.run(self, argv, out, timeout, prep)
  if not (self._conn and self._conn:alive()) then
    -- the server died since the last block (so did its container)
    replace(self, out, "the warm sandbox's server was gone")
  end
  self:_ensure()
  self:_deliver(prep)
  local p, err = spawn(self, argv, out, timeout)
  if not p then
    -- the server went away and nobody had read its EOF yet
    replace(self, out, "the warm sandbox's server did not take the block (" .. tostring(err) .. ")")
    self:_ensure()
    self:_deliver(prep)
    p, err = spawn(self, argv, out, timeout)
    if not p then error("DockerExecutor: warm: " .. tostring(err), 0) end
  end
  local id = self.container_id
  local on_output = self.on_output
  local ok, werr = pcall(function()
    repeat
      task.wait(p)
      local chunks = p:read()   -- always taken: unread chunks keep ready() true
      if chunks and on_output then
        for i = 1, #chunks, 2 do on_output(chunks[i + 1], chunks[i]) end
      end
    until p:done()
  end)
  if not ok then
    -- cancelled, or on_output raised: the close cancels the run, and the
    -- container goes, since its supervisor may still be sweeping when the
    -- next block starts
    p:close()
    M.release(self)
    self:_drop_container()
    error(werr, 0)
  end
  local r = p:result()
  p:close()
  out.add(r.output, r.dropped)
  local res = { exit_code = common.exit_code(r), timed_out = r.timed_out, quota_exceeded = r.quota_exceeded,
                oom = r.oom, container_id = id, signal = r.signal }   -- signal: preload's client (docker_preload.lua)
  if r.error then
    -- no report, or not in time: the supervisor or the whole container died
    replace(self, out, r.error)
  elseif r.strays then
    replace(self, out, "processes of the sandbox user outlived the block")
  elseif r.oom and not r.timed_out then
    out.add(OOM_MSG)
  elseif res.exit_code > 128 and not r.timed_out then
    res.oom = self:_after_signal(r, out)
  end
  return res
end

return M
