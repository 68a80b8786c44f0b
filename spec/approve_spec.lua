-- Approval before execution (issue 10; autogen-ext's approval_func):
-- code_execution_config.approve(blocks, agent, sender) is asked before any
-- block runs. A denial is the reply the model gets, with the reason, and
-- nothing runs; approve may yield until a UI answers; a raise ends the chat
-- with the history so far. A real chat: the scripted model server and a real
-- LocalExecutor in a work_dir the specs look into.
local agentbox = require("agentbox")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")
local CH = require("spec.support.chat_helpers")

local THIS = debug.getinfo(1, "S").short_src

-- code that leaves a file behind, so a run that should not have happened shows
local WRITE_CODE = "```python\nopen('made.txt', 'w').write('x')\nprint('wrote')\n```"

local function listing(dir)
  local f = assert(io.popen("ls -A '" .. dir .. "'"))
  local s = f:read("a")
  f:close()
  return s
end

-- Step the host until done() or `seconds` pass: a failing spec must not hang the rest.
local function step_until(done, seconds)
  local deadline = os.time() + (seconds or 20)
  while not done() do
    assert(os.time() < deadline, "timed out")
    agentbox.step(10)
  end
end

describe("code_execution_config.approve", function()
  local srv, dir, printed
  local tasks = {}     -- what a spec spawned; cancelled after it, so a failure leaves nothing waiting
  local function spawn(fn)
    local t = agentbox.spawn(fn)
    tasks[#tasks + 1] = t
    return t
  end
  before_each(function()
    printed = {}
    agentbox.print = function(s) printed[#printed + 1] = s end
    agentbox.color = false
    dir = H.tmpdir("approve")
  end)
  after_each(function()
    for _, t in ipairs(tasks) do t:cancel() end
    step_until(function() for _, t in ipairs(tasks) do if not t:done() then return false end end return true end)
    tasks = {}
    agentbox.print = nil
    agentbox.color = nil
    if srv then srv:stop() end
    srv = nil
    H.rm_rf(dir)
  end)

  local function proxy(approve, extra)
    local o = { name = "user_proxy", human_input_mode = "NEVER",
                is_termination_msg = function(m) return tostring(m.content):find("TERMINATE", 1, true) ~= nil end,
                code_execution_config = { work_dir = dir, use_docker = false, timeout = 10, approve = approve } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return agentbox.UserProxyAgent(o)
  end

  local function assistant()
    return agentbox.AssistantAgent{ name = "assistant", llm_config = CH.llm_config(srv) }
  end

  it("a denial runs nothing and the model's next request carries it, with the reason", function()
    srv = fake.start{ models = { m = {
      { content = "Let me write a file.\n" .. WRITE_CODE },
      { content = "Understood.\nTERMINATE", expect = { last_contains = "not approved" } },
    } } }
    local calls = 0
    local user = proxy(function() calls = calls + 1 return false, "writing files needs a review" end)
    local r = user:initiate_chat(assistant(), { message = "make a file" })
    assert.is_nil(r.error)
    assert.equal(1, calls)
    -- the executor never ran: no code file, no made.txt
    assert.equal("", listing(dir))
    local denial = "exitcode: 1 (execution denied)\nCode output: Code execution was not approved. "
      .. "Reason: writing files needs a review"
    assert.equal(denial, r.chat_history[3].content)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    for _, q in ipairs(reqs) do assert.equal(200, q.status, q.expect_failed) end
    local sent = reqs[2].body.messages
    assert.same({ role = "user", name = "user_proxy", content = denial }, sent[#sent])
    assert.same({ { exit_code = 1, output = "Code execution was not approved. Reason: writing files needs a review",
                    succeeded = false, denied = true } }, r.execution_results)
    assert.same(r.execution_results, agentbox.code.execution_results(r.chat_history))
    assert.matches(">>>>>>>> CODE EXECUTION DENIED: writing files needs a review", table.concat(printed), 1, true)
    assert.is_nil(table.concat(printed):find("EXECUTING CODE BLOCK", 1, true))
  end)

  it("a denial without a reason says so", function()
    local user = proxy(function() return false end, { max_consecutive_auto_reply = 1 })
    local r = user:initiate_chat(CH.bot("assistant", WRITE_CODE), { message = "go" })
    assert.equal("exitcode: 1 (execution denied)\nCode output: Code execution was not approved. Reason: no reason given",
                 r.chat_history[3].content)
    assert.equal("", listing(dir))
  end)

  it("receives copies of the blocks that would run, the agent and the sender; true runs them", function()
    local code = "Two steps:\n```python\nprint('py', 6 * 7)\n```\n```sh\necho sh-ran\n```"
    srv = fake.start{ models = { m = { { content = code }, { content = "TERMINATE" } } } }
    local got
    local user
    user = proxy(function(blocks, agent, sender)
      got = { blocks = blocks, agent = agent, sender = sender, n = select("#", blocks, agent, sender) }
      blocks[1].code = "print('changed by approve')"      -- changes nothing: what was shown runs
      blocks[3] = { lang = "sh", code = "echo added" }
      return true
    end)
    local a = assistant()
    local r = user:initiate_chat(a, { message = "go" })
    assert.is_nil(r.error)
    assert.equal(3, got.n)
    assert.equal(user, got.agent)
    assert.equal(a, got.sender)
    assert.same({ { lang = "python", code = "print('changed by approve')" }, { lang = "sh", code = "echo sh-ran" },
                  { lang = "sh", code = "echo added" } }, got.blocks)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: py 42\nsh-ran\n", r.chat_history[3].content)
    assert.equal(1, #r.execution_results)
    assert.same({ 0, "py 42\nsh-ran\n", true }, { r.execution_results[1].exit_code, r.execution_results[1].output,
                                                   r.execution_results[1].succeeded })
  end)

  it("only sees the blocks max_blocks lets run", function()
    local seen
    local user = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", max_consecutive_auto_reply = 1,
      code_execution_config = { work_dir = dir, use_docker = false, max_blocks = 2,
                                approve = function(blocks) seen = #blocks return true end } }
    local msg = ("```sh\necho x\n```\n"):rep(3)
    user:initiate_chat(CH.bot("assistant", msg), { message = "go" })
    assert.equal(2, seen)
  end)

  it("may yield: a future another task sets later, while the host keeps stepping", function()
    srv = fake.start{ models = { m = {
      { content = WRITE_CODE },
      { content = "TERMINATE", expect = { last_contains = "exitcode: 0 (execution succeeded)\nCode output: wrote" } },
    } } }
    local answer = agentbox.future()
    local asked = false
    local user = proxy(function(blocks)
      asked = #blocks == 1
      return answer:wait(), "the UI said no"
    end)
    local a = assistant()
    local chat = spawn(function() return user:initiate_chat(a, { message = "go" }) end)
    step_until(function() return asked end)
    -- the chat waits on the answer; the host steps on and other tasks run
    local ticks = 0
    local ticker = spawn(function() for _ = 1, 5 do agentbox.sleep(0.01); ticks = ticks + 1 end end)
    step_until(function() return ticker:done() end)
    assert.equal(5, ticks)
    assert.is_false(chat:done())
    assert.equal("", listing(dir))                       -- nothing ran while waiting
    -- a UI's answer, from another task
    spawn(function() agentbox.sleep(0.02); answer:set(true) end)
    step_until(function() return chat:done() end)
    local r = assert(chat:result())
    assert.is_nil(r.error)
    -- (a "Files:" line may follow when the executor lists made.txt)
    assert.equal(1, r.chat_history[3].content:find("exitcode: 0 (execution succeeded)\nCode output: wrote\n", 1, true))
    assert.same({ exit_code = 0, output = "wrote\n", succeeded = true },
                { exit_code = r.execution_results[1].exit_code, output = r.execution_results[1].output,
                  succeeded = r.execution_results[1].succeeded })
    assert.truthy(H.exists(dir .. "/made.txt"))
    for _, q in ipairs(srv:requests()) do assert.equal(200, q.status, q.expect_failed) end
  end)

  it("cancelling the task while approve waits cancels the chat and runs nothing", function()
    local never = agentbox.future()
    local asked = false
    local user = proxy(function() asked = true return never:wait() end)
    local chat = spawn(function() return user:initiate_chat(CH.bot("assistant", WRITE_CODE), { message = "go" }) end)
    step_until(function() return asked end)
    for _ = 1, 5 do agentbox.step(5) end
    assert.is_true(chat:cancel())
    step_until(function() return chat:done() end)
    local r, _, code = chat:result()
    assert.is_nil(r)
    assert.equal("cancelled", code)
    assert.equal("", listing(dir))
  end)

  it("that raises ends the chat: the history so far, error and error_code, nothing run", function()
    local user = proxy(function() error("approval service is down") end)
    local r = user:initiate_chat(CH.bot("assistant", WRITE_CODE), { message = "go" })
    assert.same({ "go", WRITE_CODE }, CH.contents(r.chat_history))
    assert.matches("UserProxyAgent 'user_proxy': code_execution_config.approve raised: .*approval service is down",
                   r.error)
    assert.equal("error", r.error_code)
    assert.same({}, r.execution_results)
    assert.equal("", listing(dir))
  end)

  it("that answers neither true nor false ends the chat the same way (fail closed)", function()
    for _, answer in ipairs({ "yes", 1 }) do
      local user = proxy(function() return answer end)
      local r = user:initiate_chat(CH.bot("assistant", WRITE_CODE), { message = "go" })
      assert.same({ "go", WRITE_CODE }, CH.contents(r.chat_history))
      assert.matches("approve must return true, or false and a reason; it returned", r.error, 1, true)
      assert.equal("error", r.error_code)
    end
    local r = proxy(function() end):initiate_chat(CH.bot("assistant", WRITE_CODE), { message = "go" })
    assert.matches("it returned nil", r.error, 1, true)
    assert.equal("", listing(dir))
  end)

  it("that is not a function is misuse at construction, blamed on the caller's line", function()
    for _, bad in ipairs({ true, "yes", { } }) do
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(agentbox.UserProxyAgent, { name = "u", code_execution_config = { approve = bad } })
      assert.is_false(ok)
      assert.equal(1, err:find(THIS .. ":" .. line .. ": ", 1, true), err)
      assert.matches("code_execution_config.approve must be a function(blocks, agent, sender)", err, 1, true)
    end
  end)

  it("works with an explicit executor too", function()
    local ran = false
    local user = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", max_consecutive_auto_reply = 1,
      code_execution_config = { executor = { execute = function() ran = true return { exit_code = 0, output = "" } end },
                                approve = function() return false, "no" end } }
    local r = user:initiate_chat(CH.bot("assistant", WRITE_CODE), { message = "go" })
    assert.is_false(ran)
    assert.is_true(r.execution_results[1].denied)
  end)
end)
