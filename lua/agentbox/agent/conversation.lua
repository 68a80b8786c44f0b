-- The conversation itself: the send/receive loop, initiate_chat, its
-- summaries and the ChatResult (the transcript it prints: transcript.lua).
--
-- AutoGen 0.2 recurses (send -> receive -> generate_reply -> send ...), so its
-- stack grows with every message. Here the same hand-offs are the iterations
-- of one loop (converse), which keeps a 10,000-turn chat at constant depth in
-- both the Lua and the C stack. Nothing here wraps user callbacks in C
-- functions that block yields, so get_human_input, tools and the model client
-- may yield when the chat runs inside an agentbox task.
-- A runtime failure in the middle of a chat (agent/failure.lua) ends it
-- with a ChatResult that keeps the history so far, plus error and
-- error_code; a misuse or a bug still raises.
local llm = require("agentbox.llm")
local errors = require("agentbox.errors")
local transcript = require("agentbox.transcript")
local content_str = require("agentbox.content").str
local history = require("agentbox.agent.history")
local human_reply = require("agentbox.agent.human_reply")
local model_reply = require("agentbox.agent.model_reply")
local failure = require("agentbox.agent.failure")
local code_execution = require("agentbox.agent.code_execution")

local M = {}

local INVALID_SEND = "Message can't be converted into a valid ChatCompletion message. "
  .. "Either content, function_call or tool_calls must be provided."

--- The loop that replaces AutoGen's send/receive recursion. Starting with
--- `sender` handing `message` to `recipient` (already recorded on the
--- sender's side when `received` is true), each iteration records the
--- message on both sides, prints it, asks the recipient for a reply and, if
--- there is one, swaps the roles.
function M.converse(sender, recipient, message, request_reply, silent, received)
  local _ <close> = transcript.quiet_scope(silent, sender, recipient)
  while true do
    if not received and not history.append(sender, message, "assistant", recipient, true) then
      errors.misuse("%s (sending from %s to %s)", INVALID_SEND, sender.name, recipient.name)
    end
    received = false
    if not history.append(recipient, message, "user", sender, false) then
      errors.misuse("Received message can't be converted into a valid ChatCompletion message. "
        .. "Either content, function_call or tool_calls must be provided.")
    end
    if not transcript.is_silent(sender, silent) then transcript.print_received(recipient, message, sender) end
    if request_reply == false or (request_reply == nil and not recipient.reply_at_receive[sender]) then
      return
    end
    local reply = recipient:generate_reply{ messages = recipient:chat_messages(sender), sender = sender }
    if reply == nil then return end
    sender, recipient, message, request_reply = recipient, sender, reply, nil
  end
end

-- Summaries ------------------------------------------------------------------

M.DEFAULT_SUMMARY_PROMPT = "Summarize the takeaway from the conversation. Do not add any introductory phrases."

local function last_msg_summary(sender, recipient)
  local ok, msg = pcall(recipient.last_message, recipient, sender)
  if not ok or type(msg) ~= "table" then return "" end
  local content = msg.content
  if type(content) == "string" then
    return (content:gsub("TERMINATE", ""))
  elseif type(content) == "table" then
    local parts = {}
    for _, p in ipairs(content) do
      if type(p) == "table" and p.text ~= nil then parts[#parts + 1] = (tostring(p.text):gsub("TERMINATE", "")) end
    end
    return table.concat(parts, "\n")
  end
  return ""
end

local function reflection_summary(sender, recipient, args)
  local prompt = args.summary_prompt
  if prompt == nil then prompt = M.DEFAULT_SUMMARY_PROMPT end
  if type(prompt) ~= "string" then errors.misuse("%s", "initiate_chat: summary_args.summary_prompt must be a string") end
  local role = args.summary_role
  if role ~= nil and type(role) ~= "string" then
    errors.misuse("%s", "initiate_chat: summary_args.summary_role must be a string such as \"system\" or \"user\"")
  end
  local client = recipient.client or sender.client
  if not client then
    errors.misuse("%s", "initiate_chat: summary_method \"reflection_with_llm\" needs an llm_config on the recipient ("
      .. recipient.name .. ") or the sender (" .. sender.name .. ")")
  end
  local msgs = {}
  for i, m in ipairs(recipient:chat_messages(sender)) do msgs[i] = m end
  msgs[#msgs + 1] = { role = role or "system", content = prompt }
  -- AutoGen keeps the chat when only the summary fails: warn, summary "".
  local ok, reply = pcall(model_reply.reply_from_client, sender, client, msgs)
  if not ok then
    transcript.info(sender, "Cannot extract summary using reflection_with_llm: " .. tostring(reply)
      .. ". Using an empty str as summary.", "yellow")
    return "", tostring(reply)
  end
  if type(reply) == "table" then reply = reply.content end
  return content_str(reply)
end

local function summarize(sender, recipient, method, args)
  if method == false then return "" end
  if method == nil or method == "last_msg" then return last_msg_summary(sender, recipient) end
  if method == "reflection_with_llm" then return reflection_summary(sender, recipient, args) end
  if type(method) == "function" then
    local s = method(sender, recipient, args)
    if s == nil then return "" end
    return type(s) == "string" and s or tostring(s)
  end
  errors.misuse("%s", "initiate_chat: summary_method must be \"last_msg\", \"reflection_with_llm\", a function"
    .. "(sender, recipient, summary_args) or false, got " .. tostring(method))
end

-- ChatResult.cost: both agents' client usage merged (AutoGen's
-- gather_usage_summary; like AutoGen it counts since each client was made).
local function gather_usage(a, b)
  local list = {}
  if a.client then list[#list + 1] = a.client:usage() end
  if b ~= a and b.client then list[#list + 1] = b.client:usage() end
  return llm.merge_usage(list)
end

-- initiate_chat ---------------------------------------------------------------

local KNOWN = { message = true, max_turns = true, clear_history = true, summary_method = true,
                summary_args = true, silent = true, carryover = true }

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    errors.misuse("%s", "initiate_chat: options must be a table such as { message = \"...\", max_turns = 3 }")
  end
  for k in pairs(opts) do
    if not KNOWN[k] then
      local names = {}
      for n in pairs(KNOWN) do names[#names + 1] = n end
      table.sort(names)
      errors.misuse("%s", ("initiate_chat: unknown option '%s' (known: %s)"):format(tostring(k), table.concat(names, ", ")))
    end
  end
  local mt = opts.max_turns
  if mt ~= nil and (math.type(mt) ~= "integer" or mt < 0) then
    errors.misuse("%s", "initiate_chat: max_turns must be a non-negative integer or nil (no limit), got " .. tostring(mt))
  end
  if opts.summary_args ~= nil and type(opts.summary_args) ~= "table" then
    errors.misuse("%s", "initiate_chat: summary_args must be a table such as { summary_prompt = \"...\" }")
  end
  return opts
end

local function with_carryover(message, carryover)
  if carryover == nil or carryover == "" or (type(carryover) == "table" and #carryover == 0) then return message end
  local text
  if type(carryover) == "string" then
    text = carryover
  elseif type(carryover) == "table" then
    local items = {}
    for i, c in ipairs(carryover) do
      items[i] = type(c) == "table" and content_str(c.content) or tostring(c)
    end
    text = table.concat(items, "\n")
  else
    errors.misuse("%s", "initiate_chat: carryover must be a string or an array of strings")
  end
  if type(message) == "string" then return message .. "\nContext: \n" .. text end
  if type(message) == "table" and type(message.content) == "string" then
    local copy = {}
    for k, v in pairs(message) do copy[k] = v end
    copy.content = message.content .. "\nContext: \n" .. text
    return copy
  end
  return message
end

local function first_message(sender, recipient, opts)
  local m = opts.message
  if type(m) == "function" then return m(sender, recipient, opts) end
  if m == nil then
    m = sender:get_human_input(">")
    if human_reply.ended(sender) then return nil end     -- never send the "exit" it stands for
  end
  if type(m) ~= "string" and type(m) ~= "table" then
    errors.misuse("%s", "initiate_chat: message must be a string, a message table or a function(sender, recipient, context)")
  end
  return with_carryover(m, opts.carryover)
end

-- AutoGen's _prepare_chat, on one side: counters, reply_at_receive, and
-- (clear) the history with the peer and what the human typed.
local function prepare(agent, peer, clear, reply_at_receive)
  agent.reply_at_receive[peer] = reply_at_receive
  human_reply.begin_chat(agent, peer, clear)
  if clear then history.clear(agent, peer) end
end

local function talk(sender, recipient, opts, silent)
  if opts.max_turns then
    -- one turn = the sender's message and the recipient's single reply
    for turn = 1, opts.max_turns do
      local msg
      if turn == 1 then
        msg = first_message(sender, recipient, opts)
      else
        msg = sender:generate_reply{ messages = sender:chat_messages(recipient), sender = recipient }
      end
      if msg == nil then break end
      M.converse(sender, recipient, msg, true, silent)
    end
  else
    local msg = first_message(sender, recipient, opts)
    if msg ~= nil then M.converse(sender, recipient, msg, nil, silent) end
  end
end

function M.initiate_chat(sender, recipient, opts)
  opts = check_opts(opts)
  if not require("agentbox.agent.class").is_agent(recipient) then
    errors.misuse("initiate_chat: the recipient must be an agent (ConversableAgent, AssistantAgent, UserProxyAgent)")
  end
  local silent = opts.silent == true
  local clear = opts.clear_history ~= false
  local _ <close> = transcript.quiet_scope(silent, sender, recipient)
  local reply_at_receive = opts.max_turns == nil
  prepare(sender, recipient, clear, reply_at_receive)
  prepare(recipient, sender, clear, reply_at_receive)
  local ok, err = pcall(talk, sender, recipient, opts, silent)
  if not ok and not failure.is(err) then error(err, 0) end   -- misuse, a bug, a cancelled task
  local summary, summary_error = summarize(sender, recipient, opts.summary_method, opts.summary_args or {})
  return {
    chat_history = sender:chat_messages(recipient),
    summary = summary,
    summary_error = summary_error,
    cost = gather_usage(sender, recipient),
    human_input = human_reply.typed(sender),
    -- one record per execution reply in chat_history, kept as the code ran
    -- (agent/code_execution.lua): { exit_code =, output =, succeeded =,
    -- output_files = when the executor lists them, denied = true when
    -- code_execution_config.approve said no }
    execution_results = code_execution.results(sender, recipient),
    -- why a human's input ended the chat ("end of input"), nil otherwise
    human_input_ended = human_reply.ended(sender) or human_reply.ended(recipient),
    -- a failure in the middle of the chat (the model server, an executor)
    error = not ok and err.message or nil,
    error_code = not ok and err.code or nil,
  }
end

return M
