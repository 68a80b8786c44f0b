--- The transcript: what a chat prints, as AutoGen prints it.
--
-- The "sender (to recipient):" header, the content, a rule of 80 "-", the
-- status lines, escaped so that text from the model or from code never
-- drives the terminal (control characters are shown as `\x1b`, `\u009b`,
-- ...), and coloured when the terminal wants colour. Its two hooks are set
-- through the agentbox module: `agentbox.print` forwards to @{print} and
-- `agentbox.color` to @{color} (init.lua); the rest is internal.
-- @module agentbox.transcript
local task = require("agentbox.task")
local content_str = require("agentbox.content").str

local M = {}

-- Agents inside a silent chat: agent -> depth (weak, so a forgotten agent
-- is not kept alive by having chatted).
local quiet = setmetatable({}, { __mode = "k" })

--- Where the transcript goes (`agentbox.print`): replace it to capture it.
-- The default writes to stdout and flushes; assigning nil to
-- `agentbox.print` restores it.
-- @tparam string s a complete chunk, newlines included, already escaped
function M.print(s)
  io.write(s)
  io.stdout:flush()
end
M.default_print = M.print

--- Whether the transcript is coloured (`agentbox.color`).
-- nil (default): automatic (stdout is a terminal whose TERM is not "dumb",
-- and the NO_COLOR convention, no-color.org, is not set); false: never;
-- true: always.
M.color = nil

local CODES = { red = "31", green = "32", yellow = "33", magenta = "35" }

--- Whether to colour now (@{color}, the terminal, NO_COLOR).
-- @local
function M.use_color()
  if M.color ~= nil then return M.color == true end
  if not require("agentbox.core").isatty(1) then return false end
  local term = os.getenv("TERM")
  if term == nil or term == "" or term == "dumb" then return false end
  local nc = os.getenv("NO_COLOR")
  return nc == nil or nc == ""
end

--- text escaped for the terminal (M.escape), in colour when colour is on
-- @local
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

--- Text with its control characters escaped, invalid UTF-8 as U+FFFD.
-- @local
function M.escape(s)
  s = tostring(s)
  if not s:find("[\0-\8\11-\31\127-\255]") then return s end     -- plain ASCII: as is
  s = require("agentbox.core").utf8_clean(s):gsub("\r\n", "\n")
  return (s:gsub("[\0-\8\11-\31\127]", C0):gsub("\194[\128-\159]", C1))
end

--- A status line from an agent (">>>>>>>> USING AUTO REPLY..." and friends);
--- suppressed while the agent is inside a silent chat.
-- @local
function M.info(agent, text, color)
  if agent and (quiet[agent] or 0) > 0 then return end
  out(M.colored(text, color or "red") .. "\n")
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
    out_text(content_str(message.content))
    out("\n" .. M.colored(("*"):rep(#head), "green") .. "\n")
  else
    if message.content ~= nil then
      out_text(content_str(message.content))
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

--- The streamed text of a reply on the terminal, as AutoGen prints a
-- streamed reply before the transcript shows the whole message: only when
-- the transcript goes to stdout (agentbox.print not replaced), stdout is a
-- terminal and the agent is not silent; a captured transcript stays
-- AutoGen's format. Returns the on_token hook and its end, or nil.
-- @local
function M.stream_sink(agent)
  local silent = agent.silent
  if silent == nil then silent = (quiet[agent] or 0) > 0 end     -- the chat's, as is_silent
  if M.print ~= M.default_print or silent or not require("agentbox.core").isatty(1) then
    return nil
  end
  local shown = false
  local function token(text, kind)
    if kind == "retry" then
      out("\n" .. M.colored("[the reply was cut off; retrying]", "red") .. "\n")
      return
    end
    shown = true
    out(esc(text))
  end
  return token, function() if shown then out("\n") end end
end

--- The agent's own silent option, else the chat's.
-- @local
function M.is_silent(agent, silent)
  if agent.silent ~= nil then return agent.silent end
  return silent
end

-- While a silent chat runs, the agents' status lines are off too; a counter
-- so nested chats restore correctly, and a to-be-closed value so an error
-- (or a cancelled task) restores it as well.
--- A to-be-closed scope inside which a and b print no status lines.
-- @local
function M.quiet_scope(silent, a, b)
  if not silent then return nil end
  quiet[a] = (quiet[a] or 0) + 1
  if b ~= a then quiet[b] = (quiet[b] or 0) + 1 end
  return setmetatable({}, { __close = function()
    quiet[a] = quiet[a] - 1
    if b ~= a then quiet[b] = quiet[b] - 1 end
  end })
end

return M
