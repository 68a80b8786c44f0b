--- ConversableAgent, AssistantAgent, UserProxyAgent: AutoGen 0.2's agents.
--
-- One class with three sets of defaults, made with `agentbox.ConversableAgent{...}`
-- (or AssistantAgent, UserProxyAgent); an unknown or badly typed option is
-- an error that names it. A failure in the middle of a chat (the model
-- server, an executor) ends @{ConversableAgent:initiate_chat} with a
-- @{ChatResult} that keeps the history, plus `error` and `error_code`.
--
-- This file is the class: its options, their defaults and checks, and the
-- methods, each handed to the module of its concept (internal modules,
-- not in this reference):
--   agent/class.lua         the small class system (extend, is-a)
--   agent/history.lua       the conversations (chat_messages)
--   agent/reply_chain.lua   register_reply, generate_reply
--   agent/human_reply.lua   termination, the auto-reply limit, human input
--   agent/model_reply.lua   the model's reply
--   agent/tools.lua         tool schemas, function_map, tool calls
--   agent/code_execution.lua  code_execution_config and the reply that runs blocks
--   agent/use_docker.lua    where the code runs
--   agent/conversation.lua  the send/receive loop, initiate_chat, ChatResult
-- Each keeps its per-agent state to itself (keyed by agent); the public
-- fields are AutoGen's: name, system_message, description, llm_config,
-- client, human_input_mode, silent, reply_at_receive.
-- @module agentbox.agent
local llm = require("agentbox.llm")
local errors = require("agentbox.errors")
local class = require("agentbox.agent.class")
local history = require("agentbox.agent.history")
local reply_chain = require("agentbox.agent.reply_chain")
local human_reply = require("agentbox.agent.human_reply")
local model_reply = require("agentbox.agent.model_reply")
local tools = require("agentbox.agent.tools")
local code_execution = require("agentbox.agent.code_execution")
local conversation = require("agentbox.agent.conversation")

local M = {}

--- The options of every agent constructor (AutoGen's arguments as one table).
-- Defaults differ per class (README "Agents"). An unknown or badly typed
-- option is an error that names it.
-- @table AgentOptions
-- @tfield string name the agent's name
-- @tfield[opt] string system_message ConversableAgent: "You are a helpful AI Assistant.";
-- AssistantAgent: AutoGen's DEFAULT_SYSTEM_MESSAGE; UserProxyAgent: ""
-- @tfield[opt] string human_input_mode "ALWAYS", "TERMINATE" or "NEVER": when to ask a human
-- (ConversableAgent "TERMINATE", AssistantAgent "NEVER", UserProxyAgent "ALWAYS")
-- @tfield[opt] agentbox.llm.LLMConfig|false llm_config the model (false: no model replies);
-- required for AssistantAgent
-- @tfield[opt] CodeExecutionConfig|false code_execution_config run code found in messages
-- (UserProxyAgent: `{}`, on; the others: false)
-- @tfield[opt=100] integer max_consecutive_auto_reply per sender
-- @tfield[opt] function is_termination_msg `function(message) -> boolean`; default: content
-- equal to "TERMINATE"
-- @tfield[opt=""] string|table default_auto_reply the reply when nothing else answers
-- @tfield[opt] table function_map `{ name = function(args) ... end }`: tools this agent executes
-- @tfield[opt] string description how other agents see it (default from the class and mode)
-- @tfield[opt] boolean silent print nothing (overrides a chat's silent)
-- @tfield[opt] table chat_messages an initial history, `{ [agent] = messages }`
-- @tfield[opt] function get_human_input `function(prompt, agent) -> string`, or `nil, reason` to
-- end the chat; may yield inside a task (a future). Default: a line from stdin
-- @tfield[opt] function on_token `function(text, agent, kind)`: the model's reply text as it
-- arrives (`llm_config.stream`; unstreamed, the whole text at once). kind is nil for text, and
-- "retry" (text "") when the request failed after some text and is tried again: drop what was
-- shown. Without it, a streamed reply is shown on a terminal's transcript as it arrives

--- A message of the chat history (AutoGen's ChatCompletion shape).
-- @table Message
-- @tfield string role "user", "assistant", "tool" or "system"
-- @tfield string|table|nil content text, or a list of multimodal parts
-- (`{ type = "text", text = }`, `{ type = "image_url", ... }`)
-- @tfield string|nil name the sending agent's name
-- @tfield {table,...}|nil tool_calls OpenAI tool calls
-- @tfield {table,...}|nil tool_responses the results of tool calls

--- `code_execution_config` of an agent: a table, or false for none.
-- The executor is built when the agent is, so a Docker problem (no daemon
-- for an explicit request, an image neither there nor pullable) is an
-- error at construction.
-- @table CodeExecutionConfig
-- @tfield[opt] string work_dir the executor's work_dir (default: a fresh private temporary directory)
-- @tfield[opt] boolean|string use_docker true, false or an image name (default:
-- `AGENTBOX_USE_DOCKER`, else on; README "Code execution")
-- @tfield[opt=60] number timeout seconds per block
-- @tfield[opt="auto"] integer|string last_n_messages messages scanned for code, newest first;
-- "auto": every message since this agent last spoke
-- @tfield[opt=32] integer max_blocks blocks run per message; the reply says how many more were not run
-- @tfield[opt] agentbox.Executor executor an executor of your own (then work_dir, use_docker
-- and timeout are errors)
-- @tfield[opt] function approve `approve(blocks, agent, sender) -> true | false, reason`, called
-- before any block of a message runs; a denial goes to the model and nothing runs (may yield)

--- The options of @{ConversableAgent:initiate_chat}.
-- @table ChatOptions
-- @field message the first message: a string, a message table or
-- `function(sender, recipient, opts)`; nil: the sender's `get_human_input(">")`
-- @tfield[opt] integer max_turns at most this many round trips (nil: until a termination)
-- @tfield[opt=true] boolean clear_history start from an empty history with the recipient
-- @field summary_method "last_msg" (default: the last message, "TERMINATE" removed),
-- "reflection_with_llm", a `function(sender, recipient, summary_args)`, or false for ""
-- @tfield[opt] table summary_args `{ summary_prompt =, summary_role = "system" }` for reflection_with_llm
-- @tfield[opt=false] boolean silent print nothing for this chat (a prompt for human input still appears)
-- @tfield[opt] string|{string,...} carryover context appended to the first message as
-- "\nContext: \n..."

--- What @{ConversableAgent:initiate_chat} returns (AutoGen's ChatResult).
-- @table ChatResult
-- @tfield {table,...} chat_history the initiator's messages with the recipient
-- (ChatCompletion shape: role, content, name, tool_calls, tool_responses)
-- @tfield string summary the summary_method's result
-- @tfield string|nil summary_error why reflection_with_llm gave no summary ("" then)
-- @tfield table cost both agents' token usage per model (@{agentbox.llm.Client:usage})
-- @tfield {string,...} human_input what the initiator's human typed
-- @tfield string|nil human_input_ended why a human's input ended the chat ("end of input")
-- @tfield string|nil error a failure that ended the chat (the model server, an executor)
-- @tfield string|nil error_code its code (@{agentbox.errors.CODES})
-- @tfield {table,...} execution_results one @{agentbox.code.ExecutionRecord} per execution reply, kept as the code ran

--- Options of @{register_function}, @{ConversableAgent:register_for_llm}
-- and @{ConversableAgent:register_for_execution}.
-- @table ToolOptions
-- @tfield[opt] string name letters, digits, `_` and `-`, at most 64 (required the first time)
-- @tfield[opt] string description for the model (required by register_for_llm)
-- @tfield[opt] table parameters a JSON schema of the arguments (`type = "object"`)
-- @tfield[opt] ConversableAgent caller the agent whose model may call it (register_function only)
-- @tfield[opt] ConversableAgent executor the agent that runs it (register_function only)

M.DEFAULT_SYSTEM_MESSAGE = [[You are a helpful AI assistant.
Solve tasks using your coding and language skills.
In the following cases, suggest python code (in a python coding block) or shell script (in a sh coding block) for the user to execute.
    1. When you need to collect info, use the code to output the info you need, for example, browse or search the web, download/read a file, print the content of a webpage or a file, get the current date/time, check the operating system. After sufficient info is printed and the task is ready to be solved based on your language skill, you can solve the task by yourself.
    2. When you need to perform some task with code, use the code to perform the task and output the result. Finish the task smartly.
Solve the task step by step if you need to. If a plan is not provided, explain your plan first. Be clear which step uses code, and which step uses your language skill.
When using code, you must indicate the script type in the code block. The user cannot provide any other feedback or perform any other action beyond executing the code you suggest. The user can't modify your code. So do not suggest incomplete code which requires users to modify. Don't use a code block if it's not intended to be executed by the user.
If you want the user to save the code in a file before executing it, put # filename: <filename> inside the code block as the first line. Don't include multiple code blocks in one response. Do not ask users to copy and paste the result. Instead, use 'print' function for the output when relevant. Check the execution result returned by the user.
If the result indicates there is an error, fix the error and output the code again. Suggest the full code instead of partial code or code changes. If the error can't be fixed or if the task is not solved even after the code is executed successfully, analyze the problem, revisit your assumption, collect additional info you need, and think of a different approach to try.
When you find an answer, verify the answer carefully. Include verifiable evidence in your response if possible.
Reply "TERMINATE" in the end when everything is done.
    ]]

M.DEFAULT_ASSISTANT_DESCRIPTION = "A helpful and general-purpose AI assistant that has strong language skills, "
  .. "Python skills, and Linux command line skills."

M.DEFAULT_USER_PROXY_AGENT_DESCRIPTIONS = {
  ALWAYS = "An attentive HUMAN user who can answer questions about the task, and can perform tasks such as "
    .. "running Python code or inputting command line commands at a Linux terminal and reporting back the "
    .. "execution results.",
  TERMINATE = "A user that can run Python code or input command line commands at a Linux terminal and report "
    .. "back the execution results.",
  NEVER = "A user that can run Python code or input command line commands at a Linux terminal and report "
    .. "back the execution results.",
}

M.MAX_CONSECUTIVE_AUTO_REPLY = 100

-- Classes: see class.lua ----------------------------------------------------------
local is_agent, is_instance = class.is_agent, class.is_instance
M.is_agent, M.is_instance = is_agent, is_instance

local ConversableAgent = class.base("ConversableAgent", {
  name = true, system_message = true, is_termination_msg = true, max_consecutive_auto_reply = true,
  human_input_mode = true, function_map = true, code_execution_config = true, llm_config = true,
  default_auto_reply = true, description = true, chat_messages = true, silent = true,
  get_human_input = true, on_token = true })
local extend = class.extend

ConversableAgent.__defaults = function(o)
  if o.system_message == nil then o.system_message = "You are a helpful AI Assistant." end
  if o.human_input_mode == nil then o.human_input_mode = "TERMINATE" end
  if o.code_execution_config == nil then o.code_execution_config = false end
  if o.default_auto_reply == nil then o.default_auto_reply = "" end
  if o.description == nil then o.description = o.system_message end
end

local AssistantAgent = extend(ConversableAgent, "AssistantAgent")
AssistantAgent.__defaults = function(o)
  if o.system_message == nil then o.system_message = M.DEFAULT_SYSTEM_MESSAGE end
  if o.human_input_mode == nil then o.human_input_mode = "NEVER" end
  if o.description == nil and o.system_message == M.DEFAULT_SYSTEM_MESSAGE then
    o.description = M.DEFAULT_ASSISTANT_DESCRIPTION
  end
  ConversableAgent.__defaults(o)
end

local UserProxyAgent = extend(ConversableAgent, "UserProxyAgent")
UserProxyAgent.__defaults = function(o)
  if o.human_input_mode == nil then o.human_input_mode = "ALWAYS" end
  if o.code_execution_config == nil then o.code_execution_config = {} end
  if o.system_message == nil then o.system_message = "" end
  if o.description == nil then o.description = M.DEFAULT_USER_PROXY_AGENT_DESCRIPTIONS[o.human_input_mode] end
  ConversableAgent.__defaults(o)
end

--- The agent classes. Call one with @{AgentOptions} to make an agent:
-- `agentbox.AssistantAgent{ name = "assistant", llm_config = ... }`.
-- @table classes
-- @field ConversableAgent defaults: human_input_mode "TERMINATE", no model, no code execution
-- @field AssistantAgent AutoGen's assistant: its system message, "NEVER", llm_config required
-- @field UserProxyAgent AutoGen's user proxy: "ALWAYS", code execution on
M.ConversableAgent, M.AssistantAgent, M.UserProxyAgent = ConversableAgent, AssistantAgent, UserProxyAgent

--- Register a tool with two agents (`agentbox.register_function`): `caller`'s
-- model may call it, `executor` runs it. A tool gets one table, the decoded
-- arguments, and may yield; a string result is sent as is, a table as JSON;
-- an error it raises goes back to the model as `Error: <message>`.
-- @function register_function
-- @tparam function fn the tool: `function(args) -> result`
-- @tparam ToolOptions opts caller, executor, name, description, parameters
-- @treturn function fn
-- @raise when caller or executor is not an agent, a name is invalid, the
-- description is missing, or the caller has no llm_config
M.register_function = tools.register_function

-- Construction -------------------------------------------------------------------

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return setmetatable(t, getmetatable(v))
end

local MODES = { ALWAYS = true, TERMINATE = true, NEVER = true }

local function misuse(who, fmt, ...) errors.misuse("%s: " .. fmt, who, ...) end

function ConversableAgent:_init(o)
  local cls = getmetatable(self)
  local who = cls.__name
  if type(o.name) ~= "string" or o.name == "" then misuse(who, "'name' must be a non-empty string") end
  self.name = o.name
  who = who .. " '" .. o.name .. "'"
  if type(o.system_message) ~= "string" and type(o.system_message) ~= "table" then
    misuse(who, "system_message must be a string")
  end
  self.system_message = o.system_message
  self.description = o.description
  if o.is_termination_msg ~= nil and type(o.is_termination_msg) ~= "function" then
    misuse(who, "is_termination_msg must be a function(message) -> boolean")
  end
  self.silent = o.silent

  local cfg = o.llm_config
  if cfg == nil and class.is_instance(self, AssistantAgent) then
    misuse(who, "llm_config is required: an assistant's replies come from a model. Pass llm_config = "
      .. "{ config_list = { { model = \"gpt-4o-mini\", api_key = os.getenv(\"OPENAI_API_KEY\") } } }, or "
      .. "llm_config = false for an assistant that only answers through registered replies")
  end
  if cfg == nil then cfg = false end
  if cfg ~= false and type(cfg) ~= "table" then
    misuse(who, "llm_config must be a table { config_list = { { model = ..., api_key = ... } } } or false")
  end
  -- the agent's own copy: register_for_llm adds tools to it
  self.llm_config = cfg and deep_copy(cfg)
  self.client = cfg and llm.new(self.llm_config) or nil

  if not MODES[o.human_input_mode] then
    misuse(who, "human_input_mode must be \"ALWAYS\", \"TERMINATE\" or \"NEVER\", got %s", tostring(o.human_input_mode))
  end
  self.human_input_mode = o.human_input_mode
  local max = o.max_consecutive_auto_reply
  if max == nil then max = M.MAX_CONSECUTIVE_AUTO_REPLY end
  if math.type(max) ~= "integer" or max < 0 then
    misuse(who, "max_consecutive_auto_reply must be a non-negative integer, got %s", tostring(max))
  end
  if type(o.default_auto_reply) ~= "string" and type(o.default_auto_reply) ~= "table" then
    misuse(who, "default_auto_reply must be a string or a message table")
  end
  if o.get_human_input ~= nil and type(o.get_human_input) ~= "function" then
    misuse(who, "get_human_input must be a function(prompt, agent) -> string")
  end
  if o.on_token ~= nil and type(o.on_token) ~= "function" then
    misuse(who, "on_token must be a function(text, agent, kind)")
  end
  self.on_token = o.on_token
  human_reply.init(self, o, max)
  self.reply_at_receive = {}
  if o.chat_messages ~= nil and type(o.chat_messages) ~= "table" then
    misuse(who, "chat_messages must map agents to message arrays")
  end
  history.init(self, o.chat_messages)
  tools.init(self, who, o.function_map)

  -- Each registration goes to the front, so the chain is tried in the reverse
  -- of this order: termination/human, function call, tool calls, code, LLM.
  reply_chain.init(self, o.default_auto_reply)
  local ANY = reply_chain.ANY
  self:register_reply(ANY, ConversableAgent.generate_oai_reply)
  if code_execution.init(self, who, o.code_execution_config) then
    self:register_reply(ANY, ConversableAgent.generate_code_execution_reply)
  end
  self:register_reply(ANY, ConversableAgent.generate_tool_calls_reply)
  self:register_reply(ANY, ConversableAgent.generate_function_call_reply)
  self:register_reply(ANY, ConversableAgent.check_termination_and_human_reply)
end

--- An agent: AssistantAgent and UserProxyAgent are this class with other
-- defaults. Public fields (AutoGen's): `name`, `system_message`,
-- `description`, `llm_config` (the agent's own copy), `client`
-- (@{agentbox.llm.Client}, nil without a model), `human_input_mode`,
-- `silent`, `reply_at_receive`.
-- @type ConversableAgent

-- The reply chain and the built-in reply functions --------------------------------

--- Add a reply function: `fn(agent, messages, sender, config) -> final, reply`.
-- It goes to the front of the chain (or at `position`); the first final
-- reply wins. The built-in order is AutoGen's: termination and human reply,
-- function call, tool calls, code execution, the model.
-- @function ConversableAgent:register_reply
-- @param trigger which senders it answers: an agent name, an agent, a class
-- (`agentbox.UserProxyAgent`), a `function(sender) -> boolean`, a list of
-- those, or nil (no sender)
-- @tparam function fn the reply function
-- @tparam[opt=1] integer|table position 1-based (1: tried first), or the options by name:
-- `{ position =, config =, reset_config =, remove_other_reply_funcs = }`
-- @param[opt] config passed to fn as its fourth argument (copied; @{ConversableAgent:reset} restores it)
-- @tparam[opt] function reset_config `function(config)` that resets it instead
-- @raise on a bad trigger, function or position
ConversableAgent.register_reply = reply_chain.register_reply
--- Replace a registered reply function by another, in place.
-- @function ConversableAgent:replace_reply_func
-- @tparam function old the registered function
-- @tparam function new its replacement
ConversableAgent.replace_reply_func = reply_chain.replace_reply_func
--- The reply this agent would give.
-- The first final reply of the reply chain, else default_auto_reply.
-- @function ConversableAgent:generate_reply
-- @tparam table args `{ messages = {...}, sender = agent, exclude = { fn, ... } }`:
-- messages default to the history with sender; exclude skips reply functions
-- @treturn string|table|nil the reply (nil: no reply, the conversation stops)
-- @raise when neither messages nor sender is given; a ChatFailure (a table
-- with message and code) for a runtime failure, which initiate_chat turns
-- into its ChatResult
ConversableAgent.generate_reply = reply_chain.generate_reply
--- Built-in reply function: termination, the auto-reply limit and human input.
-- @function ConversableAgent:check_termination_and_human_reply
-- @tparam {table,...} messages the history
-- @tparam ConversableAgent sender the other agent
-- @treturn boolean final
-- @treturn table|nil reply
ConversableAgent.check_termination_and_human_reply = human_reply.check_termination_and_human_reply
--- Built-in reply function: the model's reply (no model: not final).
-- @function ConversableAgent:generate_oai_reply
-- @tparam {table,...} messages the history
-- @tparam ConversableAgent sender the other agent
-- @param[opt] config a client to use instead of the agent's
-- @treturn boolean final
-- @treturn string|table|nil reply
ConversableAgent.generate_oai_reply = model_reply.generate_oai_reply
--- Built-in reply function: run the tool calls of the last message.
-- @function ConversableAgent:generate_tool_calls_reply
-- @tparam {table,...} messages the history
-- @tparam ConversableAgent sender the other agent
-- @treturn boolean final
-- @treturn table|nil reply a role "tool" message with tool_responses
ConversableAgent.generate_tool_calls_reply = tools.tool_calls_reply
--- Built-in reply function: run the deprecated single function_call.
-- @function ConversableAgent:generate_function_call_reply
-- @tparam {table,...} messages the history
-- @tparam ConversableAgent sender the other agent
-- @treturn boolean final
-- @treturn table|nil reply a role "function" message
ConversableAgent.generate_function_call_reply = tools.function_call_reply
--- Built-in reply function: run the code of the newest message that has some
-- (code_execution_config's last_n_messages and max_blocks).
-- @function ConversableAgent:generate_code_execution_reply
-- @tparam {table,...} messages the history
-- @tparam ConversableAgent sender the other agent
-- @treturn boolean final
-- @treturn string|nil reply `exitcode: <n> (execution succeeded|failed)\nCode output: <output>`
ConversableAgent.generate_code_execution_reply = code_execution.reply

-- Human input and the auto-reply limit --------------------------------------------

--- Ask the human (the get_human_input option, else a line from stdin); may yield in a task. Input that ends (`nil, reason` from the option,
-- end of stdin) ends the chat like "exit", recorded as
-- ChatResult.human_input_ended. Override it (`function agent:get_human_input(prompt)`)
-- to ask your own way.
-- @function ConversableAgent:get_human_input
-- @tparam string prompt AutoGen's prompt
-- @treturn string what the human typed ("exit" when input ended)
ConversableAgent.get_human_input = human_reply.get_human_input
--- The auto-reply limit for a sender (or the default).
-- @function ConversableAgent:max_consecutive_auto_reply
-- @tparam[opt] ConversableAgent sender the other agent
-- @treturn integer the limit
ConversableAgent.max_consecutive_auto_reply = human_reply.max_consecutive_auto_reply
--- Change max_consecutive_auto_reply, for one sender or all.
-- @function ConversableAgent:update_max_consecutive_auto_reply
-- @tparam integer n the new limit
-- @tparam[opt] ConversableAgent sender one sender (all when nil)
-- @raise when n is not a non-negative integer
ConversableAgent.update_max_consecutive_auto_reply = human_reply.update_max_consecutive_auto_reply
--- Reset the count of consecutive auto replies, for one sender or all.
-- @function ConversableAgent:reset_consecutive_auto_reply_counter
-- @tparam[opt] ConversableAgent sender one sender (all when nil)
ConversableAgent.reset_consecutive_auto_reply_counter = human_reply.reset_consecutive_auto_reply_counter
--- The count of consecutive auto replies to a sender.
-- @function ConversableAgent:consecutive_auto_reply_count
-- @tparam[opt] ConversableAgent sender the other agent
-- @treturn integer the count
ConversableAgent.consecutive_auto_reply_count = human_reply.consecutive_auto_reply_count

-- History ----------------------------------------------------------------------------

--- The message list with `other`, or every list by agent.
-- An agent never talked to gives an empty list.
-- @function ConversableAgent:chat_messages
-- @tparam[opt] ConversableAgent other the other agent
-- @treturn table `{ message, ... }`, or without other `{ [agent] = messages, ... }`
ConversableAgent.chat_messages = history.messages
--- The last message with `agent`.
-- @function ConversableAgent:last_message
-- @tparam[opt] ConversableAgent agent the other agent (optional when there is one conversation)
-- @treturn table|nil the message, nil when there is no conversation
-- @raise when agent is nil and there are several conversations, or agent is not in one
ConversableAgent.last_message = history.last
--- Forget the conversation with `other` (all of them when nil), keeping the newest `keep`.
-- A fresh list replaces the old one, so an earlier ChatResult keeps its history.
-- @function ConversableAgent:clear_history
-- @tparam[opt] ConversableAgent other the other agent (all when nil)
-- @tparam[opt] integer keep without other: keep the newest `keep` messages of each
ConversableAgent.clear_history = history.clear

--- Stop replying on receive: to one sender, or reset for all.
-- @tparam[opt] ConversableAgent sender the sender (nil: every sender's setting is cleared)
function ConversableAgent:stop_reply_at_receive(sender)
  if sender == nil then self.reply_at_receive = {} else self.reply_at_receive[sender] = false end
end

--- Replace the system message.
-- @tparam string s the new system message
-- @raise when s is not a string
function ConversableAgent:update_system_message(s)
  if type(s) ~= "string" then errors.misuse("update_system_message: expected a string") end
  self.system_message = s
end

--- Clear histories and counters.
-- Also reply_at_receive, the client's usage and the reply functions' configs.
function ConversableAgent:reset()
  self:clear_history()
  self:reset_consecutive_auto_reply_counter()
  self:stop_reply_at_receive()
  if self.client and self.client.reset_usage then self.client:reset_usage() end
  reply_chain.reset(self)
end

-- Conversation -------------------------------------------------------------------

local function check_peer(what, other)
  if not is_agent(other) then
    errors.misuse("%s: expected an agent (ConversableAgent, AssistantAgent, UserProxyAgent), got %s", what,
      tostring(other))
  end
end

--- Send a message (and by default ask for a reply).
-- The recipient's reply is sent back, and so on, until one side has no reply.
-- The conversation runs as a loop at constant stack depth.
-- @tparam string|table message the message (a string, or a table with content,
-- tool_calls or function_call)
-- @tparam ConversableAgent recipient the other agent
-- @tparam[opt] boolean request_reply ask for a reply (nil: the recipient's reply_at_receive)
-- @tparam[opt=false] boolean silent print nothing
-- @raise when recipient is not an agent or the message is invalid
function ConversableAgent:send(message, recipient, request_reply, silent)
  check_peer("send", recipient)
  conversation.converse(self, recipient, message, request_reply, silent or false)
end

-- The sender's side is the sender's business (as in AutoGen): only this
-- agent records the message, then the loop carries on with its reply.

--- Take a message from `sender` (and by default reply to it).
-- @tparam string|table message the message
-- @tparam ConversableAgent sender the sending agent
-- @tparam[opt] boolean request_reply reply to it (nil: reply_at_receive)
-- @tparam[opt=false] boolean silent print nothing
-- @raise when sender is not an agent or the message is invalid
function ConversableAgent:receive(message, sender, request_reply, silent)
  check_peer("receive", sender)
  conversation.converse(sender, self, message, request_reply, silent or false, true)
end

--- Chat with `recipient` until a termination, a turn limit or a human says stop.
-- Blocking outside a task; inside `agentbox.spawn` every wait yields.
-- @tparam ConversableAgent recipient the other agent
-- @tparam[opt] ChatOptions opts message, max_turns, ...
-- @treturn ChatResult the result; a runtime failure in the middle of the chat
-- (the model server, an executor) is in its `error` and `error_code`, the
-- history kept
-- @raise on misuse (a bad option, recipient not an agent); a cancelled task
-- unwinds through it
function ConversableAgent:initiate_chat(recipient, opts)
  return conversation.initiate_chat(self, recipient, opts)
end

-- Tools and code -----------------------------------------------------------------

--- A decorator that gives a tool's schema to this agent's model.
-- The schema goes to the agent's copy of llm_config.tools:
-- `agent:register_for_llm{ name =, description = }(fn)`.
-- @tparam ToolOptions opts name, description, parameters
-- @treturn function the decorator `function(fn) -> fn`
-- @raise on an unknown option; the decorator, on a bad name, a missing
-- description or an agent without llm_config
function ConversableAgent:register_for_llm(opts) return tools.register_for_llm(self, opts) end
--- A decorator that lets this agent run a tool.
-- `agent:register_for_execution()(fn)`.
-- The name defaults to the one register_for_llm was given for fn.
-- @tparam[opt] ToolOptions opts name
-- @treturn function the decorator `function(fn) -> fn`
-- @raise on an unknown option; the decorator, on a missing or bad name
function ConversableAgent:register_for_execution(opts) return tools.register_for_execution(self, opts) end
--- Add tools this agent executes (AutoGen's register_function method).
-- @tparam table map `{ name = function(args) ... end }`; false removes a name
-- @raise on a bad name or value
function ConversableAgent:register_function(map) return tools.register_functions(self, map) end
--- Add, replace (same name) or remove a tool schema in llm_config.tools.
-- @tparam table|string sig `{ type = "function", ["function"] = { name =, description =, parameters = } }`,
-- or the name to remove
-- @tparam[opt] boolean is_remove remove the tool named sig
-- @raise when the agent has no llm_config, or sig is malformed
function ConversableAgent:update_tool_signature(sig, is_remove) return tools.update_tool_signature(self, sig, is_remove) end
--- Run a tool call now.
-- @tparam table func_call `{ name =, arguments = "<json>" }`
-- @treturn boolean whether it succeeded
-- @treturn table `{ name =, role = "function", content = }` (the error text when it failed)
function ConversableAgent:execute_function(func_call) return tools.execute_function(self, func_call) end
--- Whether this agent can run a tool (every one of a list).
-- @function ConversableAgent:can_execute_function
-- @tparam string|{string,...} name the tool name(s)
-- @treturn boolean
ConversableAgent.can_execute_function = tools.can_execute_function
--- The tools this agent executes.
-- @function ConversableAgent:function_map
-- @treturn table `{ [name] = function }`
ConversableAgent.function_map = tools.function_map

--- The agent's executor, or nil without code execution.
-- @function ConversableAgent:code_executor
-- @treturn agentbox.Executor|nil the executor
ConversableAgent.code_executor = code_execution.executor
--- Where code runs: true or an image name in Docker, false locally.
-- @function ConversableAgent:use_docker
-- @treturn boolean|string|nil nil without code execution (or with an executor of your own)
ConversableAgent.use_docker = code_execution.use_docker

--- A class of your own: `local Mine = agentbox.ConversableAgent:extend("Mine", function(opts) ... end)`.
-- `defaults(opts)` fills in options before the parent's defaults; the class
-- is callable like agentbox.ConversableAgent, and a register_reply trigger.
-- @function ConversableAgent:extend
-- @tparam string name the class name
-- @tparam[opt] function defaults `function(opts)` filling in defaults
-- @treturn table the class

function ConversableAgent:__tostring()
  return getmetatable(self).__name .. " '" .. self.name .. "'"
end
AssistantAgent.__tostring = ConversableAgent.__tostring
UserProxyAgent.__tostring = ConversableAgent.__tostring

return M
