-- The model's reply (AutoGen's generate_oai_reply): one call to the agent's
-- client with the system message and the conversation, the reply taken out
-- as AutoGen does. A model server that fails ends the chat with what was
-- said so far (a ChatFailure, agent/failure.lua), never a raw error.
local tools = require("agentbox.agent.tools")
local failure = require("agentbox.agent.failure")
local errors = require("agentbox.errors")
local transcript = require("agentbox.transcript")

local M = {}

-- llm.lua returns nil, message, code; a client of the host's own may raise
-- instead, and then the code is read from its message (doc/errors.md).
local function failure_code(msg)
  msg = tostring(msg)
  if msg:find("timed out", 1, true) then return "timeout" end
  if msg:find("returned HTTP %d") then return "http" end
  if msg:find("not a chat completion", 1, true) or msg:find("max_reply_bytes", 1, true) then return "protocol" end
  if msg:find("connect", 1, true) or msg:find("resolve", 1, true) then return "unreachable" end
  return "transport"
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

-- Where the reply's text goes as it arrives: the agent's on_token, else
-- (a streamed reply) the transcript when it shows on a terminal. Returns
-- the hook, what to call when the call is over, and where a raising hook's
-- error is kept: the host's bug, raised as it is, not a model failure.
function M.token_sink(self, client)
  if self.on_token then
    local hook, box = self.on_token, {}
    return function(text, kind)
      local ok, err = pcall(hook, text, self, kind)
      if not ok then
        box.raised = true
        box.err = err
        error(err, 0)
      end
    end, nil, box
  end
  if client.stream then return transcript.stream_sink(self) end
end

-- One model call; returns the reply as AutoGen extracts it: the text, or
-- the message table when it carries tool calls, or nil.
function M.reply_from_client(self, client, messages)
  local tl = self.llm_config and self.llm_config.tools
  if type(tl) ~= "table" or #tl == 0 then tl = nil end
  local on_token, stop, hook = M.token_sink(self, client)
  local ok, msg, err, code = pcall(client.create, client, { messages = unroll(messages), tools = tl,
                                                             on_token = on_token })
  if stop then stop() end
  if hook and hook.raised then error(hook.err, 0) end
  if not ok then
    if failure.is(msg) or failure.is_cancel(msg) then error(msg, 0) end
    failure.raise(failure_code(msg), "%s: %s", self.name, tostring(msg))
  end
  -- the convention's form (nil, message, code), should the client return it
  if msg == nil and err ~= nil then
    failure.raise(errors.CODES[code] and code or failure_code(err), "%s: %s", self.name, tostring(err))
  end
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
