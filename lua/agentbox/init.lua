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
}

function M.LocalExecutor(opts) return require("agentbox.executor.local").new(opts) end

-- Hooks the host may set: agentbox.on_error = function(err, task) ... end
setmetatable(M, {
  __newindex = function(t, k, v)
    if k == "on_error" then task.on_error = v return end
    rawset(t, k, v)
  end,
  __index = function(_, k)
    if k == "on_error" then return task.on_error end
  end,
})

return M
