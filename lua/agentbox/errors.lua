--- One error shape for the whole library (doc/errors.md).
--
-- Misuse (a bad argument, an unknown option, a use after close) raises,
-- blamed on the caller's line: the first stack frame outside lua/agentbox/.
-- A runtime failure returns `nil, message, code`, with code from @{CODES};
-- where one more value helps a program it comes fourth (the HTTP status).
-- Executors and tools of your own may use @{misuse} and @{fail} too.
-- @module agentbox.errors
local M = {}

--- The stable codes a runtime failure may carry (doc/errors.md explains each).
-- @table CODES
-- @field timeout a deadline passed (HTTP request, Docker operation)
-- @field cancelled the task or operation was cancelled
-- @field running Task:result() on a task that has not finished
-- @field unreachable could not connect (Docker daemon, model server)
-- @field http the server answered with an error status
-- @field protocol the answer was malformed or over a size limit
-- @field transport any other transfer failure (TLS, reset connection)
-- @field not_found an image, container or file that is not there
-- @field docker the Docker daemon refused the operation
-- @field spawn a process could not be started (fork, pipe, exec setup)
-- @field io a workspace or file system operation failed
-- @field link a workspace path crossed a symbolic link, which the accessor refuses
-- @field executor an executor failed or broke its contract
-- @field unsupported a requested guarantee cannot be given here (fail closed)
-- @field error a task's function raised; the message is the error
-- (the @field lines above are the list's description: one place)
M.CODES = {
  timeout = true, cancelled = true, running = true, unreachable = true, http = true,
  protocol = true, transport = true, not_found = true, docker = true, spawn = true,
  io = true, link = true, executor = true, unsupported = true, error = true,
}

local here = debug.getinfo(1, "S").source
local package_dir = here:match("^@(.*[/\\])") or ""

local function ours(source)
  return source:sub(1, 1) == "@" and package_dir ~= "" and source:sub(2, #package_dir + 1) == package_dir
end

--- The level (for error()) of the first caller outside agentbox's Lua
--- package, seen from the function that calls caller_level.
-- @treturn integer the level; 0 (no position) when every frame is agentbox's
function M.caller_level()
  local level = 2
  while true do
    local info = debug.getinfo(level + 1, "S")
    -- none (a task agentbox runs itself has only our frames): no position
    -- rather than one inside this file
    if not info then return 0 end
    if info.what ~= "C" and not ours(info.source) then return level end
    level = level + 1
  end
end

--- Raise misuse, blamed on the user's code whatever the call depth.
-- Usage: `errors.misuse("agentbox.LocalExecutor: timeout must be a positive number, got %s", v)`
-- @tparam string fmt the message: name the function, the argument and how to fix it
-- @param ... string.format arguments (none: fmt is the message as is)
-- @raise always: the message, at the first caller outside lua/agentbox/
function M.misuse(fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  error(msg, M.caller_level())
end

--- A runtime failure, in the convention's shape.
-- Usage: `return errors.fail("timeout", "the model server did not answer in %d s", n)`
-- @tparam string code a key of @{CODES}
-- @tparam string fmt the message
-- @param ... string.format arguments (none: fmt is the message as is)
-- @return nil
-- @treturn string the message
-- @treturn string the code
-- @raise when code is not in @{CODES} (a bug in the caller)
function M.fail(code, fmt, ...)
  assert(M.CODES[code], "agentbox.errors: unknown error code " .. tostring(code))
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  return nil, msg, code
end

return M
