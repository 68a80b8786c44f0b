-- The built-in reply functions of every agent that are not about tools or
-- code: AutoGen's check_termination_and_human_reply (termination, the
-- consecutive auto-reply limit, the three human input modes with AutoGen's
-- prompts), the human input function (stdin by default) and
-- generate_oai_reply (one model call).
local chat = require("agentbox.chat")
local tools = require("agentbox.tools")
local errors = require("agentbox.errors")

local M = {}

-- sender nil is a legal key in AutoGen's per-sender dicts
local NO_SENDER = setmetatable({}, { __tostring = function() return "no sender" end })
local function key(sender) return sender == nil and NO_SENDER or sender end
M.key = key

-- Python's input(): the prompt is written, a line read. When stdin is not
-- a terminal nothing echoes the answer, so the prompt gets its own line. End
-- of input ends the conversation (nil and the reason) instead of raising.
local function stdin_input(prompt)
  chat.print(chat.escape(prompt) .. (require("agentbox.core").isatty(0) and "" or "\n"))
  local line = io.read("l")
  if line == nil then return nil, "end of input" end
  return line
end

--- The agent's input function (the get_human_input option, else a line from
--- stdin) is called as fn(prompt, agent); it may yield inside a task.
function M.get_human_input(self, prompt)
  local fn = self._input_fn or stdin_input
  local reply, ended = fn(prompt, self)
  if reply == nil and type(ended) == "string" then
    -- the human is gone: end the chat as "exit" does, without pretending
    -- they typed it (nothing is recorded, nothing is sent)
    self._input_ended = ended
    chat.print("(human input ended: " .. chat.escape(ended) .. ")\n")
    return "exit"
  end
  if reply == nil then reply = "" elseif type(reply) ~= "string" then reply = tostring(reply) end
  self._human_input[#self._human_input + 1] = reply
  return reply
end

function M.check_termination_and_human_reply(self, messages, sender)
  if messages == nil then messages = sender and self:chat_messages(sender) or {} end
  local message = messages[#messages] or {}
  local reply, no_input = "", false
  local sender_name = sender == nil and "the sender" or sender.name
  local k = key(sender)
  if self.human_input_mode == "ALWAYS" then
    reply = self:get_human_input("Replying as " .. self.name .. ". Provide feedback to " .. sender_name
      .. ". Press enter to skip and use auto-reply, or type 'exit' to end the conversation: ")
    no_input = reply == ""
    -- no input on a termination message ends the conversation
    if reply == "" and self._is_termination_msg(message) then reply = "exit" end
  elseif (self._counter[k] or 0) >= self:max_consecutive_auto_reply(sender) then
    if self.human_input_mode == "NEVER" then
      reply = "exit"
    else
      local terminate = self._is_termination_msg(message)
      reply = self:get_human_input(terminate
        and "Please give feedback to " .. sender_name .. ". Press enter or type 'exit' to stop the conversation: "
        or "Please give feedback to " .. sender_name
          .. ". Press enter to skip and use auto-reply, or type 'exit' to stop the conversation: ")
      no_input = reply == ""
      if reply == "" and terminate then reply = "exit" end
    end
  elseif self._is_termination_msg(message) then
    if self.human_input_mode == "NEVER" then
      reply = "exit"
    else
      reply = self:get_human_input("Please give feedback to " .. sender_name
        .. ". Press enter or type 'exit' to stop the conversation: ")
      no_input = reply == ""
      if reply == "" then reply = "exit" end
    end
  end
  if no_input then chat.info(self, "\n>>>>>>>> NO HUMAN INPUT RECEIVED.") end

  if reply == "exit" then
    self._counter[k] = 0
    return true, nil
  end
  if reply ~= "" or self:max_consecutive_auto_reply(sender) == 0 then
    self._counter[k] = 0
    -- a human answer replaces pending tool results
    local returns = {}
    if type(message.function_call) == "table" then
      returns[#returns + 1] = { role = "function", name = message.function_call.name or "", content = "USER INTERRUPTED" }
    end
    if type(message.tool_calls) == "table" then
      for _, call in ipairs(message.tool_calls) do
        returns[#returns + 1] = { role = "tool", tool_call_id = call.id or "", content = "USER INTERRUPTED" }
      end
    end
    local response = { role = "user", content = reply }
    if #returns > 0 then response.tool_responses = returns end
    return true, response
  end
  self._counter[k] = (self._counter[k] or 0) + 1
  if self.human_input_mode ~= "NEVER" then chat.info(self, "\n>>>>>>>> USING AUTO REPLY...") end
  return false, nil
end

-- The messages as the model must see them: AutoGen keeps several tool
-- results in one role "tool" wrapper (tool_responses); the wire format wants
-- one role "tool" message per tool_call_id.
local function unroll(messages)
  local all = {}
  for _, m in ipairs(messages) do
    local trs = m.tool_responses
    if type(trs) == "table" and #trs > 0 then
      for _, r in ipairs(trs) do all[#all + 1] = r end
      if m.role ~= "tool" then
        local copy = {}
        for k, v in pairs(m) do if k ~= "tool_responses" then copy[k] = v end end
        all[#all + 1] = copy
      end
    else
      all[#all + 1] = m
    end
  end
  return all
end

-- One model call; returns the reply as AutoGen extracts it: the text, or
-- the message table when it carries tool calls, or nil.
function M.reply_from_client(self, client, messages)
  local tl = self.llm_config and self.llm_config.tools
  if type(tl) ~= "table" or #tl == 0 then tl = nil end
  local msg, err, code = client:create{ messages = unroll(messages), tools = tl }
  if msg == nil and err ~= nil then errors.raise(errors.CODES[code] and code or "error", tostring(err)) end
  if type(msg) ~= "table" then return nil end
  local calls = type(msg.tool_calls) == "table" and #msg.tool_calls > 0
  if calls or type(msg.function_call) == "table" then
    -- a name the model mangled must not break the next request
    for _, call in ipairs(calls and msg.tool_calls or {}) do
      if type(call["function"]) == "table" and call["function"].name then
        call["function"].name = tools.normalize_name(call["function"].name)
      end
    end
    if type(msg.function_call) == "table" and msg.function_call.name then
      msg.function_call.name = tools.normalize_name(msg.function_call.name)
    end
    return { role = "assistant", content = msg.content, tool_calls = calls and msg.tool_calls or nil,
             function_call = msg.function_call }
  end
  return msg.content
end

function M.generate_oai_reply(self, messages, sender, config)
  local client = config or self.client
  if not client then return false, nil end
  if messages == nil then messages = self:chat_messages(sender) end
  local all = { { role = "system", content = self.system_message } }
  for i = 1, #messages do all[i + 1] = messages[i] end
  local reply = M.reply_from_client(self, client, all)
  if reply == nil then return false, nil end
  return true, reply
end

return M
