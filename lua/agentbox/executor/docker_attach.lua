-- DockerExecutor's warm mode through a remote daemon (DOCKER_HOST=tcp://...,
-- TLS included), where no host directory or descriptor reaches the
-- container: the block server is `agentbox-sup --stream -u uid:gid`
-- (src/blockstream.c), the container's main process, and the host speaks
-- its framed protocol (src/streamproto.h) over the container's attach
-- stream (src/attach.c: POST /containers/{id}/attach, hijacked, on the
-- reactor). A block is one SPAWN frame; its output comes back as OUT
-- frames as it is written and a RESULT record ends it (src/attachrun.c:
-- a handle with core.spawn's shape, so docker_warm.lua's block loop is the
-- same for both channels).
-- Trust: the server runs each block under the same supervisor as every
-- other path (the spawn server's code, on the server's terms: the sandbox
-- uid, the sweep, seccomp); the code's stdout and stderr are pipes to the
-- server, never the container's stdout, so the code cannot write a frame.
-- The host still believes nothing it is sent: frame sizes are bounded,
-- records range-checked, output capped on the host, and the host keeps the
-- block's deadline itself; a malformed or missing reply fails that block
-- and the container is replaced.
local core = require("agentbox.core")
local task = require("agentbox.task")

local M = {}

local HELLO_WAIT = 30          -- seconds for the server's first answer (a loaded daemon)

--- The container's configuration: the stream server is its main process,
--- its stdin stays open across attaches, and nothing it says is logged by
--- the daemon (each block's output would otherwise pile up there).
function M.config(self, cfg, sup)
  cfg.Entrypoint = { sup, "--stream" }
  cfg.Cmd = { "-u", self.run_user }
  cfg.OpenStdin, cfg.StdinOnce = true, false
  cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = true, true, true
  cfg.HostConfig.LogConfig = { Type = "none", Config = {} }
end

--- After the start: attach, ask for the server's HELLO. Raises when it
--- does not come.
function M.connect(self)
  local c, ep = self.client, self.client.ep
  local url = ("%s/v%s/containers/%s/attach?stderr=1&stdin=1&stdout=1&stream=1")
    :format(ep.base, c.version, self.container_id)
  local conn = core.docker_attach{ url = url, unix_socket = ep.socket, verify = ep.verify or not ep.tls,
                                   cainfo = ep.cainfo, sslcert = ep.sslcert, sslkey = ep.sslkey,
                                   connect_timeout = c.connect_timeout }
  conn:ping(HELLO_WAIT)
  task.wait(conn)
  if not conn:hello() then
    local err = conn:error()
    conn:close()
    error("DockerExecutor: warm: the block server did not answer through the attach stream: " .. tostring(err), 0)
  end
  return conn
end

--- One block on the connection (docker_warm.lua's spawn).
function M.spawn(self, argv, out, timeout)
  local q = self.quota
  return self._conn:run{ argv = argv, cwd = self._workspace, timeout = timeout, grace = self.grace,
                         max_output = out.budget(), stream = self.on_output ~= nil,
                         quota = q and { dir = self._workspace, bytes = q.bytes, files = q.files } or nil }
end

-- one helper run through the server, as the sandbox user; returns the result or nil, why
local function helper(self, argv, o)
  local conn = self._conn
  if not (conn and conn:alive()) then return nil, conn and conn:error() or "no block server" end
  o.argv, o.cwd, o.stream = argv, self._workspace, false
  local p, err = conn:run(o)
  if not p then return nil, err end
  local ok, werr = pcall(function()
    repeat task.wait(p) until p:done()
  end)
  local r = p:result()
  p:close()
  if not ok then error(werr, 0) end
  if r.error then return nil, r.error end
  return r
end

M.MAX_DELIVER = 1024 * 1024   -- src/streamproto.h AB_SF_MAX_STDIN: larger files go by the archive API
local WRITE = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'

--- A file into the container's work_dir (rel, relative to it) through the
--- server instead of the archive API (a tar dockerd extracts: tens of ms):
--- `cat` as the sandbox user, its stdin the text. Returns true, or nil when
--- it could not (the caller takes the archive API).
function M.deliver(self, rel, text)
  if #text > M.MAX_DELIVER then return nil end
  local r = helper(self, { "/bin/sh", "-c", WRITE, "sh", rel }, { stdin = text, timeout = 30, max_output = 4096 })
  return r and r.exit_code == 0 or nil
end

--- output_files' listing of the container's work_dir (a remote daemon's
--- is a volume), run by the server as the sandbox user like a block, so no
--- exec is created.
function M.snapshot(self, argv, output_files)
  local r, err = helper(self, argv, { timeout = 30, max_output = 4 * 1024 * 1024 })
  if not r then return { files = {}, incomplete = "listing the sandbox's work_dir failed: " .. tostring(err) } end
  return output_files.parse_find(r.stdout or "", nil, r.dropped)
end

return M
