-- A runtime failure in the middle of a chat (the model server, an
-- executor): the reply function that meets it raises a ChatFailure, and
-- initiate_chat turns it into a ChatResult that keeps the history so far
-- plus error and error_code (doc/errors.md). Anything else that raises in a
-- chat (misuse, a bug in a reply function, a cancelled task) is not a
-- ChatFailure and goes on unwinding.
local errors = require("agentbox.errors")
local task = require("agentbox.task")

local M = {}

local ChatFailure = { __tostring = function(f) return f.message end }

--- Raise a ChatFailure: failure.raise("executor", "the executor failed: %s", err)
function M.raise(code, fmt, ...)
  local _, message = errors.fail(code, fmt, ...)
  error(setmetatable({ message = message, code = code }, ChatFailure), 0)
end

function M.is(err)
  return getmetatable(err) == ChatFailure
end

--- A cancelled task unwinds with this error; a pcall that catches it must
--- raise it again.
function M.is_cancel(err)
  local t = task.current()
  return err == task.CANCELLED or (t ~= nil and t.cancelled == true)
end

return M
