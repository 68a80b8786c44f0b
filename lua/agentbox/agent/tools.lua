-- Tools: OpenAI tool schemas for the caller's llm_config, the executor's
-- function map, and the reply functions that run tool_calls (and the
-- deprecated function_call) with AutoGen 0.2's error texts.
local cjson = require("cjson")
local cjson_safe = require("cjson.safe")
local transcript = require("agentbox.transcript")
local task = require("agentbox.task")
local errors = require("agentbox.errors")

local M = {}

local is_agent = require("agentbox.agent.class").is_agent

-- What each agent may execute: agent -> { [name] = fn } (AutoGen's
-- function_map), reached through the functions below.
local maps = setmetatable({}, { __mode = "k" })

local function misuse(msg) errors.misuse("%s", msg) end

function M.assert_valid_name(name)
  if type(name) ~= "string" or not name:find("^[A-Za-z0-9_%-]+$") then
    misuse("Invalid name: " .. tostring(name) .. ". Only letters, numbers, '_' and '-' are allowed.")
  end
  if #name > 64 then
    misuse("Invalid name: " .. name .. ". Name must be at most 64 characters.")
  end
  return name
end

-- Models sometimes ignore the name rules; the next request must not fail on it.
function M.normalize_name(name)
  return (tostring(name):gsub("[^A-Za-z0-9_%-]", "_"):sub(1, 64))
end

-- A Lua function has no name or docstring, so what register_for_llm learnt
-- is remembered for a later register_for_execution{} (AutoGen's decorator
-- chaining, where the second decorator reads func._name).
local learnt = setmetatable({}, { __mode = "k" })

local function check_opts(what, opts, known)
  if opts == nil then return {} end
  if type(opts) == "string" then return { name = opts } end
  if type(opts) ~= "table" then misuse(what .. ": expected an options table { name = ..., ... }") end
  for k in pairs(opts) do
    if not known[k] then misuse(what .. ": unknown option '" .. tostring(k) .. "'") end
  end
  return opts
end

local function schema_of(p)
  if p == nil then return { type = "object", properties = {} } end
  if type(p) ~= "table" then
    misuse("register_for_llm: parameters must be a JSON schema table { type = \"object\", properties = {...} }")
  end
  local s = {}
  for k, v in pairs(p) do s[k] = v end
  if s.type == nil then s.type = "object" end
  if s.type ~= "object" then
    misuse("register_for_llm: parameters.type must be \"object\" (the model passes arguments by name)")
  end
  if s.properties == nil then s.properties = {} end
  -- an empty Lua table would go out as {} where the schema wants []
  if type(s.required) == "table" and next(s.required) == nil then s.required = nil end
  return s
end

--- Add, replace (same name) or remove (is_remove, sig = name) a tool schema
--- in the agent's llm_config.tools.
function M.update_tool_signature(agent, sig, is_remove)
  if not agent.llm_config then
    misuse("To update a tool signature, agent must have an llm_config ('" .. agent.name .. "' has llm_config = false)")
  end
  local old = agent.llm_config.tools or {}
  local tl = {}
  if is_remove then
    for _, t in ipairs(old) do
      if t["function"].name ~= sig then tl[#tl + 1] = t end
    end
  else
    if type(sig) ~= "table" or type(sig["function"]) ~= "table" then
      misuse("update_tool_signature: expected { type = \"function\", [\"function\"] = { name =, description =, parameters = } }")
    end
    M.assert_valid_name(sig["function"].name)
    for _, t in ipairs(old) do
      if t["function"].name ~= sig["function"].name then tl[#tl + 1] = t end
    end
    tl[#tl + 1] = sig
  end
  agent.llm_config.tools = #tl > 0 and tl or nil
end

local LLM_KEYS = { name = true, description = true, parameters = true }

--- agent:register_for_llm{ name =, description =, parameters = }(fn) -> fn
function M.register_for_llm(agent, opts)
  opts = check_opts("register_for_llm", opts, LLM_KEYS)
  return function(fn)
    if type(fn) ~= "function" then misuse("register_for_llm{...}(fn): expected the tool function") end
    local known = learnt[fn] or {}
    local name = opts.name or known.name
    if name == nil then
      misuse("register_for_llm: name is required (a Lua function has no name of its own)")
    end
    M.assert_valid_name(name)
    local desc = opts.description or known.description
    if type(desc) ~= "string" or desc == "" then
      misuse("register_for_llm: description is required for '" .. name
        .. "' (the model reads it to decide when to call the tool)")
    end
    local params = schema_of(opts.parameters or known.parameters)
    if not agent.llm_config then
      misuse("register_for_llm: '" .. agent.name .. "' has no llm_config; register the tool on the agent "
        .. "whose model should call it")
    end
    learnt[fn] = { name = name, description = desc, parameters = params }
    M.update_tool_signature(agent, { type = "function",
      ["function"] = { name = name, description = desc, parameters = params } })
    return fn
  end
end

--- agent:register_function{ name = fn, other = false (removes) }
function M.register_functions(agent, map)
  if type(map) ~= "table" then misuse("register_function: expected a table { name = function, ... }") end
  for name, fn in pairs(map) do
    M.assert_valid_name(name)
    if fn ~= false and type(fn) ~= "function" then
      misuse("register_function: '" .. name .. "' must map to a function (or false to remove it)")
    end
    maps[agent][name] = fn or nil
  end
end

--- agent:register_for_execution{ name = }(fn) -> fn
function M.register_for_execution(agent, opts)
  opts = check_opts("register_for_execution", opts, { name = true })
  return function(fn)
    if type(fn) ~= "function" then misuse("register_for_execution{...}(fn): expected the tool function") end
    local name = opts.name or (learnt[fn] and learnt[fn].name)
    if name == nil then
      misuse("register_for_execution: name is required (a Lua function has no name of its own)")
    end
    M.assert_valid_name(name)
    maps[agent][name] = fn
    learnt[fn] = learnt[fn] or { name = name }
    return fn
  end
end

--- agentbox.register_function(fn, { caller =, executor =, name =, description =, parameters = })
function M.register_function(fn, opts)
  if type(opts) ~= "table" then
    misuse("register_function(fn, { caller = assistant, executor = user_proxy, name = ..., description = ... })")
  end
  for _, k in ipairs({ "caller", "executor" }) do
    if not is_agent(opts[k]) then misuse("register_function: '" .. k .. "' must be an agent") end
  end
  opts.caller:register_for_llm{ name = opts.name, description = opts.description, parameters = opts.parameters }(fn)
  opts.executor:register_for_execution{ name = opts.name }(fn)
  return fn
end

--- The function_map option, checked; at construction.
function M.init(agent, who, function_map)
  local map = {}
  maps[agent] = map
  if function_map == nil then return end
  if type(function_map) ~= "table" then errors.misuse("%s: function_map must map names to functions", who) end
  for name, fn in pairs(function_map) do
    M.assert_valid_name(name)
    if type(fn) ~= "function" then errors.misuse("%s: function_map[%s] must be a function", who, tostring(name)) end
    map[name] = fn
  end
end

function M.function_map(agent) return maps[agent] end

function M.can_execute_function(agent, name)
  local names = type(name) == "table" and name or { name }
  for _, n in ipairs(names) do
    if not maps[agent][n] then return false end
  end
  return true
end

-- Execution ---------------------------------------------------------------------

-- AutoGen's _format_json_str: models put raw newlines in JSON; drop them
-- outside strings, escape newlines and tabs inside. A quote toggles "inside"
-- unless the character before it is a backslash (AutoGen's rule, quirks
-- included). Without a newline or a tab it changes nothing. Otherwise it
-- works in chunks through gsub (memory about twice the input, not a table
-- entry per character) and calls checkpoint between chunks, so 50 MB of
-- arguments never hold one task resume for long.
local CHUNK = 16 * 1024

local function format_json_str(s)
  if not s:find("\n", 1, true) and not s:find("\t", 1, true) then return s end
  local out, inside, base = {}, false, 0
  local function one(i, c)
    if c == '"' then
      local at = base + i
      if at == 1 or s:byte(at - 1) ~= 92 then inside = not inside end
      return nil
    elseif c == "\n" then
      return inside and "\\n" or ""
    end
    return inside and "\\t" or nil
  end
  for pos = 1, #s, CHUNK do
    base = pos - 1
    out[#out + 1] = (s:sub(pos, pos + CHUNK - 1):gsub('()(["\n\t])', one))
    task.checkpoint()
  end
  return table.concat(out)
end

-- As a Lua function expects them: JSON null in an object means "absent",
-- and cjson's floats become integers when integral (1 + 2 is 3, not 3.0,
-- as in Python, where json.loads("1") is an int).
local function lua_args(t)
  for k, v in pairs(t) do
    if v == cjson.null and type(k) == "string" then
      t[k] = nil
    elseif type(v) == "table" then
      lua_args(v)
    elseif math.type(v) == "float" then
      t[k] = math.tointeger(v) or v
    end
  end
  return t
end

local function decode_args(a)
  if a == nil then a = "{}" end
  if type(a) == "table" then return a end
  if type(a) ~= "string" then return nil, "arguments must be a JSON string, got " .. type(a) end
  local v, err = cjson_safe.decode(format_json_str(a))
  if v == nil then return nil, tostring(err) end
  if type(v) ~= "table" or #v > 0 then
    return nil, "arguments must be a JSON object, got " .. (v == cjson.null and "null" or cjson.encode(v))
  end
  return lua_args(v)
end

-- Python's str(e) is the message alone; drop Lua's "chunk:line: " prefix.
local function error_text(e)
  if type(e) ~= "string" then return tostring(e) end
  return (e:gsub("^[^:\n]+:%d+: ", "", 1))
end

-- A string goes as is, a table as JSON, anything else through tostring.
local function serialize(v)
  if type(v) == "string" then return v end
  if type(v) == "table" then
    local ok, s = pcall(cjson.encode, v)
    if not ok then return nil, "the tool's result cannot be encoded as JSON: " .. error_text(s) end
    return s
  end
  return tostring(v)
end

--- execute_function(agent, { name =, arguments = "<json>" }) -> ok, { name =, role = "function", content = }
function M.execute_function(agent, call)
  call = type(call) == "table" and call or {}
  local name = call.name == nil and "" or tostring(call.name)
  local fn = maps[agent][name]
  local ok, content = false
  if fn then
    local args, err = decode_args(call.arguments)
    if args == nil then
      content = "Error: " .. err .. "\n The argument must be in JSON format."
    else
      transcript.info(agent, "\n>>>>>>>> EXECUTING FUNCTION " .. name .. "...", "magenta")
      -- pcall is yieldable in 5.4: a tool may wait on a process or a request
      local pok, res = pcall(fn, args)
      if pok then
        local s, serr = serialize(res)
        ok, content = s ~= nil, s or ("Error: " .. serr)
      else
        content = "Error: " .. error_text(res)
      end
    end
  else
    content = "Error: Function " .. name .. " not found."
  end
  return ok, { name = name, role = "function", content = content }
end

--- Reply function: run every tool call of the last message, in order; the
--- results travel in one role "tool" message whose tool_responses the model
--- client sends as one role "tool" message per tool_call_id.
function M.tool_calls_reply(agent, messages, sender)
  if messages == nil then messages = agent:chat_messages(sender) end
  local message = messages[#messages]
  if type(message) ~= "table" or type(message.tool_calls) ~= "table" or #message.tool_calls == 0 then
    return false, nil
  end
  local returns, texts = {}, {}
  for _, call in ipairs(message.tool_calls) do
    local f = type(call) == "table" and type(call["function"]) == "table" and call["function"] or {}
    local _, ret = agent:execute_function(f)
    local r = { role = "tool", content = ret.content or "" }
    if type(call) == "table" and call.id ~= nil then r.tool_call_id = call.id end
    returns[#returns + 1] = r
    texts[#texts + 1] = r.content
  end
  return true, { role = "tool", tool_responses = returns, content = table.concat(texts, "\n\n") }
end

--- Reply function for the deprecated single function_call.
function M.function_call_reply(agent, messages, sender)
  if messages == nil then messages = agent:chat_messages(sender) end
  local message = messages[#messages]
  if type(message) ~= "table" or type(message.function_call) ~= "table" then return false, nil end
  local _, ret = agent:execute_function(message.function_call)
  return true, ret
end

return M
