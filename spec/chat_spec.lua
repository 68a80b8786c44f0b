-- initiate_chat: AutoGen's chat-loop cases against the scripted OpenAI
-- server and real LocalExecutor processes; transcript printing; summaries;
-- last_n_messages; and the loop that replaced AutoGen's recursion.
local agentbox = require("agentbox")
local transcript = require("agentbox.transcript")
local core = require("agentbox.core")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")
local CH = require("spec.support.chat_helpers")

local RULE = ("-"):rep(80)

local bot = CH.bot

local contents = CH.contents

local llm_config = CH.llm_config

local function ends_with_terminate(m)
  return type(m.content) == "string" and m.content:find("TERMINATE%s*$") ~= nil
end

describe("initiate_chat", function()
  local out, srv, dir
  before_each(function()
    out = {}
    agentbox.print = function(s) out[#out + 1] = s end
    agentbox.color = false
    dir = H.tmpdir("chat")
  end)
  after_each(function()
    agentbox.print = nil
    agentbox.color = nil
    if srv then srv:stop() end
    srv = nil
    H.rm_rf(dir)
  end)

  local function proxy(extra)
    local o = { name = "user_proxy", human_input_mode = "NEVER", is_termination_msg = ends_with_terminate,
                code_execution_config = { work_dir = dir, use_docker = false } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return agentbox.UserProxyAgent(o)
  end

  it("runs the model's Python with LocalExecutor and sends the model the real output", function()
    srv = fake.start{ models = { m = {
      { content = "I will compute it.\n```python\nprint(6 * 7)\n```", expect = { last_equals = "What is 6*7?" } },
      { content = "The answer is 42.\nTERMINATE",
        expect = { last_role = "user", last_contains = "exitcode: 0 (execution succeeded)\nCode output: 42" } },
    } } }
    local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
    local user = proxy()
    local r = user:initiate_chat(assistant, { message = "What is 6*7?" })
    assert.same({ "What is 6*7?", "I will compute it.\n```python\nprint(6 * 7)\n```",
                  "exitcode: 0 (execution succeeded)\nCode output: 42\n", "The answer is 42.\nTERMINATE" },
                contents(r.chat_history))
    assert.equal("The answer is 42.\n", r.summary)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    for _, q in ipairs(reqs) do
      assert.equal(200, q.status, q.expect_failed)
      assert.equal("Bearer sk-test", q.headers.Authorization)
    end
    local sent = reqs[2].body.messages
    assert.same({ role = "system", content = agentbox.AssistantAgent{ name = "x", llm_config = false }.system_message }, sent[1])
    assert.same({ role = "user", name = "user_proxy", content = "exitcode: 0 (execution succeeded)\nCode output: 42\n" },
                sent[4])
    assert.same({ role = "assistant", name = "assistant", content = "I will compute it.\n```python\nprint(6 * 7)\n```" },
                sent[3])
    -- the code really ran in the work dir
    local f = io.popen("ls " .. dir)
    local listing = f:read("a")
    f:close()
    assert.matches("tmp_code_%x+%.py", listing)
    -- the cost comes from the server's usage numbers
    local u = r.cost.usage_including_cached_inference
    assert.equal(0, u.total_cost)
    assert.truthy(u.m.prompt_tokens > 0 and u.m.completion_tokens > 0)
    assert.equal(u.m.prompt_tokens + u.m.completion_tokens, u.m.total_tokens)
    assert.same(u, r.cost.usage_excluding_cached_inference)
  end)

  it("prints AutoGen's transcript: header, blank line, content, rule, EXECUTING CODE BLOCK", function()
    local user = proxy()
    local coder = bot("coder", "```sh\necho hi\n```", { max_consecutive_auto_reply = 1 })
    user:initiate_chat(coder, { message = "run it" })
    local expected = "user_proxy (to coder):\n\nrun it\n\n" .. RULE .. "\n"
      .. "coder (to user_proxy):\n\n```sh\necho hi\n```\n\n" .. RULE .. "\n"
      .. "\n>>>>>>>> EXECUTING CODE BLOCK 0 (inferred language is sh)...\n"
      .. "user_proxy (to coder):\n\nexitcode: 0 (execution succeeded)\nCode output: hi\n\n\n" .. RULE .. "\n"
    assert.equal(expected, table.concat(out))
  end)

  it("colours only on a terminal (TERM not dumb, NO_COLOR empty) or when color = true", function()
    local src = [[
      local ab = require("agentbox")
      if os.getenv("SET_COLOR_FALSE") then ab.color = false end
      if os.getenv("SET_COLOR_TRUE") then ab.color = true end
      local ex = { execute = function() return { exit_code = 0, output = "1\n" } end }
      local u = ab.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = { executor = ex } }
      local a = ab.ConversableAgent{ name = "a", human_input_mode = "NEVER", default_auto_reply = "```python\nprint(1)\n```",
                                     max_consecutive_auto_reply = 1 }
      u:initiate_chat(a, { message = "go" })]]
    local function coloured(r)
      assert.equal(0, r.exit_code, r.output)
      assert.matches("\27[33mu\27[0m (to a):\n\ngo\n", r.output, 1, true)
      assert.matches("\27[31m\n>>>>>>>> EXECUTING CODE BLOCK 0 (inferred language is python)...\27[0m\n", r.output, 1, true)
    end
    local function plain(r, case)
      assert.equal(0, r.exit_code, r.output)
      assert.is_nil(r.output:find("\27[", 1, true), "colour with " .. case .. ": " .. r.output)
      assert.matches("u (to a):", r.output, 1, true)
    end
    -- color = true: colour even on a pipe
    coloured(H.lua(src, { TERM = "xterm-256color", SET_COLOR_TRUE = "1" }))
    -- a pipe: no colour even with a colour TERM
    plain(H.lua(src, { TERM = "xterm-256color" }), "a colour TERM on a pipe")
    -- a terminal: colour unless TERM is unset or dumb, NO_COLOR is set, or color = false
    coloured(H.lua_tty(src, { TERM = "xterm-256color" }))
    for _, case in ipairs({ { "no TERM", {} }, { "TERM=dumb", { TERM = "dumb" } },
                            { "NO_COLOR=1", { TERM = "xterm", NO_COLOR = "1" } },
                            { "color = false", { TERM = "xterm", SET_COLOR_FALSE = "1" } } }) do
      plain(H.lua_tty(src, case[2]), case[1] .. " on a terminal")
    end
  end)

  it("silent = true prints nothing, not even status lines", function()
    local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "TERMINATE", default_auto_reply = "auto",
                                       max_consecutive_auto_reply = 2, get_human_input = function() return "exit" end,
                                       code_execution_config = { work_dir = dir, use_docker = false } }
    local r = u:initiate_chat(bot("a", "```sh\necho x\n```"), { message = "go", silent = true })
    assert.equal(0, #out)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: x\n", r.chat_history[3].content)
    -- and printing is back afterwards
    u:initiate_chat(bot("b", "y", { max_consecutive_auto_reply = 0 }), { message = "go" })
    assert.matches("u (to b):", table.concat(out), 1, true)
  end)

  describe("limits", function()
    it("max_turns = n gives 2n messages when nobody stops", function()
      local a, b = bot("a", "from a"), bot("b", "from b")
      local r = a:initiate_chat(b, { message = "start", max_turns = 3 })
      assert.same({ "start", "from b", "from a", "from b", "from a", "from b" }, contents(r.chat_history))
      r = a:initiate_chat(b, { message = "start", max_turns = 0 })
      assert.same({}, r.chat_history)
      assert.equal("", r.summary)
    end)

    it("max_turns with a model and code execution: 2 turns, 4 messages", function()
      srv = fake.start{ models = { m = {
        { content = "```sh\necho step-one\n```" },
        { content = "```sh\necho step-two\n```", expect = { last_contains = "Code output: step-one" } },
      } } }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
      local r = proxy():initiate_chat(assistant, { message = "go", max_turns = 2 })
      assert.same({ "go", "```sh\necho step-one\n```", "exitcode: 0 (execution succeeded)\nCode output: step-one\n",
                    "```sh\necho step-two\n```" }, contents(r.chat_history))
      assert.equal(2, #srv:requests())
    end)

    it("max_turns stops early on termination", function()
      local r = proxy():initiate_chat(bot("a", "done. TERMINATE"), { message = "go", max_turns = 5 })
      assert.same({ "go", "done. TERMINATE" }, contents(r.chat_history))
    end)

    it("stops on the termination message and at max_consecutive_auto_reply", function()
      srv = fake.start{ models = { m = { { content = "thinking" }, { content = "TERMINATE" } } } }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
      local r = bot("user", "continue"):initiate_chat(assistant, { message = "go" })
      assert.same({ "go", "thinking", "continue", "TERMINATE" }, contents(r.chat_history))
      assert.equal("", r.summary)
      -- the limit: the user stops after 2 automatic replies
      local r2 = bot("user", "more", { max_consecutive_auto_reply = 2 }):initiate_chat(bot("echo", "ok"), { message = "go" })
      assert.same({ "go", "ok", "more", "ok", "more", "ok" }, contents(r2.chat_history))
    end)
  end)

  describe("terminal control sequences", function()
    -- what real attacks send: an OSC title, an OSC 52 clipboard write, clear
    -- screen + home, a carriage return that hides the start of a line, the
    -- one-byte C1 CSI (U+009B), a BEL and a DEL
    local NASTY = "\27]0;owned\7\27]52;c;cm0gLXJmIH4=\7\27[2J\27[Hsafe\rrm -rf ~ \194\155" .. "31mC1\8\127"
    local CODE = "```sh\nprintf '\\033]0;from-code\\007\\033]52;c;cHduZWQ=\\007\\033[2J\\033[3J'\nprintf 'out\\r\\n'\n```"

    local function raw_controls(text)
      local ours = text:gsub("\27%[%d+m", "")          -- our own colour codes
      return ours:find("[%z\1-\8\11-\31\127]") or ours:find("\194[\128-\159]")
    end

    it("never reach the terminal raw, from the model or from code output; the history keeps them", function()
      srv = fake.start{ models = { m = {
        { content = NASTY .. "\n" .. CODE,
          tool_calls = { { name = "t", id = "call_\27[2J", arguments = "{\"x\": \"\27]0;args\7\"}" } } },
        { content = "TERMINATE" },
      } } }
      agentbox.color = true
      local user = proxy{ function_map = { t = function() return "tool \27]0;result\7" end } }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
      local r = user:initiate_chat(assistant, { message = "go \27[31mred" })
      local text = table.concat(out)
      assert.is_nil(raw_controls(text), text)
      assert.matches("\27[33muser_proxy\27[0m (to assistant):", text, 1, true)    -- colour still works
      for _, shown in ipairs({ "go \\x1b[31mred", "\\x1b]0;owned\\x07\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\x1b[Hsafe\\x0drm -rf ~ ",
                               "\\u009b31mC1\\x08\\x7f", "call_\\x1b[2J", "\\x1b]0;args\\x07", "tool \\x1b]0;result\\x07" }) do
        assert.matches(shown, text, 1, true)
      end
      -- code output travels the same way (CRLF is shown as a plain newline)
      srv:stop(); srv = nil
      out = {}
      local u2 = proxy()
      local r2 = bot("coder", "", { max_consecutive_auto_reply = 0 }):initiate_chat(u2, { message = CODE, max_turns = 1 })
      text = table.concat(out)
      assert.is_nil(raw_controls(text), text)
      assert.matches("\\x1b]0;from-code\\x07\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x1b[3Jout\n", text, 1, true)
      -- the history is untouched: the model and the code see what was sent
      assert.equal(NASTY .. "\n" .. CODE, r.chat_history[2].content)
      assert.equal("{\"x\": \"\27]0;args\7\"}", r.chat_history[2].tool_calls[1]["function"].arguments)
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: \27]0;from-code\7\27]52;c;cHduZWQ=\7\27[2J\27[3Jout\r\n",
        r2.chat_history[2].content)
    end)

    it("status lines are escaped too: a language name from the model's fence, a tool name", function()
      agentbox.color = true
      local u = proxy{ function_map = { t = function() return "ok" end } }
      u:generate_reply{ sender = bot("a", ""), messages = { { role = "user",
        content = "```sh\27]0;lang\7\necho hi\n```\n```python\27[2J\nprint(1)\n```" } } }
      local text = table.concat(out)
      assert.is_nil(raw_controls(text), text)
      assert.matches("EXECUTING CODE BLOCK 0 (inferred language is sh\\x1b]0;lang\\x07)", text, 1, true)
      assert.matches("EXECUTING CODE BLOCK 1 (inferred language is python\\x1b[2j)", text, 1, true)
    end)

    it("chat.escape: a readable, documented form", function()
      assert.equal("a\tb\nc\\x1b[0m\\x00\\x7f\\u0085\nd\\x0d", transcript.escape("a\tb\r\nc\27[0m\0\127\194\133\r\nd\r"))
      assert.equal("ünïcödé ✓", transcript.escape("ünïcödé ✓"))
    end)
  end)

  describe("a hostile model", function()
    it("10,000 blocks in one reply: the first max_blocks run, the rest are reported to the model", function()
      srv = fake.start{ models = { m = {
        { content_gen = { unit = "```sh\necho {i} > f{i}.txt\n```\n", count = 10000 } },
        { content = "TERMINATE", expect = { last_contains = "9968 more code block(s) in this message were not run" } },
      } } }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
      local r = proxy():initiate_chat(assistant, { message = "go" })
      assert.equal("TERMINATE", r.chat_history[4].content)
      local reply = r.chat_history[3].content
      assert.equal(1, reply:find("exitcode: 0 (execution succeeded)\nCode output: ", 1, true))
      assert.matches("at most 32 run per message (code_execution_config.max_blocks)", reply, 1, true)
      local text = table.concat(out)
      assert.equal(32, select(2, text:gsub("EXECUTING CODE BLOCK", "")))
      assert.matches("NOT RUNNING 9968 MORE CODE BLOCK(S) (max_blocks = 32)", text, 1, true)
      local p = io.popen("ls '" .. dir .. "'")
      local files = 0
      for name in p:lines() do if name:find("^f%d+%.txt$") then files = files + 1 end end
      p:close()
      assert.equal(32, files)
      -- configurable; a bad value is an error naming the option
      local u = proxy{ code_execution_config = { work_dir = dir, use_docker = false, max_blocks = 2 } }
      local two = u:generate_reply{ sender = bot("a", ""), messages = { { role = "user",
        content = "```sh\necho a\n```\n```sh\necho b\n```\n```sh\necho c\n```" } } }
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: a\nb\n\nagentbox: 1 more code block(s) in this "
        .. "message were not run: at most 2 run per message (code_execution_config.max_blocks). Send fewer, larger blocks.", two)
      local ok, err = pcall(proxy, { code_execution_config = { work_dir = dir, use_docker = false, max_blocks = 0 } })
      assert.is_false(ok)
      assert.matches("code_execution_config.max_blocks must be a positive integer", err, 1, true)
    end)

    it("inside a task, a 5 MB reply is extracted over several steps, not in one", function()
      srv = fake.start{ models = { m = {
        { content_gen = { head = "```\n", unit = "x = 1\n", count = 5 * 1024 * 1024 // 6, tail = "```\n" } },
        { content = "TERMINATE" },
      } } }
      local cfg = llm_config(srv)
      cfg.max_reply_bytes = 8 * 1024 * 1024
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = cfg }
      local ticks, stop, at_chain, at_execute = 0, false, nil, nil
      local ex = { execute = function(_, blocks)
        at_execute = ticks
        return { exit_code = 0, output = #blocks .. " " .. blocks[1].lang .. " " .. #blocks[1].code }
      end }
      local u = proxy{ code_execution_config = { executor = ex } }
      u:register_reply(assistant, function() at_chain = at_chain or ticks; return false end)
      agentbox.spawn(function() while not stop do ticks = ticks + 1; coroutine.yield() end end)
      local t = agentbox.spawn(function() return u:initiate_chat(assistant, { message = "go" }) end)
      while not t:done() do agentbox.step(0) end
      stop = true
      agentbox.run()
      local r = assert(t:result())
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: 1 python " .. 5 * 1024 * 1024 // 6 * 6 - 1,
        r.chat_history[3].content)
      -- the ticker ran while the message was extracted: it took more than one step
      assert.is_true(at_execute - at_chain >= 2, ("%s %s"):format(at_chain, at_execute))
    end)
  end)

  describe("the loop", function()
    local function depth()
      local d = 1
      while debug.getinfo(d, "l") do d = d + 1 end
      return d
    end

    it("a 10,000-turn chat under max_turns finishes at constant stack depth", function()
      local a = bot("a", "ping", { max_consecutive_auto_reply = math.maxinteger })
      local b = bot("b", "")
      local depths = {}
      b:register_reply(agentbox.ConversableAgent, function() depths[#depths + 1] = depth(); return true, "pong" end)
      local r = a:initiate_chat(b, { message = "go", max_turns = 10000, silent = true })
      assert.equal(20000, #r.chat_history)
      assert.equal(10000, #depths)
      assert.equal(depths[1], depths[10000])
      assert.equal("pong", r.summary)
      assert.equal(0, #out)
    end)

    it("a 10,000-message ping-pong without max_turns does not grow the stack", function()
      local depths = {}
      local function watch() depths[#depths + 1] = depth(); return false end
      local a = bot("a", "ping", { max_consecutive_auto_reply = 5000 })
      local b = bot("b", "pong", { max_consecutive_auto_reply = 5000, is_termination_msg = watch })
      local r = a:initiate_chat(b, { message = "go", silent = true })
      assert.equal(10001, #r.chat_history)
      assert.equal(5000, #depths)
      assert.equal(depths[1], depths[#depths])
    end)
  end)

  describe("last_n_messages", function()
    local old = { role = "user", content = "```sh\necho old\n```" }
    local own = { role = "assistant", content = "my own message" }
    local text = { role = "user", content = "no code here" }
    local new = { role = "user", content = "```sh\necho new\n```" }

    local function reply(n, messages)
      local u = proxy{ default_auto_reply = "no code", code_execution_config = { work_dir = dir, use_docker = false,
                                                                                last_n_messages = n } }
      return u:generate_reply{ messages = messages, sender = bot("a", "") }
    end

    it("auto scans the trailing run of user messages, newest first", function()
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: new\n", reply("auto", { old, own, text, new }))
      assert.equal("no code", reply("auto", { old, own, text }))
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: new\n", reply("auto", { old, new, text }))
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: old\n", reply(nil, { old, text }))  -- default auto
    end)

    it("an integer scans that many messages whatever their role; the newest with code runs", function()
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: old\n", reply(3, { old, own, text }))
      assert.equal("no code", reply(2, { old, own, text }))
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: new\n", reply(4, { old, own, new, text }))
      assert.equal("exitcode: 0 (execution succeeded)\nCode output: old\n", reply(99, { old, own }))
    end)

    it("0 scans nothing", function()
      assert.equal("no code", reply(0, { old, new }))
    end)

    it("a lone fenced block of unknown language is prose, as in AutoGen", function()
      assert.equal("no code", reply("auto", { { role = "user", content = "```\njust some words here\n```" } }))
    end)

    it("a failing block reports the failure text", function()
      assert.equal("exitcode: 3 (execution failed)\nCode output: bad\n",
        reply("auto", { { role = "user", content = "```sh\necho bad; exit 3\n```" } }))
    end)
  end)

  describe("summaries", function()
    it("last_msg removes TERMINATE", function()
      local r = proxy():initiate_chat(bot("a", "Result: 42\nTERMINATE"), { message = "go" })
      assert.equal("Result: 42\n", r.summary)
    end)

    it("reflection_with_llm asks the recipient's model with AutoGen's prompt as a system message", function()
      srv = fake.start{ models = { m = {
        { content = "The capital is Paris." },
        { content = "France's capital: Paris.",
          expect = { last_role = "system", messages_count = 3, last_equals = require("agentbox.agent.conversation").DEFAULT_SUMMARY_PROMPT } },
        { content = "ok" },
        { content = "custom", expect = { last_role = "user", last_equals = "Sum up." } },
      } } }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
      local user = bot("user", "", { max_consecutive_auto_reply = 0 })
      local r = user:initiate_chat(assistant, { message = "Capital of France?", summary_method = "reflection_with_llm" })
      assert.equal("France's capital: Paris.", r.summary)
      assert.equal(2, #r.chat_history)
      local sent = srv:requests()[2].body.messages
      assert.same({ role = "user", name = "user", content = "Capital of France?" }, sent[1])
      r = user:initiate_chat(assistant, { message = "x", summary_method = "reflection_with_llm",
                                          summary_args = { summary_prompt = "Sum up.", summary_role = "user" } })
      assert.equal("custom", r.summary)
    end)

    it("reflection_with_llm: a failing model leaves the chat and an empty summary", function()
      srv = fake.start{ models = { m = { { content = "answer" }, { status = 400 } } } }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
      local r = bot("user", "", { max_consecutive_auto_reply = 0 }):initiate_chat(assistant,
        { message = "q", summary_method = "reflection_with_llm" })
      assert.equal("", r.summary)
      assert.matches("HTTP 400", r.summary_error)
      assert.same({ "q", "answer" }, contents(r.chat_history))
      assert.matches("Cannot extract summary using reflection_with_llm", table.concat(out), 1, true)
    end)

    it("reflection_with_llm without any model is a clear error", function()
      assert.has_error(function()
        bot("u", "", { max_consecutive_auto_reply = 0 }):initiate_chat(bot("a", "x"),
          { message = "q", summary_method = "reflection_with_llm" })
      end, "initiate_chat: summary_method \"reflection_with_llm\" needs an llm_config on the recipient (a) or the sender (u)")
    end)

    it("a function gets sender, recipient and summary_args; false gives an empty summary", function()
      local a, b = bot("a", "hi", { max_consecutive_auto_reply = 0 }), bot("b", "there")
      local got
      local r = a:initiate_chat(b, { message = "go", summary_args = { k = 1 },
        summary_method = function(s, rcp, args) got = { s, rcp, args.k }; return rcp:last_message(s).content:upper() end })
      assert.same({ a, b, 1 }, got)
      assert.equal("THERE", r.summary)
      assert.equal("", a:initiate_chat(b, { message = "go", summary_method = false }).summary)
    end)
  end)

  describe("options", function()
    it("clear_history = false keeps the earlier conversation; the default clears it", function()
      local a, b = bot("a", "x", { max_consecutive_auto_reply = 0 }), bot("b", "y")
      a:initiate_chat(b, { message = "one" })
      local r = a:initiate_chat(b, { message = "two", clear_history = false })
      assert.same({ "one", "y", "two", "y" }, contents(r.chat_history))
      assert.same({ "one", "y", "two", "y" }, contents(b:chat_messages(a)))
      r = a:initiate_chat(b, { message = "three" })
      assert.same({ "three", "y" }, contents(r.chat_history))
    end)

    it("message may be a function, gets carryover appended, or comes from get_human_input('>')", function()
      local a, b = bot("a", "", { max_consecutive_auto_reply = 0 }), bot("b", "ok")
      local r = a:initiate_chat(b, { message = function(s, rcp, ctx) return s.name .. " asks " .. rcp.name .. ctx.max_turns end,
                                     max_turns = 1 })
      assert.equal("a asks b1", r.chat_history[1].content)
      r = a:initiate_chat(b, { message = "task", carryover = { "fact 1", "fact 2" }, max_turns = 1 })
      assert.equal("task\nContext: \nfact 1\nfact 2", r.chat_history[1].content)
      local prompts = {}
      local h = agentbox.ConversableAgent{ name = "h", human_input_mode = "NEVER", max_consecutive_auto_reply = 0,
                                           get_human_input = function(p) prompts[#prompts + 1] = p; return "typed" end }
      r = h:initiate_chat(b, {})
      assert.same({ ">" }, prompts)
      assert.equal("typed", r.chat_history[1].content)
      assert.same({ "typed" }, r.human_input)
    end)

    it("rejects bad options with what is accepted", function()
      local a, b = bot("a", ""), bot("b", "")
      assert.has_error(function() a:initiate_chat(b, { mesage = "x" }) end)
      local ok, err = pcall(a.initiate_chat, a, b, { message = "x", max_turns = 1.5 })
      assert.is_false(ok)
      assert.matches("max_turns must be a non%-negative integer", err)
      ok, err = pcall(a.initiate_chat, a, b, { message = "x", max_turns = 1, summary_method = "best" })
      assert.is_false(ok)
      assert.matches("summary_method must be \"last_msg\", \"reflection_with_llm\"", err)
      ok, err = pcall(a.initiate_chat, a, "bob", { message = "x" })
      assert.is_false(ok)
      assert.matches("the recipient must be an agent", err)
    end)

    it("cost merges both agents' usage per model", function()
      srv = fake.start{ models = { m1 = { { content = "from one" } }, m2 = { { content = "TERMINATE" } } } }
      local one = agentbox.AssistantAgent{ name = "one", llm_config = llm_config(srv, "m1") }
      local two = agentbox.AssistantAgent{ name = "two", llm_config = llm_config(srv, "m2") }
      local r = two:initiate_chat(one, { message = "hi" })
      assert.same({ "hi", "from one", "TERMINATE" }, contents(r.chat_history))
      local u = r.cost.usage_including_cached_inference
      assert.truthy(u.m1 and u.m2)
      assert.equal(u.m1.prompt_tokens + u.m1.completion_tokens, u.m1.total_tokens)
      assert.equal(0, u.total_cost)
      -- no model at all: an empty cost of the same shape
      local r2 = bot("a", "", { max_consecutive_auto_reply = 0 }):initiate_chat(bot("b", "x"), { message = "q" })
      assert.same({ usage_including_cached_inference = { total_cost = 0 },
                    usage_excluding_cached_inference = { total_cost = 0 } }, r2.cost)
    end)
  end)

  it("works the same inside a task, without blocking other tasks", function()
    srv = fake.start{ models = { m = { { content = "```sh\necho in-task\n```", delay = 0.2 }, { content = "TERMINATE" } } } }
    local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config(srv) }
    local user = proxy()
    local ticks = 0
    local ticker = agentbox.spawn(function() for _ = 1, 10 do agentbox.sleep(0.01); ticks = ticks + 1 end end)
    local t = agentbox.spawn(function() return user:initiate_chat(assistant, { message = "go" }) end)
    local t0 = core.now()
    while not t:done() do agentbox.step(-1) end
    local r = assert(t:result())
    assert.truthy(ticker:done())
    assert.equal(10, ticks)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: in-task\n", r.chat_history[3].content)
    assert.truthy(core.now() - t0 >= 0.2)
  end)
end)
