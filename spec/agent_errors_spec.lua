-- Errors a newcomer meets in the agent layer (issue 9, doc/errors.md): a
-- missing llm_config and a bad code_execution_config are said at
-- construction, on the caller's line; an executor that fails or breaks its
-- contract, or a model server that fails, in the middle of a chat ends
-- initiate_chat with the history so far plus error and error_code.
local agentbox = require("agentbox")
local task = require("agentbox.task")
local CH = require("spec.support.chat_helpers")

local THIS = debug.getinfo(1, "S").short_src   -- spec/agent_errors_spec.lua

local CODE = "Run this:\n```python\nprint(6 * 7)\n```"

-- A user proxy whose executor is `execute`, and an assistant that always
-- answers with CODE.
local function pair(execute)
  local user = agentbox.UserProxyAgent{ name = "user", human_input_mode = "NEVER", max_consecutive_auto_reply = 3,
                                        code_execution_config = { executor = { execute = execute } } }
  return user, CH.bot("assistant", CODE)
end

describe("agent errors", function()
  before_each(function() agentbox.print = function() end end)
  after_each(function() agentbox.print = nil end)

  describe("at construction", function()
    it("an AssistantAgent without llm_config says so; llm_config = false is allowed (AutoGen's False)", function()
      local ok, err = pcall(agentbox.AssistantAgent, { name = "assistant" })
      assert.is_false(ok)
      local line = debug.getinfo(1, "l").currentline - 2
      assert.equal(1, err:find(THIS .. ":" .. line .. ": AssistantAgent 'assistant': llm_config is required", 1, true), err)
      assert.matches("llm_config = false", err, 1, true)
      local a = agentbox.AssistantAgent{ name = "assistant", llm_config = false }
      assert.is_false(a.llm_config)
      -- ConversableAgent and UserProxyAgent keep AutoGen's default: no model
      assert.is_false(agentbox.ConversableAgent{ name = "c" }.llm_config)
    end)

    it("a bad code_execution_config is blamed on the caller's line", function()
      for _, cfg in ipairs({ { wrk_dir = "x" }, { last_n_messages = "all" }, { max_blocks = 0 }, "yes",
                             { executor = {} }, { executor = { execute = print }, timeout = 3 },
                             { use_docker = 3 } }) do
        local line = debug.getinfo(1, "l").currentline + 1
        local ok, err = pcall(agentbox.UserProxyAgent, { name = "u", code_execution_config = cfg })
        assert.is_false(ok)
        assert.equal(1, tostring(err):find(THIS .. ":" .. line .. ": ", 1, true), err)
      end
    end)

    it("other option errors are blamed on the caller's line too", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(agentbox.ConversableAgent, { name = "x", human_input_mode = "SOMETIMES" })
      assert.is_false(ok)
      assert.equal(1, err:find(THIS .. ":" .. line .. ": ", 1, true), err)
    end)
  end)

  describe("in the middle of a chat", function()
    it("an executor that raises ends the chat with the history so far, error and error_code", function()
      local user, assistant = pair(function() error("the disk is on fire") end)
      local r = user:initiate_chat(assistant, { message = "compute 6 * 7" })
      assert.same({ "compute 6 * 7", CODE }, CH.contents(r.chat_history))
      assert.equal(user:chat_messages(assistant), r.chat_history)
      assert.matches("the disk is on fire", r.error, 1, true)
      assert.matches("user", r.error, 1, true)          -- which agent's executor
      assert.equal("executor", r.error_code)
      assert.equal(CODE, r.summary)
    end)

    it("an executor that returns nil, message, code passes them on", function()
      local user, assistant = pair(function() return nil, "work_dir vanished", "io" end)
      local r = user:initiate_chat(assistant, { message = "go" })
      assert.same({ "go", CODE }, CH.contents(r.chat_history))
      assert.matches("work_dir vanished", r.error, 1, true)
      assert.equal("io", r.error_code)
    end)

    it("an executor that returns a wrong shape is an executor error naming what was wrong", function()
      local cases = {
        { ret = { exit_code = "0", output = "42" }, says = "exit_code" },
        { ret = { exit_code = 0 }, says = "output" },
        { ret = { exit_code = 0.5, output = "" }, says = "exit_code" },
        { ret = "exitcode: 0", says = "a string" },
        { ret = nil, says = "nil" },
      }
      for _, c in ipairs(cases) do
        local user, assistant = pair(function() return c.ret end)
        local r = user:initiate_chat(assistant, { message = "go" })
        assert.same({ "go", CODE }, CH.contents(r.chat_history))
        assert.equal("executor", r.error_code)
        assert.matches(c.says, r.error, 1, true)
        assert.matches("{ exit_code = <integer>, output = <string> }", r.error, 1, true)
        for _, m in ipairs(assistant:chat_messages(user)) do
          assert.is_nil(tostring(m.content):find("exitcode: nil", 1, true))
        end
      end
    end)

    it("a real LocalExecutor that fails (closed under the chat) ends it the same way", function()
      local ex = agentbox.LocalExecutor{ timeout = 10 }
      ex:close()
      local user = agentbox.UserProxyAgent{ name = "user", human_input_mode = "NEVER",
                                            code_execution_config = { executor = ex } }
      local r = user:initiate_chat(CH.bot("assistant", CODE), { message = "go" })
      assert.same({ "go", CODE }, CH.contents(r.chat_history))
      assert.matches("UserProxyAgent 'user': the code executor failed: .*close", r.error)
      assert.equal("executor", r.error_code)
    end)

    it("a model server that fails ends the chat the same way", function()
      local user = agentbox.UserProxyAgent{ name = "user", human_input_mode = "NEVER", code_execution_config = false }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = CH.llm_config(nil) }   -- a dead port
      local r = user:initiate_chat(assistant, { message = "hello" })
      assert.same({ "hello" }, CH.contents(r.chat_history))
      assert.matches("model request failed", r.error, 1, true)
      assert.is_string(r.error_code)
    end)

    it("a successful chat has no error fields", function()
      local user, assistant = pair(function() return { exit_code = 0, output = "42\n" } end)
      local r = user:initiate_chat(assistant, { message = "go", max_turns = 2 })
      assert.is_nil(r.error)
      assert.is_nil(r.error_code)
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: 42\n", r.chat_history[3].content)
    end)

    it("cancelling the task still cancels: it is not turned into a ChatResult", function()
      local user, assistant = pair(function() task.sleep(30) return { exit_code = 0, output = "" } end)
      local t = agentbox.spawn(function() return user:initiate_chat(assistant, { message = "go" }) end)
      for _ = 1, 20 do agentbox.step(10) end
      assert.is_true(t:cancel())
      agentbox.run()
      local r, err = t:result()
      assert.is_nil(r)
      assert.equal("cancelled", err)
    end)

    it("a reply function that raises (a bug, not a failure) still raises", function()
      local user, assistant = pair(function() return { exit_code = 0, output = "" } end)
      user:register_reply(nil, function() error("my bug") end)
      user:register_reply(assistant, function() error("my bug") end)
      assert.has_error(function() user:initiate_chat(assistant, { message = "go" }) end)
    end)
  end)

  describe("multimodal content", function()
    it("a list of parts with an unknown part type never raises: in extraction, the transcript and the chat", function()
      local msg = { content = { { type = "text", text = "```python\nprint(1)\n```\n" }, { type = "audio", data = "x" },
                                "stray", { type = "image_url", image_url = { url = "http://x/y.png" } } } }
      assert.same({ { lang = "python", code = "print(1)" } }, agentbox.code.extract(msg.content))
      local printed = {}
      agentbox.print = function(s) printed[#printed + 1] = s end
      local user, assistant = pair(function() return { exit_code = 0, output = "1\n" } end)
      local r = user:initiate_chat(assistant, { message = msg, max_turns = 1 })
      assert.is_nil(r.error)
      assert.matches("print(1)\n```\n<image>", table.concat(printed), 1, true)
    end)
  end)
end)
