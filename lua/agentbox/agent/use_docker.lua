-- Where an agent's code runs: the use_docker decision (AutoGen 0.2.8's
-- rules, failing closed: an explicit request for Docker never becomes host
-- execution) and the check, when the agent is built, that the image it
-- names exists (pulled through the Engine API when missing, as the
-- executor would at the first block).
local errors = require("agentbox.errors")
local transcript = require("agentbox.transcript")
local task = require("agentbox.task")

local M = {}

-- AutoGen's in_docker_container(). The marker's path is a private field
-- only so that specs can stand inside or outside a container in a nested
-- process without touching the real /.dockerenv (doc/internals.md); it is
-- not re-exported and no option or variable reaches it.
M._dockerenv = "/.dockerenv"
function M.in_container()
  local f = io.open(M._dockerenv, "r")
  if f then f:close() return true end
  return false
end

-- Whether a Docker daemon answers; a missing or broken client module counts
-- as "not reachable".
function M.docker_available()
  local ok, mod = pcall(require, "agentbox.engine")
  if not ok or type(mod) ~= "table" or type(mod.available) ~= "function" then
    return false, "the agentbox.docker module is not available"
  end
  local ok2, avail, err = pcall(mod.available)
  if not ok2 then return false, tostring(avail) end
  return avail == true, err
end

local TRUE = { ["1"] = true, ["true"] = true, yes = true, t = true }
local FALSE = { ["0"] = true, ["false"] = true, no = true, f = true }

--- The argument wins; then AGENTBOX_USE_DOCKER; then on. Returns true,
--- false, an image name, or nil for "none" (Docker when reachable), and
--- whether the choice was explicit (an argument or the variable) rather than
--- the unset default.
function M.decide_use_docker(arg)
  if arg ~= nil then return arg, true end
  local env = os.getenv("AGENTBOX_USE_DOCKER")
  if env == nil then return true, false end
  local v = env:lower()
  if TRUE[v] then return true, true end
  if FALSE[v] then return false, true end
  if v == "none" then return nil, true end
  errors.misuse("Invalid value for AGENTBOX_USE_DOCKER: %q. Accepted values: 1/true/yes/t (run code in Docker), "
    .. "0/false/no/f (run code locally), none (Docker when reachable, else locally).", env)
end

M.DOCKER_NOT_RUNNING = [[Code execution is set to be run in docker (default behaviour) but docker is not running.
The options available are:
- Make sure docker is running (advised approach for code execution)
- Set use_docker = false in code_execution_config
- Set use_docker = false, sandbox = true in code_execution_config (agentbox's daemonless sandbox: Linux namespaces
  and seccomp, no daemon; or AGENTBOX_SANDBOX=1)
- Set AGENTBOX_USE_DOCKER to "0/False/no" in your environment variables]]

M.LOCAL_NOTICE = "agentbox: no Docker daemon in reach and Docker was not requested: model-written code runs on "
  .. "this host, without a sandbox (LocalExecutor). Set use_docker = true to require Docker, sandbox = true for "
  .. "agentbox's daemonless sandbox, or use_docker = false to run locally without this notice.\n"


-- Is the image there (pulling it when missing, as the executor would)?
-- true, or nil and why not. Progress lines go to stderr, as the executor's.
local function image_present(image)
  local docker = require("agentbox.engine")
  local c, err = docker.client()
  if not c then return nil, err end
  local ok, nerr = c:negotiate()
  if not ok then return nil, nerr end
  local found, ierr, icode = c:image_inspect(image)
  if found then return true end
  if icode ~= "not_found" then return nil, ierr end
  local pulled, perr = c:image_pull(image, function(line)
    if line.status and not (line.progressDetail and line.progressDetail.current) then
      io.stderr:write("agentbox: pulling ", image, ": ", line.id and (line.id .. " ") or "", line.status, "\n")
    end
  end)
  if not pulled then return nil, perr end
  return true
end

--- Decide and check: returns true (Docker, default image), an image name,
--- or false (local), printing the notice when falling back. Raises, blamed
--- on the caller, when Docker was asked for and cannot be had.
function M.resolve(who, requested)
  local use, explicit = M.decide_use_docker(requested)
  if use ~= nil and type(use) ~= "boolean" and type(use) ~= "string" then
    errors.misuse("%s: code_execution_config.use_docker must be true, false or an image name, got %s", who,
      tostring(use))
  end
  if use == false then return false end
  local ok, err = M.docker_available()
  -- Fail closed: an explicit request for Docker (true, an image, or
  -- AGENTBOX_USE_DOCKER=1) never becomes host execution. Only "none" and the
  -- unset default inside a container (AutoGen's rule) may fall back, and
  -- they say so, once, where the transcript goes.
  if not ok then
    if use == nil or (not explicit and M.in_container()) then
      transcript.print(M.LOCAL_NOTICE)
      return false
    end
    -- README: the message starts with AutoGen's sentence, so no position
    error(M.DOCKER_NOT_RUNNING .. (err and ("\n(" .. tostring(err) .. ")") or ""), 0)
  end
  if use == nil then use = true end
  -- the image the DockerExecutor will use, checked now rather than at the
  -- first block in the middle of a chat
  local image = type(use) == "string" and use or os.getenv("AGENTBOX_IMAGE")
  if image == nil or image == "" then image = M.DEFAULT_IMAGE end
  local present, ierr = task.sync(image_present, image)
  if not present then
    errors.misuse("%s: code_execution_config.use_docker names the image %s, which is not present and could not be "
      .. "pulled (%s). Build the agentbox sandbox image with `make image` and pass use_docker = "
      .. "\"agentbox/sandbox:latest\" (or set AGENTBOX_IMAGE), or pull %s where a registry is reachable", who,
      image, tostring(ierr), image)
  end
  return use
end

-- DockerExecutor's default image, AutoGen's
M.DEFAULT_IMAGE = "python:3-slim"

return M
