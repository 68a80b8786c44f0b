--- The model client's response cache: AutoGen 0.2's `cache_seed`.
--
-- AutoGen caches every reply by default (cache_seed 41, a diskcache under
-- `.cache/41`), so a re-run of a workflow costs nothing and answers the
-- same. Here: `cache_seed` absent is 41, `false` is off (AutoGen's None);
-- an entry is one file `<cache_path_root>/<seed>/<sha256>.json` holding the
-- server's whole reply (a chat completion), named by a SHA-256 of the
-- request in a canonical form (JSON with sorted keys, one digest per
-- message): model, messages, tools and every other request field. Like
-- AutoGen's key, the endpoint, the key and api_type/api_version are not
-- part of it; neither is `stream`, which does not change the reply. The
-- request itself is not stored.
--
-- Files go through core.private_write/private_read (src/privfile.c): the
-- directory is the user's own and 0700, files 0600, each written under a
-- fresh name and renamed into place, so processes sharing a cache never
-- see a half-written entry. A file that does not decode as an entry is a
-- miss, and the next reply replaces it. Only a successful chat completion
-- is stored: an error never is.
-- @local
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local cjson = require("cjson")
local jsonsafe = require("cjson.safe").new()

local M = {}

--- AutoGen 0.2's LEGACY_DEFAULT_CACHE_SEED and LEGACY_CACHE_DIR.
M.DEFAULT_SEED = 41
M.DEFAULT_ROOT = ".cache"
-- what a cache file holds, so a file of another format is a miss
local FORMAT = "agentbox.llm_cache.v1"
-- request fields that do not change the reply
local NOT_KEY = { stream = true, stream_options = true }

--- The cache settings of an llm_config, checked by name.
-- @treturn table|nil `{ dir = root .. "/" .. seed }` (the client adds `max_bytes`), nil when off
function M.settings(cfg)
  local seed, root = cfg.cache_seed, cfg.cache_path_root
  if seed == false then
    if root ~= nil then
      errors.misuse("llm_config.cache_path_root is set but cache_seed = false turns the cache off: drop one")
    end
    return nil
  end
  if seed == nil then seed = M.DEFAULT_SEED end
  if not (math.type(seed) == "integer" or (type(seed) == "string" and seed:match("^[%w_%-]+$") and #seed <= 64)) then
    errors.misuse("llm_config.cache_seed must be an integer (AutoGen's default: 41), a name of letters, digits, "
      .. "'_' and '-', or false for no cache, got %s", tostring(seed))
  end
  if root == nil then root = M.DEFAULT_ROOT end
  if type(root) ~= "string" or root == "" or root:find("\0", 1, true) then
    errors.misuse("llm_config.cache_path_root must be a directory path (default %q), got %s", M.DEFAULT_ROOT,
      tostring(root))
  end
  return { dir = (root:gsub("/+$", "")) .. "/" .. tostring(seed) }
end

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil and (getmetatable(t) == cjson.array_mt or t == cjson.empty_array) end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

-- One value in canonical JSON: object keys sorted, strings and numbers as
-- cjson writes them. Appends to out.
local function canon(v, out)
  local t = type(v)
  if t == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        canon(v[i], out)
      end
      out[#out + 1] = "]"
      return
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = cjson.encode(k)
      out[#out + 1] = ":"
      local val = v[k]
      if val == nil then val = v[math.tointeger(tonumber(k))] end
      canon(val, out)
    end
    out[#out + 1] = "}"
  elseif v == nil or v == cjson.null then
    out[#out + 1] = "null"
  else
    out[#out + 1] = cjson.encode(v)
  end
end

-- A message's digest: its fields but content in canonical JSON, then its
-- content (a string hashed as it is: no copy of a long reply is encoded)
local function message_digest(m)
  local rest, out = {}, {}
  for k, v in pairs(m) do if k ~= "content" then rest[k] = v end end
  canon(rest, out)
  local c = m.content
  if type(c) == "string" then
    out[#out + 1] = "\ns:" .. core.sha256(c)
  else
    out[#out + 1] = "\nj:"
    canon(c, out)
  end
  return core.sha256(table.concat(out))
end

--- The cache key of a request: a SHA-256 (hex) over its fields in
-- canonical JSON and one digest per message.
-- @tparam table fields the request fields but messages (what build_body sends)
-- @tparam table messages the messages in wire form
function M.key(fields, messages)
  local f, out = {}, {}
  for k, v in pairs(fields) do if not NOT_KEY[k] then f[k] = v end end
  canon(f, out)
  local digests = { core.sha256(table.concat(out)) }
  for _, m in ipairs(messages) do
    digests[#digests + 1] = message_digest(m)
    task.checkpoint()
  end
  return core.sha256(table.concat(digests, "\n"))
end

--- A cached reply, or nil for a miss (absent, unreadable or corrupt).
-- The directory is made (0700) when missing, so a cache that cannot be
-- used fails before the request whose reply it would keep.
-- @treturn[1] table the chat completion
-- @return[2] nil
-- @treturn[2] string|nil why the directory cannot be used (a failure, not a miss)
function M.get(settings, key)
  local data, err, code = core.private_read(settings.dir, key .. ".json", settings.max_bytes, true)
  if not data then
    if code == "io" and err:sub(1, #settings.dir + 2) == settings.dir .. ": " then return nil, err end
    return nil
  end
  task.checkpoint()                     -- the decode below is one C call: start it on a fresh slice
  local doc = jsonsafe.decode(data)
  if type(doc) ~= "table" or doc.format ~= FORMAT or type(doc.response) ~= "table"
     or type(doc.response.choices) ~= "table" or type(doc.response.choices[1]) ~= "table"
     or type(doc.response.choices[1].message) ~= "table" then
    return nil
  end
  return doc.response
end

--- Store a reply (a raw chat completion body, already decoded as valid).
-- @treturn[1] true
-- @return[2] nil, message, code when it could not be written
function M.put(settings, key, body)
  local data = '{"format":' .. cjson.encode(FORMAT) .. ',"response":' .. body .. "}\n"
  return core.private_write(settings.dir, key .. ".json", data)
end

return M
