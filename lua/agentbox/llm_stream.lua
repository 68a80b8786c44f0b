--- A streamed chat completion (`llm_config.stream = true`): the events of
-- one request read as they arrive and assembled into the document the
-- unstreamed request would have returned.
--
-- core.http (`sse = true`, src/sse.c) frames the event stream and bounds
-- each event; here each event's JSON is decoded and its delta merged:
-- content concatenated, tool calls keyed by their `index` (id, type and
-- name from the first delta that has them, arguments concatenated),
-- finish_reason the last given, usage from the chunk that carries it
-- (`stream_options.include_usage`). `data: [DONE]` ends the reply; an
-- error event, or the end of the body before `[DONE]`, is a failure of the
-- request, and partial text is never a reply. The task yields between
-- reads, so a host's frame never waits for the whole reply.
-- @module agentbox.llm_stream
-- @local
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local jsonsafe = require("cjson.safe").new()
local null = require("cjson").null

local M = {}

local function str(v) return type(v) == "string" and v or nil end

local function head(s)
  return #s > 200 and s:sub(1, 200) .. "..." or s
end

-- One choice being assembled: parts of its content, its tool calls by index.
local function choice_of(self, index)
  local c = self.choices[index]
  if not c then
    c = { content = {}, refusal = {}, calls = {}, has_content = false }
    self.choices[index] = c
    self.order[#self.order + 1] = index
  end
  return c
end

local function merge_call(c, pos, d)
  local index = math.tointeger(d.index) or pos - 1
  local call = c.calls[index]
  if not call then
    call = { args = {} }
    c.calls[index] = call
  end
  call.id = call.id or str(d.id)
  call.type = call.type or str(d.type)
  local f = type(d["function"]) == "table" and d["function"] or {}
  call.name = call.name or str(f.name)
  local a = str(f.arguments)
  if a and a ~= "" then call.args[#call.args + 1] = a end
  return a and #a or 0
end

-- one chunk's deltas; returns the bytes added to the reply
local function merge(self, chunk)
  for _, k in ipairs({ "id", "created", "model", "system_fingerprint" }) do
    if self.doc[k] == nil and chunk[k] ~= nil and chunk[k] ~= null then self.doc[k] = chunk[k] end
  end
  if type(chunk.usage) == "table" then self.doc.usage = chunk.usage end
  local added = 0
  for _, ch in ipairs(type(chunk.choices) == "table" and chunk.choices or {}) do
    if type(ch) == "table" then
      local c = choice_of(self, math.tointeger(ch.index) or 0)
      if str(ch.finish_reason) then c.finish_reason = ch.finish_reason end
      local d = type(ch.delta) == "table" and ch.delta or {}
      local text = str(d.content)
      if text then
        c.has_content = true
        if text ~= "" then
          c.content[#c.content + 1] = text
          added = added + #text
          if c == self.choices[0] then self.on_text(text) end
        end
      end
      if str(d.refusal) then c.refusal[#c.refusal + 1] = d.refusal end
      if type(d.tool_calls) == "table" then
        for pos, tc in ipairs(d.tool_calls) do
          if type(tc) == "table" then added = added + merge_call(c, pos, tc) end
        end
      end
      if type(d.function_call) == "table" then
        c.fcall = c.fcall or { args = {} }
        c.fcall.name = c.fcall.name or str(d.function_call.name)
        local a = str(d.function_call.arguments)
        if a then c.fcall.args[#c.fcall.args + 1] = a; added = added + #a end
      end
    end
  end
  return added
end

-- The chat.completion document, as the unstreamed reply has it.
local function finish(self)
  local doc = self.doc
  doc.object = "chat.completion"
  doc.choices = {}
  table.sort(self.order)
  for _, index in ipairs(self.order) do
    local c = self.choices[index]
    local msg = { role = "assistant" }
    local calls = {}
    local idx = {}
    for i in pairs(c.calls) do idx[#idx + 1] = i end
    table.sort(idx)
    for _, i in ipairs(idx) do
      local t = c.calls[i]
      calls[#calls + 1] = { id = t.id, type = t.type or "function",
                            ["function"] = { name = t.name, arguments = table.concat(t.args) } }
    end
    if #calls > 0 then msg.tool_calls = calls end
    if c.fcall then msg.function_call = { name = c.fcall.name, arguments = table.concat(c.fcall.args) } end
    -- a reply with only tool calls has no content, as unstreamed (null)
    local text = table.concat(c.content)
    if text ~= "" or not (msg.tool_calls or msg.function_call) then msg.content = text end
    if #c.refusal > 0 then msg.refusal = table.concat(c.refusal) end
    doc.choices[#doc.choices + 1] = { index = index, message = msg, finish_reason = c.finish_reason }
  end
  if #doc.choices == 0 then
    return errors.fail("protocol", "the stream ended with [DONE] but held no choices (not a chat completion stream)")
  end
  return doc
end

local function event_error(data)
  local d = jsonsafe.decode(data)
  local e = type(d) == "table" and d.error or d
  if type(e) == "table" then e = e.message end
  return str(e) or head(data)
end

-- Returns "done", or nil, message, code, retry.
local function event(self, kind, data)
  if kind == "error" then
    return nil, "the server sent an error event mid-stream: " .. event_error(data), "http", true
  end
  if data == "[DONE]" then return "done" end
  task.checkpoint()                 -- decoding is one C call: start it on a fresh slice
  local chunk = jsonsafe.decode(data)
  if type(chunk) ~= "table" then
    return nil, "a server-sent event is not a chat completion chunk (malformed JSON): " .. head(data),
      "protocol", false
  end
  if chunk.error ~= nil and chunk.error ~= null then
    return nil, "the server sent an error event mid-stream: " .. event_error(data), "http", true
  end
  self.size = self.size + merge(self, chunk)
  if self.size > self.max_bytes then
    return nil, ("the streamed reply is larger than llm_config.max_reply_bytes (%d bytes); raise it if "
      .. "your model legitimately sends longer replies"):format(self.max_bytes), "protocol", false
  end
end

--- Where one create()'s text goes: `on_token(text, kind)`, kind nil for
-- text, "retry" (text "") when a new attempt starts after this one's text
-- was shown, so the receiver drops what it has shown.
-- @local
function M.sink(on_token)
  if not on_token then return nil end
  local s = { shown = false }
  function s.text(text)
    s.shown = true
    on_token(text)
  end
  function s.restart()
    if s.shown then
      s.shown = false
      on_token("", "retry")
    end
  end
  return s
end

local function ignore() end

--- A reader for one request of one create(): `on_text(text)` sees each
-- piece of content of the first choice as it arrives.
-- @local
function M.new(on_text, max_bytes)
  return { doc = {}, choices = {}, order = {}, size = 0, max_bytes = max_bytes, on_text = on_text or ignore }
end

--- Read request h (made with `sse = true`) to its end.
-- @return "doc", the document; or "fail", message, code, retry; or
-- "result" when the handle ended without events (a transfer failure, an
-- error status, a JSON body): the caller reads h:result() as unstreamed.
-- @local
function M.read(h, self)
  while true do
    local evs = h:read()
    if evs then
      for i = 1, #evs, 2 do
        -- event() may yield (a checkpoint): more events may come meanwhile
        local ok, msg, code, retry = event(self, evs[i], evs[i + 1])
        if ok == "done" then
          -- the rest of the body, if any, is not needed; closing aborts it
          local doc, ferr, fcode = finish(self)
          if not doc then return "fail", ferr, fcode, false end
          return "doc", doc
        elseif ok == nil and msg then
          return "fail", msg, code, retry
        end
      end
    elseif h:done() then
      break      -- nothing unread, and nothing can come: no yield since the read
    else
      task.wait(h)
    end
  end
  local res = h:result()
  if not res or not res.events then return "result" end
  return "fail", "the stream ended before data: [DONE] (the connection was cut)", "transport", true
end

return M
