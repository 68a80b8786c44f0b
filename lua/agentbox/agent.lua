-- ConversableAgent, AssistantAgent, UserProxyAgent: AutoGen 0.2's agents.
-- Classes, construction, the reply chain and the history live here; the
-- built-in termination/human and model replies in replies.lua; the
-- send/receive loop and printing in chat.lua; tools in tools.lua; code
-- execution in codeexec.lua.
local llm = require("agentbox.llm")
local chat = require("agentbox.chat")
local tools = require("agentbox.tools")
local codeexec = require("agentbox.codeexec")
local replies = require("agentbox.replies")
local class = require("agentbox.class")

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
local is_class, is_agent, is_instance = class.is_class, class.is_agent, class.is_instance
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

-- register_reply's config is copied, so reset() can restore the original (AutoGen's copy.copy)
local function shallow_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = x end
  return t
end

local MODES = { ALWAYS = true, TERMINATE = true, NEVER = true }

local key = replies.key

local function default_is_termination_msg(msg)
  return chat.content_str(msg.content) == "TERMINATE"
end

-- The built-in trigger: every sender, including none (AutoGen's [Agent, None]).
local ANY = setmetatable({}, { __tostring = function() return "any sender" end })

function ConversableAgent:_init(o)
  local who = getmetatable(self).__name
  if type(o.name) ~= "string" or o.name == "" then
    error(who .. ": 'name' must be a non-empty string", 4)
  end
  self.name = o.name
  who = who .. " '" .. o.name .. "'"
  if type(o.system_message) ~= "string" and type(o.system_message) ~= "table" then
    error(who .. ": system_message must be a string", 4)
  end
  self.system_message = o.system_message
  self.description = o.description
  if o.is_termination_msg ~= nil and type(o.is_termination_msg) ~= "function" then
    error(who .. ": is_termination_msg must be a function(message) -> boolean", 4)
  end
  self._is_termination_msg = o.is_termination_msg or default_is_termination_msg
  self.silent = o.silent

  local cfg = o.llm_config
  if cfg == nil then cfg = false end
  if cfg ~= false and type(cfg) ~= "table" then
    error(who .. ": llm_config must be a table { config_list = { { model = ..., api_key = ... } } } or false", 4)
  end
  -- the agent's own copy: register_for_llm adds tools to it
  self.llm_config = cfg and deep_copy(cfg)
  self.client = cfg and llm.new(self.llm_config) or nil

  if not MODES[o.human_input_mode] then
    error(who .. ": human_input_mode must be \"ALWAYS\", \"TERMINATE\" or \"NEVER\", got "
      .. tostring(o.human_input_mode), 4)
  end
  self.human_input_mode = o.human_input_mode
  local max = o.max_consecutive_auto_reply
  if max == nil then max = M.MAX_CONSECUTIVE_AUTO_REPLY end
  if math.type(max) ~= "integer" or max < 0 then
    error(who .. ": max_consecutive_auto_reply must be a non-negative integer, got " .. tostring(max), 4)
  end
  self._max_consecutive_auto_reply = max
  self._max_dict = {}
  self._counter = {}
  if type(o.default_auto_reply) ~= "string" and type(o.default_auto_reply) ~= "table" then
    error(who .. ": default_auto_reply must be a string or a message table", 4)
  end
  self._default_auto_reply = o.default_auto_reply
  if o.get_human_input ~= nil and type(o.get_human_input) ~= "function" then
    error(who .. ": get_human_input must be a function(prompt, agent) -> string", 4)
  end
  self._input_fn = o.get_human_input
  self._human_input = {}
  self.reply_at_receive = {}
  self._quiet = 0
  self._oai_messages = {}
  if o.chat_messages ~= nil then
    if type(o.chat_messages) ~= "table" then error(who .. ": chat_messages must map agents to message arrays", 4) end
    for ag, list in pairs(o.chat_messages) do self._oai_messages[ag] = list end
  end
  self._function_map = {}
  if o.function_map ~= nil then
    if type(o.function_map) ~= "table" then error(who .. ": function_map must map names to functions", 4) end
    for name, fn in pairs(o.function_map) do
      tools.assert_valid_name(name, 5)
      if type(fn) ~= "function" then error(who .. ": function_map[" .. tostring(name) .. "] must be a function", 4) end
      self._function_map[name] = fn
    end
  end

  -- Each registration goes to the front, so the chain is tried in the reverse
  -- of this order: termination/human, function call, tool calls, code, LLM.
  self._reply_funcs = {}
  self:register_reply(ANY, ConversableAgent.generate_oai_reply)
  self._code_execution_config, self._code_executor = codeexec.configure(who, o.code_execution_config)
  if self._code_execution_config then
    self:register_reply(ANY, ConversableAgent.generate_code_execution_reply)
  end
  self:register_reply(ANY, ConversableAgent.generate_tool_calls_reply)
  self:register_reply(ANY, ConversableAgent.generate_function_call_reply)
  self:register_reply(ANY, ConversableAgent.check_termination_and_human_reply)
end

-- Reply functions --------------------------------------------------------------

local function valid_trigger(t)
  if t == nil or t == ANY or type(t) == "string" or type(t) == "function" or is_class(t) or is_agent(t) then
    return true
  end
  local mt = type(t) == "table" and getmetatable(t)
  if mt and mt.__call then return true end
  if type(t) ~= "table" or #t == 0 then return false end
  for _, x in ipairs(t) do
    if not valid_trigger(x) then return false end
  end
  return true
end

--- register_reply(trigger, fn, position = 1, config, reset_config), or
--- register_reply(trigger, fn, { position =, config =, reset_config =, remove_other_reply_funcs = })
--- fn(agent, messages, sender, config) -> final, reply. Position is 1-based;
--- the default puts the function first, so the newest registration wins.
function ConversableAgent:register_reply(trigger, fn, position, config, reset_config)
  if not valid_trigger(trigger) then
    error("register_reply: trigger must be nil, an agent name, an agent, an agent class, a function(sender) "
      .. "-> boolean or a list of these; got " .. tostring(trigger), 2)
  end
  local fmt = type(fn) == "table" and getmetatable(fn)
  if type(fn) ~= "function" and not (fmt and fmt.__call) then
    error("register_reply: the reply function must be a function(agent, messages, sender, config) -> final, reply", 2)
  end
  local opts = type(position) == "table" and position or { position = position, config = config,
                                                           reset_config = reset_config }
  local pos = opts.position or 1
  if math.type(pos) ~= "integer" or pos < 1 then
    error("register_reply: position must be a positive integer (1 = tried first)", 2)
  end
  if opts.remove_other_reply_funcs then self._reply_funcs = {} end
  pos = math.min(pos, #self._reply_funcs + 1)
  table.insert(self._reply_funcs, pos, { trigger = trigger, fn = fn, config = shallow_copy(opts.config),
                                          init_config = opts.config, reset_config = opts.reset_config })
end

function ConversableAgent:replace_reply_func(old, new)
  for _, rf in ipairs(self._reply_funcs) do
    if rf.fn == old then rf.fn = new end
  end
end

local function match_trigger(trigger, sender)
  if trigger == ANY then return true end
  if trigger == nil then return sender == nil end
  if type(trigger) == "string" then return sender ~= nil and sender.name == trigger end
  if is_class(trigger) then return is_instance(sender, trigger) end
  if is_agent(trigger) then return trigger == sender end
  if type(trigger) == "function" or (getmetatable(trigger) or {}).__call then
    local r = trigger(sender)
    if type(r) ~= "boolean" then error("register_reply: trigger function must return a boolean, got " .. type(r), 0) end
    return r
  end
  for _, t in ipairs(trigger) do
    if match_trigger(t, sender) then return true end
  end
  return false
end

--- generate_reply{ messages =, sender =, exclude = { fn, ... } }
function ConversableAgent:generate_reply(args)
  args = args or {}
  local messages, sender = args.messages, args.sender
  if messages == nil and sender == nil then
    error("generate_reply: give messages = {...} or sender = agent (or both)", 2)
  end
  if messages == nil then messages = self:chat_messages(sender) end
  local excluded = {}
  for _, f in ipairs(args.exclude or {}) do excluded[f] = true end
  for _, rf in ipairs(self._reply_funcs) do
    if not excluded[rf.fn] and match_trigger(rf.trigger, sender) then
      local final, reply = rf.fn(self, messages, sender, rf.config)
      if final then return reply end
    end
  end
  return self._default_auto_reply
end

ConversableAgent.check_termination_and_human_reply = replies.check_termination_and_human_reply
ConversableAgent.generate_oai_reply = replies.generate_oai_reply
ConversableAgent._reply_from_client = replies.reply_from_client
ConversableAgent.generate_tool_calls_reply = tools.tool_calls_reply
ConversableAgent.generate_function_call_reply = tools.function_call_reply
ConversableAgent.generate_code_execution_reply = codeexec.reply

-- Human input: replies.lua (the input function, stdin, end of input)
ConversableAgent.get_human_input = replies.get_human_input

-- History and counters -----------------------------------------------------------

local KEEP = { "content", "function_call", "tool_calls", "tool_responses", "tool_call_id", "name", "context" }

-- Append a message to the conversation with `conv` as AutoGen does: only
-- the ChatCompletion fields, role from the direction unless function/tool,
-- calls force "assistant", a name added otherwise. False when invalid.
function ConversableAgent:_append_oai_message(message, role, conv, is_sending)
  if type(message) == "string" then
    message = { content = message }
  elseif type(message) ~= "table" then
    return false
  end
  local m = {}
  for _, k in ipairs(KEEP) do
    if message[k] ~= nil then m[k] = message[k] end
  end
  if m.content == nil and m.function_call == nil and m.tool_calls == nil then return false end
  if message.role == "function" or message.role == "tool" then
    m.role = message.role
  elseif message.override_role ~= nil then
    m.role = message.override_role
  else
    m.role = role
  end
  if m.function_call or (type(m.tool_calls) == "table" and #m.tool_calls > 0) then
    m.role = "assistant"
  elseif m.name == nil then
    m.name = is_sending and self.name or conv.name
  end
  local list = self._oai_messages[conv]
  if not list then
    list = {}
    self._oai_messages[conv] = list
  end
  list[#list + 1] = m
  return true
end

--- chat_messages(other) -> the message array with `other` (empty when none);
--- chat_messages() -> { [agent] = messages, ... }
function ConversableAgent:chat_messages(other)
  if other == nil then return self._oai_messages end
  return self._oai_messages[other] or {}
end

function ConversableAgent:last_message(agent)
  if agent == nil then
    local only, n = nil, 0
    for _, list in pairs(self._oai_messages) do only, n = list, n + 1 end
    if n == 0 then return nil end
    if n == 1 then return only[#only] end
    error("last_message: more than one conversation is found; pass the agent whose last message you want", 2)
  end
  local list = self._oai_messages[agent]
  if not list then
    error("last_message: the agent '" .. tostring(agent.name) .. "' is not present in any conversation "
      .. "of '" .. self.name .. "'. No history available for this agent.", 2)
  end
  return list[#list]
end

--- clear_history(other) forgets the conversation with `other`; clear_history()
--- all of them (keeping the newest `keep` messages of each when given). A
--- fresh array replaces the old one, so an earlier ChatResult keeps its history.
function ConversableAgent:clear_history(other, keep)
  if other ~= nil then
    self._oai_messages[other] = {}
    return
  end
  if not keep or keep <= 0 then
    self._oai_messages = {}
    return
  end
  for ag, list in pairs(self._oai_messages) do
    local n = keep
    -- never separate tool results from the call they answer
    local first = list[#list - n + 1]
    if first and first.tool_responses then n = n + 1 end
    local kept = {}
    for i = math.max(1, #list - n + 1), #list do kept[#kept + 1] = list[i] end
    self._oai_messages[ag] = kept
  end
end

function ConversableAgent:max_consecutive_auto_reply(sender)
  if sender == nil then return self._max_consecutive_auto_reply end
  return self._max_dict[sender] or self._max_consecutive_auto_reply
end

function ConversableAgent:update_max_consecutive_auto_reply(value, sender)
  if math.type(value) ~= "integer" or value < 0 then
    error("update_max_consecutive_auto_reply: value must be a non-negative integer", 2)
  end
  if sender == nil then
    self._max_consecutive_auto_reply = value
    for s in pairs(self._max_dict) do self._max_dict[s] = value end
  else
    self._max_dict[sender] = value
  end
end

function ConversableAgent:reset_consecutive_auto_reply_counter(sender)
  if sender == nil then self._counter = {} else self._counter[key(sender)] = 0 end
end

function ConversableAgent:consecutive_auto_reply_count(sender)
  return self._counter[key(sender)] or 0
end

function ConversableAgent:stop_reply_at_receive(sender)
  if sender == nil then self.reply_at_receive = {} else self.reply_at_receive[sender] = false end
end

function ConversableAgent:update_system_message(s)
  if type(s) ~= "string" then error("update_system_message: expected a string", 2) end
  self.system_message = s
end

function ConversableAgent:reset()
  self:clear_history()
  self:reset_consecutive_auto_reply_counter()
  self:stop_reply_at_receive()
  if self.client and self.client.reset_usage then self.client:reset_usage() end
  for _, rf in ipairs(self._reply_funcs) do
    if rf.reset_config then rf.reset_config(rf.config) else rf.config = shallow_copy(rf.init_config) end
  end
end

function ConversableAgent:_prepare_chat(recipient, clear, prepare_recipient, reply_at_receive)
  self:reset_consecutive_auto_reply_counter(recipient)
  self.reply_at_receive[recipient] = reply_at_receive
  self._input_ended = nil
  if clear then
    self:clear_history(recipient)
    self._human_input = {}
  end
  if prepare_recipient then recipient:_prepare_chat(self, clear, false, reply_at_receive) end
end

-- Conversation -------------------------------------------------------------------

local function check_peer(what, other)
  if not is_agent(other) then
    error(what .. ": expected an agent (ConversableAgent, AssistantAgent, UserProxyAgent), got " .. tostring(other), 3)
  end
end

function ConversableAgent:send(message, recipient, request_reply, silent)
  check_peer("send", recipient)
  chat.converse(self, recipient, message, request_reply, silent or false)
end

-- The sender's side is the sender's business (as in AutoGen): only this
-- agent records the message, then the loop carries on with its reply.
function ConversableAgent:receive(message, sender, request_reply, silent)
  check_peer("receive", sender)
  chat.converse(sender, self, message, request_reply, silent or false, true)
end

function ConversableAgent:initiate_chat(recipient, opts)
  return chat.initiate_chat(self, recipient, opts)
end

-- Tools and code -----------------------------------------------------------------

function ConversableAgent:register_for_llm(opts) return tools.register_for_llm(self, opts) end
function ConversableAgent:register_for_execution(opts) return tools.register_for_execution(self, opts) end
function ConversableAgent:register_function(map) return tools.register_functions(self, map) end
function ConversableAgent:update_tool_signature(sig, is_remove) return tools.update_tool_signature(self, sig, is_remove) end
function ConversableAgent:execute_function(func_call) return tools.execute_function(self, func_call) end
function ConversableAgent:can_execute_function(name)
  local names = type(name) == "table" and name or { name }
  for _, n in ipairs(names) do
    if not self._function_map[n] then return false end
  end
  return true
end
function ConversableAgent:function_map() return self._function_map end

function ConversableAgent:code_executor() return self._code_executor end
-- true or an image name when code runs in Docker, false when locally, nil
-- without code execution (or with an explicit executor)
function ConversableAgent:use_docker()
  if not self._code_execution_config then return nil end
  return self._code_execution_config.use_docker
end

function ConversableAgent:__tostring()
  return getmetatable(self).__name .. " '" .. self.name .. "'"
end
AssistantAgent.__tostring = ConversableAgent.__tostring
UserProxyAgent.__tostring = ConversableAgent.__tostring

M.register_function = tools.register_function

return M
