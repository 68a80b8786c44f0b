-- The OpenAI-compatible client against a real scripted HTTP server.
local llm = require("agentbox.llm")
local core = require("agentbox.core")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")

local MSGS = { { role = "system", content = "sys" }, { role = "user", content = "hi" } }

describe("llm client", function()
  local srv
  after_each(function() if srv then srv:stop() srv = nil end end)

  local function client(extra, entry)
    local e = { model = "m", api_key = "sk-test-SECRET", base_url = srv.base_url }
    for k, v in pairs(entry or {}) do e[k] = v end
    local cfg = { config_list = { e }, timeout = 5, max_retries = 3, retry_base = 0.05, cache_seed = false }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    return llm.new(cfg)
  end

  it("posts the messages and returns the assistant message", function()
    srv = fake.start{ models = { m = { { content = "hello", expect = { last_equals = "hi", messages_count = 2 } } } } }
    local c = client({ temperature = 0, seed = 7 })
    local msg = c:create{ messages = MSGS }
    assert.same({ role = "assistant", content = "hello" }, msg)
    local req = srv:last_request()
    assert.equal("/v1/chat/completions", req.path)
    assert.equal("Bearer sk-test-SECRET", req.headers.Authorization)
    assert.equal(0, req.body.temperature)
    assert.equal(7, req.body.seed)
    assert.equal("m", req.body.model)
    assert.is_nil(req.body.config_list)
    assert.is_nil(req.body.api_key)
  end)

  it("keeps tool_calls and sends tools", function()
    srv = fake.start{ models = { m = { { tool_calls = { { id = "c1", name = "f", arguments = "{\"x\":1}" } },
                                         expect = { has_tools = true } } } } }
    local tools = { { type = "function", ["function"] = { name = "f", description = "d",
                                                          parameters = { type = "object", properties = {} } } } }
    local msg = client():create{ messages = MSGS, tools = tools }
    assert.equal("f", msg.tool_calls[1]["function"].name)
    assert.equal("{\"x\":1}", msg.tool_calls[1]["function"].arguments)
    assert.is_nil(msg.content)
  end)

  it("waits as Retry-After says on 429, then succeeds", function()
    srv = fake.start{ models = { m = { { status = 429, headers = { ["Retry-After"] = "1" } }, { content = "ok" } } } }
    local t0 = core.now()
    local msg = client():create{ messages = MSGS }
    local dt = core.now() - t0
    assert.equal("ok", msg.content)
    assert.is_true(dt >= 0.95, "waited " .. dt)
    assert.equal(2, #srv:requests())
  end)

  it("retries a 500 and succeeds", function()
    srv = fake.start{ models = { m = { { status = 500 }, { status = 503 }, { content = "ok" } } } }
    assert.equal("ok", client():create{ messages = MSGS }.content)
    assert.equal(3, #srv:requests())
  end)

  it("does not retry 400/401/403/404 and says what to check, never the key", function()
    srv = fake.start{ models = { m = { { status = 401, body = "{\"error\":{\"message\":\"Incorrect API key provided\"}}" } } } }
    local msg, err, code, status = client():create{ messages = MSGS }
    assert.is_nil(msg)
    assert.same({ "http", 401 }, { code, status })
    assert.matches("HTTP 401: Incorrect API key provided %(check api_key%)", err)
    assert.matches(srv.base_url .. "/chat/completions", err, 1, true)
    assert.not_matches("SECRET", err)
    assert.equal(1, #srv:requests())
  end)

  it("gives up after max_retries and names the status and message", function()
    srv = fake.start{ models = { m = { { status = 500 }, { status = 500 }, { status = 500 } } } }
    local msg, err, code = client({ max_retries = 2 }):create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("http", code)
    assert.matches("HTTP 500: fake_openai: scripted status 500", err)
    assert.equal(3, #srv:requests())
  end)

  it("reports a malformed JSON body clearly", function()
    srv = fake.start{ models = { m = { { raw = "not json{" } } } }
    local msg, err, code = client():create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("protocol", code)
    assert.matches("not a chat completion.*not json{", err)
  end)

  it("reports connection refused with the URL after retrying", function()
    local c = llm.new{ config_list = { { model = "m", api_key = "k", base_url = "http://127.0.0.1:1/v1" } },
                       max_retries = 1, retry_base = 0.01, cache_seed = false }
    local msg, err, code = c:create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("unreachable", code)
    assert.matches("POST http://127.0.0.1:1/v1/chat/completions failed: .*connect", err)
  end)

  it("times out on a server slower than the timeout", function()
    srv = fake.start{ models = { m = { { delay = 3, content = "late" }, { delay = 3, content = "late" } } } }
    local t0 = core.now()
    local msg, err, code = client({ timeout = 0.5, max_retries = 1 }):create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("timeout", code)
    assert.matches("timed out after 0.5s", err)
    assert.is_true(core.now() - t0 < 2.5)
  end)

  it("falls back to the next config_list entry", function()
    srv = fake.start{ models = { bad = { { status = 404 } }, good = { { content = "from good" } } } }
    local c = llm.new{ config_list = { { model = "bad", api_key = "k", base_url = srv.base_url },
                                        { model = "good", api_key = "k", base_url = srv.base_url } },
                       cache_seed = false }
    assert.equal("from good", c:create{ messages = MSGS }.content)
  end)

  it("accumulates usage per model in AutoGen's cost shape", function()
    srv = fake.start{ models = { m = { { content = "aaaa" }, { content = "bbbbbbbb" } } } }
    local c = client()
    c:create{ messages = MSGS }
    c:create{ messages = MSGS }
    local u = c:usage()
    local m = u.usage_including_cached_inference.m
    assert.equal(0, u.usage_including_cached_inference.total_cost)
    assert.equal(2 + 3, m.completion_tokens)
    assert.equal(m.prompt_tokens + m.completion_tokens, m.total_tokens)
    assert.same(u.usage_including_cached_inference, u.usage_excluding_cached_inference)
  end)

  it("takes base_url and api_key from OPENAI_BASE_URL and OPENAI_API_KEY when the entry has none", function()
    srv = fake.start{ models = { m = { { content = "from env" }, { content = "from entry" } } } }
    -- the environment is read in the client's process: a nested Lua with its own
    local src = [[
      local llm = require("agentbox.llm")
      local entry = { model = "m" }
      if os.getenv("ENTRY_BASE_URL") then entry.base_url, entry.api_key = os.getenv("ENTRY_BASE_URL"), "sk-entry" end
      local c = llm.new{ config_list = { entry }, timeout = 5, max_retries = 0, cache_seed = false }
      local msg, err = c:create{ messages = { { role = "user", content = "hi" } } }
      io.write(msg and msg.content or ("error: " .. tostring(err)))]]
    local r = H.lua(src, { OPENAI_BASE_URL = srv.base_url, OPENAI_API_KEY = "sk-env" })
    assert.equal(0, r.exit_code, r.output)
    assert.equal("from env", r.output)
    assert.equal("Bearer sk-env", srv:last_request().headers.Authorization)
    -- the entry's own values win over the environment's (which here points nowhere)
    r = H.lua(src, { OPENAI_BASE_URL = "http://127.0.0.1:9/v1", OPENAI_API_KEY = "sk-env",
                     ENTRY_BASE_URL = srv.base_url })
    assert.equal(0, r.exit_code, r.output)
    assert.equal("from entry", r.output)
    assert.equal("Bearer sk-entry", srv:last_request().headers.Authorization)
    assert.equal(2, #srv:requests())
    assert.equal("https://api.openai.com/v1", llm.DEFAULT_BASE_URL)
  end)

  it("rejects bad configs", function()
    assert.is_nil(llm.new(false))
    assert.has_error(function() llm.new{ config_list = {} } end)
    assert.has_error(function() llm.new{ config_list = { { api_key = "x" } } } end,
      "llm_config.config_list[1] needs a 'model' string")
    assert.has_error(function() llm.new{ config_list = { { model = "m", base_url = "ftp://x" } } } end)
    assert.has_error(function() llm.new{ config_list = { { model = "m" } }, timeout = -1 } end)
  end)

  it("runs concurrent requests inside tasks without blocking each other", function()
    local agentbox = require("agentbox")
    srv = fake.start{ rules = { { delay = 0.5, content = "echo {{last}}" } } }
    local c = client()
    local tasks = {}
    for i = 1, 8 do
      tasks[i] = agentbox.spawn(function()
        return c:create{ messages = { { role = "user", content = "q" .. i } } }.content
      end)
    end
    local t0 = core.now()
    agentbox.run()
    assert.is_true(core.now() - t0 < 1.5)
    for i = 1, 8 do assert.equal("echo q" .. i, tasks[i]:result()) end
  end)
  it("refuses a reply larger than llm_config.max_reply_bytes, naming the option, without retrying", function()
    srv = fake.start{ models = { m = {
      { content_gen = { unit = "x", count = 4096 } },
      { content_gen = { unit = "y", count = 4096 } },
      { content_gen = { unit = "z", count = 1000 } },
    } } }
    local c = client({ max_reply_bytes = 3000, max_retries = 2 })
    local msg, err, code = c:create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("protocol", code)
    assert.matches("the reply is larger than llm_config.max_reply_bytes (3000 bytes)", err, 1, true)
    assert.equal(1, #srv:requests())
    -- the default is 2 MiB: a 3 MiB reply is refused, the next one is fine
    srv:stop()
    srv = fake.start{ models = { m = { { content_gen = { unit = "x", count = 3 * 1024 * 1024 } }, { content = "ok" } } } }
    c = client({ max_retries = 0 })
    msg, err = c:create{ messages = MSGS }
    assert.is_nil(msg)
    assert.matches("llm_config.max_reply_bytes (2097152 bytes)", err, 1, true)
    assert.same({ role = "assistant", content = "ok" }, c:create{ messages = MSGS })
    local ok
    ok, err = pcall(llm.new, { config_list = { { model = "m" } }, max_reply_bytes = 0 })
    assert.is_false(ok)
    assert.matches("llm_config.max_reply_bytes must be a positive integer (bytes; default 2097152)", err, 1, true)
  end)
  it("a long message goes out exactly, although it is encoded in chunks", function()
    srv = fake.start{ models = { m = { { content = "ok" } } } }
    local unit = 'a "quoted" \\ back\\slash\n\ttab \1 ctl é ✓ /slash '
    local long = unit:rep(200 * 1024 // #unit + 7)
    client():create{ messages = { { role = "system", content = "sys" }, { role = "user", content = long, name = "u" } } }
    local body = srv:last_request().body
    assert.equal(long, body.messages[2].content)
    assert.equal("u", body.messages[2].name)
    assert.equal("sys", body.messages[1].content)
  end)
end)
