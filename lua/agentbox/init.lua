-- agentbox: AutoGen's two-agent code loop for Lua 5.4. This file only
-- re-exports the public surface (see doc/ and API.md).
local task = require("agentbox.task")
local core = require("agentbox.core")

local M = {
  version = core.version,
  code = require("agentbox.code"),
  spawn = task.spawn,
  step = task.step,
  run = task.run,
  sleep = task.sleep,
  future = task.future,
}

function M.LocalExecutor(opts) return require("agentbox.executor.local").new(opts) end
function M.DockerExecutor(opts) return require("agentbox.executor.docker").new(opts) end

-- agents and the chat loop (agent/), the transcript (transcript.lua)
local agent = require("agentbox.agent")
local transcript = require("agentbox.transcript")
M.ConversableAgent = agent.ConversableAgent
M.AssistantAgent = agent.AssistantAgent
M.UserProxyAgent = agent.UserProxyAgent
M.register_function = agent.register_function

-- Hooks the host may set: agentbox.on_error = function(err, task) ... end,
-- agentbox.print = function(text) ... end (the transcript; nil restores
-- io.write), agentbox.color = false (never colour the transcript)
setmetatable(M, {
  __newindex = function(t, k, v)
    if k == "on_error" then task.on_error = v return end
    if k == "print" then transcript.print = v or transcript.default_print return end
    if k == "color" then transcript.color = v return end
    rawset(t, k, v)
  end,
  __index = function(_, k)
    if k == "on_error" then return task.on_error end
    -- loaded on first use: LocalExecutor-only users never load the Docker client
    if k == "docker" then return require("agentbox.engine") end
    if k == "print" or k == "color" then return transcript[k] end
  end,
})

return M
