-- doc/errors.md, checked failure by failure against real servers: each
-- runtime failure comes back as nil, message, code with its documented code,
-- and misuse is blamed on the line of this file that made it.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local llm = require("agentbox.llm")
local engine = require("agentbox.engine")
local errors = require("agentbox.errors")
local fake = require("spec.support.fake_openai")

local MSGS = { { role = "user", content = "hi" } }
local CLOSED = "http://127.0.0.1:1/v1"   -- nothing listens on port 1

local function client(base_url, extra)
  local cfg = { config_list = { { model = "m", api_key = "k", base_url = base_url } },
                timeout = 5, max_retries = 0, retry_base = 0.01, cache_seed = false }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return llm.new(cfg)
end

-- the values of a call, packed: { n =, [1] =, [2] =, ... }
local function pack(...) return table.pack(...) end

-- the message of a misuse error raised by fn, and the line of this file it blames
local function blamed(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected a misuse error")
  assert.is_string(err)
  return err, tonumber(err:match("errors_spec%.lua:(%d+):"))
end

local function here() return debug.getinfo(2, "l").currentline end

describe("errors: one shape", function()
  local srv
  after_each(function() if srv then srv:stop() srv = nil end end)

  describe("the HTTP layer", function()
    it("a closed port is unreachable, with curl's code as a 4th value", function()
      local h <close> = core.http{ url = "http://127.0.0.1:1/", timeout = 5 }
      require("agentbox.task").wait(h)
      local r = pack(h:result())
      assert.is_nil(r[1])
      assert.is_string(r[2])
      assert.equal("unreachable", r[3])
      assert.equal(7, r[4])         -- CURLE_COULDNT_CONNECT
    end)

    it("a request not finished yet is running", function()
      srv = fake.start{ models = { m = { { delay = 1, content = "late" } } } }
      local h <close> = core.http{ url = srv.root_url .. "/v1/chat/completions", method = "POST",
                                   body = '{"model":"m","messages":[]}', timeout = 5 }
      local r = pack(h:result())
      assert.same({ n = 3, nil, "running", "running" }, r)
    end)
  end)

  describe("the model client", function()
    it("a closed port -> unreachable", function()
      local r = pack(client(CLOSED):create{ messages = MSGS })
      assert.is_nil(r[1])
      assert.matches("POST " .. CLOSED .. "/chat/completions", r[2], 1, true)
      assert.equal("unreachable", r[3])
    end)

    it("a server that stalls -> timeout", function()
      srv = fake.start{ models = { m = { { delay = 3, content = "late" } } } }
      local t0 = core.now()
      local r = pack(client(srv.base_url, { timeout = 0.5 }):create{ messages = MSGS })
      assert.is_nil(r[1])
      assert.matches("timed out after 0.5s", r[2], 1, true)
      assert.equal("timeout", r[3])
      assert.is_true(core.now() - t0 < 2.5)
    end)

    it("a 500 -> http, the status in the message and as a 4th value", function()
      srv = fake.start{ models = { m = { { status = 500 } } } }
      local r = pack(client(srv.base_url):create{ messages = MSGS })
      assert.is_nil(r[1])
      assert.matches("HTTP 500", r[2], 1, true)
      assert.equal("http", r[3])
      assert.equal(500, r[4])
    end)

    it("bad JSON -> protocol", function()
      srv = fake.start{ models = { m = { { raw = "not json{" } } } }
      local r = pack(client(srv.base_url):create{ messages = MSGS })
      assert.is_nil(r[1])
      assert.matches("not a chat completion", r[2], 1, true)
      assert.equal("protocol", r[3])
    end)

    it("a reply over max_reply_bytes -> protocol", function()
      srv = fake.start{ models = { m = { { content_gen = { unit = "x", count = 8192 } } } } }
      local r = pack(client(srv.base_url, { max_reply_bytes = 4096 }):create{ messages = MSGS })
      assert.is_nil(r[1])
      assert.matches("llm_config.max_reply_bytes (4096 bytes)", r[2], 1, true)
      assert.equal("protocol", r[3])
    end)

    it("a server that hangs up -> transport", function()
      srv = fake.start{ models = { m = { { hangup = true } } } }
      local r = pack(client(srv.base_url):create{ messages = MSGS })
      assert.is_nil(r[1])
      assert.equal("transport", r[3])
    end)

    it("with a config_list, the code is the last entry's and the message names every entry", function()
      srv = fake.start{ models = { a = { { status = 404 } } } }
      local c = llm.new{ config_list = { { model = "a", api_key = "k", base_url = srv.base_url },
                                         { model = "b", api_key = "k", base_url = CLOSED } },
                         max_retries = 0, timeout = 5, cache_seed = false }
      local r = pack(c:create{ messages = MSGS })
      assert.is_nil(r[1])
      assert.matches("config_list%[1%] %(model a%): .*HTTP 404.*config_list%[2%] %(model b%)", r[2])
      assert.equal("unreachable", r[3])
    end)

    it("every code returned is a documented one", function()
      for _, code in ipairs({ "unreachable", "timeout", "http", "protocol", "transport", "running",
                              "cancelled", "error", "not_found", "docker", "unsupported" }) do
        assert.is_true(errors.CODES[code], code)
      end
    end)
  end)

  describe("the Docker client", function()
    it("available() at a nonexistent socket -> nil, message, unreachable", function()
      local r = pack(agentbox.docker.available("unix:///nonexistent/docker.sock"))
      assert.is_nil(r[1])
      assert.matches("/nonexistent/docker.sock", r[2], 1, true)
      assert.equal("unreachable", r[3])
    end)

    it("a client at a nonexistent socket fails to negotiate with unreachable; reap() too", function()
      local c = assert(engine.client("unix:///nonexistent/docker.sock"))
      local r = pack(c:negotiate())
      assert.is_nil(r[1])
      assert.equal("unreachable", r[3])
      r = pack(agentbox.docker.reap("unix:///nonexistent/docker.sock"))
      assert.is_nil(r[1])
      assert.equal("unreachable", r[3])
    end)

    it("an unsupported DOCKER_HOST -> unsupported", function()
      local r = pack(agentbox.docker.available("ssh://user@host"))
      assert.is_nil(r[1])
      assert.matches("unsupported DOCKER_HOST", r[2], 1, true)
      assert.equal("unsupported", r[3])
    end)
  end)

  describe("Task:result()", function()
    it("gives the values, or nil, message, code: running, cancelled, error", function()
      local done = agentbox.spawn(function() return 1, nil, 3 end)
      local slow = agentbox.spawn(function() agentbox.sleep(5) end)
      local bad = agentbox.spawn(function() error("boom", 0) end)
      local old_hook = agentbox.on_error
      agentbox.on_error = function() end      -- the failure is the point here, not news
      agentbox.run(function() return done:done() and bad:done() end)
      agentbox.on_error = old_hook
      assert.same({ n = 3, 1, nil, 3 }, pack(done:result()))
      assert.same({ n = 3, nil, "running", "running" }, pack(slow:result()))
      slow:cancel()
      agentbox.run()
      assert.same({ n = 3, nil, "cancelled", "cancelled" }, pack(slow:result()))
      local r = pack(bad:result())
      assert.equal(3, r.n)
      assert.is_nil(r[1])
      assert.matches("boom", r[2], 1, true)
      assert.equal("error", r[3])
    end)
  end)

  describe("a model failure inside the reply chain", function()
    it("raises a ChatFailure that keeps the client's code", function()
      local failure = require("agentbox.agent.failure")
      local a = agentbox.AssistantAgent{ name = "a", llm_config = {
        config_list = { { model = "m", api_key = "k", base_url = CLOSED } }, max_retries = 0, timeout = 5,
        cache_seed = false } }
      local ok, err = pcall(a.generate_reply, a, { messages = MSGS })
      assert.is_false(ok)
      assert.is_true(failure.is(err))
      assert.equal("unreachable", err.code)
      assert.matches("POST " .. CLOSED, tostring(err), 1, true)
    end)

    it("ends initiate_chat with the history, the message and the client's code", function()
      srv = fake.start{ models = { m = { { content = "first" }, { status = 500 } } } }
      local llm_config = { config_list = { { model = "m", api_key = "k", base_url = srv.base_url } },
                           max_retries = 0, timeout = 5, cache_seed = false }
      local user = agentbox.UserProxyAgent{ name = "user", human_input_mode = "NEVER", code_execution_config = false,
                                            default_auto_reply = "more" }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config }
      local old_print = agentbox.print
      agentbox.print = function() end
      local r = user:initiate_chat(assistant, { message = "hello", max_turns = 3 })
      agentbox.print = old_print
      local said = {}
      for i, m in ipairs(r.chat_history) do said[i] = m.content end
      assert.same({ "hello", "first", "more" }, said)
      assert.matches("HTTP 500", r.error, 1, true)
      assert.equal("http", r.error_code)
    end)
  end)

  describe("misuse is blamed on the caller's line", function()
    it("a bad llm_config, given straight or through an agent", function()
      local line = here() + 1
      local err, at = blamed(function() llm.new{ config_list = {} } end)
      assert.equal(line, at, err)
      assert.matches("llm_config.config_list must be a non-empty array", err, 1, true)
      line = here() + 1
      err, at = blamed(function() agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { { api_key = "x" } } } } end)
      assert.equal(line, at, err)
      assert.matches("llm_config.config_list[1] needs a 'model' string", err, 1, true)
      line = here() + 1
      err, at = blamed(function() llm.new{ config_list = { { model = "m" } }, timeout = 0 / 0 } end)
      assert.equal(line, at, err)
    end)

    it("with no caller of its own on the stack (a task agentbox runs), no position rather than a wrong one", function()
      local ok, err = pcall(require("agentbox.task").sync, errors.misuse, "agentbox.x: bad %s", "thing")
      assert.is_false(ok)
      assert.equal("agentbox.x: bad thing", err)
    end)

    it("a bad request, a bad DOCKER_HOST type, a bad spawn", function()
      local c = client(CLOSED)
      local line = here() + 1
      local err, at = blamed(function() c:create("hi") end)
      assert.equal(line, at, err)
      line = here() + 1
      err, at = blamed(function() engine.client(42) end)
      assert.equal(line, at, err)
      line = here() + 1
      err, at = blamed(function() agentbox.docker.available(42) end)
      assert.equal(line, at, err)
      line = here() + 1
      err, at = blamed(function() agentbox.spawn(42) end)
      assert.equal(line, at, err)
    end)
  end)
end)
