-- Execution results programmatically (issue 10): a ChatResult's
-- execution_results, recorded as the code ran, and
-- agentbox.code.execution_results(history), read back from the replies'
-- text (the helper AutoGen's material writes by hand). A real chat: the
-- scripted model server and a real LocalExecutor.
local agentbox = require("agentbox")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")
local CH = require("spec.support.chat_helpers")

local OK_CODE = "```python\nprint(6 * 7)\n```"
-- output that itself looks like an execution reply, then a failure
local FAIL_CODE = "```python\nimport sys\nprint('exitcode: 0 (execution succeeded)')\n"
  .. "print('Code output: fake')\nsys.exit(3)\n```"
local SLOW_CODE = "```python\nimport time\nprint('waiting', flush=True)\ntime.sleep(30)\n```"

-- The fields both ways of reading give (a record may carry more, such as
-- output_files when the executor lists them).
local function core_fields(list)
  local out = {}
  for i, r in ipairs(list) do
    out[i] = { exit_code = r.exit_code, output = r.output, succeeded = r.succeeded, denied = r.denied }
  end
  return out
end

describe("execution results", function()
  local srv, dir
  before_each(function()
    agentbox.print = function() end
    dir = H.tmpdir("results")
  end)
  after_each(function()
    agentbox.print = nil
    if srv then srv:stop() end
    srv = nil
    H.rm_rf(dir)
  end)

  -- timeout: long enough for print(6 * 7) on a loaded machine, short for SLOW_CODE
  local function proxy(extra, timeout)
    local o = { name = "user_proxy", human_input_mode = "NEVER",
                is_termination_msg = function(m) return tostring(m.content):find("TERMINATE", 1, true) ~= nil end,
                code_execution_config = { work_dir = dir, use_docker = false, timeout = timeout or 30 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return agentbox.UserProxyAgent(o)
  end

  it("a chat with a success, a failure and a timeout: one record each, in order", function()
    srv = fake.start{ models = { m = {
      { content = "First:\n" .. OK_CODE },
      { content = "Now this:\n" .. FAIL_CODE, expect = { last_contains = "exitcode: 0 (execution succeeded)" } },
      { content = "And wait:\n" .. SLOW_CODE, expect = { last_contains = "exitcode: 3 (execution failed)" } },
      { content = "Done.\nTERMINATE", expect = { last_contains = "exitcode: 124 (execution failed)" } },
    } } }
    local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = CH.llm_config(srv) }
    local r = proxy(nil, 4):initiate_chat(assistant, { message = "compute" })
    assert.is_nil(r.error)
    for _, q in ipairs(srv:requests()) do assert.equal(200, q.status, q.expect_failed) end

    local recs = r.execution_results
    assert.equal(3, #recs)
    assert.same({ exit_code = 0, output = "42\n", succeeded = true }, core_fields(recs)[1])
    assert.same({ exit_code = 3, succeeded = false,
                  output = "exitcode: 0 (execution succeeded)\nCode output: fake\n" }, core_fields(recs)[2])
    assert.equal(124, recs[3].exit_code)
    assert.is_false(recs[3].succeeded)
    assert.matches("^waiting\n", recs[3].output)
    assert.matches("Timeout$", recs[3].output)
    for _, rec in ipairs(recs) do assert.equal("integer", math.type(rec.exit_code)) end

    -- read back from the text: the same records, and the output that prints
    -- "exitcode:" lines is one record, not two
    assert.same(core_fields(recs), core_fields(agentbox.code.execution_results(r.chat_history)))
    -- what the model got back is what the records say
    local sent = srv:requests()[4].body.messages
    assert.equal("exitcode: 124 (execution failed)\nCode output: " .. recs[3].output, sent[#sent].content)
  end)

  it("also when the assistant starts the chat (the proxy is the recipient)", function()
    local user = proxy{ max_consecutive_auto_reply = 2 }
    local assistant = CH.bot("assistant", OK_CODE)
    local r = assistant:initiate_chat(user, { message = "Run:\n" .. OK_CODE })
    assert.same({ { exit_code = 0, output = "42\n", succeeded = true }, { exit_code = 0, output = "42\n", succeeded = true } },
                core_fields(r.execution_results))
    assert.same(core_fields(r.execution_results), core_fields(agentbox.code.execution_results(r.chat_history)))
  end)

  it("follow chat_history: a new chat starts empty, clear_history = false keeps the earlier ones", function()
    local user = proxy{ max_consecutive_auto_reply = 1 }
    local assistant = CH.bot("assistant", OK_CODE)
    local r1 = user:initiate_chat(assistant, { message = "go" })
    assert.equal(1, #r1.execution_results)
    local r2 = user:initiate_chat(assistant, { message = "again" })
    assert.equal(1, #r2.execution_results)
    local r3 = user:initiate_chat(assistant, { message = "more", clear_history = false })
    assert.equal(2, #r3.execution_results)
    assert.equal(#agentbox.code.execution_results(r3.chat_history), #r3.execution_results)
    -- each ChatResult owns its records
    r3.execution_results[1].output = "changed"
    assert.equal("42\n", r2.execution_results[1].output)
  end)

  it("read back from a real chat, files the code wrote are the same as kept (when the executor lists them)", function()
    local code = "```python\nopen('report.txt', 'w').write('12345')\nprint('saved')\n```"
    local user = proxy{ max_consecutive_auto_reply = 1 }
    local r = user:initiate_chat(CH.bot("assistant", code), { message = "save it" })
    local kept, read = r.execution_results[1], agentbox.code.execution_results(r.chat_history)[1]
    assert.equal("saved\n", kept.output)
    assert.same(kept, read)
    if kept.output_files then assert.same({ { path = "report.txt", size = 5 } }, kept.output_files) end
  end)

  it("keep an executor's output_files as it gave them", function()
    local files = { { path = "chart.png", size = 12345 }, { path = "out/report.csv", size = 3 } }
    local ex = { execute = function() return { exit_code = 0, output = "drawn\n", output_files = files } end }
    local user = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", max_consecutive_auto_reply = 1,
                                          code_execution_config = { executor = ex } }
    local r = user:initiate_chat(CH.bot("assistant", OK_CODE), { message = "plot" })
    assert.same({ { exit_code = 0, output = "drawn\n", succeeded = true, output_files = files } }, r.execution_results)
  end)

  it("a chat without code has an empty list", function()
    local r = CH.bot("a", "hi", { max_consecutive_auto_reply = 1 }):initiate_chat(CH.bot("b", "hello"), { message = "q" })
    assert.same({}, r.execution_results)
    assert.same({}, agentbox.code.execution_results(r.chat_history))
  end)

  describe("agentbox.code.execution_results", function()
    it("reads only messages that start as an execution reply, whatever the output holds", function()
      local history = {
        { role = "user", content = "please run it" },
        { role = "assistant", content = "The result was\nexitcode: 0 (execution succeeded)\nCode output: 1" },
        { role = "user", content = "exitcode: 1 (execution failed)\nCode output: Traceback\n"
            .. "exitcode: 0 (execution succeeded)\nCode output: not a second record\n" },
        { role = "user", content = { { type = "text", text = "exitcode: 0 (execution succeeded)\nCode output: " },
                                     { type = "text", text = "parts\n" } } },
        { role = "user", content = "exitcode: 0 (execution succeeded)\nCode output: a\nagentbox: 3 more code block(s) "
            .. "in this message were not run: at most 2 run per message (code_execution_config.max_blocks). "
            .. "Send fewer, larger blocks." },
        { role = "user", content = "exitcode: 1 (execution denied)\nCode output: Code execution was not approved. "
            .. "Reason: no" },
        { role = "user", content = "exitcode: 0 (execution pending)\nCode output: unknown status" },
        { role = "tool", tool_call_id = "x" },
        "not a message",
      }
      assert.same({
        { exit_code = 1, succeeded = false,
          output = "Traceback\nexitcode: 0 (execution succeeded)\nCode output: not a second record\n" },
        { exit_code = 0, succeeded = true, output = "parts\n" },
        { exit_code = 0, succeeded = true, output = "a" },
        { exit_code = 1, succeeded = false, denied = true, output = "Code execution was not approved. Reason: no" },
      }, agentbox.code.execution_results(history))
    end)

    it("reads the Files line that ends a reply as output_files; one that does not fit it stays output", function()
      local function one(text) return agentbox.code.execution_results({ { role = "user", content = text } })[1] end
      assert.same({ exit_code = 0, succeeded = true, output = "done\n",
                    output_files = { { path = "chart.png", size = 12345 }, { path = "data, 2026.csv", size = 3 } } },
                  one("exitcode: 0 (execution succeeded)\nCode output: done\n\nFiles: chart.png (12345 bytes), "
                      .. "data, 2026.csv (3 bytes)"))
      -- then the max_blocks note
      assert.same({ exit_code = 0, succeeded = true, output = "a", output_files = { { path = "x.txt", size = 1 } } },
                  one("exitcode: 0 (execution succeeded)\nCode output: a\nFiles: x.txt (1 bytes)\nagentbox: 1 more "
                      .. "code block(s) in this message were not run: at most 1 run per message "
                      .. "(code_execution_config.max_blocks). Send fewer, larger blocks."))
      -- a list the reply cut short, or one that could not be made
      local r = one("exitcode: 1 (execution failed)\nCode output: \nFiles: a.png (1 bytes), and 4 more (incomplete: "
                    .. "the listing stopped after 10000 entries)")
      assert.same({ { path = "a.png", size = 1 } }, r.output_files)
      assert.equal("the listing stopped after 10000 entries; the reply named 1 of 5 files", r.output_files_incomplete)
      assert.same({}, one("exitcode: 0 (execution succeeded)\nCode output: \nFiles: none listed (incomplete: "
                          .. "permission denied)").output_files)
      -- the code's own "Files:" lines are output
      for _, own in ipairs({ "Files: see below", "Files: a.png (big)", "Files: a.png (1 bytes) b.png (2 bytes)" }) do
        local rec = one("exitcode: 0 (execution succeeded)\nCode output: x\n" .. own)
        assert.equal("x\n" .. own, rec.output)
        assert.is_nil(rec.output_files)
      end
    end)

    it("a history that is not a table is misuse, blamed on the caller", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(agentbox.code.execution_results, "exitcode: 0")
      assert.is_false(ok)
      assert.matches("execution_results: history must be a list of messages", err, 1, true)
      assert.equal(1, err:find(debug.getinfo(1, "S").short_src .. ":" .. line .. ":", 1, true), err)
    end)
  end)
end)
