-- ConversableAgent, AssistantAgent, UserProxyAgent: AutoGen 0.2's agents.
-- This file is the class: its options, their defaults and checks, and the
-- methods, each handed to the module of its concept:
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
  get_human_input = true })
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

M.ConversableAgent, M.AssistantAgent, M.UserProxyAgent = ConversableAgent, AssistantAgent, UserProxyAgent

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

-- The reply chain and the built-in reply functions --------------------------------

ConversableAgent.register_reply = reply_chain.register_reply
ConversableAgent.replace_reply_func = reply_chain.replace_reply_func
ConversableAgent.generate_reply = reply_chain.generate_reply
ConversableAgent.check_termination_and_human_reply = human_reply.check_termination_and_human_reply
ConversableAgent.generate_oai_reply = model_reply.generate_oai_reply
ConversableAgent.generate_tool_calls_reply = tools.tool_calls_reply
ConversableAgent.generate_function_call_reply = tools.function_call_reply
ConversableAgent.generate_code_execution_reply = code_execution.reply

-- Human input and the auto-reply limit --------------------------------------------

ConversableAgent.get_human_input = human_reply.get_human_input
ConversableAgent.max_consecutive_auto_reply = human_reply.max_consecutive_auto_reply
ConversableAgent.update_max_consecutive_auto_reply = human_reply.update_max_consecutive_auto_reply
ConversableAgent.reset_consecutive_auto_reply_counter = human_reply.reset_consecutive_auto_reply_counter
ConversableAgent.consecutive_auto_reply_count = human_reply.consecutive_auto_reply_count

-- History ----------------------------------------------------------------------------

--- chat_messages(other) -> the message array with `other` (empty when none);
--- chat_messages() -> { [agent] = messages, ... }
ConversableAgent.chat_messages = history.messages
ConversableAgent.last_message = history.last
--- clear_history(other) forgets the conversation with `other`; clear_history()
--- all of them (keeping the newest `keep` messages of each when given).
ConversableAgent.clear_history = history.clear

function ConversableAgent:stop_reply_at_receive(sender)
  if sender == nil then self.reply_at_receive = {} else self.reply_at_receive[sender] = false end
end

function ConversableAgent:update_system_message(s)
  if type(s) ~= "string" then errors.misuse("update_system_message: expected a string") end
  self.system_message = s
end

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

function ConversableAgent:send(message, recipient, request_reply, silent)
  check_peer("send", recipient)
  conversation.converse(self, recipient, message, request_reply, silent or false)
end

-- The sender's side is the sender's business (as in AutoGen): only this
-- agent records the message, then the loop carries on with its reply.
function ConversableAgent:receive(message, sender, request_reply, silent)
  check_peer("receive", sender)
  conversation.converse(sender, self, message, request_reply, silent or false, true)
end

function ConversableAgent:initiate_chat(recipient, opts)
  return conversation.initiate_chat(self, recipient, opts)
end

-- Tools and code -----------------------------------------------------------------

function ConversableAgent:register_for_llm(opts) return tools.register_for_llm(self, opts) end
function ConversableAgent:register_for_execution(opts) return tools.register_for_execution(self, opts) end
function ConversableAgent:register_function(map) return tools.register_functions(self, map) end
function ConversableAgent:update_tool_signature(sig, is_remove) return tools.update_tool_signature(self, sig, is_remove) end
function ConversableAgent:execute_function(func_call) return tools.execute_function(self, func_call) end
ConversableAgent.can_execute_function = tools.can_execute_function
ConversableAgent.function_map = tools.function_map

ConversableAgent.code_executor = code_execution.executor
-- true or an image name when code runs in Docker, false when locally, nil
-- without code execution (or with an explicit executor)
ConversableAgent.use_docker = code_execution.use_docker

function ConversableAgent:__tostring()
  return getmetatable(self).__name .. " '" .. self.name .. "'"
end
AssistantAgent.__tostring = ConversableAgent.__tostring
UserProxyAgent.__tostring = ConversableAgent.__tostring

M.register_function = tools.register_function

return M
