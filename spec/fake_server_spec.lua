-- Proves the scripted OpenAI fixture over real HTTP with the curl CLI, so the
-- fixture is trusted independently of agentbox's own HTTP client.
local cjson = require("cjson")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local exists = H.exists

-- One HTTP request through curl. opts: method, body (table -> JSON, or string), max_time.
local function http(url, opts)
  opts = opts or {}
  local body_file, head_file, req_file = os.tmpname(), os.tmpname(), os.tmpname()
  local cmd = { "curl -sS -o", q(body_file), "-D", q(head_file),
    "-w '%{http_code} %{time_total}'", "-H 'Authorization: Bearer sk-test'" }
  if opts.method then cmd[#cmd + 1] = "-X " .. opts.method end
  if opts.body then
    local data = type(opts.body) == "table" and cjson.encode(opts.body) or opts.body
    local f = assert(io.open(req_file, "wb"))
    f:write(data)
    f:close()
    cmd[#cmd + 1] = "-H 'Content-Type: application/json' --data-binary @" .. q(req_file)
  end
  if opts.max_time then cmd[#cmd + 1] = "--max-time " .. opts.max_time end
  cmd[#cmd + 1] = q(url) .. " 2>/dev/null"
  -- the curl CLI hangs under an ASan preload (make check); it is not ours to check
  local p = assert(io.popen("env -u LD_PRELOAD " .. table.concat(cmd, " ")))
  local out = p:read("a")
  local _, _, exit_code = p:close()
  local res = { exit = exit_code, headers = {}, body = H.try_read(body_file) or "" }
  local code, secs = out:match("^(%d+) ([%d.]+)")
  res.status, res.time = tonumber(code), tonumber(secs)
  for name, value in (H.try_read(head_file) or ""):gmatch("([%w-]+):%s*([^\r\n]*)") do
    res.headers[name:lower()] = value
  end
  local ok, decoded = pcall(cjson.decode, res.body)
  res.json = ok and decoded or nil
  os.remove(body_file); os.remove(head_file); os.remove(req_file)
  return res
end

local function chat(srv, model, messages, extra)
  local body = { model = model, messages = messages }
  for k, v in pairs(extra or {}) do body[k] = v end
  return http(srv.base_url .. "/chat/completions", { body = body })
end

local function user(text)
  return { { role = "user", content = text } }
end

describe("fake_openai fixture", function()
  local srv
  local function start(script)
    srv = fake.start(script)
    return srv
  end
  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  it("answers each model's steps in order, in chat.completion shape", function()
    start({ models = {
      a = { { content = "a1" }, { content = "a2" } },
      b = { { content = "b1" } },
    } })
    local r1 = chat(srv, "a", user("hi"))
    local r2 = chat(srv, "b", user("hi"))
    local r3 = chat(srv, "a", user("hi"))
    assert.are.same({ 200, 200, 200 }, { r1.status, r2.status, r3.status })
    assert.are.equal("a1", r1.json.choices[1].message.content)
    assert.are.equal("b1", r2.json.choices[1].message.content)
    assert.are.equal("a2", r3.json.choices[1].message.content)
    local j = r1.json
    assert.are.equal("chat.completion", j.object)
    assert.are.equal("a", j.model)
    assert.are.equal("string", type(j.id))
    assert.are.equal("number", type(j.created))
    assert.are.equal(0, j.choices[1].index)
    assert.are.equal("assistant", j.choices[1].message.role)
    assert.are.equal("stop", j.choices[1].finish_reason)
    assert.is_nil(j.choices[1].message.tool_calls)
    assert.are.equal("application/json", r1.headers["content-type"])
    assert.are.equal(tostring(#r1.body), r1.headers["content-length"])
  end)

  it("serves models without their own queue from the shared '*' queue", function()
    start({ models = { own = { { content = "own" } }, ["*"] = { { content = "w1" }, { content = "w2" } } } })
    assert.are.equal("w1", chat(srv, "x", user("hi")).json.choices[1].message.content)
    assert.are.equal("own", chat(srv, "own", user("hi")).json.choices[1].message.content)
    local r = chat(srv, "y", user("hi"))
    assert.are.equal("w2", r.json.choices[1].message.content)
    assert.are.equal("y", r.json.model)
  end)

  it("answers a scripted status with its headers; a retry consumes the next step", function()
    start({ models = { m = {
      { status = 429, headers = { ["Retry-After"] = "1" } },
      { status = 500 },
      { content = "finally" },
    } } })
    local r = chat(srv, "m", user("hi"))
    assert.are.equal(429, r.status)
    assert.are.equal("1", r.headers["retry-after"])
    assert.are.equal("rate_limit_error", r.json.error.type)
    assert.matches("429", r.json.error.message)
    r = chat(srv, "m", user("hi"))
    assert.are.equal(500, r.status)
    assert.are.equal("server_error", r.json.error.type)
    r = chat(srv, "m", user("hi"))
    assert.are.equal(200, r.status)
    assert.are.equal("finally", r.json.choices[1].message.content)
    local statuses = {}
    for _, req in ipairs(srv:requests()) do statuses[#statuses + 1] = req.status end
    assert.are.same({ 429, 500, 200 }, statuses)
  end)

  it("sends raw bodies verbatim: malformed 200 JSON and custom error bodies", function()
    start({ models = { m = {
      { raw = "not json{" },
      { status = 503, body = "upstream down" },
    } } })
    local r = chat(srv, "m", user("hi"))
    assert.are.equal(200, r.status)
    assert.are.equal("not json{", r.body)
    assert.is_nil(r.json)
    r = chat(srv, "m", user("hi"))
    assert.are.equal(503, r.status)
    assert.are.equal("upstream down", r.body)
  end)

  it("hangs up without a status line on a hangup step, and serves the next connection", function()
    start({ models = { m = { { hangup = true }, { content = "after" } } } })
    local r = chat(srv, "m", user("hi"))
    assert.are.equal(52, r.exit)      -- curl: "Empty reply from server"
    assert.are.equal(0, r.status)
    r = chat(srv, "m", user("hi"))
    assert.are.equal("after", r.json.choices[1].message.content)
    assert.are.same({ 0, 200 }, { srv:requests()[1].status, srv:requests()[2].status })
  end)

  it("passes met expectations and answers 500 + logs unmet ones", function()
    start({ models = { m = {
      { expect = { last_role = "tool", last_contains = "exitcode: 0", messages_count = 3, has_tools = true },
        content = "ok" },
      { expect = { last_equals = "exactly this" }, content = "ok2" },
      { expect = { last_contains = "exitcode: 0", has_tools = true }, content = "never" },
    } } })
    local msgs = {
      { role = "user", content = "run it" },
      { role = "assistant", content = cjson.null,
        tool_calls = { { id = "c1", type = "function", ["function"] = { name = "sh", arguments = "{}" } } } },
      { role = "tool", tool_call_id = "c1", content = "out\nexitcode: 0" },
    }
    local tools = { { type = "function", ["function"] = { name = "sh", parameters = { type = "object" } } } }
    local r = chat(srv, "m", msgs, { tools = tools })
    assert.are.equal(200, r.status)
    assert.are.equal("ok", r.json.choices[1].message.content)
    assert.are.equal(cjson.null, srv:last_request().expect_failed)
    r = chat(srv, "m", user("exactly this"))
    assert.are.equal(200, r.status)

    r = chat(srv, "m", user("exitcode: 1"))
    assert.are.equal(500, r.status)
    assert.matches("^fake_openai: expectation failed: ", r.json.error.message)
    assert.matches("last_contains", r.json.error.message)
    assert.matches("has_tools", r.json.error.message)
    local logged = srv:last_request()
    assert.are.equal(500, logged.status)
    assert.matches("last_contains", logged.expect_failed)
    assert.matches("has_tools", logged.expect_failed)
  end)

  it("answers from stateless rules, substituting {{last}} and {{n}}", function()
    start({ rules = {
      { when_last_role = "tool", content = "tool said {{last}}" },
      { when_last_contains = "ping", content = "pong: {{last}} ({{n}} msgs)" },
      { when_last_contains = "ping", content = "shadowed by the rule above" },
      { when_last_contains = "call", tool_calls = { { id = "call_r", name = "f", arguments = "{}" } } },
    } })
    local r = chat(srv, "any", { { role = "system", content = "s" }, { role = "user", content = "ping 1" } })
    assert.are.equal("pong: ping 1 (2 msgs)", r.json.choices[1].message.content)
    -- Same request again: rules do not run out.
    r = chat(srv, "other", { { role = "system", content = "s" }, { role = "user", content = "ping 1" } })
    assert.are.equal("pong: ping 1 (2 msgs)", r.json.choices[1].message.content)
    r = chat(srv, "any", { { role = "tool", tool_call_id = "x", content = "ping" } })
    assert.are.equal("tool said ping", r.json.choices[1].message.content)
    r = chat(srv, "any", user("please call"))
    assert.are.equal("f", r.json.choices[1].message.tool_calls[1]["function"].name)
    r = chat(srv, "any", user("nothing matches"))
    assert.are.equal(500, r.status)
    assert.matches("no script step or rule for model any", r.json.error.message)
    assert.are.equal("rules[1]", srv:requests()[1].answered_by)
  end)

  it("answers 500 naming the model once its script is exhausted", function()
    start({ models = { m = { { content = "only" } } } })
    assert.are.equal(200, chat(srv, "m", user("hi")).status)
    local r = chat(srv, "m", user("hi"))
    assert.are.equal(500, r.status)
    assert.are.equal("fake_openai: script exhausted for model m", r.json.error.message)
    -- Stays exhausted rather than wrapping around.
    assert.are.equal(500, chat(srv, "m", user("hi")).status)
  end)

  it("returns tool_calls in OpenAI shape", function()
    start({ models = { m = {
      { tool_calls = { { id = "call_1", name = "shell", arguments = '{"cmd":"ls"}' },
                       { id = "call_2", name = "read", arguments = { path = "a.txt" } } } },
      { content = "let me look", tool_calls = { { name = "shell", arguments = "{}" } } },
    } } })
    local choice = chat(srv, "m", user("hi")).json.choices[1]
    assert.are.equal("tool_calls", choice.finish_reason)
    assert.are.equal(cjson.null, choice.message.content)
    local calls = choice.message.tool_calls
    assert.are.equal(2, #calls)
    assert.are.same({ id = "call_1", type = "function",
      ["function"] = { name = "shell", arguments = '{"cmd":"ls"}' } }, calls[1])
    assert.are.equal("string", type(calls[2]["function"].arguments))
    assert.are.same({ path = "a.txt" }, cjson.decode(calls[2]["function"].arguments))

    choice = chat(srv, "m", user("hi")).json.choices[1]
    assert.are.equal("let me look", choice.message.content)
    assert.are.equal("tool_calls", choice.finish_reason)
    assert.are.equal("string", type(choice.message.tool_calls[1].id))
    assert.is_true(#choice.message.tool_calls[1].id > 0)
  end)

  it("generates huge or numbered content and tool arguments (content_gen, arguments_gen)", function()
    start({ models = { m = {
      { content_gen = { head = "<", unit = "ab", count = 3 * 1024 * 1024, tail = ">" } },
      { content_gen = { unit = "[{i}]", count = 3 },
        tool_calls = { { name = "t", arguments_gen = { head = '{"a": "', unit = "x", count = 5, tail = '"}' } } } },
    } } })
    local msg = chat(srv, "m", user("hi")).json.choices[1].message
    assert.are.equal(6 * 1024 * 1024 + 2, #msg.content)
    assert.are.equal("<abab", msg.content:sub(1, 5))
    assert.are.equal("ab>", msg.content:sub(-3))
    msg = chat(srv, "m", user("hi")).json.choices[1].message
    assert.are.equal("[0][1][2]", msg.content)
    assert.are.equal('{"a": "xxxxx"}', msg.tool_calls[1]["function"].arguments)
    local ok, err = pcall(fake.start, { models = { m = { { content_gen = { unit = "x", times = 3 } } } } })
    assert.is_false(ok)
    assert.matches("content_gen must be an object with keys head, unit, count, tail", err, 1, true)
  end)

  it("reports deterministic usage numbers", function()
    start({ models = { m = { { content = string.rep("x", 10) }, { tool_calls = { { name = "f" } } } } } })
    -- 17 + 9 = 26 chars of message content -> 26 // 4 + 1 = 7; 10 // 4 + 1 = 3.
    local r = chat(srv, "m", { { role = "system", content = string.rep("s", 17) },
                                { role = "user", content = string.rep("u", 9) } })
    assert.are.same({ prompt_tokens = 7, completion_tokens = 3, total_tokens = 10 }, r.json.usage)
    -- Null content counts as empty on both sides.
    r = chat(srv, "m", { { role = "assistant", content = cjson.null }, { role = "user", content = "abc" } })
    assert.are.same({ prompt_tokens = 1, completion_tokens = 1, total_tokens = 2 }, r.json.usage)
  end)

  it("keeps the connection alive across two requests in one curl invocation", function()
    start({ models = { m = { { content = "first" }, { content = "second" } } } })
    local req = os.tmpname()
    local f = assert(io.open(req, "wb"))
    f:write(cjson.encode({ model = "m", messages = user("hi") }))
    f:close()
    local url = srv.base_url .. "/chat/completions"
    -- num_connects is 0 for a transfer that reused the previous connection.
    local p = io.popen(("env -u LD_PRELOAD curl -sS -H 'Content-Type: application/json' --data-binary @%s "
      .. "-w '\\n<%%{http_code} %%{num_connects}>\\n' %s %s 2>&1"):format(q(req), q(url), q(url)))
    local out = p:read("a")
    p:close()
    os.remove(req)
    local results = {}
    for code, conns in out:gmatch("<(%d+) (%d+)>") do results[#results + 1] = code .. "/" .. conns end
    assert.are.same({ "200/1", "200/0" }, results)
    assert.matches('"first"', out)
    assert.matches('"second"', out)
    local reqs = srv:requests()
    assert.are.equal(2, #reqs)
    assert.are.equal(reqs[1].conn, reqs[2].conn)
  end)

  it("logs each request's path, model, headers and parsed body; /chat/completions works too", function()
    start({ models = { m = { { content = "one" }, { content = "two" } } } })
    chat(srv, "m", user("hello"), { temperature = 0 })
    local r = http(srv.root_url .. "/chat/completions", { body = { model = "m", messages = user("again") } })
    assert.are.equal("two", r.json.choices[1].message.content)
    local reqs = srv:requests()
    assert.are.equal(2, #reqs)
    assert.are.same({ 1, 2 }, { reqs[1].n, reqs[2].n })
    assert.are.equal("/v1/chat/completions", reqs[1].path)
    assert.are.equal("/chat/completions", reqs[2].path)
    assert.are.equal("m", reqs[1].model)
    assert.are.equal("Bearer sk-test", reqs[1].headers.Authorization)
    assert.are.equal("hello", reqs[1].body.messages[1].content)
    assert.are.equal(0, reqs[1].body.temperature)
    assert.are.equal(200, reqs[1].status)
    assert.are.equal(cjson.null, reqs[1].expect_failed)
    assert.are.same(reqs[2], srv:last_request())
  end)

  it("lists models on GET /v1/models and answers 404 JSON elsewhere", function()
    start({ models = { ["gpt-x"] = {}, ["small"] = {}, ["*"] = {} } })
    local r = http(srv.base_url .. "/models")
    assert.are.equal(200, r.status)
    assert.are.equal("list", r.json.object)
    local ids = {}
    for _, m in ipairs(r.json.data) do ids[#ids + 1] = m.id end
    assert.are.same({ "gpt-x", "small" }, ids)
    r = http(srv.root_url .. "/v1/embeddings", { body = { input = "x" } })
    assert.are.equal(404, r.status)
    assert.matches("no route POST /v1/embeddings", r.json.error.message)
    r = http(srv.base_url .. "/chat/completions") -- GET on the POST route
    assert.are.equal(404, r.status)
    assert.are.equal(tostring(#r.body), r.headers["content-length"])
  end)

  it("rejects a request body that is not JSON with 400 and logs it raw", function()
    start({ models = { m = { { content = "unused" } } } })
    local r = http(srv.base_url .. "/chat/completions", { body = "{oops" })
    assert.are.equal(400, r.status)
    assert.are.equal("invalid_request_error", r.json.error.type)
    assert.are.equal("{oops", srv:last_request().body)
    -- The bad request did not consume the step.
    assert.are.equal("unused", chat(srv, "m", user("hi")).json.choices[1].message.content)
  end)

  it("delays answers, so client timeouts can be tested", function()
    start({ models = { m = { { delay = 0.3, content = "slow" }, { delay = 2, content = "too slow" },
                             { content = "fast" } } } })
    local r = chat(srv, "m", user("hi"))
    assert.are.equal("slow", r.json.choices[1].message.content)
    assert.is_true(r.time >= 0.3, "answered after " .. tostring(r.time))
    r = http(srv.base_url .. "/chat/completions",
      { body = { model = "m", messages = user("hi") }, max_time = 0.5 })
    assert.are.equal(28, r.exit) -- curl's "operation timed out"
    -- The server survives a client that hung up mid-delay.
    r = chat(srv, "m", user("hi"))
    assert.are.equal("fast", r.json.choices[1].message.content)
    assert.is_true(r.time < 1, "answered after " .. tostring(r.time))
  end)

  it("serves many concurrent conversations from rules", function()
    start({ rules = { { delay = 0.5, content = "echo {{last}}" } } })
    local req = os.tmpname()
    local f = assert(io.open(req, "wb"))
    f:write(cjson.encode({ model = "bench", messages = user("x") }))
    f:close()
    local urls = {}
    for i = 1, 32 do urls[i] = q(srv.base_url .. "/chat/completions?i=" .. i) end
    local p = io.popen(("env -u LD_PRELOAD curl -sS -Z --parallel-max 32 -H 'Content-Type: application/json' "
      .. "--data-binary @%s -o /dev/null -w '<%%{http_code}>' %s 2>&1"):format(q(req), table.concat(urls, " ")))
    local started = os.time()
    local out = p:read("a")
    p:close()
    os.remove(req)
    local ok = select(2, out:gsub("<200>", ""))
    assert.are.equal(32, ok, out)
    assert.are.equal(32, #srv:requests())
    -- Served one at a time this would take 16 s; whole seconds are coarse, so allow 5.
    assert.is_true(os.time() - started <= 5)
  end)

  it("stop is idempotent, frees the port, removes temp files and keeps the log readable", function()
    start({ models = { m = { { content = "hi" } } } })
    chat(srv, "m", user("hi"))
    local log, script = srv.log_path, srv.script_file
    assert.is_true(exists(log) and exists(script))
    srv:stop()
    srv:stop()
    assert.is_false(exists(log) or exists(script))
    assert.are.equal(1, #srv:requests())
    assert.are.equal(7, http(srv.base_url .. "/models").exit) -- curl: couldn't connect
    assert.is_nil(os.execute("kill -0 " .. srv.pid .. " 2>/dev/null")) -- process gone, not a zombie

    local port
    do
      local s <close> = fake.start({ models = {} })
      port = s.port
      assert.are.equal(200, http(s.base_url .. "/models").status)
    end
    assert.are.equal(7, http("http://127.0.0.1:" .. port .. "/v1/models").exit)
  end)

  it("fails to start with the server's own error for a bad script", function()
    local ok, err = pcall(fake.start, '{"models": 5}')
    assert.is_false(ok)
    assert.matches("server failed to start", err)
    assert.matches("script.models must be an object", err)
    ok, err = pcall(fake.start, { models = { m = { { expect = { last_role_typo = "user" } } } } })
    assert.is_false(ok)
    assert.matches("unknown key%(s%) last_role_typo", err)
  end)
end)
