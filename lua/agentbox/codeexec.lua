-- An agent's code execution: code_execution_config, the use_docker decision
-- (AutoGen 0.2.8's rules) and the reply function that runs the newest
-- message's code blocks.
local code = require("agentbox.code")
local chat = require("agentbox.chat")
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
  error(("Invalid value for AGENTBOX_USE_DOCKER: %q. Accepted values: 1/true/yes/t (run code in Docker), "
    .. "0/false/no/f (run code locally), none (Docker when reachable, else locally)."):format(env), 0)
end

M.DOCKER_NOT_RUNNING = [[Code execution is set to be run in docker (default behaviour) but docker is not running.
The options available are:
- Make sure docker is running (advised approach for code execution)
- Set use_docker = false in code_execution_config
- Set AGENTBOX_USE_DOCKER to "0/False/no" in your environment variables]]

M.LOCAL_NOTICE = "agentbox: no Docker daemon in reach and Docker was not requested: model-written code runs on "
  .. "this host, without a sandbox (LocalExecutor). Set use_docker = true to require Docker, or use_docker = false "
  .. "to run locally without this notice.\n"

local KNOWN = { work_dir = true, use_docker = true, timeout = true, last_n_messages = true, executor = true,
                max_blocks = true }

-- Blocks run per message; a model that sends 10,000 gets the first ones run
-- and the rest reported back to it.
M.MAX_BLOCKS = 32

local function docker_executor(image, cfg)
  return require("agentbox").DockerExecutor{ image = image, work_dir = cfg.work_dir, timeout = cfg.timeout }
end

--- Validate code_execution_config and build its executor (at construction,
--- as AutoGen does). Returns false, or a private copy and the executor.
function M.configure(who, cfg)
  if cfg == false then return false, nil end
  if type(cfg) ~= "table" then
    error(who .. ": code_execution_config must be a table { work_dir =, use_docker =, timeout =, "
      .. "last_n_messages =, executor = } or false", 0)
  end
  local c = {}
  for k, v in pairs(cfg) do
    if not KNOWN[k] then
      error(who .. ": unknown code_execution_config key '" .. tostring(k)
        .. "' (known: executor, last_n_messages, max_blocks, timeout, use_docker, work_dir)", 0)
    end
    c[k] = v
  end
  local n = c.last_n_messages
  if n == nil then n = "auto" end
  if n ~= "auto" and (math.type(n) ~= "integer" or n < 0) then
    error(who .. ": code_execution_config.last_n_messages must be a non-negative integer or \"auto\", got "
      .. tostring(n), 0)
  end
  c.last_n_messages = n
  local mb = c.max_blocks
  if mb == nil then mb = M.MAX_BLOCKS end
  if math.type(mb) ~= "integer" or mb < 1 then
    error(who .. ": code_execution_config.max_blocks must be a positive integer (code blocks run per message, "
      .. "default " .. M.MAX_BLOCKS .. "), got " .. tostring(c.max_blocks), 0)
  end
  c.max_blocks = mb

  if c.executor ~= nil then
    for _, k in ipairs({ "use_docker", "work_dir", "timeout" }) do
      if c[k] ~= nil then
        error(who .. ": code_execution_config." .. k .. " is not valid when 'executor' is set; "
          .. "give it to the executor instead", 0)
      end
    end
    if type(c.executor) ~= "table" or type(c.executor.execute) ~= "function" then
      error(who .. ": code_execution_config.executor must have an execute(blocks) method "
        .. "(agentbox.LocalExecutor{...} or agentbox.DockerExecutor{...})", 0)
    end
    return c, c.executor
  end

  local use, explicit = M.decide_use_docker(c.use_docker)
  if use ~= nil and type(use) ~= "boolean" and type(use) ~= "string" then
    error(who .. ": code_execution_config.use_docker must be true, false or an image name, got " .. tostring(use), 0)
  end
  if use ~= false then
    local ok, err = M.docker_available()
    -- Fail closed: an explicit request for Docker (true, an image, or
    -- AGENTBOX_USE_DOCKER=1) never becomes host execution. Only "none" and the
    -- unset default inside a container (AutoGen's rule) may fall back, and
    -- they say so, once, where the transcript goes.
    if ok then
      use = use == nil and true or use
    elseif use == nil or (not explicit and M.in_container()) then
      use = false
      chat.print(M.LOCAL_NOTICE)
    else
      error(M.DOCKER_NOT_RUNNING .. (err and ("\n(" .. tostring(err) .. ")") or ""), 0)
    end
  end
  c.use_docker = use
  local executor
  if use then
    executor = docker_executor(type(use) == "string" and use or nil, c)
  else
    executor = require("agentbox.executor.local").new{ work_dir = c.work_dir, timeout = c.timeout }
  end
  return c, executor
end

local function blocks_of(content, max)
  if content == nil or content == "" then return nil end
  -- task.checkpoint: a 5 MB message is extracted over several steps
  local blocks, skipped = code.extract(content, { max_blocks = max, pause = task.checkpoint })
  -- AutoGen: one block of unknown language is prose in a fence, not code
  if #blocks == 0 or (#blocks == 1 and skipped == 0 and blocks[1].lang == "unknown") then return nil end
  return blocks, skipped
end

--- The reply function: scan the last n messages newest first ("auto": the
--- trailing run of role "user", i.e. everything since this agent last
--- spoke; 0: nothing) and run the newest one that has code.
function M.reply(agent, messages, sender)
  local cfg = agent._code_execution_config
  if not cfg then return false, nil end
  if messages == nil then messages = agent:chat_messages(sender) end
  local n = cfg.last_n_messages
  if n == "auto" then
    n = 0
    for i = #messages, 1, -1 do
      if messages[i].role ~= "user" then break end
      n = n + 1
    end
  end
  for i = #messages, #messages - math.min(n, #messages) + 1, -1 do
    local blocks, skipped = blocks_of(messages[i].content, cfg.max_blocks)
    if blocks then
      local ex = agent._code_executor
      if ex.work_dir_temp and not ex.work_dir_shown then   -- say once where a temporary work_dir is
        ex.work_dir_shown = true
        chat.info(agent, "\n>>>>>>>> WORK_DIR " .. ex.work_dir .. (ex.keep_work_dir and "" or " (removed at close)"))
      end
      for b, block in ipairs(blocks) do
        chat.info(agent, ("\n>>>>>>>> EXECUTING CODE BLOCK %d (inferred language is %s)..."):format(b - 1, block.lang))
      end
      local note = ""
      if skipped > 0 then
        note = ("\nagentbox: %d more code block(s) in this message were not run: at most %d run per message "
          .. "(code_execution_config.max_blocks). Send fewer, larger blocks."):format(skipped, cfg.max_blocks)
        chat.info(agent, ("\n>>>>>>>> NOT RUNNING %d MORE CODE BLOCK(S) (max_blocks = %d)"):format(skipped, cfg.max_blocks))
      end
      local result = agent._code_executor:execute(blocks)
      return true, code.format_result(result) .. note
    end
  end
  return false, nil
end

return M
