-- AutoGen's check_termination_and_human_reply: the termination predicate,
-- the consecutive auto-reply limit (counted per sender), the three human
-- input modes with AutoGen's prompts, and the human input function (stdin
-- by default). Its per-agent state lives here, keyed by agent; the class
-- and the conversation reach it through the functions below.
local transcript = require("agentbox.transcript")
local errors = require("agentbox.errors")

local M = {}

-- agent -> { is_termination_msg, max, max_by_sender, counter, input_fn,
--            typed (what the human typed), ended (why input ended) }
local states = setmetatable({}, { __mode = "k" })

-- sender nil is a legal key in AutoGen's per-sender dicts
local NO_SENDER = setmetatable({}, { __tostring = function() return "no sender" end })
local function key(sender) return sender == nil and NO_SENDER or sender end

-- Python's input(): the prompt is written, a line read. When stdin is not
-- a terminal nothing echoes the answer, so the prompt gets its own line. End
-- of input ends the conversation (nil and the reason) instead of raising.
local function stdin_input(prompt)
  transcript.print(transcript.escape(prompt) .. (require("agentbox.core").isatty(0) and "" or "\n"))
  local line = io.read("l")
  if line == nil then return nil, "end of input" end
  return line
end

--- The agent's input function (the get_human_input option, else a line from
--- stdin) is called as fn(prompt, agent); it may yield inside a task.
function M.get_human_input(self, prompt)
  local st = states[self]
  local fn = st.input_fn or stdin_input
  local reply, ended = fn(prompt, self)
  if reply == nil and type(ended) == "string" then
    -- the human is gone: end the chat as "exit" does, without pretending
    -- they typed it (nothing is recorded, nothing is sent)
    st.ended = ended
    transcript.print("(human input ended: " .. transcript.escape(ended) .. ")\n")
    return "exit"
  end
  if reply == nil then reply = "" elseif type(reply) ~= "string" then reply = tostring(reply) end
  st.typed[#st.typed + 1] = reply
  return reply
end

function M.check_termination_and_human_reply(self, messages, sender)
  if messages == nil then messages = sender and self:chat_messages(sender) or {} end
  local message = messages[#messages] or {}
  local reply, no_input = "", false
  local sender_name = sender == nil and "the sender" or sender.name
  local k = key(sender)
  local st = states[self]
  if self.human_input_mode == "ALWAYS" then
    reply = self:get_human_input("Replying as " .. self.name .. ". Provide feedback to " .. sender_name
      .. ". Press enter to skip and use auto-reply, or type 'exit' to end the conversation: ")
    no_input = reply == ""
    -- no input on a termination message ends the conversation
    if reply == "" and st.is_termination_msg(message) then reply = "exit" end
  elseif (st.counter[k] or 0) >= self:max_consecutive_auto_reply(sender) then
    if self.human_input_mode == "NEVER" then
      reply = "exit"
    else
      local terminate = st.is_termination_msg(message)
      reply = self:get_human_input(terminate
        and "Please give feedback to " .. sender_name .. ". Press enter or type 'exit' to stop the conversation: "
        or "Please give feedback to " .. sender_name
          .. ". Press enter to skip and use auto-reply, or type 'exit' to stop the conversation: ")
      no_input = reply == ""
      if reply == "" and terminate then reply = "exit" end
    end
  elseif st.is_termination_msg(message) then
    if self.human_input_mode == "NEVER" then
      reply = "exit"
    else
      reply = self:get_human_input("Please give feedback to " .. sender_name
        .. ". Press enter or type 'exit' to stop the conversation: ")
      no_input = reply == ""
      if reply == "" then reply = "exit" end
    end
  end
  if no_input then transcript.info(self, "\n>>>>>>>> NO HUMAN INPUT RECEIVED.") end

  if reply == "exit" then
    st.counter[k] = 0
    return true, nil
  end
  if reply ~= "" or self:max_consecutive_auto_reply(sender) == 0 then
    st.counter[k] = 0
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
  st.counter[k] = (st.counter[k] or 0) + 1
  if self.human_input_mode ~= "NEVER" then transcript.info(self, "\n>>>>>>>> USING AUTO REPLY...") end
  return false, nil
end


-- Construction and the state the class and the conversation reach -----------

local function default_is_termination_msg(msg)
  return require("agentbox.content").str(msg.content) == "TERMINATE"
end

function M.init(agent, o, max)
  states[agent] = { is_termination_msg = o.is_termination_msg or default_is_termination_msg,
                    max = max, max_by_sender = {}, counter = {}, input_fn = o.get_human_input, typed = {} }
end

--- A new chat: input has not ended; clear forgets what the human typed.
function M.begin_chat(agent, peer, clear)
  local st = states[agent]
  st.counter[key(peer)] = 0
  st.ended = nil
  if clear then st.typed = {} end
end

--- What the human typed in this chat (ChatResult.human_input), and why
--- their input ended the chat (nil when it did not).
function M.typed(agent) return states[agent].typed end
function M.ended(agent) return states[agent].ended end

-- The methods of the same names (AutoGen's) ----------------------------------

function M.max_consecutive_auto_reply(self, sender)
  local st = states[self]
  if sender == nil then return st.max end
  return st.max_by_sender[sender] or st.max
end

function M.update_max_consecutive_auto_reply(self, value, sender)
  if math.type(value) ~= "integer" or value < 0 then
    errors.misuse("update_max_consecutive_auto_reply: value must be a non-negative integer")
  end
  local st = states[self]
  if sender == nil then
    st.max = value
    for s in pairs(st.max_by_sender) do st.max_by_sender[s] = value end
  else
    st.max_by_sender[sender] = value
  end
end

function M.reset_consecutive_auto_reply_counter(self, sender)
  local st = states[self]
  if sender == nil then st.counter = {} else st.counter[key(sender)] = 0 end
end

function M.consecutive_auto_reply_count(self, sender)
  return states[self].counter[key(sender)] or 0
end

return M
