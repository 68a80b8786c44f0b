-- llm_config.stream: server-sent events from a real scripted server on
-- 127.0.0.1 (spec/support/fake_openai.py streams when asked), framed in C
-- (src/sse.c), assembled in lua/agentbox/llm_stream.lua.
local agentbox = require("agentbox")
local llm = require("agentbox.llm")
local core = require("agentbox.core")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")

local MSGS = { { role = "system", content = "sys" }, { role = "user", content = "hi" } }
local TEXT = "The quick brown fox jumps over the lazy dog; then it streams, piece by piece, to the end."
local CALLS = { { id = "call_a", name = "lookup", arguments = '{"query":"weather in Paris","days":[1,2,3]}' },
                { id = "call_b", name = "convert", arguments = '{"from":"celsius","to":"kelvin","value":21.5}' } }

describe("streamed replies", function()
  local srv
  after_each(function() if srv then srv:stop() srv = nil end end)

  local function client(extra)
    local cfg = { config_list = { { model = "m", api_key = "sk-test", base_url = srv.base_url } },
                  timeout = 10, max_retries = 0, retry_base = 0.01, stream = true, cache_seed = false }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    if cfg.stream == "off" then cfg.stream = nil end
    return llm.new(cfg)
  end

  -- the reply document without what differs per request
  local function doc_of(c)
    local d = c.last_response
    return { object = d.object, model = d.model, choices = d.choices, usage = d.usage }
  end

  it("assembles content exactly as the unstreamed reply, usage from the final chunk", function()
    srv = fake.start{ models = { m = { { content = TEXT }, { content = TEXT } } } }
    local plain, streamed = client({ stream = "off" }), client()
    local want = plain:create{ messages = MSGS }
    assert.is_nil(srv:last_request().body.stream)
    local tokens = {}
    local got = streamed:create{ messages = MSGS, on_token = function(t) tokens[#tokens + 1] = t end }
    local req = srv:last_request().body
    assert.is_true(req.stream)
    assert.same({ include_usage = true }, req.stream_options)
    assert.same(want, got)
    assert.same(doc_of(plain), doc_of(streamed))
    assert.equal("chat.completion", streamed.last_response.object)
    assert.is_true(#tokens > 10, "the text came in pieces: " .. #tokens)
    assert.equal(TEXT, table.concat(tokens))
    assert.same(plain:usage(), streamed:usage())
    assert.is_true(streamed:usage().usage_including_cached_inference.m.total_tokens > 0)
  end)

  it("assembles two interleaved tool calls whose arguments come one byte per chunk", function()
    srv = fake.start{ models = { m = { { tool_calls = CALLS }, { tool_calls = CALLS, piece = 1 } } } }
    local want = client({ stream = "off" }):create{ messages = MSGS }
    local c = client()
    local got = c:create{ messages = MSGS }
    assert.same(want, got)
    assert.equal(2, #got.tool_calls)
    assert.same({ "call_a", "lookup", CALLS[1].arguments },
                { got.tool_calls[1].id, got.tool_calls[1]["function"].name, got.tool_calls[1]["function"].arguments })
    assert.equal(CALLS[2].arguments, got.tool_calls[2]["function"].arguments)
    assert.is_nil(got.content)
    assert.equal("tool_calls", c.last_response.choices[1].finish_reason)
  end)

  it("frames events as the SSE format says: CRLF, CR, comments, multi-line data, named events", function()
    srv = fake.start{ models = { m = { { drip = 0.001, sse_raw = {
      "\239\187\191: a BOM, then a keep-alive comment\r\n\r\n",
      "event: message\r\nid: 7\r\nretry: 10\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n",
      "data: {\"choices\":[{\"index\":0,\r",
      "\ndata: \"delta\":{\"content\":\"b\\nc\"}}]}\r\r",
      "data:{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
      "data: [DONE]\n\n", "data: {\"ignored\": \"after [DONE]\"}\n\n" } } } } }
    local c = client()
    local got = assert(c:create{ messages = MSGS })
    assert.equal("ab\nc", got.content)
    assert.equal("stop", c.last_response.choices[1].finish_reason)
  end)

  it("core.http sse: a reader that stops reading pauses the transfer instead of queueing without bound", function()
    srv = fake.start{ models = { m = { { content_gen = { unit = "z", count = 20000 }, piece = 10 } } } }
    local h <close> = core.http{ method = "POST", url = srv.base_url .. "/chat/completions", sse = true,
      max_body = 4096, max_event = 4096, headers = { "Content-Type: application/json" },
      body = '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}' }
    local t0 = core.now()
    while core.now() - t0 < 0.5 do core.step(20) end
    assert.is_false(h:done(), "2000 events of ~200 bytes wait behind a 4 KB queue")
    local first = assert(h:read())
    local bytes = 0
    for i = 2, #first, 2 do bytes = bytes + #first[i] end
    assert.is_true(bytes <= 4096 + 64 * 1024, "queued " .. bytes .. " bytes")
    local text, n, last = {}, #first / 2, nil
    local function take(evs)
      for i = 2, #evs, 2 do
        last = evs[i]
        local d = require("cjson.safe").decode(evs[i])
        local c = type(d) == "table" and d.choices and d.choices[1]
        if c and c.delta and type(c.delta.content) == "string" then text[#text + 1] = c.delta.content end
      end
    end
    take(first)
    while not h:done() do
      core.step(20)
      local evs = h:read()
      if evs then n = n + #evs / 2; take(evs) end
    end
    local evs = h:read()
    if evs then n = n + #evs / 2; take(evs) end
    assert.equal("[DONE]", last)
    assert.equal(("z"):rep(20000), table.concat(text))
    assert.is_true(assert(h:result()).events)
    assert.equal(2000 + 3, n)
  end)

  it("raises a failing on_token's own error from the chat, once, not as a model failure", function()
    srv = fake.start{ models = { m = { { content = TEXT } } } }
    local calls = 0
    local a = agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { {
      model = "m", api_key = "k", base_url = srv.base_url } }, stream = true, max_retries = 2, cache_seed = false },
      on_token = function()
        calls = calls + 1
        error("the host's hook broke")
      end }
    local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = false }
    local ok, err = pcall(u.initiate_chat, u, a, { message = "hi", max_turns = 1, silent = true })
    assert.is_false(ok)
    assert.matches("the host's hook broke", tostring(err))
    assert.equal(1, calls)
    assert.equal(1, #srv:requests())     -- not retried: the server did nothing wrong
  end)

  it("gives on_token the text before the reply ends while another task keeps running", function()
    srv = fake.start{ models = { m = { { content = TEXT, pause_after = 3, pause = 0.6 } } } }
    local log = {}
    local a = agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { {
      model = "m", api_key = "k", base_url = srv.base_url } }, stream = true, max_retries = 0, cache_seed = false },
      on_token = function(text, agent, kind)
        assert.equal("a", agent.name)
        log[#log + 1] = { "token", text, kind }
      end }
    local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = false }
    local chat = agentbox.spawn(function()
      local r = u:initiate_chat(a, { message = "hi", max_turns = 1, silent = true })
      log[#log + 1] = { "reply" }
      return r
    end)
    local ticker = agentbox.spawn(function()
      while not chat:done() do
        log[#log + 1] = { "tick" }
        agentbox.sleep(0.05)
      end
      return true
    end)
    agentbox.run()
    assert(ticker:result())
    local r = assert(chat:result())
    assert.equal(TEXT, r.chat_history[#r.chat_history].content)
    -- order: some tokens, then ticks while the server pauses, then the rest, then the reply
    local first_tok, last_tok, reply, ticks_between = nil, nil, nil, 0
    for i, e in ipairs(log) do
      if e[1] == "token" then first_tok = first_tok or i; last_tok = i end
      if e[1] == "reply" then reply = i end
    end
    for i = first_tok, last_tok do if log[i][1] == "tick" then ticks_between = ticks_between + 1 end end
    assert.is_true(ticks_between >= 5, "the other task ran during the stream: " .. ticks_between .. " ticks")
    assert.is_true(last_tok < reply)
    local text = {}
    for _, e in ipairs(log) do if e[1] == "token" then text[#text + 1] = e[2] end end
    assert.equal(TEXT, table.concat(text))
  end)

  it("loses no event when the task yields in the middle of a batch (a long reply inside a task)", function()
    local long = ("0123456789abcdef"):rep(8000)
    srv = fake.start{ models = { m = { { content = long, piece = 8 } } } }
    local c = client()
    local n = 0
    local t = agentbox.spawn(function()
      return c:create{ messages = MSGS, on_token = function() n = n + 1 end }
    end)
    agentbox.run()
    local got, err = t:result()
    assert.is_truthy(got, err)
    assert.equal(long, got.content)
    assert.equal(#long / 8, n)
  end)

  it("retries a stream cut halfway: the reply is the full one, on_token is told to start again", function()
    srv = fake.start{ models = { m = { { content = TEXT, cut_after = 6 }, { content = TEXT } } } }
    local seen = {}
    local c = client({ max_retries = 2 })
    local got = assert(c:create{ messages = MSGS, on_token = function(t, kind)
      seen[#seen + 1] = kind and ("<" .. kind .. ">") or t
    end })
    assert.equal(TEXT, got.content)
    assert.equal(2, #srv:requests())
    local all = table.concat(seen)
    local partial, rest = all:match("^(.-)<retry>(.*)$")
    assert.is_truthy(partial, all)
    assert.is_true(#partial > 0 and #partial < #TEXT, partial)
    assert.equal(TEXT, rest)
  end)

  it("tells on_token to start again when the next config_list entry answers after a cut", function()
    srv = fake.start{ models = { first = { { content = TEXT, cut_after = 5 } }, second = { { content = "second" } } } }
    local c = llm.new{ config_list = { { model = "first", api_key = "k", base_url = srv.base_url },
                                       { model = "second", api_key = "k", base_url = srv.base_url } },
                       stream = true, max_retries = 0, cache_seed = false }
    local seen = {}
    local got = assert(c:create{ messages = MSGS, on_token = function(t, kind)
      seen[#seen + 1] = kind and ("<" .. kind .. ">") or t
    end })
    assert.equal("second", got.content)
    assert.matches("^[^<]+<retry>second$", table.concat(seen))
  end)

  it("never takes partial text as the reply: a cut with no retries left is an error", function()
    srv = fake.start{ models = { m = { { content = TEXT, cut_after = 6 } } } }
    local msg, err, code = client():create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("transport", code)
    assert.matches("config_list%[1%] %(model m%): POST .*/chat/completions", err)
  end)

  it("treats a body that ends without [DONE] as a cut: an error, retried", function()
    srv = fake.start{ models = { m = { { content = TEXT, no_done = true }, { content = TEXT, no_done = true },
                                       { content = TEXT } } } }
    local msg, err, code = client({ max_retries = 1 }):create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("transport", code)
    assert.matches("ended before data: %[DONE%]", err)
    assert.equal(2, #srv:requests())
    assert.equal(TEXT, client({ max_retries = 0 }):create{ messages = MSGS }.content)
  end)

  it("refuses an endless event (no newline ever) at max_reply_bytes, without retrying", function()
    srv = fake.start{ models = { m = { { sse_raw = { "ENDLESS" } }, { content = "unused" } } } }
    local t0 = core.now()
    local msg, err, code = client({ max_retries = 3, max_reply_bytes = 200000 }):create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("protocol", code)
    assert.matches("larger than llm_config.max_reply_bytes %(200000 bytes%)", err)
    assert.equal(1, #srv:requests())
    assert.is_true(core.now() - t0 < 5)
  end)

  it("refuses a streamed reply whose pieces add up past max_reply_bytes", function()
    srv = fake.start{ models = { m = { { content_gen = { unit = "y", count = 300000 }, piece = 1000 } } } }
    local msg, err, code = client({ max_reply_bytes = 100000 }):create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("protocol", code)
    assert.matches("streamed reply is larger than llm_config.max_reply_bytes", err)
  end)

  it("reports garbage data lines as a protocol error, not retried", function()
    srv = fake.start{ models = { m = { { sse_raw = { "data: {\"choices\":[]}\n\n", "data: <html>oops</html>\n\n",
                                                     "data: [DONE]\n\n" } }, { content = "unused" } } } }
    local msg, err, code = client({ max_retries = 2 }):create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("protocol", code)
    assert.matches("not a chat completion chunk %(malformed JSON%): <html>oops</html>", err)
    assert.equal(1, #srv:requests())
  end)

  it("takes an error event mid-stream as a failure of that request, retried", function()
    srv = fake.start{ models = { m = { { content = TEXT, error_after = 4 }, { content = TEXT, error_after = 2 },
                                       { content = TEXT } } } }
    local msg, err, code = client({ max_retries = 1 }):create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("http", code)
    assert.matches("error event mid%-stream: fake_openai: scripted stream error", err)
    assert.equal(2, #srv:requests())
    assert.equal(TEXT, client():create{ messages = MSGS }.content)
  end)

  it("counts no usage when the server sends no usage chunk", function()
    srv = fake.start{ models = { m = { { content = TEXT, no_usage = true } } } }
    local c = client()
    assert.equal(TEXT, c:create{ messages = MSGS }.content)
    assert.is_nil(c:usage().usage_including_cached_inference.m)
  end)

  it("reads a server that ignored stream = true and answered with JSON", function()
    srv = fake.start{ models = { m = { { raw = '{"id":"x","object":"chat.completion","model":"m","choices":'
      .. '[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}' } } } }
    local tokens = {}
    local got = client():create{ messages = MSGS, on_token = function(t) tokens[#tokens + 1] = t end }
    assert.equal("whole", got.content)
    assert.same({ "whole" }, tokens)
  end)

  it("reads an error status as unstreamed: the server's message, retried as before", function()
    srv = fake.start{ models = { m = { { status = 503 }, { content = TEXT } } } }
    assert.equal(TEXT, client({ max_retries = 1 }):create{ messages = MSGS }.content)
    assert.equal(2, #srv:requests())
  end)

  it("names a bad stream or on_token option", function()
    assert.has_error(function() llm.new{ model = "m", stream = "yes" } end,
      "llm_config.stream must be true or false, got yes")
    local ok, err = pcall(agentbox.AssistantAgent, { name = "a", llm_config = { model = "m" }, on_token = 5 })
    assert.is_false(ok)
    assert.matches("AssistantAgent 'a': on_token must be a function", err)
  end)

  it("shows a streamed reply on a terminal's transcript as it arrives, then the message", function()
    srv = fake.start{ models = { m = { { content = "streamed to the terminal", cut_after = 4 },
                                       { content = "streamed to the terminal" } } } }
    local src = ([[
      local agentbox = require("agentbox")
      agentbox.color = false
      local a = agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { {
        model = "m", api_key = "k", base_url = %q } }, stream = true, max_retries = 1, retry_base = 0.01, cache_seed = false } }
      local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = false }
      u:initiate_chat(a, { message = "hi", max_turns = 1 })]]):format(srv.base_url)
    local r = H.lua_tty(src, nil, 30)
    assert.equal(0, r.exit_code, r.output)
    local out = r.stdout
    local retry = out:find("[the reply was cut off; retrying]", 1, true)
    local streamed = out:find("\nstreamed to the terminal\n", retry or 1, true)
    local message = out:find("a (to u):\n\nstreamed to the terminal\n", 1, true)
    assert.is_truthy(retry, out)
    assert.is_truthy(streamed, out)
    assert.is_truthy(message and message > streamed, out)
    -- a pipe gets AutoGen's transcript alone
    srv:stop()
    srv = fake.start{ models = { m = { { content = "streamed to the terminal" } } } }
    r = H.lua(src:gsub("http://127%.0%.0%.1:%d+/v1", srv.base_url), nil, 30)
    assert.equal(0, r.exit_code, r.output)
    local _, n = r.stdout:gsub("streamed to the terminal", "")
    assert.equal(1, n, r.stdout)
  end)
end)
