-- The conversation itself: the send/receive loop, initiate_chat, summaries
-- and the AutoGen-style transcript.
--
-- AutoGen 0.2 recurses (send -> receive -> generate_reply -> send ...), so its
-- stack grows with every message. Here the same hand-offs are the iterations
-- of one loop (converse), which keeps a 10,000-turn chat at constant depth in
-- both the Lua and the C stack. Nothing here wraps user callbacks in C
-- functions that block yields, so get_human_input, tools and the model client
-- may yield when the chat runs inside an agentbox task.
local llm = require("agentbox.llm")
local task = require("agentbox.task")

local M = {}

-- Output. agentbox.print and agentbox.color forward here (see init.lua).
-- print receives complete chunks (newlines included).
function M.print(s)
  io.write(s)
  io.stdout:flush()
end
M.default_print = M.print

-- nil: automatic (stdout is a terminal whose TERM is not "dumb", and the
-- NO_COLOR convention, no-color.org, is not set); false: never; true: always.
M.color = nil

local CODES = { red = "31", green = "32", yellow = "33", magenta = "35" }

function M.use_color()
  if M.color ~= nil then return M.color == true end
  if not require("agentbox.core").isatty(1) then return false end
  local term = os.getenv("TERM")
  if term == nil or term == "" or term == "dumb" then return false end
  local nc = os.getenv("NO_COLOR")
  return nc == nil or nc == ""
end

--- text escaped for the terminal (M.escape), in colour when colour is on
function M.colored(text, color)
  text = M.escape(text)
  if not M.use_color() then return text end
  return "\27[" .. CODES[color] .. "m" .. text .. "\27[0m"
end

local function out(s) M.print(s) end

-- Terminal safety. Text from the model, from code output and from the model
-- server must never drive the user's terminal (an OSC 52 clipboard write, a
-- title, a clear screen, a carriage return that hides the start of a line),
-- so every piece of it is shown with its control characters escaped: C0
-- bytes other than newline and tab and DEL as \xHH, the C1 controls
-- U+0080-U+009F as \uHHHH, CRLF as a plain newline; invalid UTF-8 becomes
-- U+FFFD. Only our own colour codes are written raw. The history is never
-- touched: this is what the transcript shows, not what the model sees.
local C0 = {}
for b = 0, 31 do C0[string.char(b)] = ("\\x%02x"):format(b) end
C0["\127"] = "\\x7f"
local C1 = {}
for b = 0x80, 0x9f do C1["\194" .. string.char(b)] = ("\\u%04x"):format(b) end

function M.escape(s)
  s = tostring(s)
  if not s:find("[\0-\8\11-\31\127-\255]") then return s end     -- plain ASCII: as is
  s = require("agentbox.core").utf8_clean(s):gsub("\r\n", "\n")
  return (s:gsub("[\0-\8\11-\31\127]", C0):gsub("\194[\128-\159]", C1))
end

--- A status line from an agent (">>>>>>>> USING AUTO REPLY..." and friends);
--- suppressed while the agent is inside a silent chat.
function M.info(agent, text, color)
  if agent and (agent._quiet or 0) > 0 then return end
  out(M.colored(text, color or "red") .. "\n")
end

-- OpenAI multimodal content (an array of parts) as text, as AutoGen's content_str.
function M.content_str(content)
  if content == nil then return "" end
  if type(content) == "string" then return content end
  if type(content) ~= "table" then return tostring(content) end
  local parts = {}
  for _, p in ipairs(content) do
    if type(p) == "table" and p.type == "text" then
      parts[#parts + 1] = tostring(p.text or "")
    elseif type(p) == "table" and p.type == "image_url" then
      parts[#parts + 1] = "<image>"
    end
  end
  return table.concat(parts)
end

local RULE = ("-"):rep(80)

local esc = M.escape

-- Long text (a 5 MB reply) is escaped and printed in chunks, with a task
-- checkpoint between them; a chunk never ends inside a UTF-8 sequence or
-- between CR and LF, so the escaping sees what a single call would.
local CHUNK = 16 * 1024
local function out_text(s)
  local n = #s
  if n <= CHUNK then return out(esc(s)) end
  local pos = 1
  while pos <= n do
    local e = math.min(n, pos + CHUNK - 1)
    while e < n do
      local b = s:byte(e + 1)
      if not (b >= 0x80 and b < 0xC0) and not (b == 10 and s:byte(e) == 13) then break end
      e = e + 1
    end
    out(esc(s:sub(pos, e)))
    pos = e + 1
    task.checkpoint()
  end
end

local function print_received(self, message, sender)
  if type(message) == "string" then message = { content = message } end
  out(M.colored(sender.name, "yellow") .. " (to " .. esc(self.name) .. "):\n\n")
  if type(message.tool_responses) == "table" then
    for _, r in ipairs(message.tool_responses) do print_received(self, r, sender) end
    -- a role "tool" wrapper only repeats its responses
    if message.role == "tool" then return end
  end
  if message.role == "function" or message.role == "tool" then
    local id = message.role == "function" and message.name or message.tool_call_id
    local head = ("***** Response from calling %s (%s) *****"):format(message.role, tostring(id or "No id found"))
    out(M.colored(head, "green") .. "\n")
    out_text(M.content_str(message.content))
    out("\n" .. M.colored(("*"):rep(#head), "green") .. "\n")
  else
    if message.content ~= nil then
      out_text(M.content_str(message.content))
      out("\n")
    end
    local fc = message.function_call
    if type(fc) == "table" then
      local head = ("***** Suggested function call: %s *****"):format(tostring(fc.name or "(No function name found)"))
      out(M.colored(head, "green") .. "\nArguments: \n")
      out_text(tostring(fc.arguments or "(No arguments found)"))
      out("\n" .. M.colored(("*"):rep(#head), "green") .. "\n")
    end
    if type(message.tool_calls) == "table" then
      for _, call in ipairs(message.tool_calls) do
        local f = type(call["function"]) == "table" and call["function"] or {}
        local head = ("***** Suggested tool call (%s): %s *****"):format(tostring(call.id or "No tool call id found"),
          tostring(f.name or "(No function name found)"))
        out(M.colored(head, "green") .. "\nArguments: \n")
        out_text(tostring(f.arguments or "(No arguments found)"))
        out("\n" .. M.colored(("*"):rep(#head), "green") .. "\n")
      end
    end
  end
  out("\n" .. RULE .. "\n")
end
M.print_received = print_received

local function is_silent(agent, silent)
  if agent.silent ~= nil then return agent.silent end
  return silent
end

-- While a silent chat runs, the agents' status lines are off too; a counter
-- so nested chats restore correctly, and a to-be-closed value so an error
-- (or a cancelled task) restores it as well.
local function quiet_scope(silent, a, b)
  if not silent then return nil end
  a._quiet = (a._quiet or 0) + 1
  if b ~= a then b._quiet = (b._quiet or 0) + 1 end
  return setmetatable({}, { __close = function()
    a._quiet = a._quiet - 1
    if b ~= a then b._quiet = b._quiet - 1 end
  end })
end

local INVALID_SEND = "Message can't be converted into a valid ChatCompletion message. "
  .. "Either content, function_call or tool_calls must be provided."

--- The loop that replaces AutoGen's send/receive recursion. Starting with
--- `sender` handing `message` to `recipient` (already recorded on the
--- sender's side when `received` is true), each iteration records the
--- message on both sides, prints it, asks the recipient for a reply and, if
--- there is one, swaps the roles.
function M.converse(sender, recipient, message, request_reply, silent, received)
  local _ <close> = quiet_scope(silent, sender, recipient)
  while true do
    if not received and not sender:_append_oai_message(message, "assistant", recipient, true) then
      error(INVALID_SEND .. " (sending from " .. sender.name .. " to " .. recipient.name .. ")", 0)
    end
    received = false
    if not recipient:_append_oai_message(message, "user", sender, false) then
      error("Received message can't be converted into a valid ChatCompletion message. "
        .. "Either content, function_call or tool_calls must be provided.", 0)
    end
    if not is_silent(sender, silent) then print_received(recipient, message, sender) end
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
  if type(prompt) ~= "string" then error("initiate_chat: summary_args.summary_prompt must be a string", 0) end
  local role = args.summary_role
  if role ~= nil and type(role) ~= "string" then
    error("initiate_chat: summary_args.summary_role must be a string such as \"system\" or \"user\"", 0)
  end
  local client = recipient.client or sender.client
  if not client then
    error("initiate_chat: summary_method \"reflection_with_llm\" needs an llm_config on the recipient ("
      .. recipient.name .. ") or the sender (" .. sender.name .. ")", 0)
  end
  local msgs = {}
  for i, m in ipairs(recipient:chat_messages(sender)) do msgs[i] = m end
  msgs[#msgs + 1] = { role = role or "system", content = prompt }
  -- AutoGen keeps the chat when only the summary fails: warn, summary "".
  local ok, reply = pcall(sender._reply_from_client, sender, client, msgs)
  if not ok then
    M.info(sender, "Cannot extract summary using reflection_with_llm: " .. tostring(reply)
      .. ". Using an empty str as summary.", "yellow")
    return "", tostring(reply)
  end
  if type(reply) == "table" then reply = reply.content end
  return M.content_str(reply)
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
  error("initiate_chat: summary_method must be \"last_msg\", \"reflection_with_llm\", a function"
    .. "(sender, recipient, summary_args) or false, got " .. tostring(method), 0)
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
    error("initiate_chat: options must be a table such as { message = \"...\", max_turns = 3 }", 0)
  end
  for k in pairs(opts) do
    if not KNOWN[k] then
      local names = {}
      for n in pairs(KNOWN) do names[#names + 1] = n end
      table.sort(names)
      error(("initiate_chat: unknown option '%s' (known: %s)"):format(tostring(k), table.concat(names, ", ")), 0)
    end
  end
  local mt = opts.max_turns
  if mt ~= nil and (math.type(mt) ~= "integer" or mt < 0) then
    error("initiate_chat: max_turns must be a non-negative integer or nil (no limit), got " .. tostring(mt), 0)
  end
  if opts.summary_args ~= nil and type(opts.summary_args) ~= "table" then
    error("initiate_chat: summary_args must be a table such as { summary_prompt = \"...\" }", 0)
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
      items[i] = type(c) == "table" and M.content_str(c.content) or tostring(c)
    end
    text = table.concat(items, "\n")
  else
    error("initiate_chat: carryover must be a string or an array of strings", 0)
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
    if sender._input_ended then return nil end     -- never send the "exit" it stands for
  end
  if type(m) ~= "string" and type(m) ~= "table" then
    error("initiate_chat: message must be a string, a message table or a function(sender, recipient, context)", 0)
  end
  return with_carryover(m, opts.carryover)
end

function M.initiate_chat(sender, recipient, opts)
  opts = check_opts(opts)
  if type(recipient) ~= "table" or type(recipient._append_oai_message) ~= "function" then
    error("initiate_chat: the recipient must be an agent (ConversableAgent, AssistantAgent, UserProxyAgent)", 0)
  end
  local silent = opts.silent == true
  local clear = opts.clear_history ~= false
  local _ <close> = quiet_scope(silent, sender, recipient)
  if opts.max_turns then
    -- one turn = the sender's message and the recipient's single reply
    sender:_prepare_chat(recipient, clear, true, false)
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
    sender:_prepare_chat(recipient, clear, true, true)
    local msg = first_message(sender, recipient, opts)
    if msg ~= nil then M.converse(sender, recipient, msg, nil, silent) end
  end
  local summary, summary_error = summarize(sender, recipient, opts.summary_method, opts.summary_args or {})
  return {
    chat_history = sender:chat_messages(recipient),
    summary = summary,
    summary_error = summary_error,
    cost = gather_usage(sender, recipient),
    human_input = sender._human_input,
    -- why a human's input ended the chat ("end of input"), nil otherwise
    human_input_ended = sender._input_ended or recipient._input_ended,
  }
end

return M
