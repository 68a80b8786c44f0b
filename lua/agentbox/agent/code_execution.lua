-- An agent's code execution: code_execution_config (checked when the agent
-- is built, as AutoGen does), and the reply function that takes the code
-- blocks of the newest message with code (agentbox.code extracts them), runs
-- them in the executor and answers with AutoGen's result text. Where the
-- code runs (Docker or this host) is agent/use_docker.lua's decision.
--
-- The executor contract: execute(blocks) returns { exit_code = <integer>,
-- output = <string> } (a block that fails is such a result, for the model),
-- or nil, message, code when the executor itself fails. A failure, a raise
-- or another shape ends the chat with a ChatFailure (agent/failure.lua).
--
-- Before anything runs, code_execution_config.approve (autogen-ext's
-- approval_func) may deny the blocks; the denial is the reply. Each reply
-- (a result or a denial) is also kept as a record for the ChatResult's
-- execution_results, so a program reads what ran without parsing text.
local code = require("agentbox.code")
local transcript = require("agentbox.transcript")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local failure = require("agentbox.agent.failure")
local use_docker = require("agentbox.agent.use_docker")

local M = {}

-- agent -> { config = the private copy, executor = ... }; executors whose
-- temporary work_dir the transcript already named
local states = setmetatable({}, { __mode = "k" })
local shown = setmetatable({}, { __mode = "k" })

local KNOWN = { work_dir = true, use_docker = true, timeout = true, last_n_messages = true, executor = true,
                max_blocks = true, approve = true, sandbox = true }

-- Blocks run per message; a model that sends 10,000 gets the first ones run
-- and the rest reported back to it.
M.MAX_BLOCKS = 32

local function docker_executor(image, cfg)
  return require("agentbox").DockerExecutor{ image = image, work_dir = cfg.work_dir, timeout = cfg.timeout }
end

-- Validate code_execution_config and build its executor: false, or a
-- private copy and the executor.
local function configure(who, cfg)
  if cfg == false then return false, nil end
  if type(cfg) ~= "table" then
    errors.misuse("%s: code_execution_config must be a table { work_dir =, use_docker =, timeout =, "
      .. "last_n_messages =, executor =, approve = } or false", who)
  end
  local c = {}
  for k, v in pairs(cfg) do
    if not KNOWN[k] then
      errors.misuse("%s: unknown code_execution_config key '%s' (known: approve, executor, last_n_messages, "
        .. "max_blocks, sandbox, timeout, use_docker, work_dir)", who, tostring(k))
    end
    c[k] = v
  end
  local n = c.last_n_messages
  if n == nil then n = "auto" end
  if n ~= "auto" and (math.type(n) ~= "integer" or n < 0) then
    errors.misuse("%s: code_execution_config.last_n_messages must be a non-negative integer or \"auto\", got %s",
      who, tostring(n))
  end
  c.last_n_messages = n
  local mb = c.max_blocks
  if mb == nil then mb = M.MAX_BLOCKS end
  if math.type(mb) ~= "integer" or mb < 1 then
    errors.misuse("%s: code_execution_config.max_blocks must be a positive integer (code blocks run per message, "
      .. "default %d), got %s", who, M.MAX_BLOCKS, tostring(c.max_blocks))
  end
  c.max_blocks = mb
  if c.approve ~= nil and type(c.approve) ~= "function" then
    errors.misuse("%s: code_execution_config.approve must be a function(blocks, agent, sender) returning true, "
      .. "or false and a reason; got %s", who, type(c.approve))
  end

  if c.executor ~= nil then
    for _, k in ipairs({ "use_docker", "work_dir", "timeout", "sandbox" }) do
      if c[k] ~= nil then
        errors.misuse("%s: code_execution_config.%s is not valid when 'executor' is set; "
          .. "give it to the executor instead", who, k)
      end
    end
    if type(c.executor) ~= "table" or type(c.executor.execute) ~= "function" then
      errors.misuse("%s: code_execution_config.executor must have an execute(blocks) method "
        .. "(agentbox.LocalExecutor{...} or agentbox.DockerExecutor{...})", who)
    end
    return c, c.executor
  end

  -- sandbox (LocalExecutor's daemonless sandbox) is a way to run code on
  -- this host: with use_docker unset it means local, in the sandbox; with
  -- Docker asked for it contradicts it
  if c.sandbox then
    if c.use_docker then
      errors.misuse("%s: code_execution_config.sandbox runs code on this host in agentbox's daemonless sandbox; "
        .. "it cannot go with use_docker = %s (drop one of them)", who, tostring(c.use_docker))
    end
    if c.use_docker == nil then c.use_docker = false end
  end
  local use = use_docker.resolve(who, c.use_docker)
  c.use_docker = use
  local executor
  if use then
    executor = docker_executor(type(use) == "string" and use or nil, c)
  else
    executor = require("agentbox.executor.local").new{ work_dir = c.work_dir, timeout = c.timeout,
                                                        sandbox = c.sandbox }
  end
  return c, executor
end

--- Validate code_execution_config and build its executor. Returns whether
--- the agent executes code (then its reply function is to be registered).
function M.init(agent, who, cfg)
  local c, executor = configure(who, cfg)
  states[agent] = c and { config = c, executor = executor } or false
  return c ~= false
end

function M.executor(agent)
  local st = states[agent]
  return st and st.executor or nil
end

-- true or an image name when code runs in Docker, false when locally, nil
-- without code execution (or with an explicit executor)
function M.use_docker(agent)
  local st = states[agent]
  if not st then return nil end
  return st.config.use_docker
end

local function blocks_of(content, max)
  if content == nil or content == "" then return nil end
  -- task.checkpoint: a 5 MB message is extracted over several steps
  local blocks, skipped = code.extract(content, { max_blocks = max, pause = task.checkpoint })
  -- AutoGen: one block of unknown language is prose in a fence, not code
  if #blocks == 0 or (#blocks == 1 and skipped == 0 and blocks[1].lang == "unknown") then return nil end
  return blocks, skipped
end

local CONTRACT = "{ exit_code = <integer>, output = <string> }"

-- What is wrong with an executor's result, or nil when it keeps the contract.
local function wrong_shape(r)
  if type(r) ~= "table" then
    return ("it returned %s instead of %s"):format(type(r) == "string" and "a string" or tostring(r), CONTRACT)
  end
  if type(r.exit_code) ~= "number" or math.tointeger(r.exit_code) == nil then
    return ("its exit_code is %s %s, not an integer (the result must be %s)"):format(type(r.exit_code),
      tostring(r.exit_code), CONTRACT)
  end
  if type(r.output) ~= "string" then
    return ("its output is %s, not a string (the result must be %s)"):format(type(r.output), CONTRACT)
  end
end

-- Run the blocks; a failing executor ends the chat (a ChatFailure) instead
-- of answering the model with something that is not a result.
local function execute(agent, ex, blocks)
  local ok, r, err, ecode = pcall(ex.execute, ex, blocks)
  if not ok then
    if failure.is(r) or failure.is_cancel(r) then error(r, 0) end
    failure.raise("executor", "%s: the code executor failed: %s", tostring(agent), tostring(r))
  end
  if r == nil and err ~= nil then
    failure.raise(errors.CODES[ecode] and ecode or "executor", "%s: the code executor failed: %s", tostring(agent),
      tostring(err))
  end
  local wrong = wrong_shape(r)
  if wrong then failure.raise("executor", "%s: the code executor broke its contract: %s", tostring(agent), wrong) end
  return r
end

-- Approval (autogen-ext's approval_func) ---------------------------------------

-- The output of a denial: autogen-ext's words, so a model or a parser that
-- knows them recognises it.
M.DENIED_OUTPUT = "Code execution was not approved. Reason: "

-- Ask cfg.approve about the blocks: true, or false and the reason. It gets
-- copies, so what it sees is exactly what runs and changing them runs
-- nothing else. It may yield (a UI answers later); a raise or an answer
-- that is neither true nor false ends the chat with nothing run (fail closed).
local function approved(agent, approve, blocks, sender)
  local copies = {}
  for i, b in ipairs(blocks) do copies[i] = { lang = b.lang, code = b.code } end
  local ok, verdict, reason = pcall(approve, copies, agent, sender)
  if not ok then
    if failure.is(verdict) or failure.is_cancel(verdict) then error(verdict, 0) end
    failure.raise("error", "%s: code_execution_config.approve raised: %s (nothing was run)", tostring(agent),
      tostring(verdict))
  end
  if verdict == true then return true end
  if verdict ~= false then
    failure.raise("error", "%s: code_execution_config.approve must return true, or false and a reason; it returned "
      .. "%s (nothing was run)", tostring(agent), type(verdict) == "string" and ("%q"):format(verdict) or tostring(verdict))
  end
  if reason == nil or reason == "" then reason = "no reason given" end
  return false, tostring(reason)
end

-- Execution records (ChatResult.execution_results) --------------------------------

-- history list -> { { at = index of the reply in it, record = ... }, ... }.
-- Keyed by the list itself: clear_history replaces the list, so the records
-- of a forgotten conversation go with it, and a chat that keeps its history
-- (clear_history = false) keeps its records, as chat_history does.
local records = setmetatable({}, { __mode = "k" })

local function keep_record(list, record)
  if not list then return end
  local rs = records[list]
  if not rs then
    rs = {}
    records[list] = rs
  end
  rs[#rs + 1] = { at = #list + 1, record = record }
end

local function record_of(r)
  local n = math.tointeger(r.exit_code)
  return { exit_code = n, output = r.output, succeeded = n == 0, output_files = r.output_files,
           output_files_incomplete = r.output_files_incomplete }
end

--- The records of the executions between a and b, either side running the
--- code, in the order of the replies (copies: a ChatResult owns its list).
function M.results(a, b)
  local all = {}
  local mine, theirs = a:chat_messages(b), b:chat_messages(a)
  for _, list in ipairs(mine == theirs and { mine } or { mine, theirs }) do   -- an agent may talk to itself
    for _, e in ipairs(records[list] or {}) do all[#all + 1] = e end
  end
  table.sort(all, function(x, y) return x.at < y.at end)
  local out = {}
  for i, e in ipairs(all) do
    local copy = {}
    for k, v in pairs(e.record) do copy[k] = v end
    out[i] = copy
  end
  return out
end

--- The reply function: scan the last n messages newest first ("auto": the
--- trailing run of role "user", i.e. everything since this agent last
--- spoke; 0: nothing) and run the newest one that has code.
function M.reply(agent, messages, sender)
  local st = states[agent]
  if not st then return false, nil end
  local cfg, ex = st.config, st.executor
  if messages == nil then messages = agent:chat_messages(sender) end
  -- only a reply to the conversation itself goes into its records (not one
  -- asked for with messages of the caller's own)
  local list = sender ~= nil and rawequal(messages, agent:chat_messages(sender)) and messages or nil
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
      if cfg.approve then
        local ok, reason = approved(agent, cfg.approve, blocks, sender)
        if not ok then
          transcript.info(agent, "\n>>>>>>>> CODE EXECUTION DENIED: " .. transcript.escape(reason))
          local output = M.DENIED_OUTPUT .. reason
          keep_record(list, { exit_code = 1, output = output, succeeded = false, denied = true })
          return true, "exitcode: 1 (execution denied)\nCode output: " .. output
        end
      end
      if ex.work_dir_temp and not shown[ex] then   -- say once where a temporary work_dir is
        shown[ex] = true
        transcript.info(agent, "\n>>>>>>>> WORK_DIR " .. ex.work_dir .. (ex.keep_work_dir and "" or " (removed at close)"))
      end
      for b, block in ipairs(blocks) do
        transcript.info(agent, ("\n>>>>>>>> EXECUTING CODE BLOCK %d (inferred language is %s)..."):format(b - 1,
          block.lang))
      end
      local note = ""
      if skipped > 0 then
        note = ("\nagentbox: %d more code block(s) in this message were not run: at most %d run per message "
          .. "(code_execution_config.max_blocks). Send fewer, larger blocks."):format(skipped, cfg.max_blocks)
        transcript.info(agent, ("\n>>>>>>>> NOT RUNNING %d MORE CODE BLOCK(S) (max_blocks = %d)"):format(skipped,
          cfg.max_blocks))
      end
      local r = execute(agent, ex, blocks)
      keep_record(list, record_of(r))
      return true, code.format_result(r) .. note
    end
  end
  return false, nil
end

return M
