-- Embedding: a C host stepping agentbox from its frame loop, two lua_States
-- in one process, and human input answered later by the host's UI.
local agentbox = require("agentbox")
local H = require("spec.support.helpers")
local fake = require("spec.support.fake_openai")

-- the build this suite runs (build/ or, under `make check`, build-san/)
local HOST = assert(package.searchpath("agentbox.core", package.cpath), "agentbox.core not found")
  :match("^(.*)/agentbox/core%.so$") .. "/host"

describe("embedding", function()
  it("a C host runs chats in two independent lua_States of one process", function()
    assert.is_true(H.exists(HOST), HOST .. " is missing: make test builds it")
    local env = H.lua_env()
    local r = H.run({ HOST, "spec/support/embed_chats.lua", "--states", "2" }, { env = env, timeout = 120 })
    assert.equal(0, r.exit_code, r.output)
    local out = r.stdout:gsub("%s+", " ")
    for _, st in ipairs({ { 0, 1, 2 }, { 1, 101, 102 } }) do
      local want = ("state %d: chats finished: exitcode: 0 (execution succeeded) Code output: %d | "
        .. "exitcode: 0 (execution succeeded) Code output: %d"):format(st[1], st[2], st[3])
      assert.is_truthy(out:find(want, 1, true), out)
    end
    assert.matches("time inside agentbox_step per frame: p50 [%d.]+ ms, p99 [%d.]+ ms, max [%d.]+ ms", r.stdout)
  end)

  it("a host with its own poller waits on agentbox_fd and agentbox_timeout", function()
    local env = H.lua_env()
    local r = H.run({ HOST, "spec/support/embed_chats.lua", "--poll" }, { env = env, timeout = 120 })
    assert.equal(0, r.exit_code, r.output)
    local out = r.stdout:gsub("%s+", " ")
    assert.is_truthy(out:find("state 0: chats finished: exitcode: 0 (execution succeeded) Code output: 1 | "
      .. "exitcode: 0 (execution succeeded) Code output: 2", 1, true), out)
    local wakeups = tonumber(r.stdout:match("poll: (%d+) wake%-ups by agentbox_fd"))
    assert.is_true(wakeups and wakeups > 0, r.stdout)
  end)

  it("a C host steps a streamed chat: the reply arrives over many frames while another task runs", function()
    local r = H.run({ HOST, "spec/support/embed_stream.lua" }, { env = H.lua_env(), timeout = 120 })
    assert.equal(0, r.exit_code, r.output)
    assert.matches("streamed: whole reply; %d+ tokens", r.stdout)
    local ticks = tonumber(r.stdout:match("ticks of another task during the stream: (%d+)"))
    assert.is_true(ticks and ticks >= 10, r.stdout)
    assert.matches("time inside agentbox_step per frame: p50 [%d.]+ ms, p99 [%d.]+ ms, max [%d.]+ ms", r.stdout)
  end)

  it("get_human_input may yield: the host answers later and the chat resumes", function()
    local srv = fake.start{ models = { m = { { content = "first answer" },
                                             { content = "second answer", expect = { last_equals = "tell me more" } } } } }
    local pending
    local a = agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { {
      model = "m", api_key = "none", base_url = srv.base_url } }, cache_seed = false } }
    local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "ALWAYS", code_execution_config = false,
      get_human_input = function(prompt)
        local f = agentbox.future()
        pending = { prompt = prompt, future = f }
        return f:wait()
      end }
    local t = agentbox.spawn(function() return u:initiate_chat(a, { message = "hi", silent = true }) end)
    local answers, frames = { "tell me more", "exit" }, 0
    -- the host's frame loop: a step that may wait up to 2 ms stands for a frame
    while agentbox.step(2) > 0 do
      frames = frames + 1
      if pending then
        -- the UI takes a few frames to answer; the chat must wait, not block
        for _ = 1, 5 do assert.equal(1, agentbox.step(0)) end
        assert.is_false(t:done())
        local p = pending
        pending = nil
        assert.matches("^Replying as u%. Provide feedback to a%.", p.prompt)
        p.future:set(table.remove(answers, 1))
      end
      assert.is_true(frames < 5000)
    end
    local r = assert(t:result())
    assert.same({ "tell me more", "exit" }, r.human_input)
    assert.equal("second answer", r.chat_history[#r.chat_history].content)
    srv:stop()
  end)

  it("a future set before anyone waits is returned at once", function()
    local f = agentbox.future()
    assert.is_true(f:set(7))
    assert.is_false(f:set(8))
    assert.equal(7, f:wait())
  end)
end)
