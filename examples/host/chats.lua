-- The conversations the C host (examples/host/host.c) runs: 16 chats against
-- the scripted OpenAI-compatible server, each one writing Python that is
-- executed (half with LocalExecutor, half with DockerExecutor), first one at
-- a time (the reference results), then all at once inside the host's frame
-- loop. The host calls start(), steps until no task is live, then report().
local agentbox = require("agentbox")
local now = require("agentbox.core").now
local fake = require("spec.support.fake_openai")

local N = tonumber(os.getenv("HOST_CHATS") or "16")
local DOCKER = os.getenv("HOST_DOCKER") ~= "0"
local work = (os.getenv("TMPDIR") or "/tmp") .. "/agentbox-host-" .. math.floor(now() * 1e6)

local srv, reference, tasks, executors = nil, {}, {}, {}
local t_start, t_end

-- The model: given a task that is a Python expression, answer with a block
-- that prints it; given the execution result, answer with it and TERMINATE.
local SCRIPT = {
  rules = {
    { when_last_contains = "exitcode: 0", content = "The result is: {{last}}\nTERMINATE" },
    { when_last_contains = "exitcode:", content = "It failed.\nTERMINATE" },
    { when_last_role = "user", content = "```python\nimport sys\nprint({{last}}, sys.version_info[0])\n```" },
  },
}

local function executor(i)
  local dir = ("%s/chat%d"):format(work, i)
  if DOCKER and i % 2 == 0 then
    return agentbox.DockerExecutor{ work_dir = dir, timeout = 30 }
  end
  return agentbox.LocalExecutor{ work_dir = dir, timeout = 30 }
end

local function chat(i, ex)
  local assistant = agentbox.AssistantAgent{
    name = "assistant",
    llm_config = { config_list = { { model = "scripted", api_key = "none", base_url = srv.base_url } },
                   cache_seed = false },      -- the script is the model: no response cache
  }
  local user = agentbox.UserProxyAgent{
    name = "user_proxy", human_input_mode = "NEVER", max_consecutive_auto_reply = 4,
    is_termination_msg = function(m) return (m.content or ""):find("TERMINATE", 1, true) ~= nil end,
    code_execution_config = { executor = ex },
  }
  local r = user:initiate_chat(assistant, { message = ("%d * %d + %d"):format(i, i, i), silent = true })
  return r.summary, #r.chat_history
end

local M = {}

function M.start()
  srv = fake.start(SCRIPT)
  for i = 1, N do executors[i] = executor(i) end
  for i = 1, N do reference[i] = { chat(i, executors[i]) } end
  t_start = now()
  for i = 1, N do
    tasks[i] = agentbox.spawn(chat, i, executors[i])
    tasks[i]:on_done(function() if tasks[i] then t_end = now() end end)
  end
end

local function mismatches()
  local bad = {}
  for i = 1, N do
    local summary, n = tasks[i]:result()
    if summary ~= reference[i][1] or n ~= reference[i][2] then
      bad[#bad + 1] = ("chat %d: %s / %s"):format(i, tostring(summary), tostring(reference[i][1]))
    end
  end
  return bad
end

function M.ok() return #mismatches() == 0 end

function M.report()
  local done = 0
  for i = 1, N do if tasks[i]:done() and tasks[i]:result() then done = done + 1 end end
  for i = 1, N do executors[i]:close() end
  srv:stop()
  os.execute("rm -rf '" .. work .. "'")
  local bad = mismatches()
  return ("chats finished: %d/%d (%d with DockerExecutor) in %.2f s; identical to the same chat run alone: %s%s")
    :format(done, N, DOCKER and N // 2 or 0, (t_end or t_start) - t_start, #bad == 0 and "yes" or "NO",
            #bad > 0 and ("\n  " .. table.concat(bad, "\n  ")) or "")
end

return M
