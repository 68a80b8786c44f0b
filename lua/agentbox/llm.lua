--- The model client: an agent's `llm_config`, and its `agent.client`.
--
-- An OpenAI-compatible chat-completions client over core.http: config_list
-- fallback, retries with backoff and jitter (Retry-After honoured), usage in
-- AutoGen's cost shape. Every wait goes through the task layer, so a model
-- call inside a task never blocks other tasks or the host. Agents make their
-- client from `llm_config` (@{new}); what is public of it is the options and
-- the @{Client} an agent holds as `agent.client`.
-- @module agentbox.llm
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local llm_stream = require("agentbox.llm_stream")
local llm_config = require("agentbox.llm_config")
local llm_cache = require("agentbox.llm_cache")
local cjson_lib = require("cjson")
local json = cjson_lib.new()
if json.encode_escape_forward_slash then json.encode_escape_forward_slash(false) end
local jsonsafe = require("cjson.safe").new()

local M = {}

M.DEFAULT_BASE_URL = llm_config.DEFAULT_BASE_URL
M.null = cjson_lib.null
M.empty_array = cjson_lib.empty_array

-- llm_config keys that are ours, not request fields
local CONFIG_KEYS = { config_list = true, timeout = true, max_retries = true, cache_seed = true,
                      retry_base = true, retry_max = true, tools = true, functions = true,
                      max_reply_bytes = true, cache_path_root = true }

-- The largest reply body accepted from a model server. A reply of the
-- longest outputs models give today (about 128K tokens, some 600 KB of
-- JSON) fits; a hostile server's 50 MB reply is refused while it streams,
-- before it costs memory, and decoding what is accepted stays a few ms.
M.MAX_REPLY_BYTES = 2 * 1024 * 1024
local ENTRY_KEYS = llm_config.ENTRY_KEYS
-- curl failures worth another try: name resolution, connect, timeout, TLS
-- handshake, a body cut short, an empty reply, send/receive errors (a body
-- over max_body is not)
local RETRY_CURL = { [5] = true, [6] = true, [7] = true, [18] = true, [28] = true, [35] = true,
                     [52] = true, [55] = true, [56] = true }

local Client = {}
Client.__index = Client

-- a positive, finite number of seconds (NaN fails every comparison)
local function seconds(v)
  return type(v) == "number" and v > 0 and v < math.huge
end

local function check_config(cfg)
  local misuse = errors.misuse
  if type(cfg) ~= "table" then
    misuse("llm_config must be a table like { config_list = { { model = \"gpt-4o-mini\", api_key = ... } } } or false, got %s",
      tostring(cfg))
  end
  local list = cfg.config_list
  if list == nil and cfg.model then list = { cfg } end
  if type(list) ~= "table" or #list == 0 then
    misuse("llm_config.config_list must be a non-empty array of { model = ..., api_key = ..., base_url = ... }")
  end
  local entries = {}
  for i, e in ipairs(list) do entries[i] = llm_config.entry(cfg, i, e) end
  if cfg.timeout ~= nil and not seconds(cfg.timeout) then
    misuse("llm_config.timeout must be a positive number of seconds, got %s", tostring(cfg.timeout))
  end
  if cfg.max_retries ~= nil and (math.type(cfg.max_retries) ~= "integer" or cfg.max_retries < 0) then
    misuse("llm_config.max_retries must be a non-negative integer, got %s", tostring(cfg.max_retries))
  end
  for _, k in ipairs({ "retry_base", "retry_max" }) do
    local v = cfg[k]
    if v ~= nil and not (type(v) == "number" and v >= 0 and v < math.huge) then
      misuse("llm_config.%s must be a non-negative number of seconds, got %s", k, tostring(v))
    end
  end
  if cfg.stream ~= nil and type(cfg.stream) ~= "boolean" then
    misuse("llm_config.stream must be true or false, got %s", tostring(cfg.stream))
  end
  if cfg.max_reply_bytes ~= nil and (math.type(cfg.max_reply_bytes) ~= "integer" or cfg.max_reply_bytes < 1) then
    misuse("llm_config.max_reply_bytes must be a positive integer (bytes; default %d)", M.MAX_REPLY_BYTES)
  end
  return entries, llm_cache.settings(cfg)
end

--- An agent's model configuration (`llm_config`).
-- Other keys (temperature, ...) are sent with every request. A bad value is
-- an error when the agent is built.
-- @table LLMConfig
-- @tfield {LLMEntry,...} config_list the models to try, in order (a table with `model`
-- and no config_list is taken as a one-entry list)
-- @tfield[opt=600] number timeout seconds per request
-- @tfield[opt=3] integer max_retries retries of a failed request (connect errors, timeouts,
-- HTTP 408, 409, 429 and 5xx)
-- @tfield[opt=0.5] number retry_base first backoff, seconds (doubled each retry, with jitter;
-- a Retry-After header wins)
-- @tfield[opt=30] number retry_max longest backoff, seconds
-- @tfield[opt=2097152] integer max_reply_bytes a larger reply body is refused while it streams
-- (`protocol`), never retried; streamed, it bounds each event and the assembled reply
-- @tfield[opt=false] boolean stream ask for server-sent events (`stream: true`, with
-- `stream_options.include_usage`) and assemble them into the same reply; the text reaches an
-- agent's `on_token` as it arrives, and a stream cut short is retried like any failure
-- @tfield[opt=41] integer|string|false cache_seed AutoGen's response cache: replies are kept under
-- `cache_path_root/<cache_seed>/` and an identical request is answered from there without a
-- request; `false` turns it off (AutoGen's None). Absent is AutoGen's default, 41
-- @tfield[opt=".cache"] string cache_path_root the cache's directory (relative: to the current
-- directory), as AutoGen's `Cache.disk(cache_seed, cache_path_root)`
-- @tfield[opt] {table,...} tools OpenAI tool schemas (register_for_llm fills this)
-- @tfield[opt] {table,...} functions legacy OpenAI function schemas

--- One entry of `llm_config.config_list`. Other keys are sent with the request.
-- The entry keys below given at the top of `llm_config` are defaults for every entry.
-- @table LLMEntry
-- @tfield string model the model name sent to the server; for Azure the deployment (its dots
-- removed, as AutoGen does: "gpt-3.5-turbo" is the deployment "gpt-35-turbo")
-- @tfield[opt] string api_key sent as `Authorization: Bearer` (default `OPENAI_API_KEY`); for
-- `api_type = "azure"` as the `api-key` header (default `AZURE_OPENAI_API_KEY`), for `"azure_ad"`
-- as a Bearer token (default `AZURE_OPENAI_AD_TOKEN`); never reaches model-written code
-- @tfield[opt] string base_url an http(s) OpenAI-compatible endpoint (default
-- `OPENAI_BASE_URL`, else OpenAI's); for Azure the resource, `https://NAME.openai.azure.com` (required)
-- @tfield[opt="openai"] string api_type `"openai"`, `"azure"` or `"azure_ad"`; any other is an error
-- @tfield[opt] string api_version the Azure OpenAI API version (required for Azure), e.g. "2024-02-01"
-- @tfield[opt] string azure_endpoint the Azure resource, another name for base_url (the openai SDK's)
-- @tfield[opt] {string,...} tags accepted for AutoGen compatibility (not sent)
-- @tfield[opt] {number,number}|number price `{ prompt_per_1k, completion_per_1k }`: what 1000 tokens
-- cost, filling `cost`/`total_cost` in @{Client:usage} (one number: both prices)

--- A client for an `llm_config` (what an agent does when it is built).
-- @tparam LLMConfig|false|nil cfg the configuration
-- @treturn Client|nil the client, nil for nil or false
-- @raise on a bad configuration (naming the key)
function M.new(cfg)
  if cfg == nil or cfg == false then return nil end
  local list, cache = check_config(cfg)
  local self = setmetatable({ config = cfg, list = list, cache = cache, usage_total = {}, usage_actual = {},
                              requests = 0, cache_hits = 0 }, Client)
  self.timeout = cfg.timeout or 600
  self.max_retries = cfg.max_retries or 3
  self.retry_base = cfg.retry_base or 0.5
  self.retry_max = cfg.retry_max or 30
  self.max_reply_bytes = cfg.max_reply_bytes or M.MAX_REPLY_BYTES
  self.stream = cfg.stream == true
  -- an entry is a reply re-encoded: allow it twice the reply's cap
  if cache then cache.max_bytes = 2 * self.max_reply_bytes + 4096 end
  return self
end

-- Only the fields the wire format knows leave the process.
local function wire_message(m)
  local out = { role = m.role, content = m.content }
  if out.content == nil then out.content = M.null end
  if m.name then out.name = m.name end
  if m.tool_calls then out.tool_calls = m.tool_calls end
  if m.tool_call_id then out.tool_call_id = m.tool_call_id end
  if m.function_call then out.function_call = m.function_call end
  return out
end

local ENCODE_CHUNK = 64 * 1024

-- Every field of the request but messages (also the cache's key).
local function request_fields(self, entry, req)
  local body = {}
  for k, v in pairs(self.config) do
    if not CONFIG_KEYS[k] and not ENTRY_KEYS[k] then body[k] = v end
  end
  for k, v in pairs(entry) do
    if not ENTRY_KEYS[k] and not CONFIG_KEYS[k] then body[k] = v end
  end
  body.model = llm_config.model(entry)
  if self.stream and body.stream_options == nil then body.stream_options = { include_usage = true } end
  local tools = req.tools
  if tools == nil then tools = self.config.tools end
  if tools and #tools > 0 then body.tools = tools end
  for k, v in pairs(req.extra or {}) do body[k] = v end
  body.messages = nil
  return body
end

local function build_body(self, entry, req)
  local body = request_fields(self, entry, req)
  local ok, s = pcall(json.encode, body)
  if not ok then errors.misuse("llm: cannot encode the chat request as JSON: %s", tostring(s)) end
  -- Messages are encoded one by one, and a long content string in chunks,
  -- with a task checkpoint between them, so a history holding a 5 MB reply
  -- is not one long C call. JSON escapes byte by byte (cjson copies bytes
  -- >= 0x80 as they are), so the encoded chunks joined are the string encoded.
  local msgs = {}
  for i, m in ipairs(req.messages) do
    local w = wire_message(m)
    local long = type(w.content) == "string" and #w.content > ENCODE_CHUNK and w.content
    if long then w.content = nil end
    local mok, ms = pcall(json.encode, w)
    if not mok then errors.misuse("llm: cannot encode message %d of the chat request as JSON: %s", i, tostring(ms)) end
    if long then
      local parts = {}
      for pos = 1, #long, ENCODE_CHUNK do
        parts[#parts + 1] = json.encode(long:sub(pos, pos + ENCODE_CHUNK - 1)):sub(2, -2)
        task.checkpoint()
      end
      ms = ms:sub(1, -2) .. ',"content":"' .. table.concat(parts) .. '"}'
    end
    msgs[i] = ms
    task.checkpoint()
  end
  return s:sub(1, -2) .. (s == "{}" and "" or ",") .. '"messages":[' .. table.concat(msgs, ",") .. "]}"
end

local function server_message(body)
  local doc = jsonsafe.decode(body or "")
  if type(doc) == "table" then
    local e = doc.error
    if type(e) == "table" and type(e.message) == "string" then return e.message end
    if type(e) == "string" then return e end
    if type(doc.message) == "string" then return doc.message end
    if type(doc.detail) == "string" then return doc.detail end
  end
  body = body or ""
  return #body > 200 and body:sub(1, 200) .. "..." or body
end

-- Seconds to wait before retry number `attempt` (1-based).
local function backoff(self, attempt, headers)
  local ra = headers and (headers["retry-after-ms"] and tonumber(headers["retry-after-ms"]) and
                          tonumber(headers["retry-after-ms"]) / 1000 or tonumber(headers["retry-after"]))
  if ra and ra >= 0 then return math.min(ra, self.retry_max) end
  local cap = math.min(self.retry_max, self.retry_base * 2 ^ (attempt - 1))
  return cap / 2 + math.random() * cap / 2      -- "equal jitter"
end

local function decode_reply(body)
  local doc = jsonsafe.decode(body)
  if type(doc) ~= "table" or type(doc.choices) ~= "table" or type(doc.choices[1]) ~= "table"
     or type(doc.choices[1].message) ~= "table" then
    local head = #body > 200 and body:sub(1, 200) .. "..." or body
    return errors.fail("protocol", "the server's reply is not a chat completion (malformed JSON or no choices): %s", head)
  end
  return doc
end

local function strip_nulls(t)
  for k, v in pairs(t) do
    if v == M.null then t[k] = nil elseif type(v) == "table" then strip_nulls(v) end
  end
  return t
end

-- One entry of the config list, with retries. Returns doc or nil, message,
-- code (and the HTTP status for code "http").
local function try_entry(self, entry, req, sink)
  local url, headers = llm_config.endpoint(entry)
  local body = build_body(self, entry, req)
  local last, code, status
  for attempt = 0, self.max_retries do
    if sink then sink.restart() end
    local stream = self.stream or nil
    local h <close> = core.http{ method = "POST", url = url, headers = headers, body = body,
                                 timeout = self.timeout, connect_timeout = math.min(self.timeout, 10),
                                 max_body = self.max_reply_bytes, sse = stream,
                                 max_event = stream and self.max_reply_bytes or nil }
    local how, sdoc, scode, sretry
    if stream then
      how, sdoc, scode, sretry = llm_stream.read(h, llm_stream.new(sink and sink.text, self.max_reply_bytes))
    else
      task.wait(h)
    end
    self.requests = self.requests + 1
    if how == "doc" then return strip_nulls(sdoc) end
    local res, err, hcode, curl_code
    if how ~= "fail" then res, err, hcode, curl_code = h:result() end
    local retry, rheaders
    status = nil
    if how == "fail" then
      if not sretry then return errors.fail(scode, "POST %s: %s", url, sdoc) end
      code, last, retry = scode, ("POST %s: %s"):format(url, sdoc), true
    elseif not res and hcode == "protocol" then
      -- a server that sent this much once will again: not retried
      return errors.fail("protocol", "POST %s: the reply is larger than llm_config.max_reply_bytes (%d bytes); "
        .. "raise it if your model legitimately sends longer replies", url, self.max_reply_bytes)
    elseif not res then
      code = hcode
      if hcode == "timeout" then
        last = ("POST %s timed out after %gs (%s; raise llm_config.timeout if the model is slow)"):format(url, self.timeout, err)
      else
        last = ("POST %s failed: %s (check base_url and that the server is running)"):format(url, err)
      end
      retry = RETRY_CURL[curl_code] or false
    elseif res.status == 200 then
      task.checkpoint()                 -- the decode below is one C call: start it on a fresh slice
      local doc, derr, dcode = decode_reply(res.body)
      if doc then return strip_nulls(doc) end
      return errors.fail(dcode, "POST %s: %s", url, derr)
    else
      local hint = ""
      if res.status == 401 or res.status == 403 then hint = " (check api_key)"
      elseif res.status == 404 then hint = " (check base_url and model)" end
      last = ("POST %s returned HTTP %d: %s%s"):format(url, res.status, server_message(res.body), hint)
      code, status = "http", res.status
      retry = res.status == 429 or res.status == 408 or res.status == 409 or res.status >= 500
      rheaders = res.headers
    end
    if not retry or attempt == self.max_retries then break end
    task.sleep(backoff(self, attempt + 1, rheaders))
  end
  local _, msg = errors.fail(code, last)
  return nil, msg, code, status
end

-- AutoGen's two summaries: every reply counts in usage_total, one that
-- cost a request (not from the cache) also in usage_actual
local function add_usage(self, entry, doc, cached)
  local usage = doc.usage
  if type(usage) ~= "table" then return end
  local model = doc.model or entry.model
  local cost = llm_config.cost(entry, usage)
  for _, by_model in ipairs(cached and { self.usage_total } or { self.usage_total, self.usage_actual }) do
    local u = by_model[model]
    if not u then
      u = { cost = 0, prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
      by_model[model] = u
    end
    u.cost = u.cost + cost
    u.prompt_tokens = u.prompt_tokens + (tonumber(usage.prompt_tokens) or 0)
    u.completion_tokens = u.completion_tokens + (tonumber(usage.completion_tokens) or 0)
    u.total_tokens = u.total_tokens + (tonumber(usage.total_tokens) or 0)
  end
end

-- The entry's reply from the cache, else from the server (then cached).
-- Returns doc, cached or nil, message, code[, status].
local function reply_of(self, entry, req, sink)
  local key
  if self.cache then
    local wire = {}
    for i, m in ipairs(req.messages) do wire[i] = wire_message(m) end
    key = llm_cache.key(request_fields(self, entry, req), wire)
    local doc, err = llm_cache.get(self.cache, key)
    if err then
      return errors.fail("io", "the response cache cannot be used: %s (cache_path_root: a directory of yours; "
        .. "cache_seed = false: no cache)", err)
    end
    if doc then
      self.cache_hits = self.cache_hits + 1
      return strip_nulls(doc), true
    end
  end
  local doc, err, code, status = try_entry(self, entry, req, sink)
  if not doc then return nil, err, code, status end
  -- a reply that cannot be kept (disk full) is still the reply
  if key then llm_cache.put(self.cache, key, json.encode(doc)) end
  return doc, false
end

--- A model client (`agent.client`; @{new}).
-- @type Client

--- One chat completion, with retries and config_list fallback.
-- May yield inside a task.
-- @tparam table req `{ messages = {...}, tools = {...}, extra = {...}, on_token = fn }`: the
-- messages in ChatCompletion shape, tool schemas (default llm_config.tools), extra request
-- fields, and `on_token(text, kind)` called with the reply's text as it arrives (all at once
-- unstreamed), and with `("", "retry")` when an attempt that showed text failed and another starts
-- @treturn[1] table the assistant message `{ role = "assistant", content =, tool_calls =, function_call = }`
-- @return[2] nil after every entry failed
-- @treturn[2] string message naming every entry's failure
-- @treturn[2] string code the last entry's: "timeout", "unreachable", "http", "protocol" or "transport"
-- @treturn[2] integer|nil the last entry's HTTP status (code "http")
-- @raise when req has no messages, or they cannot be encoded as JSON
function Client:create(req)
  if type(req) ~= "table" or type(req.messages) ~= "table" then
    errors.misuse("llm client:create: expected { messages = { ... } }, got %s", tostring(req))
  end
  local failures, code, status = {}, nil, nil
  local sink = llm_stream.sink(req.on_token)
  for i, entry in ipairs(self.list) do
    local doc, err
    doc, err, code, status = reply_of(self, entry, req, sink)
    if doc then
      add_usage(self, entry, doc, err == true)   -- err: whether the cache answered
      self.last_response = doc
      local m = doc.choices[1].message
      local msg = { role = "assistant", content = m.content }
      if type(m.tool_calls) == "table" and #m.tool_calls > 0 then msg.tool_calls = m.tool_calls end
      if type(m.function_call) == "table" then msg.function_call = m.function_call end
      -- unstreamed (or a server that ignored stream): the text all at once
      if sink and not sink.shown and type(msg.content) == "string" and msg.content ~= "" then sink.text(msg.content) end
      return msg
    end
    failures[#failures + 1] = ("config_list[%d] (model %s): %s"):format(i, entry.model, err)
  end
  local _, msg = errors.fail(code, "model request failed: %s", table.concat(failures, "; "))
  return nil, msg, code, status
end

--- Token usage since the client was made (or reset), in AutoGen's cost shape.
-- `cost` is what the entry's `price` makes of the tokens (0 without one).
-- @treturn table `{ usage_including_cached_inference = { total_cost =, [model] = { cost =,
-- prompt_tokens =, completion_tokens =, total_tokens = } }, usage_excluding_cached_inference = {...} }`:
-- every reply, and only those that cost a request (not answered from the cache)
function Client:usage()
  local function copy(by_model)
    local t = { total_cost = 0 }
    for model, u in pairs(by_model) do
      t[model] = { cost = u.cost, prompt_tokens = u.prompt_tokens,
                   completion_tokens = u.completion_tokens, total_tokens = u.total_tokens }
      t.total_cost = t.total_cost + u.cost
    end
    return t
  end
  return { usage_including_cached_inference = copy(self.usage_total),
           usage_excluding_cached_inference = copy(self.usage_actual) }
end

--- Forget the usage counted so far.
function Client:reset_usage() self.usage_total, self.usage_actual = {}, {} end

--- Merge several cost tables (one per agent) into one.
-- @local
function M.merge_usage(list)
  local out = { usage_including_cached_inference = { total_cost = 0 },
                usage_excluding_cached_inference = { total_cost = 0 } }
  for _, c in ipairs(list) do
    for kind, t in pairs(c) do
      local dst = out[kind]
      if dst then
        for model, u in pairs(t) do
          if model == "total_cost" then dst.total_cost = dst.total_cost + u
          else
            local d = dst[model] or { cost = 0, prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
            for k in pairs(d) do d[k] = d[k] + (u[k] or 0) end
            dst[model] = d
          end
        end
      end
    end
  end
  return out
end

M.Client = Client
return M
