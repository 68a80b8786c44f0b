-- Agents: AutoGen 0.2 defaults, construction errors, the reply chain and its
-- triggers, termination, per-sender counters, the three human input modes
-- with AutoGen's exact prompts (the use_docker decision: use_docker_spec.lua).
local agentbox = require("agentbox")
local core = require("agentbox.core")
local H = require("spec.support.helpers")
local CH = require("spec.support.chat_helpers")

local ALWAYS_PROMPT = "Replying as %s. Provide feedback to %s. Press enter to skip and use auto-reply, "
  .. "or type 'exit' to end the conversation: "
local TERM_PROMPT = "Please give feedback to %s. Press enter or type 'exit' to stop the conversation: "
local LIMIT_PROMPT = "Please give feedback to %s. Press enter to skip and use auto-reply, "
  .. "or type 'exit' to stop the conversation: "

-- A get_human_input that answers from a list and records the prompts.
local function scripted(answers)
  local s = { prompts = {}, n = 0 }
  s.fn = function(prompt)
    s.prompts[#s.prompts + 1] = prompt
    s.n = s.n + 1
    return answers[s.n] or ""
  end
  return s
end

local contents = CH.contents

local bot = CH.bot

describe("agents", function()
  local out
  before_each(function()
    out = {}
    agentbox.print = function(s) out[#out + 1] = s end
    agentbox.color = false
  end)
  after_each(function()
    agentbox.print = nil
    agentbox.color = nil
  end)

  describe("defaults", function()
    it("ConversableAgent: AutoGen's system message, TERMINATE mode, no model, no code execution", function()
      local a = agentbox.ConversableAgent{ name = "bot" }
      assert.equal("You are a helpful AI Assistant.", a.system_message)
      assert.equal("You are a helpful AI Assistant.", a.description)
      assert.equal("TERMINATE", a.human_input_mode)
      assert.equal(100, a:max_consecutive_auto_reply())
      assert.is_nil(a.client)
      assert.is_false(a.llm_config)
      assert.is_nil(a:code_executor())
      assert.equal("ConversableAgent 'bot'", tostring(a))
    end)

    it("AssistantAgent: AutoGen's DEFAULT_SYSTEM_MESSAGE byte for byte, NEVER, its description", function()
      local a = agentbox.AssistantAgent{ name = "assistant", llm_config = false }
      -- md5 and length of assistant_agent.py's DEFAULT_SYSTEM_MESSAGE (v0.2), computed with Python
      assert.equal("df85d44dea1bf5eb40cf28ddb7eb12cf", core.md5(a.system_message))
      assert.equal(2130, #a.system_message)
      assert.equal("NEVER", a.human_input_mode)
      assert.equal("A helpful and general-purpose AI assistant that has strong language skills, Python skills, "
        .. "and Linux command line skills.", a.description)
      assert.is_nil(a:code_executor())
      -- a custom system message becomes the description, as in AutoGen
      local b = agentbox.AssistantAgent{ name = "b", system_message = "Only answer in French.", llm_config = false }
      assert.equal("Only answer in French.", b.description)
    end)

    it("UserProxyAgent: ALWAYS, code execution on, no model, description by mode", function()
      local dir = H.tmpdir("agent")
      local u = agentbox.UserProxyAgent{ name = "user_proxy", code_execution_config = { work_dir = dir, use_docker = false } }
      assert.equal("ALWAYS", u.human_input_mode)
      assert.is_nil(u.client)
      assert.equal("", u.system_message)
      assert.is_false(u:use_docker())
      assert.equal(core.realpath(dir), u:code_executor().work_dir)
      assert.matches("^An attentive HUMAN user", u.description)
      local n = agentbox.UserProxyAgent{ name = "u2", human_input_mode = "NEVER", code_execution_config = false }
      assert.equal("A user that can run Python code or input command line commands at a Linux terminal and "
        .. "report back the execution results.", n.description)
      H.rm_rf(dir)
    end)

    it("extend makes a class: its defaults come first, class triggers and tostring follow it", function()
      local Echo = agentbox.ConversableAgent:extend("Echo", function(o)
        if o.default_auto_reply == nil then o.default_auto_reply = "echo!" end
        if o.human_input_mode == nil then o.human_input_mode = "NEVER" end
      end)
      local e = Echo{ name = "e" }
      assert.equal("Echo 'e'", tostring(e))
      assert.equal("NEVER", e.human_input_mode)
      assert.equal("You are a helpful AI Assistant.", e.system_message)   -- the parent's default
      assert.equal("echo!", e:generate_reply{ messages = { { content = "x" } } })
      local a = bot("a", "default")
      a:register_reply(Echo, function() return true, "saw an Echo" end)
      assert.equal("saw an Echo", a:generate_reply{ sender = e, messages = { { content = "x" } } })
      assert.equal("default", a:generate_reply{ sender = bot("b", ""), messages = { { content = "x" } } })
    end)
  end)

  describe("construction errors", function()
    local function fails(opts, pattern, cls)
      local ok, err = pcall(cls or agentbox.ConversableAgent, opts)
      assert.is_false(ok)
      assert.matches(pattern, tostring(err))
    end

    it("names the bad option and what is accepted", function()
      fails({ name = "x", human_input = "NEVER" }, "unknown option 'human_input' %(known: .*human_input_mode")
      fails({ name = "" }, "'name' must be a non%-empty string")
      fails({ name = "x", human_input_mode = "SOMETIMES" }, "must be \"ALWAYS\", \"TERMINATE\" or \"NEVER\", got SOMETIMES")
      fails({ name = "x", max_consecutive_auto_reply = -1 }, "non%-negative integer, got %-1")
      fails({ name = "x", llm_config = true }, "llm_config must be a table")
      fails({ name = "x", llm_config = { config_list = {} } }, "config_list must be a non%-empty array")
      fails({ name = "x", code_execution_config = { last_n_messages = "all" } },
        "last_n_messages must be a non%-negative integer or \"auto\", got all")
      fails({ name = "x", code_execution_config = { wrk_dir = "x" } }, "unknown code_execution_config key 'wrk_dir'")
      fails({ name = "x", code_execution_config = { executor = { execute = function() end }, work_dir = "d" } },
        "work_dir is not valid when 'executor' is set")
      fails({ name = "x", function_map = { ["bad name"] = print } }, "Invalid name: bad name%. Only letters")
    end)
  end)

  describe("the reply chain", function()
    it("tries the newest registration first; the first final reply wins", function()
      local a, b = bot("a", "default"), bot("b", "x")
      local calls = {}
      a:register_reply(agentbox.ConversableAgent, function() calls[#calls + 1] = "old"; return true, "old" end)
      a:register_reply(agentbox.ConversableAgent, function() calls[#calls + 1] = "new"; return false, nil end)
      assert.equal("old", a:generate_reply{ messages = { { role = "user", content = "hi" } }, sender = b })
      assert.same({ "new", "old" }, calls)
    end)

    it("position puts a function further down the chain", function()
      local a, b = bot("a", "default"), bot("b", "x")
      a:register_reply(agentbox.ConversableAgent, function() return true, "first" end)
      a:register_reply(agentbox.ConversableAgent, function() return true, "second" end, 2)
      assert.equal("first", a:generate_reply{ sender = b, messages = { { content = "x", role = "user" } } })
    end)

    it("matches triggers: name, agent, class, function, list, nil", function()
      local a = bot("a", "default")
      local alice, bob = bot("alice", ""), agentbox.AssistantAgent{ name = "bob", llm_config = false }
      local function reply_with(s) return function() return true, s end end
      local msgs = { { role = "user", content = "hi" } }
      a:register_reply("alice", reply_with("by name"))
      assert.equal("by name", a:generate_reply{ messages = msgs, sender = alice })
      assert.equal("default", a:generate_reply{ messages = msgs, sender = bob })
      a:register_reply(bob, reply_with("by agent"))
      assert.equal("by agent", a:generate_reply{ messages = msgs, sender = bob })
      a:register_reply(agentbox.UserProxyAgent, reply_with("by class"))
      local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = false }
      assert.equal("by class", a:generate_reply{ messages = msgs, sender = u })
      assert.equal("by agent", a:generate_reply{ messages = msgs, sender = bob })
      a:register_reply(function(s) return s ~= nil and s.name == "carol" end, reply_with("by function"))
      assert.equal("by function", a:generate_reply{ messages = msgs, sender = bot("carol", "") })
      a:register_reply({ "dave", "erin" }, reply_with("by list"))
      assert.equal("by list", a:generate_reply{ messages = msgs, sender = bot("erin", "") })
      a:register_reply(nil, reply_with("no sender"))
      assert.equal("no sender", a:generate_reply{ messages = msgs })
      assert.equal("by list", a:generate_reply{ messages = msgs, sender = bot("dave", "") })
    end)

    it("rejects bad triggers, bad functions and triggers that do not return a boolean", function()
      local a = bot("a", "")
      assert.has_error(function() a:register_reply(42, function() end) end)
      assert.has_error(function() a:register_reply(nil, "not a function") end)
      a:register_reply(function() return "yes" end, function() return true, "x" end)
      local ok, err = pcall(a.generate_reply, a, { messages = { { content = "x" } }, sender = bot("b", "") })
      assert.is_false(ok)
      assert.matches("trigger function must return a boolean", err)
    end)

    it("passes the registered config and honours exclude", function()
      local a, b = bot("a", "default"), bot("b", "")
      local seen
      local function f(self, messages, sender, config)
        seen = { self = self, n = #messages, sender = sender, config = config }
        return true, "from f"
      end
      a:register_reply(agentbox.ConversableAgent, f, 1, { k = "v" })
      assert.equal("from f", a:generate_reply{ messages = { { content = "x" } }, sender = b })
      assert.same({ k = "v" }, seen.config)
      assert.equal(a, seen.self)
      assert.equal(b, seen.sender)
      assert.equal("default", a:generate_reply{ messages = { { content = "x" } }, sender = b, exclude = { f } })
      -- the function may change its config; reset() restores the registered one
      seen.config.k = "changed"
      a:generate_reply{ messages = { { content = "x" } }, sender = b }
      assert.equal("changed", seen.config.k)
      a:reset()
      a:generate_reply{ messages = { { content = "x" } }, sender = b }
      assert.equal("v", seen.config.k)
      assert.has_error(function() a:generate_reply{} end, "generate_reply: give messages = {...} or sender = agent (or both)")
    end)

    it("built-in order: termination before tool calls before code execution before the model", function()
      local dir = H.tmpdir("chain")
      local ran = {}
      local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER",
        code_execution_config = { work_dir = dir, use_docker = false }, function_map = { t = function() ran[#ran + 1] = "tool"; return "ok" end } }
      local a = bot("a", "")
      local code = "```sh\necho ran-code\n```"
      -- termination wins over everything: nothing runs
      assert.is_nil(u:generate_reply{ sender = a, messages = { { role = "user", content = "TERMINATE" } } })
      -- tool calls are answered before code in the same message is looked at
      local r = u:generate_reply{ sender = a, messages = { { role = "assistant", content = code,
        tool_calls = { { id = "c1", type = "function", ["function"] = { name = "t", arguments = "{}" } } } } } }
      assert.equal("tool", r.role)
      assert.same({ "tool" }, ran)
      -- code runs when there is no tool call
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: ran-code\n",
        u:generate_reply{ sender = a, messages = { { role = "user", content = code } } })
      H.rm_rf(dir)
    end)
  end)

  describe("termination and limits", function()
    it("default is_termination_msg: content equal to TERMINATE, nothing else", function()
      local a, b = bot("a", "go on"), bot("b", "x")
      assert.is_nil(a:generate_reply{ sender = b, messages = { { role = "user", content = "TERMINATE" } } })
      assert.equal("go on", a:generate_reply{ sender = b, messages = { { role = "user", content = "TERMINATE." } } })
      assert.equal("go on", a:generate_reply{ sender = b, messages = { { role = "user", content = "done TERMINATE" } } })
    end)

    it("a custom is_termination_msg sees the message", function()
      local seen
      local a = bot("a", "go on", { is_termination_msg = function(m) seen = m; return m.content:find("bye") ~= nil end })
      local b = bot("b", "x")
      assert.is_nil(a:generate_reply{ sender = b, messages = { { role = "user", content = "ok bye" } } })
      assert.equal("ok bye", seen.content)
    end)

    it("counts consecutive auto replies per sender", function()
      local a = bot("a", "auto", { max_consecutive_auto_reply = 2 })
      local b, c = bot("b", ""), bot("c", "")
      local m = { { role = "user", content = "x" } }
      assert.equal("auto", a:generate_reply{ sender = b, messages = m })
      assert.equal("auto", a:generate_reply{ sender = b, messages = m })
      assert.is_nil(a:generate_reply{ sender = b, messages = m })   -- b's limit reached
      assert.equal("auto", a:generate_reply{ sender = c, messages = m })  -- c has its own counter
      assert.equal(1, a:consecutive_auto_reply_count(c))
      a:update_max_consecutive_auto_reply(5, b)
      assert.equal(5, a:max_consecutive_auto_reply(b))
      assert.equal(2, a:max_consecutive_auto_reply(c))
    end)

    it("max_consecutive_auto_reply = 0 never auto-replies", function()
      local a, b = bot("a", "auto", { max_consecutive_auto_reply = 0 }), bot("b", "x")
      local r = b:initiate_chat(a, { message = "hello" })
      assert.same({ "hello" }, contents(r.chat_history))
    end)
  end)

  describe("human_input_mode", function()
    it("ALWAYS asks on every message with AutoGen's prompt; text is sent, exit stops", function()
      local input = scripted({ "use numpy", "exit" })
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "ALWAYS", get_human_input = input.fn }
      local b = bot("helper", "suggestion")
      local r = u:initiate_chat(b, { message = "task" })
      assert.same({ "task", "suggestion", "use numpy", "suggestion" }, contents(r.chat_history))
      assert.same({ ALWAYS_PROMPT:format("user", "helper"), ALWAYS_PROMPT:format("user", "helper") }, input.prompts)
      assert.same({ "use numpy", "exit" }, r.human_input)
    end)

    it("ALWAYS: empty input uses the auto reply and says so; empty on a termination message stops", function()
      local input = scripted({ "", "" })
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "ALWAYS", get_human_input = input.fn,
                                           default_auto_reply = "auto" }
      local replies = { "first", "TERMINATE" }
      local b = bot("helper", "")
      local i = 0
      b:register_reply(agentbox.ConversableAgent, function() i = i + 1; return true, replies[i] end)
      local r = u:initiate_chat(b, { message = "task" })
      assert.same({ "task", "first", "auto", "TERMINATE" }, contents(r.chat_history))
      assert.equal(2, #input.prompts)
      local text = table.concat(out)
      assert.matches("\n>>>>>>>> NO HUMAN INPUT RECEIVED.\n", text, 1, true)
      assert.matches("\n>>>>>>>> USING AUTO REPLY...\n", text, 1, true)
    end)

    it("ALWAYS: a human answer resets the consecutive auto-reply counter", function()
      local input = scripted({ "", "keep going", "", "exit" })
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "ALWAYS", get_human_input = input.fn,
                                           default_auto_reply = "auto" }
      local r = u:initiate_chat(bot("helper", "h"), { message = "task" })
      assert.same({ "task", "h", "auto", "h", "keep going", "h", "auto", "h" }, contents(r.chat_history))
      assert.equal(4, #input.prompts)
    end)

    it("TERMINATE asks on a termination message, with AutoGen's prompt; empty input stops", function()
      local input = scripted({ "" })
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "TERMINATE", get_human_input = input.fn,
                                           default_auto_reply = "auto" }
      local replies = { "working", "TERMINATE" }
      local i = 0
      local b = bot("helper", "")
      b:register_reply(agentbox.ConversableAgent, function() i = i + 1; return true, replies[i] end)
      local r = u:initiate_chat(b, { message = "task" })
      assert.same({ TERM_PROMPT:format("helper") }, input.prompts)
      assert.same({ "task", "working", "auto", "TERMINATE" }, contents(r.chat_history))
    end)

    it("TERMINATE asks at the limit, with the other prompt; text continues, exit stops", function()
      local input = scripted({ "try again", "exit" })
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "TERMINATE", get_human_input = input.fn,
                                           default_auto_reply = "auto", max_consecutive_auto_reply = 1 }
      local r = u:initiate_chat(bot("helper", "h"), { message = "task" })
      assert.same({ "task", "h", "auto", "h", "try again", "h", "auto", "h" }, contents(r.chat_history))
      assert.same({ LIMIT_PROMPT:format("helper"), LIMIT_PROMPT:format("helper") }, input.prompts)
    end)

    it("NEVER never asks and stops at the limit", function()
      local u = bot("user", "auto", { max_consecutive_auto_reply = 2,
        get_human_input = function() error("NEVER must not ask") end })
      local r = u:initiate_chat(bot("helper", "h"), { message = "task" })
      assert.same({ "task", "h", "auto", "h", "auto", "h" }, contents(r.chat_history))
    end)

    it("a human answer to pending tool calls interrupts them (USER INTERRUPTED)", function()
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "ALWAYS",
                                           get_human_input = function() return "stop that" end }
      local r = u:generate_reply{ sender = bot("a", ""), messages = { { role = "assistant", content = nil,
        tool_calls = { { id = "call_9", type = "function", ["function"] = { name = "f", arguments = "{}" } } } } } }
      assert.same({ role = "user", content = "stop that",
                    tool_responses = { { role = "tool", tool_call_id = "call_9", content = "USER INTERRUPTED" } } }, r)
    end)

    -- stdin is a pipe here, never a terminal: each prompt ends with a newline
    local function run_stdin(body, stdin)
      local src = [[
        local ab = require("agentbox")
        local u = ab.ConversableAgent{ name = "user", human_input_mode = "ALWAYS" }
        local h = ab.ConversableAgent{ name = "helper", human_input_mode = "NEVER", default_auto_reply = "h" }
        ab.color = false
        ]] .. body .. [[
        io.write("\n#", #r.chat_history, " ", table.concat(r.human_input, "|"), " ", tostring(r.human_input_ended))
        for _, m in ipairs(r.chat_history) do io.write("\n", m.content) end]]
      local r = H.run({ "lua5.4", "-e", src }, { env = H.lua_env(), stdin = stdin })
      assert.equal(0, r.exit_code, r.output)
      return r.output
    end

    it("the default input function prints the prompt (and a newline when stdin is not a terminal) and reads stdin", function()
      local printed = run_stdin('local r = u:initiate_chat(h, { message = "task", silent = true })', "more detail\n")
      assert.equal((ALWAYS_PROMPT:format("user", "helper") .. "\n"):rep(2) .. "(human input ended: end of input)\n"
        .. "\n#4 more detail end of input\ntask\nh\nmore detail\nh", printed)
    end)

    it("end of input before the first message ends the chat: the literal 'exit' is never sent", function()
      for _, stdin in ipairs({ "", false }) do    -- an empty pipe, and stdin closed
        local printed = run_stdin("local r = u:initiate_chat(h, {})", stdin or nil)
        assert.equal(">\n(human input ended: end of input)\n\n#0  end of input", printed)
      end
      local printed = run_stdin("local r = u:initiate_chat(h, { max_turns = 3 })", "")
      assert.equal(">\n(human input ended: end of input)\n\n#0  end of input", printed)
    end)

    it("an input function may end the chat itself: nil and a reason", function()
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "ALWAYS",
        get_human_input = function() return nil, "the window was closed" end }
      local r = u:initiate_chat(bot("helper", "h"), { message = "task" })
      assert.same({ "task", "h" }, contents(r.chat_history))
      assert.equal("the window was closed", r.human_input_ended)
      assert.same({}, r.human_input)
      assert.matches("(human input ended: the window was closed)\n", table.concat(out), 1, true)
      -- a plain nil is still "no input" (auto-reply), as before
      local n = 0
      local u2 = agentbox.ConversableAgent{ name = "user2", human_input_mode = "ALWAYS", max_consecutive_auto_reply = 1,
        default_auto_reply = "auto", get_human_input = function() n = n + 1; if n < 3 then return nil end return "exit" end }
      r = u2:initiate_chat(bot("helper", "h"), { message = "task" })
      assert.is_nil(r.human_input_ended)
      assert.same({ "task", "h", "auto", "h", "auto", "h" }, contents(r.chat_history))
    end)

    it("the input function may yield inside a task while other tasks run", function()
      local ticks = 0
      local ticker = agentbox.spawn(function()
        for _ = 1, 5 do agentbox.sleep(0.002); ticks = ticks + 1 end
      end)
      local seen_ticks
      local u = agentbox.ConversableAgent{ name = "user", human_input_mode = "ALWAYS",
        get_human_input = function()
          agentbox.sleep(0.2)               -- a UI that answers later
          seen_ticks = ticks
          return "exit"
        end }
      local t = agentbox.spawn(function() return u:initiate_chat(bot("helper", "h"), { message = "task" }) end)
      agentbox.run()
      local r = assert(t:result())
      assert.truthy(ticker:done())
      assert.equal(5, seen_ticks)
      assert.same({ "task", "h" }, contents(r.chat_history))
    end)
  end)

  describe("history", function()
    it("send records on both sides with roles and names; receive without a request does not reply", function()
      local a, b = bot("a", "ra"), bot("b", "rb")
      a:send("hello", b)
      assert.same({ { content = "hello", role = "assistant", name = "a" } }, a:chat_messages(b))
      assert.same({ { content = "hello", role = "user", name = "a" } }, b:chat_messages(a))
      a:send("again", b, true)          -- b replies once; a was not asked to go on
      assert.same({ "hello", "again", "rb" }, contents(a:chat_messages(b)))
      assert.equal("rb", a:last_message(b).content)
      assert.equal("rb", a:last_message().content)
    end)

    it("rejects messages without content or calls, and unknown peers", function()
      local a, b = bot("a", ""), bot("b", "")
      assert.has_error(function() a:send({ role = "user" }, b) end)
      assert.has_error(function() a:send("x", {}) end)
      assert.has_error(function() a:last_message(b) end)
    end)

    it("clear_history forgets one or all conversations; an earlier result keeps its history", function()
      local a, b, c = bot("a", "ra", { max_consecutive_auto_reply = 1 }), bot("b", "rb"), bot("c", "rc")
      local r = a:initiate_chat(b, { message = "one" })
      a:send("x", c)
      local n = #r.chat_history
      a:clear_history(b)
      assert.same({}, a:chat_messages(b))
      assert.equal(n, #r.chat_history)
      assert.equal(1, #a:chat_messages(c))
      a:clear_history()
      assert.same({}, a:chat_messages(c))
      assert.is_nil(a:last_message())
    end)

    it("a default_auto_reply table is sent as a message", function()
      local a = bot("a", { content = "structured", name = "custom" }, { max_consecutive_auto_reply = 1 })
      local r = bot("b", "x", { max_consecutive_auto_reply = 1 }):initiate_chat(a, { message = "go" })
      assert.same({ content = "structured", name = "custom", role = "user" }, r.chat_history[2])
    end)
  end)

  describe("code execution", function()
    it("an explicit executor is used as is", function()
      local ex = { execute = function() return { exit_code = 0, output = "fake\n" } end }
      local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = { executor = ex } }
      assert.equal(ex, u:code_executor())
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: fake\n",
        u:generate_reply{ sender = bot("a", ""), messages = { { role = "user", content = "```sh\necho x\n```" } } })
    end)
  end)
end)
