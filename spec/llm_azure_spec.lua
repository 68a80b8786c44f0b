-- Azure OpenAI entries and api_type, against the scripted server on
-- 127.0.0.1 (it serves Azure's route and logs path, query and headers).
local llm = require("agentbox.llm")
local agentbox = require("agentbox")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")

local MSGS = { { role = "user", content = "hi" } }

describe("llm config_list: Azure OpenAI", function()
  local srv
  after_each(function() if srv then srv:stop() srv = nil end end)

  local function azure(entry, extra)
    local e = { model = "gpt-4o", api_type = "azure", api_version = "2024-02-01",
                base_url = srv.root_url, api_key = "az-SECRET" }
    for k, v in pairs(entry or {}) do e[k] = v or nil end   -- false: without that key
    local cfg = { config_list = { e }, timeout = 5, max_retries = 0, cache_seed = false }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    return llm.new(cfg)
  end

  it("posts to {base_url}/openai/deployments/{model}/chat/completions?api-version= with the api-key header", function()
    srv = fake.start{ models = { ["gpt-4o"] = { { content = "from azure" } } } }
    local msg, err = azure():create{ messages = MSGS }
    assert.is_nil(err)
    assert.equal("from azure", msg.content)
    local req = srv:last_request()
    assert.equal("POST", req.method)
    assert.equal("/openai/deployments/gpt-4o/chat/completions", req.path)
    assert.same({ ["api-version"] = "2024-02-01" }, req.query)
    assert.equal("az-SECRET", req.headers["api-key"])
    assert.is_nil(req.headers.Authorization)
    assert.equal("gpt-4o", req.body.model)
    for _, k in ipairs({ "api_type", "api_version", "api_key", "base_url" }) do assert.is_nil(req.body[k]) end
  end)

  it("takes the deployment from model without its dots, as AutoGen does, and a trailing / off base_url", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    assert.equal("ok", azure{ model = "gpt-3.5-turbo", base_url = srv.root_url .. "/" }:create{ messages = MSGS }.content)
    local req = srv:last_request()
    assert.equal("/openai/deployments/gpt-35-turbo/chat/completions", req.path)
    assert.equal("gpt-35-turbo", req.body.model)
  end)

  it("accepts azure_endpoint (the openai SDK's name) for base_url", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    local c = azure{ base_url = false, azure_endpoint = srv.root_url }
    assert.equal("ok", c:create{ messages = MSGS }.content)
    assert.equal("/openai/deployments/gpt-4o/chat/completions", srv:last_request().path)
  end)

  it("sends azure_ad's token as Authorization: Bearer, not api-key", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    assert.equal("ok", azure{ api_type = "azure_ad", api_key = "ad-TOKEN" }:create{ messages = MSGS }.content)
    local req = srv:last_request()
    assert.equal("Bearer ad-TOKEN", req.headers.Authorization)
    assert.is_nil(req.headers["api-key"])
    assert.same({ ["api-version"] = "2024-02-01" }, req.query)
  end)

  it("reads AZURE_OPENAI_API_KEY, never OPENAI_API_KEY, for an azure entry without api_key", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    local src = ([[
      local c = require("agentbox.llm").new{ config_list = { { model = "d", api_type = "azure",
        api_version = "2024-02-01", base_url = %q } }, max_retries = 0, cache_seed = false }
      local msg, err = c:create{ messages = { { role = "user", content = "hi" } } }
      io.write(msg and msg.content or tostring(err))]]):format(srv.root_url)
    local r = H.lua(src, { OPENAI_API_KEY = "sk-openai-KEY", AZURE_OPENAI_API_KEY = "az-env-KEY" })
    assert.equal("ok", r.stdout, r.stderr)
    local req = srv:last_request()
    assert.equal("az-env-KEY", req.headers["api-key"])
    assert.is_nil(req.headers.Authorization)
    r = H.lua(src, { OPENAI_API_KEY = "sk-openai-KEY" })
    assert.matches("HTTP 401", r.stdout)
    assert.not_matches("sk%-openai", require("cjson").encode(srv:last_request().headers))
  end)

  it("top-level api_type and api_version apply to every entry, as AutoGen merges its base config", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    local c = llm.new{ config_list = { { model = "dep", base_url = srv.root_url, api_key = "k" } },
                       api_type = "azure", api_version = "2024-06-01", max_retries = 0, cache_seed = false }
    assert.equal("ok", c:create{ messages = MSGS }.content)
    local req = srv:last_request()
    assert.equal("/openai/deployments/dep/chat/completions", req.path)
    assert.same({ ["api-version"] = "2024-06-01" }, req.query)
    assert.is_nil(req.body.api_type)
  end)

  it("is what the scripted server checks: no api-version is Azure's 404, no key its 401", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    local core = require("agentbox.core")
    local function post(url, headers)
      local h <close> = core.http{ method = "POST", url = url, headers = headers, body = '{"model":"d","messages":[]}' }
      while not h:done() do core.step(-1) end
      return h:result().status
    end
    local path = srv.root_url .. "/openai/deployments/d/chat/completions"
    assert.equal(404, post(path, { "api-key: k" }))
    assert.equal(401, post(path .. "?api-version=2024-02-01", {}))
    assert.equal(200, post(path .. "?api-version=2024-02-01", { "api-key: k" }))
  end)

  describe("at construction", function()
    local function refused(cfg, pattern)
      local ok, err = pcall(llm.new, cfg)
      assert.is_false(ok)
      assert.matches(pattern, err)
      return err
    end

    it("refuses an azure entry without api_version, naming the entry", function()
      local err = refused({ config_list = { { model = "m" }, { model = "dep", api_type = "azure",
        base_url = "https://r.openai.azure.com", api_key = "k" } } }, "config_list%[2%]")
      assert.matches("needs api_version", err)
      assert.matches('"2024%-02%-01"', err)
      -- through an agent too, blamed on the caller's line
      local ok, aerr = pcall(agentbox.AssistantAgent, { name = "a", llm_config = { config_list = { {
        model = "dep", api_type = "azure", base_url = "https://r.openai.azure.com" } } } })
      assert.is_false(ok)
      assert.matches("llm_azure_spec.lua:%d+: .*needs api_version", aerr)
    end)

    it("refuses an api_type it does not speak, naming the entry and listing what it speaks", function()
      for _, t in ipairs({ "google", "anthropic", "Azure", "open_ai" }) do
        local err = refused({ config_list = { { model = "a" }, { model = "gemini-pro", api_type = t } } },
          "config_list%[2%] %(model gemini%-pro%): api_type \"" .. t:gsub("%p", "%%%0") .. "\" is not supported")
        assert.matches("openai, azure, azure_ad", err)
      end
      refused({ config_list = { { model = "a" } }, api_type = "anthropic" }, "config_list%[1%].*\"anthropic\"")
      refused({ config_list = { { model = "a", api_type = 1 } } }, "api_type 1 is not supported")
    end)

    it("refuses an azure entry without a resource, or with a deployment URL as base_url", function()
      refused({ config_list = { { model = "d", api_type = "azure", api_version = "2024-02-01" } } },
        "config_list%[1%].*needs base_url: the Azure OpenAI resource")
      refused({ config_list = { { model = "d", api_type = "azure", api_version = "2024-02-01",
        base_url = "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-02-01" } } },
        "must be the Azure resource")
      refused({ config_list = { { model = "d", api_type = "azure", api_version = "2024-02-01",
        base_url = "https://a.openai.azure.com", azure_endpoint = "https://b.openai.azure.com" } } },
        "both base_url and azure_endpoint")
      refused({ config_list = { { model = "d", azure_endpoint = "https://b.openai.azure.com" } } },
        "azure_endpoint is for api_type = \"azure\"")
      refused({ config_list = { { model = "d", api_type = "azure", api_version = "2024-02-01&x=1",
        base_url = "https://a.openai.azure.com" } } }, "needs api_version")
    end)

    it("refuses a price that is not { prompt_per_1k, completion_per_1k }", function()
      refused({ config_list = { { model = "m", price = { 1 } } } }, "config_list%[1%].price must be")
      refused({ config_list = { { model = "m", price = { 1, -2 } } } }, "price must be")
      refused({ config_list = { { model = "m", price = "cheap" } } }, "price must be")
      assert.is_table(llm.new{ config_list = { { model = "m", price = { 0.5, 1.5 } } } })
      assert.is_table(llm.new{ config_list = { { model = "m", price = 0.5 } } })
    end)

    it("keeps today's behaviour for api_type = \"openai\" and no api_type", function()
      srv = fake.start{ rules = { { content = "ok" } } }
      for _, t in ipairs({ "openai", false }) do
        local c = llm.new{ config_list = { { model = "m", api_type = t or nil, base_url = srv.base_url, api_key = "sk" } },
                           max_retries = 0, cache_seed = false }
        assert.equal("ok", c:create{ messages = MSGS }.content)
        local req = srv:last_request()
        assert.equal("/v1/chat/completions", req.path)
        assert.same({}, req.query)
        assert.equal("Bearer sk", req.headers.Authorization)
        assert.is_nil(req.body.api_type)
      end
    end)
  end)
end)
