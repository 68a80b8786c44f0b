--- The Docker Engine API client's public part: `agentbox.docker`.
--
-- `agentbox.docker` is this module (`require("agentbox.engine")`), loaded on
-- first use. Its public functions are @{available} and @{reap}; the rest
-- (endpoints, API version negotiation, the calls the DockerExecutor makes)
-- is internal.
--
-- A Docker Engine API client over core.http: endpoint resolution (DOCKER_HOST,
-- TLS), API version negotiation, the endpoints the DockerExecutor needs, and
-- reaping of containers whose owner process is gone. JSON is built and read
-- here (lua-cjson); the C core only moves bytes. Every wait is task.wait, so
-- many executors and requests progress at once on the one reactor.
-- Failures follow doc/errors.md: nil, message, code, plus the HTTP status as
-- a 4th value when the daemon answered with an error status (code not_found
-- for a 404, docker for any other refusal).
-- @module agentbox.docker
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
-- a private cjson instance: settings here never leak into other modules
local json = require("cjson").new()

local M = {}

M.TESTED_MAX = "1.47"   -- newest Engine API version these endpoints were checked against
M.OLDEST = "1.30"       -- HostConfig.Mounts (1.30), Init and NanoCpus (1.25)
M.DEFAULT_SOCKET = "/var/run/docker.sock"
M.null = json.null

-- Requests other than exec streams and pulls must not hang an agent forever.
local CALL_TIMEOUT = 120

-- small helpers -------------------------------------------------------------

local function vparse(v)
  local a, b = tostring(v or ""):match("^(%d+)%.(%d+)")
  if not a then return nil end
  return tonumber(a) * 1000 + tonumber(b)
end

local function vless(a, b) return vparse(a) < vparse(b) end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- path segments keep '/', ':' and '@' (image references), the rest is escaped
local function pathencode(s)
  return (tostring(s):gsub("[^%w%-%._~/:@]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function query_string(q)
  if not q then return "" end
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "table" then v = json.encode(v) end
    if type(v) == "boolean" then v = v and "1" or "0" end
    parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v)
  end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

M.urlencode = urlencode
M.read_file = read_file

-- endpoints -------------------------------------------------------------

local function file_exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

--- Resolve a DOCKER_HOST-style string (nil: $DOCKER_HOST, else the local
--- socket) into an endpoint table. TLS follows docker-py: on when
--- DOCKER_TLS_VERIFY is non-empty or DOCKER_CERT_PATH is set; peer
--- verification only with DOCKER_TLS_VERIFY.
-- misuse is checked before any task.sync: inside its task no frame of the
-- caller is on the stack to blame
local function check_host(host)
  if host ~= nil and type(host) ~= "string" then
    errors.misuse("agentbox.docker: docker_host must be a string such as \"unix:///var/run/docker.sock\", got %s",
      type(host))
  end
end

-- @local
function M.endpoint(host)
  check_host(host)
  if host == nil or host == "" then host = os.getenv("DOCKER_HOST") end
  if host == nil or host == "" then host = "unix://" .. M.DEFAULT_SOCKET end
  local path = host:match("^unix://(.+)$")
  if path then
    return { name = host, kind = "unix", socket = path, base = "http://localhost", ["local"] = true }
  end
  local scheme, hostport = host:match("^(%a+)://([^/]+)/?$")
  if not scheme or not (scheme == "tcp" or scheme == "http" or scheme == "https") then
    return errors.fail("unsupported",
      "docker: unsupported DOCKER_HOST '%s' (use unix:///path/to/docker.sock or tcp://host:port)", host)
  end
  local verify = (os.getenv("DOCKER_TLS_VERIFY") or "") ~= ""
  local cert_path = os.getenv("DOCKER_CERT_PATH")
  if cert_path == "" then cert_path = nil end
  local tls = scheme == "https" or verify or cert_path ~= nil
  if not hostport:find(":%d+$") and not hostport:find("%]:%d+$") then
    hostport = hostport .. (tls and ":2376" or ":2375")
  end
  local ep = { name = host, kind = "tcp", base = (tls and "https://" or "http://") .. hostport,
               tls = tls, verify = verify }
  if tls then
    local dir = cert_path or ((os.getenv("HOME") or "") .. "/.docker")
    local ca, cert, key = dir .. "/ca.pem", dir .. "/cert.pem", dir .. "/key.pem"
    if verify then
      if not file_exists(ca) then
        return errors.fail("not_found", "docker: DOCKER_TLS_VERIFY is set but %s is missing (set DOCKER_CERT_PATH)", ca)
      end
      ep.cainfo = ca
    end
    if file_exists(cert) and file_exists(key) then ep.sslcert, ep.sslkey = cert, key end
  end
  return ep
end

-- the client -------------------------------------------------------------

local Client = {}
Client.__index = Client

local versions = {}   -- endpoint name -> negotiated API version (per lua_State)

--- Start a request; returns the core handle. o: method, path, query, json,
--- body, content_type, versioned (default true), timeout, connect_timeout,
--- stream, demux, max_body.
-- @local
function Client:send(o)
  local ep = self.ep
  local prefix = (o.versioned == false) and "" or ("/v" .. assert(self.version, "API version not negotiated"))
  local headers = {}
  local body = o.body
  if o.json ~= nil then
    body = json.encode(o.json)
    headers[#headers + 1] = "Content-Type: application/json"
  elseif o.content_type then
    headers[#headers + 1] = "Content-Type: " .. o.content_type
  end
  return core.http{
    method = o.method or "GET", url = ep.base .. prefix .. o.path .. query_string(o.query),
    headers = headers, body = body, unix_socket = ep.socket, http_version = "1.1",
    connect_timeout = o.connect_timeout or self.connect_timeout, timeout = o.timeout or CALL_TIMEOUT,
    stream = o.stream, demux = o.demux, max_body = o.max_body,
    verify = ep.verify or not ep.tls, cainfo = ep.cainfo, sslcert = ep.sslcert, sslkey = ep.sslkey,
  }
end

local function await(req)
  while not req:done() do
    task.wait(req)
    -- a streamed body's chunks must be taken, or ready() stays true
    if not req:done() then req:read() end
  end
  return req:result()
end
M.await = await

local function daemon_message(res)
  local body = res.body or res.output or ""
  local ok, doc = pcall(json.decode, body)
  if ok and type(doc) == "table" and type(doc.message) == "string" then return doc.message end
  body = body:gsub("%s+$", "")
  return body ~= "" and body or "(no message)"
end
M.daemon_message = daemon_message

-- curl's words for a missing unix socket ("localhost port 80") mislead
local function transport_error(ep, err, code)
  if code == "timeout" then
    return ("the Docker daemon at %s did not answer in time: %s"):format(ep.name, err)
  elseif code ~= "unreachable" then
    return ("the transfer with the Docker daemon at %s failed: %s"):format(ep.name, err)
  end
  if ep.kind == "unix" then
    if not core.realpath(ep.socket) then
      return ("cannot reach the Docker daemon at %s: no such socket (is dockerd running? is DOCKER_HOST right?)")
        :format(ep.name)
    end
    err = err:gsub("Failed to connect to localhost port 80[^:]*: ", "")
    return ("cannot reach the Docker daemon at %s: %s (is dockerd running, and may this user use the socket?)")
      :format(ep.name, err)
  end
  return ("cannot reach the Docker daemon at %s: %s"):format(ep.name, err)
end

-- nil, message, code for a transfer that failed (code from core.http)
local function transport_fail(ep, what, err, code)
  return errors.fail(code, "docker: %s%s", what and (what .. ": ") or "", transport_error(ep, err, code))
end

-- nil, message, code, status for an error status: a 404 is something not
-- there (an image, a container, an exec), anything else the daemon refusing
local function status_fail(op, res, msg)
  local code = res.status == 404 and "not_found" or "docker"
  local _, m = errors.fail(code, "docker: %s failed (HTTP %d): %s", op, res.status, msg or daemon_message(res))
  return nil, m, code, res.status
end
M.status_fail = status_fail

--- One API call: returns the decoded JSON (or the raw body for non-JSON,
--- true for empty), res; or nil, message, code[, status]. `ok` lists
--- accepted statuses (default any 2xx).
-- @local
function Client:call(op, o)
  local req <close> = self:send(o)
  local res, err, code = await(req)
  if not res then return transport_fail(self.ep, op, err, code) end
  local accepted = o.ok and o.ok[res.status] or (not o.ok and res.status >= 200 and res.status < 300)
  if not accepted then return status_fail(op, res) end
  local ctype = res.headers and res.headers["content-type"] or ""
  if res.body and res.body ~= "" and ctype:find("json", 1, true) then
    local ok, doc = pcall(json.decode, res.body)
    if not ok then return errors.fail("protocol", "docker: %s: bad JSON from the daemon: %s", op, doc) end
    return doc, res
  end
  return (res.body ~= nil and res.body ~= "") and res.body or true, res
end

--- Negotiate the API version once per endpoint: /_ping's Api-Version header
--- and /version's MinAPIVersion, asked in parallel; we use
--- min(TESTED_MAX, server's) and fail when the server needs newer.
-- @local
function Client:negotiate()
  if self.version then return true end
  local cached = versions[self.ep.name]
  if cached then self.version = cached return true end
  local ping <close> = self:send{ path = "/_ping", versioned = false, timeout = 10 }
  local ver <close> = self:send{ path = "/version", versioned = false, timeout = 10 }
  local pres, perr, pcode = await(ping)
  local vres = await(ver)
  if not pres then return transport_fail(self.ep, nil, perr, pcode) end
  if pres.status ~= 200 then return status_fail("ping at " .. self.ep.name, pres) end
  local info = {}
  if vres and vres.status == 200 then
    local ok, doc = pcall(json.decode, vres.body)
    if ok and type(doc) == "table" then info = doc end
  end
  local server = pres.headers["api-version"] or info.ApiVersion
  if not vparse(server) then
    return errors.fail("protocol", "docker: the daemon at %s did not say its API version (no Api-Version header)",
      self.ep.name)
  end
  local use = vless(server, M.TESTED_MAX) and server or M.TESTED_MAX
  local min = info.MinAPIVersion
  if vparse(min) and vless(use, min) then
    return errors.fail("unsupported", "docker: the daemon at %s requires API version >= %s, agentbox speaks up to %s",
      self.ep.name, min, M.TESTED_MAX)
  end
  if vless(use, M.OLDEST) then
    return errors.fail("unsupported", "docker: the daemon at %s speaks API %s, agentbox needs >= %s (Docker 17.06 or newer)",
      self.ep.name, server, M.OLDEST)
  end
  self.version = use:match("^%d+%.%d+")
  self.server_version = info.Version
  versions[self.ep.name] = self.version
  return true
end

--- A client for a DOCKER_HOST-style string (nil: the environment's).
-- @local
function M.client(host, opts)
  local ep, err, code = M.endpoint(host)
  if not ep then return nil, err, code end
  opts = opts or {}
  return setmetatable({ ep = ep, connect_timeout = opts.connect_timeout or 10 }, Client)
end

-- endpoints used by the executor -------------------------------------------------------------

function Client:image_inspect(name)
  return self:call("inspect image " .. name, { path = "/images/" .. pathencode(name) .. "/json" })
end

-- "repo[:tag][@digest]" -> repo, tag (the ':' after the last '/')
local function split_ref(ref)
  local repo, digest = ref:match("^(.-)@(.+)$")
  if repo then return repo .. "@" .. digest, nil end
  local r, t = ref:match("^(.*):([^/:]+)$")
  if r then return r, t end
  return ref, "latest"
end

--- Pull through the API. on_progress(line_table) sees each status line. A
--- failure after progress began arrives as HTTP 200 with an error line.
-- @local
function Client:image_pull(ref, on_progress)
  local repo, tag = split_ref(ref)
  local op = "pull image " .. ref
  local req <close> = self:send{ method = "POST", path = "/images/create",
                                query = { fromImage = repo, tag = tag }, stream = true, timeout = 3600 }
  local pending, failure = "", nil
  local function lines(data)
    pending = pending .. data
    for line in pending:gmatch("([^\n]*)\n") do
      local ok, doc = pcall(json.decode, line)
      if ok and type(doc) == "table" then
        if doc.error or doc.errorDetail then
          failure = failure or doc.error or (doc.errorDetail and doc.errorDetail.message)
        elseif on_progress then
          on_progress(doc)
        end
      end
    end
    pending = pending:match("([^\n]*)$")
  end
  while not req:done() do
    task.wait(req)
    local chunks = req:read()
    if chunks then for i = 2, #chunks, 2 do lines(chunks[i]) end end
  end
  local chunks = req:read()
  if chunks then for i = 2, #chunks, 2 do lines(chunks[i]) end end
  lines("\n")
  local res, err, code = req:result()
  if not res then return transport_fail(self.ep, op, err, code) end
  if res.status ~= 200 then return status_fail(op, res) end
  if failure then return errors.fail("docker", "docker: %s failed: %s", op, failure) end
  return true
end

function Client:create(config, name)
  local doc, err, code, status = self:call("create container" .. (name and (" " .. name) or ""),
    { method = "POST", path = "/containers/create", query = name and { name = name } or nil, json = config })
  if not doc then return nil, err, code, status end
  return doc.Id, doc.Warnings ~= json.null and doc.Warnings or nil
end

function Client:start(id)
  return self:call("start container " .. id:sub(1, 12),
    { method = "POST", path = "/containers/" .. id .. "/start", ok = { [204] = true, [304] = true } })
end

function Client:inspect(id)
  return self:call("inspect container " .. id:sub(1, 12), { path = "/containers/" .. pathencode(id) .. "/json" })
end

function Client:kill(id)
  return self:call("kill container " .. id:sub(1, 12),
    { method = "POST", path = "/containers/" .. id .. "/kill", ok = { [204] = true, [404] = true, [409] = true } })
end

--- Force removal with its anonymous volumes; gone already (404) or being
--- removed (409 "removal ... already in progress") counts as done.
-- @local
function Client:remove(id, timeout, kill_only)
  if kill_only then return self:kill(id) end
  local req <close> = self:send{ method = "DELETE", path = "/containers/" .. id, query = { force = 1, v = 1 },
                                 timeout = timeout }
  return self:finish_remove(id, await(req))
end

function Client:finish_remove(id, res, err, code)
  local op = "remove container " .. id:sub(1, 12)
  if not res then return transport_fail(self.ep, op, err, code) end
  if res.status == 204 or res.status == 200 or res.status == 404 then return true end
  local msg = daemon_message(res)
  if res.status == 409 and msg:find("already in progress", 1, true) then return true end
  return status_fail(op, res, msg)
end

function Client:list(filters)
  return self:call("list containers", { path = "/containers/json", query = { all = 1, filters = filters } })
end

function Client:exec_create(id, spec)
  local doc, err, code, status = self:call("create exec in " .. id:sub(1, 12),
    { method = "POST", path = "/containers/" .. id .. "/exec", json = spec })
  if not doc then return nil, err, code, status end
  return doc.Id
end

--- Start an exec and return the request handle: a demultiplexed stream
--- (read() gives { "stdout"|"stderr"|"error", data, ... }); the caller reads
--- it to the end through task.wait.
-- @local
function Client:exec_start(exec_id, max_body, timeout)
  return self:send{ method = "POST", path = "/exec/" .. exec_id .. "/start", json = { Detach = false, Tty = false },
                    demux = true, max_body = max_body, timeout = timeout or 0 }
end

function Client:exec_inspect(exec_id)
  return self:call("inspect exec " .. exec_id:sub(1, 12), { path = "/exec/" .. exec_id .. "/json" })
end

--- A short helper command with captured output (not user code): returns
--- { output =, exit_code = } or nil, message, code. o: user, max (bytes
--- kept, 64 KiB).
-- @local
function Client:exec_run(id, argv, o)
  o = o or {}
  local exec_id, err, code, status = self:exec_create(id, { Cmd = argv, AttachStdout = true, AttachStderr = true,
                                                            Tty = false, User = o.user })
  if not exec_id then return nil, err, code, status end
  local op = "run " .. tostring(argv[1]) .. " in " .. id:sub(1, 12)
  local req <close> = self:exec_start(exec_id, o.max or 65536, 30)
  local res, rerr, rcode = await(req)
  if not res then return transport_fail(self.ep, op, rerr, rcode) end
  if res.status ~= 200 then return status_fail(op, res) end
  local info = self:exec_inspect(exec_id)
  res.exit_code = info and math.tointeger(info.ExitCode)
  return res
end

function Client:put_archive(id, dir, tar)
  return self:call("upload archive to " .. id:sub(1, 12) .. ":" .. dir,
    { method = "PUT", path = "/containers/" .. id .. "/archive", query = { path = dir },
      body = tar, content_type = "application/x-tar" })
end

-- owner identity and reaping -------------------------------------------------------------

-- core.owner() is this process's identity, "<pid>-<start time>" (src/owner.c);
-- the labels keep its two halves (agentbox.pid, agentbox.started) as README
-- documents them, so containers of earlier versions are reaped alike.
--- Labels that mark a container as ours, with its owner process.
-- @local
function M.owner_labels()
  local pid, started = assert(core.owner()):match("^(%d+)%-(%d+)$")
  return { agentbox = "1", ["agentbox.pid"] = pid, ["agentbox.host"] = core.hostname(),
           ["agentbox.started"] = started }
end

local function owner_alive(labels)
  return core.owner_alive(("%s-%s"):format(labels["agentbox.pid"] or "", labels["agentbox.started"] or ""))
end

--- Remove this host's agentbox containers whose owner process is gone.
-- Containers of other hosts (their owner cannot be checked from here) and
-- ones created with auto_remove = false are left alone. Every executor
-- start does the same; this is the on-demand form. Blocking outside a task,
-- yields inside one.
-- @tparam[opt] string host a DOCKER_HOST value (default DOCKER_HOST, else the local socket)
-- @treturn[1] integer the number removed
-- @return[2] nil
-- @treturn[2] string message what failed
-- @treturn[2] string code "unreachable", "timeout", "docker", ... (@{agentbox.errors.CODES})
-- @raise when host is not a string
function M.reap(host)
  check_host(host)
  local function run()
    local c, err, code = M.client(host)
    if not c then return nil, err, code end
    local ok, nerr, ncode = c:negotiate()
    if not ok then return nil, nerr, ncode end
    return c:reap()
  end
  return task.sync(run)
end

function Client:reap()
  local list, err, code = self:list({ label = { "agentbox=1", "agentbox.host=" .. core.hostname() } })
  if not list then return nil, err, code end
  local reqs = {}
  for _, c in ipairs(list) do
    local labels = c.Labels ~= json.null and c.Labels or {}
    if not labels["agentbox.keep"] and not owner_alive(labels) then
      -- removals run in parallel: a stale pile goes in one round trip's time
      reqs[#reqs + 1] = { id = c.Id, req = self:send{ method = "DELETE", path = "/containers/" .. c.Id,
                                                      query = { force = 1, v = 1 } } }
    end
  end
  local removed, first_err, first_code = 0, nil, nil
  for _, r in ipairs(reqs) do
    local ok, rerr, rcode = self:finish_remove(r.id, await(r.req))
    r.req:close()
    if ok then removed = removed + 1 elseif not first_err then first_err, first_code = rerr, rcode end
  end
  if first_err and removed == 0 then return nil, first_err, first_code end
  return removed
end

-- availability -------------------------------------------------------------

--- Whether a Docker daemon answers (short timeouts: never hangs).
-- A 2 s connect timeout and one /_ping (5 s), so deciding use_docker never
-- hangs. Blocking outside a task, yields inside one.
-- @tparam[opt] string host a DOCKER_HOST value (default DOCKER_HOST, else the local socket)
-- @treturn[1] true
-- @return[2] nil
-- @treturn[2] string message why not (naming the endpoint)
-- @treturn[2] string code "unreachable", "timeout", "docker", ... (@{agentbox.errors.CODES})
-- @treturn[2] integer|nil the HTTP status when the daemon answered with an error (code "docker")
-- @raise when host is not a string
function M.available(host)
  check_host(host)
  local function run()
    local c, err, code = M.client(host, { connect_timeout = 2 })
    if not c then return nil, err, code end
    local req <close> = c:send{ path = "/_ping", versioned = false, timeout = 5 }
    local res, rerr, rcode = await(req)
    if not res then return errors.fail(rcode, "%s", transport_error(c.ep, rerr, rcode)) end
    if res.status ~= 200 then
      local _, m = errors.fail("docker", "the Docker daemon at %s answered /_ping with HTTP %d: %s", c.ep.name,
        res.status, daemon_message(res))
      return nil, m, "docker", res.status
    end
    return true
  end
  return task.sync(run)
end

M.json = json
M.split_ref = split_ref

return M
