--- A config_list entry: its keys, its api_type, where its request goes.
--
-- AutoGen 0.2 reads an entry's `api_type` to choose a client: `"azure"`
-- (and the older `"azure_ad"`) makes an AzureOpenAI client, anything else
-- an OpenAI one. agentbox speaks those two protocols only, so an api_type
-- it does not speak (`"google"`, `"anthropic"`, ...) is an error when the
-- agent is built, naming the entry, never a request sent the OpenAI way.
-- Top-level llm_config keys that belong to an entry (`api_type`,
-- `api_version`, `base_url`, `api_key`, `price`, ...) are defaults for every
-- entry, as AutoGen merges its base config into each entry.
-- @local
local errors = require("agentbox.errors")

local M = {}

--- Where an openai entry without base_url (and no OPENAI_BASE_URL) goes.
M.DEFAULT_BASE_URL = "https://api.openai.com/v1"

--- The api_type values agentbox speaks.
M.API_TYPES = { "openai", "azure", "azure_ad" }
local SPOKEN = { openai = true, azure = true, azure_ad = true }

--- Entry keys that are ours, not request fields (never sent in the body).
M.ENTRY_KEYS = { model = true, api_key = true, base_url = true, api_type = true, tags = true,
                 api_version = true, price = true, azure_endpoint = true }

local function is_azure(e) return e.api_type == "azure" or e.api_type == "azure_ad" end

local function nonneg(v) return type(v) == "number" and v >= 0 and v < math.huge end

local function check_price(i, p)
  if p == nil or nonneg(p) then return end
  if type(p) == "table" and #p == 2 and nonneg(p[1]) and nonneg(p[2]) then return end
  errors.misuse("llm_config.config_list[%d].price must be { prompt_per_1k, completion_per_1k } "
    .. "(two non-negative numbers: the price of 1000 tokens), got %s", i, tostring(p))
end

--- The entry as the client uses it: top-level entry keys of cfg filled in,
-- checked by name. Raises misuse naming `config_list[i]`.
-- @tparam table cfg the llm_config
-- @tparam integer i the entry's index
-- @tparam table e the entry
-- @treturn table a copy of the entry
function M.entry(cfg, i, e)
  local misuse = errors.misuse
  if type(e) ~= "table" then misuse("llm_config.config_list[%d] must be a table { model = ..., ... }", i) end
  local out = {}
  for k, v in pairs(e) do out[k] = v end
  if e ~= cfg then
    for k in pairs(M.ENTRY_KEYS) do
      if out[k] == nil and k ~= "model" then out[k] = cfg[k] end
    end
  end
  if type(out.model) ~= "string" or out.model == "" then
    misuse("llm_config.config_list[%d] needs a 'model' string", i)
  end
  local t = out.api_type
  if t ~= nil and not SPOKEN[t] then
    misuse("llm_config.config_list[%d] (model %s): api_type %s is not supported; agentbox speaks %s "
      .. "(no api_type: openai, or any OpenAI-compatible server at base_url)", i, out.model,
      type(t) == "string" and ("%q"):format(t) or tostring(t), table.concat(M.API_TYPES, ", "))
  end
  for _, k in ipairs({ "base_url", "azure_endpoint" }) do
    local u = out[k]
    if u ~= nil and (type(u) ~= "string" or not u:match("^https?://[^/]")) then
      misuse("llm_config.config_list[%d].%s must be an http:// or https:// URL, got %s", i, k, tostring(u))
    end
  end
  check_price(i, out.price)
  if not is_azure(out) then
    if out.azure_endpoint ~= nil then
      misuse("llm_config.config_list[%d].azure_endpoint is for api_type = \"azure\"; "
        .. "an OpenAI-compatible server's address is base_url", i)
    end
    return out
  end
  -- AutoGen: azure_endpoint wins, else base_url is the resource
  local endpoint = out.azure_endpoint or out.base_url
  if out.azure_endpoint and out.base_url and out.azure_endpoint:gsub("/+$", "") ~= out.base_url:gsub("/+$", "") then
    misuse("llm_config.config_list[%d] gives both base_url and azure_endpoint, and they differ: keep one "
      .. "(the resource, https://NAME.openai.azure.com)", i)
  end
  if not endpoint then
    misuse("llm_config.config_list[%d] (api_type %q) needs base_url: the Azure OpenAI resource, "
      .. "like \"https://NAME.openai.azure.com\"", i, out.api_type)
  end
  if endpoint:find("/openai/deployments", 1, true) or endpoint:find("?", 1, true) then
    misuse("llm_config.config_list[%d].base_url must be the Azure resource (https://NAME.openai.azure.com), "
      .. "not a deployment URL: the deployment is 'model' and the version 'api_version', got %s", i, endpoint)
  end
  if type(out.api_version) ~= "string" or not out.api_version:match("^[%w%.%-]+$") then
    misuse("llm_config.config_list[%d] (api_type %q) needs api_version, the Azure OpenAI API version "
      .. "like \"2024-02-01\", got %s", i, out.api_type, tostring(out.api_version))
  end
  out.base_url, out.azure_endpoint = endpoint, nil
  return out
end

--- The model name the request body carries. For Azure it is the deployment,
-- with dots removed as AutoGen does ("gpt-3.5-turbo" -> "gpt-35-turbo":
-- Azure deployment names have no dots).
function M.model(entry)
  if is_azure(entry) then return (entry.model:gsub("%.", "")) end
  return entry.model
end

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

--- Where an entry's request goes and how it is authenticated.
-- @tparam table entry a checked entry (@{entry})
-- @treturn string the URL
-- @treturn table the request headers (the key's among them)
function M.endpoint(entry)
  local headers = { "Content-Type: application/json", "Accept: application/json" }
  local url, key
  if is_azure(entry) then
    url = ("%s/openai/deployments/%s/chat/completions?api-version=%s"):format(
      (entry.base_url:gsub("/+$", "")), escape(M.model(entry)), escape(entry.api_version))
    key = entry.api_key
    if entry.api_type == "azure_ad" then
      if key == nil then key = os.getenv("AZURE_OPENAI_AD_TOKEN") end
      if key and key ~= "" then headers[#headers + 1] = "Authorization: Bearer " .. key end
    else
      if key == nil then key = os.getenv("AZURE_OPENAI_API_KEY") end
      if key and key ~= "" then headers[#headers + 1] = "api-key: " .. key end
    end
  else
    local base = entry.base_url or os.getenv("OPENAI_BASE_URL") or M.DEFAULT_BASE_URL
    url = (base:gsub("/+$", "")) .. "/chat/completions"
    key = entry.api_key
    if key == nil then key = os.getenv("OPENAI_API_KEY") end
    if key and key ~= "" then headers[#headers + 1] = "Authorization: Bearer " .. key end
  end
  return url, headers
end

--- The cost of one reply's usage under the entry's price, AutoGen's
-- `(prompt * price[1] + completion * price[2]) / 1000`; 0 without a price
-- (agentbox has no table of model prices).
function M.cost(entry, usage)
  local p = entry.price
  if p == nil or type(usage) ~= "table" then return 0 end
  local pin, pout
  if type(p) == "number" then pin, pout = p, p else pin, pout = p[1], p[2] end
  return ((tonumber(usage.prompt_tokens) or 0) * pin + (tonumber(usage.completion_tokens) or 0) * pout) / 1000
end

return M
