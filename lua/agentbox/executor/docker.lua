--- DockerExecutor: runs code blocks in a hardened container (`agentbox.DockerExecutor`).
--
-- One container per executor, through the Engine API (lua/agentbox/engine.lua),
-- created on first use (or by @{DockerExecutor:start}) and removed by
-- @{DockerExecutor:close}, `<close>`, or (queued) the garbage collector.
-- Same contract as LocalExecutor; each block runs under our static supervisor inside the
-- container, which enforces the deadline and kills the whole tree (slim
-- images have no procps and the Engine API cannot kill an exec). The
-- supervisor, tini and the keep-alive run as root with only CAP_KILL,
-- CAP_SETUID and CAP_SETGID; the code runs as the sandbox user with no
-- capability, so it can neither signal nor ptrace any of them.
-- @module agentbox.executor.docker
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local docker = require("agentbox.engine")
local base = require("agentbox.executor.base")
local common = require("agentbox.executor.common")
local gc_queue = require("agentbox.executor.gc_queue")
local output_files = require("agentbox.executor.output_files")
local files = require("agentbox.executor.sandbox_files")
local warm = require("agentbox.executor.docker_warm")
local preload = require("agentbox.executor.docker_preload")
local session = require("agentbox.executor.docker_session")
-- docker_pool.lua makes its containers with this module: loaded on first use
local function pooled() return require("agentbox.executor.docker_pool") end
local default_user = files.default_user
local upload_sup, fix_workspace, upload_block = files.upload_sup, files.fix_workspace, files.upload_block

local WORKSPACE = files.WORKSPACE
local SUP_DIR = files.SUP_DIR
local SUP = SUP_DIR .. "/sup"
local OOM_MSG = "\nagentbox: the program was killed: out of memory (the container's memory limit)\n"
-- what the supervisor says when processes of the sandbox user survived its
-- kill: the container is replaced
local STRAYS_MSG = "processes of the sandbox user outlived the block"
-- what the supervisor says when the workspace quota stopped a block (src/quota.c)
local QUOTA_MSG = "agentbox: workspace quota exceeded"
-- only what the supervisor needs: signal the sandbox user's processes and
-- become that user (which drops every capability)
local CAPS = { "KILL", "SETUID", "SETGID" }

local WHAT = "agentbox.DockerExecutor"
local function fail(msg) errors.misuse("%s: %s", WHAT, msg) end

-- The sandbox user as "uid:gid", decimal, both from 1 to 2^32-2: the
-- supervisor drops to it by number (it cannot resolve names inside an
-- arbitrary image, and a name could mean root there), so every spelling of
-- 0 ("0", "00", "+0", "root") is refused, and gid 0 too (group root owns
-- much of an image). Returns the canonical form, or nil, message.
local function parse_user(u)
  local a, b = tostring(u):match("^(%d+):(%d+)$")
  local uid, gid = math.tointeger(tonumber(a or "")), math.tointeger(tonumber(b or ""))
  if type(u) ~= "string" or not uid or not gid or uid < 1 or gid < 1 or uid > 4294967294 or gid > 4294967294 then
    return nil, ("user must be a numeric \"uid:gid\" with neither of them 0, e.g. \"1000:1000\" (names are not "
      .. "resolved: the code never runs as root or group root), got %s"):format(type(u) == "string" and ("%q"):format(u) or tostring(u))
  end
  return ("%d:%d"):format(uid, gid)
end

-- "512m" -> bytes (Docker's units are powers of 1024); false -> nil
local function bytes(v, what)
  if v == nil or v == false then return nil end
  if math.type(v) == "integer" and v > 0 then return v end
  local n, unit = tostring(v):lower():match("^%s*(%d+%.?%d*)%s*([bkmgt]?)b?%s*$")
  if type(v) ~= "string" or not n then
    fail(("%s must be a size such as \"512m\" or a byte count, got %s"):format(what, tostring(v)))
  end
  local mult = ({ [""] = 1, b = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4 })[unit]
  return math.floor(tonumber(n) * mult)
end

local function check_mounts(mounts)
  local out = {}
  for i, m in ipairs(mounts or {}) do
    if type(m) ~= "table" or type(m.source) ~= "string" or type(m.target) ~= "string"
       or m.target:sub(1, 1) ~= "/" then
      fail(("mounts[%d] must be { source = path, target = absolute path, read_only = true }"):format(i))
    end
    local t = m.target:gsub("/+$", "")
    if t == "" or t == WORKSPACE or t == SUP_DIR or t:sub(1, #SUP_DIR + 1) == SUP_DIR .. "/" then
      fail(("mounts[%d]: target %s is reserved"):format(i, m.target))
    end
    local src = m.source
    if src:sub(1, 1) ~= "/" then src = core.realpath(src) or fail("mounts[" .. i .. "]: no such path " .. m.source) end
    out[#out + 1] = { Type = "bind", Source = src, Target = m.target, ReadOnly = m.read_only ~= false }
  end
  return out
end

local function build_env(extra)
  -- built, never inherited: nothing of the host's environment crosses over
  local env = { HOME = WORKSPACE, TMPDIR = "/tmp", PYTHONUNBUFFERED = "1" }
  for k, v in pairs(extra) do env[k] = v end
  local list = {}
  for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
  table.sort(list)
  return list
end

-- names -------------------------------------------------------------

local name_seq = 0
local function container_name()
  name_seq = name_seq + 1
  return "agentbox-" .. core.md5(table.concat({ core.hostname(), core.owner() or "", name_seq, core.now() }, " ")):sub(1, 12)
end

local function string_or_nil(name)
  return function(v)
    if v ~= nil and type(v) ~= "string" then fail(name .. " must be a string") end
    return v
  end
end

--- DockerExecutor's own options (README "Docker sandbox"); it takes every
-- @{agentbox.ExecutorOptions} too.
-- @table DockerExecutorOptions
-- @tfield[opt] string image default `AGENTBOX_IMAGE`, else "python:3-slim"; pulled when missing
-- @tfield[opt="none"] string network the container's NetworkMode
-- @tfield[opt=true] boolean read_only read-only root filesystem
-- @tfield[opt] string user the sandbox user, numeric "uid:gid", neither 0 (default: from
-- work_dir's owner, else 1000:1000)
-- @tfield[opt="512m"] string|integer|false memory Memory, MemorySwap equal (no swap); false for none
-- @tfield[opt=1] number|false cpus NanoCpus
-- @tfield[opt=256] integer|false pids_limit the container's PidsLimit (processes and threads)
-- @tfield[opt="64m"] string|table|false tmpfs size of the tmpfs /tmp, or `{ [path] = "options" }`
-- @tfield[opt] table mounts `{ { source =, target =, read_only = true }, ... }`: read-only
-- unless read_only = false
-- @tfield[opt] string docker_host `unix:///path` or `tcp://host:port` (default DOCKER_HOST, else
-- the local socket)
-- @tfield[opt=true] boolean auto_remove false: close() only stops the container and the reaper
-- leaves it
-- @tfield[opt] string container_name default `"agentbox-<12 hex>"`
-- @tfield[opt] string transfer how code files reach the container: "bind" (default for a unix
-- socket) or "archive" (default for tcp)
-- @tfield[opt] function on_progress `function(line)`: image pull progress (default: stderr)
-- @tfield[opt=false] boolean warm experimental: blocks go to a block server in the container instead of
-- a `docker exec`: over a unix socket with a local daemon, over the container's attach stream with a
-- remote one (README "Docker sandbox")
-- @tfield[opt] agentbox.executor.docker_pool.DockerPool pool experimental: take a ready container
-- from this @{agentbox.executor.docker_pool.DockerPool} (implies warm; the container options are
-- the pool's: one given here that differs is an error naming it)
-- @tfield[opt=false] boolean fresh experimental: every execute call gets a never-used container
-- from the pool (without pool: an internal pool of 1); work_dir is copied in and out around each call
-- @tfield[opt] {string,...} preload Python modules a template interpreter in the container imports
-- once; each python block is then a fork of it (executor/docker_preload.lua). Turns warm on.
-- Default: none
-- @tfield[opt=false] boolean stateful python blocks share one interpreter in the container, like a
-- Jupyter kernel: variables and imports persist; a timeout or a crash restarts it (the output says the
-- state was lost); `restart()` restarts it (not the container). Turns warm on; with `preload`, the
-- interpreter starts with those modules imported (executor/docker_session.lua)

--- An executor made by `agentbox.DockerExecutor(opts)` (@{agentbox.Executor}).
-- Its fields: `work_dir` (string), the host directory mounted at
-- /workspace; `warnings` (a list of strings, or nil), limits the daemon
-- dropped, also printed on stderr; `container_id` (string or nil), the
-- running container, nil before start and after close.
-- @type DockerExecutor

--- Run blocks (THE EXECUTOR CONTRACT, @{agentbox.ExecResult|ExecResult}).
-- In order, in the one container, stopping at the first failure; one
-- execute at a time per executor. Starts the container when needed.
-- Blocking outside a task, yields inside one.
-- @function DockerExecutor:execute
-- @tparam {agentbox.CodeBlock,...} blocks the blocks
-- @treturn agentbox.ExecResult the result
-- @raise on malformed blocks, after close, while another execute runs; and
-- (a string naming the failure) when the daemon fails: the image is neither
-- there nor pullable, the container cannot be created or started, an exec
-- fails. An agent turns that into its ChatResult's error.

--- Remove the container and its volumes; also `<close>`.
-- Idempotent; then a temporary work_dir goes. With auto_remove = false the
-- container is only stopped.
-- @function DockerExecutor:close
-- @treturn[1] true
-- @return[2] nil
-- @treturn[2] string message what failed
-- @treturn[2] string code "unreachable", "docker", "io", ... (@{agentbox.errors.CODES})

local DockerExecutor = base.class("DockerExecutor", {
  image = function(v)
    if v == nil or v == "" then v = os.getenv("AGENTBOX_IMAGE") end
    if v == nil or v == "" then v = "python:3-slim" end
    if type(v) ~= "string" then fail("image must be a string") end
    return v
  end,
  network = function(v)
    if v ~= nil and type(v) ~= "string" then fail("network must be a string (a NetworkMode such as \"none\")") end
    return v or "none"
  end,
  read_only = function(v) return v ~= false end,
  user = function(v)
    if v == nil then return nil end
    local u, err = parse_user(v)
    if not u then fail(err) end
    return u
  end,
  memory = function(v) return bytes(v == nil and "512m" or v, "memory") end,
  cpus = function(v)
    if v == nil then return 1 end
    if v ~= false and (type(v) ~= "number" or not (v > 0 and v < math.huge)) then fail("cpus must be a positive number") end
    return v
  end,
  pids_limit = function(v)
    if v == nil then return 256 end
    if v ~= false and (math.type(v) ~= "integer" or v <= 0) then fail("pids_limit must be a positive integer") end
    return v
  end,
  tmpfs = function(v)
    if v == nil then return "64m" end
    if type(v) ~= "table" and v ~= false then bytes(v, "tmpfs") end
    return v
  end,
  mounts = function(v)
    if v ~= nil and type(v) ~= "table" then fail("mounts must be an array of { source =, target = }") end
    return check_mounts(v)
  end,
  docker_host = string_or_nil("docker_host"),
  auto_remove = function(v) return v ~= false end,
  container_name = string_or_nil("container_name"),
  transfer = function(v)
    if v ~= nil and v ~= "bind" and v ~= "archive" then fail("transfer must be \"bind\" or \"archive\"") end
    return v
  end,
  on_progress = function(v)
    if v ~= nil and type(v) ~= "function" then fail("on_progress must be a function(line)") end
    return v
  end,
  warm = function(v)
    if v ~= nil and type(v) ~= "boolean" then fail("warm must be a boolean") end
    return v   -- nil (unset) or the boolean: preload turns an unset warm on
  end,
  pool = function(v)
    if v ~= nil and not pooled().is_pool(v) then fail("pool must be an agentbox.DockerPool") end
    return v
  end,
  fresh = function(v)
    if v ~= nil and type(v) ~= "boolean" then fail("fresh must be a boolean") end
    return v == true
  end,
  preload = preload.check,
  stateful = session.check,
})

-- one container: the supervisor kills every process of the sandbox user
-- after a block, so two blocks at once would kill each other
DockerExecutor._serial = true

function DockerExecutor._setup(self, o)
  -- fail closed, before a pool starts anything: the template and the
  -- session live beside the unix-socket block server, in a container of
  -- this executor's own
  local py = o.stateful and "stateful" or o.preload and "preload"
  if o.stateful and o.fresh then
    fail("stateful = true and fresh = true contradict each other: fresh gives every execute call a new "
      .. "container, so no state would outlive a call; leave one of them out")
  end
  -- a pool's containers are made with its options: o becomes them
  if o.pool or o.fresh then o = pooled().setup(self, o, fail) end
  for _, k in ipairs({ "image", "on_progress", "network", "read_only", "user", "memory", "cpus", "pids_limit",
                       "tmpfs", "mounts", "auto_remove", "container_name" }) do
    self[k] = o[k]
  end
  -- matplotlib's cache in the container's /tmp: the sandbox user may not own work_dir's corner
  self.env = build_env(output_files.python_env(WORKSPACE, o.env, "/tmp/agentbox-mpl"))
  local client, cerr = docker.client(o.docker_host)
  if not client then fail(cerr) end
  self.client = client
  self.transfer = o.transfer or (client.ep["local"] and "bind" or "archive")
  self.oom_kills = 0
  self.warm = o.warm == true
  session.setup(self, o, fail)
  -- stateful with preload: the session's interpreter imports them (no template)
  if not self.stateful then preload.setup(self, o, fail) else self.preload = o.preload end
  if self.warm then
    -- a remote daemon (or transfer = "archive"): the block server speaks
    -- over the container's attach stream (docker_attach.lua); a local one:
    -- over a unix socket in a bind-mounted host directory, faster, and the
    -- program's pipes come straight to the host
    self._warm_attach = not client.ep["local"] or self.transfer ~= "bind"
  end
  if py and self._warm_attach then
    fail(py .. " needs a local daemon and transfer = \"bind\" for now: over a remote daemon's attach stream "
      .. "(or transfer = \"archive\") the block server has no socket for its template")
  end
  self._workspace = WORKSPACE
end

-- who the sandbox runs as depends on work_dir (sandbox_files.lua)
function DockerExecutor._attached(self)
  files.prepare_workspace(self)
end

-- the container -------------------------------------------------------------

-- Host path of the static supervisor (common.sup_path: AGENTBOX_SUP, else
-- next to core.so), resolved because the daemon bind-mounts it
local function find_sup()
  local p = common.sup_path()
  return p and core.realpath(p)
end

function DockerExecutor:_config(sup_path)
  local hc = {
    NetworkMode = self.network,
    ReadonlyRootfs = self.read_only,
    CapDrop = { "ALL" },
    CapAdd = CAPS,
    SecurityOpt = { "no-new-privileges" },
    Init = true,              -- tini as PID 1 reaps zombies and forwards signals
    IpcMode = "private",
    Mounts = {},
  }
  if self.memory then hc.Memory, hc.MemorySwap = self.memory, self.memory end  -- equal: no swap
  if self.cpus then hc.NanoCpus = math.floor(self.cpus * 1e9 + 0.5) end
  if self.pids_limit then hc.PidsLimit = self.pids_limit end
  if type(self.tmpfs) == "table" then
    hc.Tmpfs = self.tmpfs
  elseif self.tmpfs then
    hc.Tmpfs = { ["/tmp"] = ("rw,size=%d,mode=1777"):format(bytes(self.tmpfs, "tmpfs")) }
  end
  if self.transfer == "bind" then
    hc.Mounts[#hc.Mounts + 1] = { Type = "bind", Source = self.work_dir, Target = WORKSPACE, ReadOnly = false }
    hc.Mounts[#hc.Mounts + 1] = { Type = "bind", Source = sup_path, Target = SUP, ReadOnly = true }
  else
    -- remote daemon: anonymous volumes (the root is read-only and archives
    -- into a tmpfs are lost); removed with the container (DELETE ?v=1)
    hc.Mounts[#hc.Mounts + 1] = { Type = "volume", Target = WORKSPACE }
    hc.Mounts[#hc.Mounts + 1] = { Type = "volume", Target = SUP_DIR }
  end
  for _, m in ipairs(self.mounts) do hc.Mounts[#hc.Mounts + 1] = m end
  local labels = docker.owner_labels()
  for k, v in pairs(self._labels or {}) do labels[k] = v end   -- a pool's own
  if not self.auto_remove then labels["agentbox.keep"] = "1" end
  local config = {
    Image = self.image,
    -- both set: an image ENTRYPOINT or CMD must not change what keeps it alive
    Entrypoint = { "sleep" }, Cmd = { "infinity" },
    -- root for tini, the keep-alive and the supervisor (each exec says so
    -- too); the code runs as self.run_user, set by the supervisor
    User = "0:0", WorkingDir = WORKSPACE, Env = self.env, Labels = labels,
    Tty = false, AttachStdout = false, AttachStderr = false, OpenStdin = false,
    HostConfig = hc,
  }
  if self.warm then warm.config(self, config, SUP) end
  if self.stateful then session.config(self, config)
  elseif self.preload then preload.config(self, config) end
  return config
end

local function ensure_image(self, c)
  local _, err, ecode = c:image_inspect(self.image)
  if ecode ~= "not_found" then return err == nil or error(err, 0) end
  local function progress(line)
    if self.on_progress then return self.on_progress(line) end
    if line.status and not line.progressDetail or (line.progressDetail and not line.progressDetail.current) then
      io.stderr:write("agentbox: pulling ", self.image, ": ", line.id and (line.id .. " ") or "", line.status or "", "\n")
    end
  end
  local ok, perr = c:image_pull(self.image, progress)
  if not ok then
    error(("DockerExecutor: image %s is not present and could not be pulled (%s). Build the agentbox "
      .. "sandbox image with `make image` (agentbox/sandbox:latest) and pass image = \"agentbox/sandbox:latest\" "
      .. "(or set AGENTBOX_IMAGE), or pull %s where a registry is reachable"):format(self.image, perr, self.image), 0)
  end
  return true
end

function DockerExecutor:_start()
  local t0 = core.now()
  local c = self.client
  local ok, err = c:negotiate()
  if not ok then error("DockerExecutor: " .. err, 0) end
  -- containers of dead owners go first; a failing reap must not block work
  -- (a pool reaps once, not per container)
  local _, rerr
  if not self._labels then _, rerr = c:reap() end
  if rerr then io.stderr:write("agentbox: reaping stale containers failed: ", rerr, "\n") end
  local sup_path = find_sup()
  if not sup_path then
    error("DockerExecutor: the static supervisor agentbox-sup was not found (set AGENTBOX_SUP or run `make`)", 0)
  end
  local wanted = self.user or default_user(self)
  local run_user, uerr = parse_user(wanted)
  if not run_user then
    error("DockerExecutor: the sandbox user " .. tostring(wanted) .. " (the owner of work_dir) cannot be used: "
      .. uerr .. "; pass user = \"uid:gid\"", 0)
  end
  self.run_user = run_user
  if self.warm then warm.prepare(self) end
  local config = self:_config(sup_path)
  local name = self.container_name or container_name()
  local id, warnings, ecode = c:create(config, name)
  if not id and ecode == "not_found" then
    ensure_image(self, c)
    id, warnings = c:create(config, name)
  end
  if not id then error("DockerExecutor: " .. warnings, 0) end
  self.container_id, self.container_name_used = id, name
  if type(warnings) == "table" and #warnings > 0 then
    self.warnings = warnings
    io.stderr:write("agentbox: the Docker daemon weakened the sandbox: ", table.concat(warnings, "; "), "\n")
  end
  local sok, serr = pcall(function()
    if self.transfer == "archive" then upload_sup(self, c, sup_path) end
    local started, err2 = c:start(id)
    if not started then error(err2, 0) end
    if self.transfer == "archive" then fix_workspace(self) end
    if self.warm then warm.connect(self) end
  end)
  if not sok then
    if self.warm then warm.release(self) end
    c:remove(id)
    self.container_id = nil
    error("DockerExecutor: " .. tostring(serr), 0)
  end
  if self.stateful then session.started(self)
  elseif self.preload then preload.started(self) end
  self.cold_start = core.now() - t0
end

function DockerExecutor:_ensure()
  if self._pool then return pooled().ensure(self) end
  if not self.container_id then self:_start() end
end

-- blocks -------------------------------------------------------------

-- After a death by signal, one look at the container's cgroup (only then,
-- so the warm path pays nothing): cgroup v1 daemons give the supervisor no
-- memory.events, so an OOM kill is counted here; and, belt and braces (the
-- code cannot signal its root supervisor, which kills every process of the
-- sandbox user after each block), the process count must be back to tini +
-- sleep + this cat. Returns oom_kill, pids.
local BASE_PIDS = 3
local function post_mortem(self)
  local r = self.client:exec_run(self.container_id, { "cat", "/sys/fs/cgroup/memory.events",
    "/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/pids.current", "/sys/fs/cgroup/pids/pids.current" })
  if not r then return nil end
  local oom, pids
  for line in (r.stdout or ""):gmatch("[^\n]+") do   -- stdout only: cat's complaints interleave
    oom = oom or tonumber(line:match("^oom_kill (%d+)$"))
    pids = pids or tonumber(line:match("^(%d+)$"))
  end
  -- the stream block server has its spawn server beside it
  if pids and self._warm_attach then pids = pids - 1 end
  return oom, pids
end

local function after_signal(self, res, out)
  local oom, pids = post_mortem(self)
  for _ = 1, 10 do   -- killed processes may still be zombies for a moment
    if not pids or pids <= BASE_PIDS then break end
    task.sleep(0.05)
    oom, pids = post_mortem(self)
  end
  local killed = oom and oom > self.oom_kills
  if killed then
    self.oom_kills = oom
    if not (res.output or ""):find("out of memory", 1, true) then out.add(OOM_MSG) end
  end
  -- preload, stateful: the template's or the session's processes are
  -- there too; the block server's sweep of the sandbox user is the check
  -- (strays)
  if pids and pids > BASE_PIDS and not (self.preload or self.stateful) then
    out.add("\nagentbox: processes outlived the block's supervisor; the sandbox container was replaced\n")
    if self.warm then warm.release(self) end
    self.client:remove(self.container_id)
    self.container_id = nil
  end
  return killed
end

-- Starts the removal (or, kill_only, the stop) of a container and returns
-- the request, without waiting: a gc_queue job's send.
local function removal(c, id, kill_only)
  return function()
    if kill_only then return c:send{ method = "POST", path = "/containers/" .. id .. "/kill" } end
    return c:send{ method = "DELETE", path = "/containers/" .. id, query = { force = 1, v = 1 } }
  end
end

-- warm mode's hooks (docker_warm.lua): the container goes, its removal
-- sent without waiting (a cancelled task cannot wait); the look after a
-- death by signal
function DockerExecutor:_drop_container()
  local id = self.container_id
  self.container_id = nil
  if id then gc_queue.release({ send = removal(self.client, id) }) end
end

function DockerExecutor:_after_signal(r, out)
  return after_signal(self, r, out)
end

-- timeout: this block's, min(the executor's, what is left of total_timeout)
local function exec_block(self, argv, out, timeout, retried)
  local c, id = self.client, self.container_id
  local cmd = { SUP, "-u", self.run_user, "-t", tostring(math.ceil(timeout * 1000)),
                "-g", tostring(math.ceil(self.grace * 1000)) }
  local q = self.quota
  if q then
    for _, a in ipairs({ "--quota-dir", WORKSPACE, "--quota-bytes", tostring(q.bytes), "--quota-files", tostring(q.files) }) do
      cmd[#cmd + 1] = a
    end
  end
  cmd[#cmd + 1] = "--"
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local exec_id, err, _, status = c:exec_create(id, { Cmd = cmd, User = "0:0", AttachStdout = true, AttachStderr = true,
                                                   Tty = false })
  if not exec_id then
    if (status == 409 or status == 404) and not retried then
      -- the container died under us (killed, removed): start a fresh one
      c:remove(id)
      self.container_id = nil
      self:_ensure()
      return exec_block(self, argv, out, timeout, true)
    end
    error("DockerExecutor: " .. err, 0)
  end
  local t0 = core.now()
  -- the exec stream ends at the host's deadline of the block's budget
  -- (src/deadline.h), whatever happens in the container; the container
  -- then goes
  local req <close> = c:exec_start(exec_id, out.budget(), core.deadline_budget(timeout, self.grace).host)
  local on_output = self.on_output
  local seen = {}   -- what was read, for a stream that ends in a transport error
  local ok, werr = pcall(function()
    repeat
      task.wait(req)
      local chunks = req:read()   -- always taken: unread chunks keep ready() true
      for i = 1, chunks and #chunks or 0, 2 do
        seen[#seen + 1] = chunks[i + 1]
        if on_output then on_output(chunks[i + 1], chunks[i] == "error" and "stderr" or chunks[i]) end
      end
    until req:done()
  end)
  if not ok then
    -- cancelled, or on_output raised: the block may still be running in
    -- there and no API call can stop an exec, so the container goes (sent
    -- without waiting: a cancelled task cannot wait)
    gc_queue.release({ send = removal(c, id) })
    self.container_id = nil
    error(werr, 0)
  end
  local res, rerr = req:result()
  local elapsed = core.now() - t0
  if not res or res.status ~= 200 then
    -- the stream broke or the backstop fired: this container is suspect
    c:remove(id)
    self.container_id = nil
    if elapsed >= timeout then
      out.add(table.concat(seen))
      return { timed_out = true, exit_code = 124, container_id = id }
    end
    error("DockerExecutor: exec start: " .. (res and docker.daemon_message(res) or tostring(rerr)), 0)
  end
  out.add(res.output, res.dropped)
  local info
  for _ = 1, 50 do   -- ExitCode is null while running; dockerd sets it before closing the stream
    local ierr
    info, ierr = c:exec_inspect(exec_id)
    if not info then error("DockerExecutor: " .. ierr, 0) end
    if info.ExitCode ~= docker.null and not info.Running then break end
    task.sleep(0.01)
  end
  local exit_code = math.tointeger(info.ExitCode) or 1
  -- 124 is also a program's own choice; only a full deadline is a timeout
  local r = { exit_code = exit_code, timed_out = exit_code == 124 and elapsed >= timeout, container_id = id,
              -- as with 124, a program may exit 122 itself: the supervisor's line decides
              quota_exceeded = exit_code == common.QUOTA_EXIT and (res.output or ""):find(QUOTA_MSG, 1, true) ~= nil }
  if (res.stderr or res.output or ""):find(STRAYS_MSG, 1, true) then
    c:remove(id)
    self.container_id = nil
    out.add("\nagentbox: the sandbox container was replaced\n")
  elseif exit_code > 128 and not r.timed_out then
    r.oom = after_signal(self, res, out)
  end
  return r
end

-- The audit log's view (audit.lua): the container the block ran in (r:
-- its result, else the current one) and its image by id (a tag moves),
-- asked of the daemon once per container.
function DockerExecutor:_audit(r)
  if self._slot then return self._slot:_audit(r) end
  local id = r and r.container_id or self.container_id
  if id and self._audit_image_of ~= id then
    local info = self.client:inspect(id)
    self._audit_image_of, self._audit_image_id = id, info and info.Image or nil
  end
  return { container_id = id or false, container_name = self.container_name_used, image = self.image,
           image_id = id and self._audit_image_id or false, user = self.run_user, uid_drop = true,
           network = self.network, read_only = self.read_only, cap_add = CAPS, transfer = self.transfer,
           preload = self.preload or false,
           -- python blocks run in one interpreter that keeps their state
           stateful = self.stateful or false },
         { memory = self.memory or false, cpus = self.cpus, pids_limit = self.pids_limit,
           tmpfs = self.tmpfs }
end

-- starting the container (perhaps pulling its image) is not the code's time
function DockerExecutor:_before(blocks)
  if #blocks > 0 then self:_ensure() end
end

-- output_files: a remote daemon's work_dir is a volume in the container, listed there
function DockerExecutor:_snapshot()
  if self.transfer ~= "archive" or not self.container_id then return base.Base._snapshot(self) end
  if self._warm_attach then return warm.snapshot(self, output_files.find_argv(WORKSPACE), output_files) end
  local r, err = self.client:exec_run(self.container_id, output_files.find_argv(WORKSPACE),
                                      { user = self.run_user, max = 4 * 1024 * 1024 })
  if not r then return { files = {}, incomplete = "listing the sandbox's work_dir failed: " .. tostring(err) } end
  return output_files.parse_find(r.stdout or "", nil, r.dropped)
end

-- a remote daemon: what the call produced comes back into the host work_dir
function DockerExecutor:_bring_back(res)
  if self.transfer ~= "archive" or not self.container_id then return end
  output_files.copy_back(self.client, self.container_id, WORKSPACE, self._ws, res)
end

function DockerExecutor:_ship(rel, text)
  if self.transfer == "archive" then
    -- through the warm server when there is one (no tar for dockerd to extract)
    if self._warm_attach and self.container_id and warm.deliver(self, rel, text) then return true end
    return upload_block(self, rel, text)
  end
  return base.Base._ship(self, rel, text)
end

-- warm mode's hook: the block's file, into the container it will run in
function DockerExecutor:_deliver(prep)
  if self.transfer ~= "archive" then return end
  if self._warm_attach and warm.deliver(self, prep.rel, prep.code) then return end
  upload_block(self, prep.rel, prep.code)
end

-- pooled with a work_dir of its own: a code file goes into both directories
function DockerExecutor:_write(prep, text)
  if self._user_ws then return pooled().write(self, prep, text) end
  return base.Base._write(self, prep, text)
end

-- pooled with a work_dir of its own (fresh, or one given): copied in and out
function DockerExecutor:_execute(blocks)
  if self._pool then return pooled().execute(self, blocks, base.Base._execute) end
  return base.Base._execute(self, blocks)
end

function DockerExecutor:_path_of(prep) return WORKSPACE .. "/" .. prep.rel end

function DockerExecutor:_run(argv, prep, out, timeout)
  if self._pool then return pooled().run(self, argv, prep, out, timeout) end
  if self.stateful then return session.run(self, argv, prep, out, timeout) end
  if self.preload then return preload.run(self, argv, prep, out, timeout) end
  if self.warm then return warm.run(self, argv, out, timeout, prep) end
  self:_ensure()
  if self.transfer == "archive" then upload_block(self, prep.rel, prep.code) end
  return exec_block(self, argv, out, timeout)
end

--- Create and start the container now (otherwise the first execute does).
-- @treturn DockerExecutor self
-- @raise after close, or when the container cannot be started (as execute)
function DockerExecutor:start()
  base.Base.start(self)
  task.sync(self._ensure, self)
  return self
end

--- Drop the container; the next execute starts a fresh one. With
-- `stateful`, restart the Python session instead (its variables and
-- imports go; the container and what other blocks left in it stay).
-- @treturn[1] true
-- @return[2] nil
-- @treturn[2] string message what failed
-- @treturn[2] string code (@{agentbox.errors.CODES})
function DockerExecutor:restart()
  if self._pool then return pooled().restart(self) end
  if self.stateful then
    session.stop(self)
    return true
  end
  local id = self.container_id
  self.container_id = nil
  if self.warm then warm.release(self) end
  if id then
    local ok, err, ecode = task.sync(self.client.remove, self.client, id)
    if not ok then return nil, err, ecode end
  end
  return true
end

-- close: remove the container (auto_remove = false: only stop it)
function DockerExecutor:_release()
  if self._pool then return pooled().release(self) end
  local id = self.container_id
  self.container_id = nil
  if self.preload then pcall(preload.stop, self) end
  if self.stateful then pcall(session.stop, self) end
  if self.warm then pcall(warm.destroy, self) end
  if not id then return true end
  local c = self.client
  local ok, err, ecode = task.sync(function()
    if self.auto_remove then return c:remove(id) end
    return c:kill(id)
  end)
  if not ok then return nil, err, ecode end
  return true
end

-- collected: the same, sent from the queue. If the process dies first, the
-- next executor start reaps the container by its labels.
function DockerExecutor:_release_send()
  -- pooled: the container is its slot's, which a collection releases itself
  if self._pool then return nil end
  local wws = self._warm_ws
  local wpath = self._warm_dir
  -- the warm server's directory; its handle may have been finalized first:
  -- opened again by the same walk (it is ours: root's, private)
  local function destroy_dir()
    if not wws then return end
    if not pcall(wws.destroy, wws) and wpath then
      local again = core.workspace(wpath)
      if again then pcall(again.destroy, again) end
    end
  end
  if not self.container_id then
    return wws and destroy_dir or nil
  end
  local send = removal(self.client, self.container_id, not self.auto_remove)
  if not wws then return send end
  return function()
    local req = send()   -- the container first: the directory is mounted in it
    destroy_dir()
    return req
  end
end

return { new = base.constructor(DockerExecutor), DockerExecutor = DockerExecutor }
