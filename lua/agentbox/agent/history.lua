-- An agent's conversations: one message list per peer, in AutoGen's
-- ChatCompletion shape (AutoGen's _oai_messages). The lists live here,
-- keyed by agent, and are reached only through these functions.
local errors = require("agentbox.errors")

local M = {}

local lists = setmetatable({}, { __mode = "k" })   -- agent -> { [peer] = messages }

--- initial: the chat_messages option ({ [peer] = messages }) or nil
function M.init(agent, initial)
  local t = {}
  for peer, list in pairs(initial or {}) do t[peer] = list end
  lists[agent] = t
end

local KEEP = { "content", "function_call", "tool_calls", "tool_responses", "tool_call_id", "name", "context" }

--- Append a message to the conversation with `peer` as AutoGen does: only
--- the ChatCompletion fields, role from the direction unless function/tool,
--- calls force "assistant", a name added otherwise. False when invalid.
function M.append(agent, message, role, peer, is_sending)
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
    m.name = is_sending and agent.name or peer.name
  end
  local all = lists[agent]
  local list = all[peer]
  if not list then
    list = {}
    all[peer] = list
  end
  list[#list + 1] = m
  return true
end

--- The message list with `peer` (empty when none); without a peer, every
--- conversation as { [peer] = messages }.
function M.messages(agent, peer)
  if peer == nil then return lists[agent] end
  return lists[agent][peer] or {}
end

function M.last(agent, peer)
  local all = lists[agent]
  if peer == nil then
    local only, n = nil, 0
    for _, list in pairs(all) do only, n = list, n + 1 end
    if n == 0 then return nil end
    if n == 1 then return only[#only] end
    errors.misuse("last_message: more than one conversation is found; pass the agent whose last message you want")
  end
  local list = all[peer]
  if not list then
    errors.misuse("last_message: the agent '%s' is not present in any conversation of '%s'. "
      .. "No history available for this agent.", tostring(peer.name), agent.name)
  end
  return list[#list]
end

--- Forget the conversation with `peer`, or all of them (keeping the newest
--- `keep` messages of each when given). A fresh list replaces the old one,
--- so an earlier ChatResult keeps its history.
function M.clear(agent, peer, keep)
  local all = lists[agent]
  if peer ~= nil then
    all[peer] = {}
    return
  end
  if not keep or keep <= 0 then
    lists[agent] = {}
    return
  end
  for p, list in pairs(all) do
    local n = keep
    -- never separate tool results from the call they answer
    local first = list[#list - n + 1]
    if first and first.tool_responses then n = n + 1 end
    local kept = {}
    for i = math.max(1, #list - n + 1), #list do kept[#kept + 1] = list[i] end
    all[p] = kept
  end
end

return M
