-- Tools: schemas in the caller's llm_config, execution by the executor
-- agent, tool_calls answered as role "tool" messages with tool_call_id over
-- the real scripted server, and AutoGen's error contents.
local agentbox = require("agentbox")
local cjson = require("cjson")
local fake = require("spec.support.fake_openai")

local llm_config = require("spec.support.chat_helpers").llm_config

local function proxy(extra)
  local o = { name = "user_proxy", human_input_mode = "NEVER", code_execution_config = false,
              is_termination_msg = function(m) return m.content == "TERMINATE" end }
  for k, v in pairs(extra or {}) do o[k] = v end
  return agentbox.UserProxyAgent(o)
end

local function call(name, arguments, id)
  return { id = id or "call_x", type = "function", ["function"] = { name = name, arguments = arguments } }
end

-- The reply of `agent` to one assistant message carrying `calls`.
local function answer(agent, calls)
  local other = agentbox.ConversableAgent{ name = "other", human_input_mode = "NEVER" }
  return agent:generate_reply{ sender = other, messages = { { role = "assistant", tool_calls = calls } } }
end

local ADD_PARAMS = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
                     required = { "a", "b" } }

describe("tools", function()
  local srv, out
  before_each(function()
    out = {}
    agentbox.print = function(s) out[#out + 1] = s end
    agentbox.color = false
  end)
  after_each(function()
    agentbox.print = nil
    agentbox.color = nil
    if srv then srv:stop() end
    srv = nil
  end)

  describe("registration", function()
    it("register_for_llm adds an OpenAI tool schema to the caller's llm_config; same name replaces", function()
      local caller = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config() }
      local fn = function() end
      assert.equal(fn, caller:register_for_llm{ name = "add", description = "Add two numbers", parameters = ADD_PARAMS }(fn))
      caller:register_for_llm{ name = "noargs", description = "No arguments" }(function() end)
      assert.same({
        { type = "function", ["function"] = { name = "add", description = "Add two numbers", parameters = ADD_PARAMS } },
        { type = "function", ["function"] = { name = "noargs", description = "No arguments",
                                              parameters = { type = "object", properties = {} } } },
      }, caller.llm_config.tools)
      caller:register_for_llm{ name = "add", description = "Sum" }(fn)
      assert.equal(2, #caller.llm_config.tools)
      assert.equal("Sum", caller.llm_config.tools[2]["function"].description)
      caller:update_tool_signature("noargs", true)
      assert.equal(1, #caller.llm_config.tools)
    end)

    it("keeps the caller's llm_config private: the table passed in is not changed", function()
      local cfg = llm_config()
      local a = agentbox.AssistantAgent{ name = "a", llm_config = cfg }
      a:register_for_llm{ name = "t", description = "d" }(function() end)
      assert.is_nil(cfg.tools)
    end)

    it("requires a description and a valid name, and a caller with a model", function()
      local caller = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config() }
      assert.has_error(function() caller:register_for_llm{ name = "x" }(function() end) end,
        "register_for_llm: description is required for 'x' (the model reads it to decide when to call the tool)")
      local ok, err = pcall(caller:register_for_llm{ name = "has space", description = "d" }, function() end)
      assert.is_false(ok)
      assert.matches("Invalid name: has space. Only letters, numbers, '_' and '-' are allowed.", err, 1, true)
      ok, err = pcall(caller:register_for_llm{ name = ("n"):rep(65), description = "d" }, function() end)
      assert.is_false(ok)
      assert.matches("Name must be at most 64 characters", err, 1, true)
      assert.has_no_error(function() caller:register_for_llm{ name = ("n"):rep(64), description = "d" }(function() end) end)
      local nomodel = agentbox.ConversableAgent{ name = "plain" }
      ok, err = pcall(nomodel:register_for_llm{ name = "t", description = "d" }, function() end)
      assert.is_false(ok)
      assert.matches("'plain' has no llm_config", err, 1, true)
      assert.has_error(function() caller:register_for_llm{ name = "t", description = "d", parameters = { type = "array" } }(print) end)
    end)

    it("register_for_execution learns the name from register_for_llm; register_function does both", function()
      local caller = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config() }
      local user = proxy()
      local fn = function() return "x" end
      user:register_for_execution()(caller:register_for_llm{ name = "learnt", description = "d" }(fn))
      assert.truthy(user:can_execute_function("learnt"))
      assert.has_error(function() user:register_for_execution()(function() end) end)
      local g = function() end
      assert.equal(g, agentbox.register_function(g, { caller = caller, executor = user, name = "g", description = "G" }))
      assert.truthy(user:can_execute_function({ "learnt", "g" }))
      assert.equal("g", caller.llm_config.tools[2]["function"].name)
      assert.has_error(function() agentbox.register_function(g, { caller = caller, name = "h", description = "H" }) end,
        "register_function: 'executor' must be an agent")
    end)
  end)

  describe("execution", function()
    it("runs several calls of one reply in order, answering each tool_call_id", function()
      local order = {}
      local user = proxy()
      user:register_for_execution{ name = "add" }(function(args) order[#order + 1] = "add"; return args.a + args.b end)
      user:register_for_execution{ name = "info" }(function(args) order[#order + 1] = "info"; return { who = args.who, n = 1 } end)
      user:register_for_execution{ name = "echo" }(function(args) order[#order + 1] = "echo"; return args.text end)
      local r = answer(user, { call("add", '{"a": 1, "b": 2}', "c1"), call("info", '{"who": "me"}', "c2"),
                               call("echo", '{"text": "hi"}', "c3") })
      assert.same({ "add", "info", "echo" }, order)
      assert.equal("tool", r.role)
      assert.same({ role = "tool", tool_call_id = "c1", content = "3" }, r.tool_responses[1])
      assert.same({ who = "me", n = 1 }, cjson.decode(r.tool_responses[2].content))
      assert.same({ role = "tool", tool_call_id = "c3", content = "hi" }, r.tool_responses[3])
      assert.equal("3\n\n" .. r.tool_responses[2].content .. "\n\nhi", r.content)
    end)

    it("answers AutoGen's errors: function not found, arguments not JSON, a tool that raises", function()
      local user = proxy()
      user:register_for_execution{ name = "boom" }(function() error("disk full") end)
      user:register_for_execution{ name = "ok" }(function() return "fine" end)
      local r = answer(user, { call("missing", "{}", "a"), call("ok", "{not json", "b"), call("boom", "{}", "c"),
                               call("ok", "[1, 2]", "d"), call("ok", "{}", "e") })
      local c = {}
      for i, t in ipairs(r.tool_responses) do c[i] = t.content end
      assert.equal("Error: Function missing not found.", c[1])
      assert.equal("Error: Expected object key string but found invalid token at character 2\n The argument must be in JSON format.", c[2])
      assert.equal("Error: disk full", c[3])
      assert.matches("^Error: arguments must be a JSON object", c[4])
      assert.equal("fine", c[5])
    end)

    it("accepts raw newlines the way AutoGen does, and turns JSON null into nil", function()
      local got
      local user = proxy()
      user:register_for_execution{ name = "f" }(function(args) got = args; return "ok" end)
      answer(user, { call("f", '{\n  "code": "a\nb",\n  "opt": null,\n  "n": 4\n}') })
      assert.same({ code = "a\nb", n = 4 }, got)
      assert.equal("integer", math.type(got.n))
    end)

    it("a tool may yield: it runs inside a task without blocking others", function()
      local user = proxy()
      -- the tool's task starts first; had the tool blocked, the ticker could
      -- not tick before it returned
      local ticks, ticks_when_tool_returned = 0, nil
      user:register_for_execution{ name = "slow" }(function()
        agentbox.sleep(0.1)
        ticks_when_tool_returned = ticks
        return "late"
      end)
      local t = agentbox.spawn(function() return answer(user, { call("slow", "{}") }) end)
      local ticker = agentbox.spawn(function() for _ = 1, 3 do agentbox.sleep(0.005); ticks = ticks + 1 end end)
      agentbox.run()
      assert.is_true(ticks_when_tool_returned > 0, "the ticker never ran while the tool slept")
      assert.truthy(ticker:done())
      assert.equal(3, ticks)
      assert.equal("late", t:result().content)
    end)
  end)

  it("a full chat: two tool calls in one reply, then a raising tool, then TERMINATE", function()
    srv = fake.start{ models = { m = {
      { tool_calls = { { id = "call_1", name = "add", arguments = { a = 2, b = 40 } },
                       { id = "call_2", name = "shout", arguments = { text = "hi" } } },
        expect = { has_tools = true, last_equals = "Use the tools." } },
      { tool_calls = { { id = "call_3", name = "fragile", arguments = {} } },
        expect = { last_role = "tool", messages_count = 5 } },
      { content = "All done. TERMINATE", expect = { last_role = "tool", last_equals = "Error: it broke" } },
    } } }
    local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
    local user = proxy{ is_termination_msg = function(m) return (m.content or ""):find("TERMINATE") ~= nil end }
    local order = {}
    agentbox.register_function(function(args) order[#order + 1] = "add"; return args.a + args.b end,
      { caller = assistant, executor = user, name = "add", description = "Add two numbers", parameters = ADD_PARAMS })
    user:register_for_execution()(assistant:register_for_llm{ name = "shout", description = "Upper-case a text",
      parameters = { type = "object", properties = { text = { type = "string" } } } }(function(args)
        order[#order + 1] = "shout"
        return args.text:upper()
      end))
    agentbox.register_function(function() error("it broke") end,
      { caller = assistant, executor = user, name = "fragile", description = "Always fails" })

    local r = user:initiate_chat(assistant, { message = "Use the tools." })
    assert.same({ "add", "shout" }, order)
    assert.equal(6, #r.chat_history)
    assert.equal("All done. ", r.summary)
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    for _, q in ipairs(reqs) do assert.equal(200, q.status, q.expect_failed) end
    -- what the model saw: one role "tool" message per call, in order, with its id
    local m = reqs[2].body.messages
    assert.equal("assistant", m[3].role)
    assert.equal("call_1", m[3].tool_calls[1].id)
    assert.equal("add", m[3].tool_calls[1]["function"].name)
    assert.same({ role = "tool", tool_call_id = "call_1", content = "42" }, m[4])
    assert.same({ role = "tool", tool_call_id = "call_2", content = "HI" }, m[5])
    local names = {}
    for i, t in ipairs(reqs[1].body.tools) do names[i] = t["function"].name end
    assert.same({ "add", "shout", "fragile" }, names)
    assert.same(ADD_PARAMS, reqs[1].body.tools[1]["function"].parameters)
    -- the history keeps AutoGen's wrapper
    assert.equal("tool", r.chat_history[3].role)
    assert.equal(2, #r.chat_history[3].tool_responses)
    -- and the transcript shows calls and responses as AutoGen prints them
    local text = table.concat(out)
    assert.matches("***** Suggested tool call (call_1): add *****\nArguments: \n", text, 1, true)
    assert.matches("\n>>>>>>>> EXECUTING FUNCTION add...\n", text, 1, true)
    assert.matches("user_proxy (to assistant):\n\n***** Response from calling tool (call_2) *****\nHI\n"
      .. ("*"):rep(47) .. "\n", text, 1, true)
  end)

  it("normalises a tool name the model mangled before it is sent back", function()
    srv = fake.start{ models = { m = {
      { tool_calls = { { id = "c", name = "bad name!", arguments = {} } } },
      { content = "TERMINATE", expect = { last_equals = "Error: Function bad_name_ not found." } },
    } } }
    local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
    local r = proxy():initiate_chat(assistant, { message = "go" })
    assert.equal("bad_name_", r.chat_history[2].tool_calls[1]["function"].name)
    assert.equal(200, srv:requests()[2].status, srv:requests()[2].expect_failed)
  end)
end)
