--- AutoGen's two-agent code loop for Lua 5.4: `local agentbox = require("agentbox")`.
--
-- This file only re-exports the public surface; each function is documented
-- where it is defined (the modules below), and the data shapes every
-- executor shares (@{CodeBlock}, @{ExecResult}, the @{Executor} contract) here.
--
-- Errors (doc/errors.md): misuse (a bad argument, an unknown option, a use
-- after close) raises, blamed on the caller's line; a runtime failure returns
-- `nil, message, code` with `code` from @{agentbox.errors.CODES}.
-- @module agentbox
local task = require("agentbox.task")
local core = require("agentbox.core")

--- The module's fields: read them, or assign a hook.
-- @table fields
-- @tfield string version the release, e.g. "0.2.0" (CHANGELOG.md, the rockspec and src/agentbox.h agree)
-- @tfield agentbox.code code code blocks in messages (@{agentbox.code})
-- @tfield agentbox.docker docker the Docker Engine client's public part (@{agentbox.docker}), loaded on first use
-- @field on_error `function(err, task)`, called with every task error nobody waits for
-- (default nil: printed on stderr); see @{agentbox.task.on_error}
-- @field print `function(text)`, where the transcript goes (default `io.write`);
-- assign nil to restore it (@{agentbox.transcript.print})
-- @field color false: never colour the transcript; true: always; nil (default):
-- when stdout is a terminal (@{agentbox.transcript.color})
local M = {
  version = core.version,
  code = require("agentbox.code"),
  --- Run `fn(...)` as a task (a coroutine on the reactor). See @{agentbox.task.spawn}.
  -- @function spawn
  -- @tparam function fn the task's body
  -- @param ... its arguments
  -- @treturn agentbox.task.Task the handle
  spawn = task.spawn,
  --- Advance whatever is ready; never blocks with 0, -1 waits for the next event. See @{agentbox.task.step}.
  -- @function step
  -- @tparam[opt=0] integer timeout_ms 0: never block; -1: wait for the next event
  -- @treturn integer live tasks
  step = task.step,
  --- Step until every task is done. See @{agentbox.task.run}.
  -- @function run
  -- @tparam[opt] function until_fn stop early when it returns true
  run = task.run,
  --- Sleep inside a task (the host keeps stepping). See @{agentbox.task.sleep}.
  -- @function sleep
  -- @tparam number seconds how long
  sleep = task.sleep,
  --- A value provided later; wait yields inside a task. See @{agentbox.task.future}.
  -- @function future
  -- @treturn agentbox.task.Future unset
  future = task.future,
}

--- Executors.
-- An executor runs an agent's code blocks. @{LocalExecutor} and
-- @{DockerExecutor} are agentbox's; any object with an `execute` method is
-- one too (`code_execution_config = { executor = ex }`).
-- @section executors

--- A code block: what @{agentbox.code.extract} returns a list of, and what
-- an executor's `execute` takes a list of.
-- @table CodeBlock
-- @tfield string lang the language ("python", "sh", "bash", "javascript", "html", "css",
-- "powershell", or "unknown"; aliases such as "py", "shell", "js" are accepted)
-- @tfield string code the source; a first line `# filename: sub/x.py` names the file it is written to

--- THE EXECUTOR CONTRACT: what `execute(blocks)` returns, for LocalExecutor,
-- DockerExecutor and any executor of your own. Blocks run in order and stop
-- at the first failure. A block that exits non-zero, times out (124) or
-- overruns its quota (122) is a result, not an error: it goes to the model as
-- `exitcode: <exit_code> (execution failed)\nCode output: <output>`
-- (@{agentbox.code.format_result}). A result of any other shape ends the chat
-- with `error_code = "executor"` (never `exitcode: nil` sent to the model).
-- @table ExecResult
-- @tfield integer exit_code 0 when every block succeeded, else the failing block's exit code
-- (124 timeout, 122 quota, 128 + signal)
-- @tfield string output what the blocks printed (stdout and stderr in arrival order), plus agentbox's own lines
-- @tfield string|nil code_file the path of the first code file written, nil when none was
-- @tfield {OutputFile,...}|nil output_files LocalExecutor and DockerExecutor: the regular files
-- under work_dir this call created or changed, sorted by path (not the code files agentbox
-- wrote, links, or `.agentbox/`); a chart shown with `plt.show()` is `figure_<n>.png`
-- @tfield string|nil output_files_incomplete why output_files may miss files (the listing stopped
-- after 10,000 entries, or failed) or, with a remote daemon, how many were not copied back

--- One entry of `ExecResult.output_files`.
-- @table OutputFile
-- @tfield string path relative to work_dir (a remote daemon's files are copied back there)
-- @tfield integer size bytes

--- The options LocalExecutor and DockerExecutor share (README "A minimal example").
-- An unknown option or a bad value is an error naming it, raised before
-- anything is created on the host.
-- @table ExecutorOptions
-- @tfield[opt] string work_dir created when missing (a symbolic link in its path is an error);
-- default a fresh private directory (mode 0700), removed at close unless keep_work_dir
-- @tfield[opt=false] boolean keep_work_dir keep the temporary work_dir at close
-- @tfield[opt=60] number timeout seconds per block: then the whole process tree is killed,
-- exit code 124 and the output ends with `\nTimeout`
-- @tfield[opt] number|false total_timeout seconds for one execute call (default 4 x timeout;
-- false: none); the blocks left are not run, exit code 124
-- @tfield[opt] table env `{ NAME = "value" }` added to the built environment (the host's is
-- never inherited)
-- @tfield[opt=1048576] integer max_output bytes per execute; the rest is read and dropped, and a
-- line says how many bytes were
-- @tfield[opt] function on_output `function(chunk, stream)`: output as it arrives, stream
-- "stdout" or "stderr"
-- @tfield[opt] table|false quota what work_dir may hold, `{ bytes = "1g", files = 100000 }` by
-- default (`false`: none; `bytes = false` or `files = false`: one half); over it the tree is
-- killed, exit code 122
-- @tfield[opt] table execution_policies `{ [language] = boolean }`: false saves the file
-- without running it (default: javascript, html and css are saved only)
-- @tfield[opt=0.5] number grace seconds between TERM and KILL at the deadline
-- @tfield[opt] string|function audit the audit log (README "Audit log"): a JSON Lines file
-- outside work_dir, or `function(record)` (may yield) getting each @{AuditRecord}
-- @tfield[opt=true] boolean audit_required a log that cannot be written fails the block
-- (false: a line on stderr instead)

--- One record of the audit log (README "Audit log"): two per block that runs.
-- Written by the host, never by the code. A "start" record that cannot be
-- written keeps the block from running; the fields from exit_code to error
-- are in "end" records only. Saved-only blocks are not recorded.
-- @table AuditRecord
-- @tfield string time UTC ISO-8601 with milliseconds (`"2026-11-29T13:58:36.604Z"`)
-- @tfield string event "start" (before the block runs) or "end" (after it)
-- @tfield string executor "LocalExecutor" or "DockerExecutor"
-- @tfield string host the host's name
-- @tfield integer pid the host process
-- @tfield string work_dir the executor's work_dir on the host
-- @tfield table sandbox where it ran. Docker: container_id, container_name, image, image_id,
-- user, uid_drop, network, read_only, cap_add, transfer; local: uid, uid_drop, seccomp,
-- no_new_privs, protect_host, env, nice, cpu_cgroup, supervisor
-- @tfield table limits timeout (this block's), total_timeout, grace, max_output, quota;
-- Docker: memory, cpus, pids_limit, tmpfs; local: rlimits
-- @tfield string language the block's language
-- @tfield string code_file relative to work_dir
-- @tfield string sha256 of the code as written to code_file
-- @tfield integer|nil exit_code the block's exit code
-- @tfield boolean|nil timed_out it ran out of time
-- @tfield boolean|nil oom it was killed for memory
-- @tfield boolean|nil quota_exceeded it overran the workspace quota
-- @tfield number|nil duration seconds, ms precision
-- @tfield integer|nil output_bytes this block's output kept in the result
-- @tfield integer|nil output_dropped read past max_output and discarded
-- @tfield string|nil error why the block could not run (no interpreter, a broken daemon)

--- The interface an executor of your own implements (LocalExecutor and
-- DockerExecutor implement it too).
-- Only `execute` is required. An optional `work_dir` field (string) names
-- where code files are written.
-- @type Executor

--- Run the blocks in order, stopping at the first failure.
-- Called inside a task: it may yield. What the code did is a result, never
-- an error.
-- @function Executor:execute
-- @tparam {CodeBlock,...} blocks the blocks to run
-- @treturn[1] ExecResult the result
-- @return[2] nil when the executor itself failed (it could not run anything):
-- the chat ends with a ChatResult whose `error` is the message
-- @treturn[2] string message what failed
-- @treturn[2] string code one of @{agentbox.errors.CODES} (else "executor")
-- @raise nothing for what the code did; an error it raises for its own
-- failure ends the chat the same way, with code "executor"

--- Release what the executor holds (optional; also `<close>`).
-- @function Executor:close

--- Making executors.
-- @section make_executors

--- Make an executor that runs code on this host under a supervisor.
-- Not an isolation boundary (README "Security model").
-- @tparam[opt] agentbox.executor.local.Options opts its options
-- @treturn agentbox.executor.local.LocalExecutor the executor
-- @raise on a bad or unknown option, or a work_dir that cannot be made
function M.LocalExecutor(opts) return require("agentbox.executor.local").new(opts) end

--- Make an executor that runs code in a hardened container.
-- @tparam[opt] agentbox.executor.docker.Options opts its options
-- @treturn agentbox.executor.docker.DockerExecutor the executor
-- @raise on a bad or unknown option
function M.DockerExecutor(opts) return require("agentbox.executor.docker").new(opts) end

--- Make a pool of ready warm containers for DockerExecutors (experimental;
-- README "Pools and fresh containers"): `DockerExecutor{ pool = p }` takes one.
-- @tparam table opts `size` and DockerExecutor's container options
-- @treturn agentbox.executor.docker_pool.DockerPool the pool
-- @raise on a bad or unknown option
function M.DockerPool(opts) return require("agentbox.executor.docker_pool").new(opts) end

-- agents and the chat loop (agent/), the transcript (transcript.lua)
local agent = require("agentbox.agent")
local transcript = require("agentbox.transcript")
--- Agents.
-- One class, three sets of defaults (README "Agents").
-- @section agents

--- An agent with defaults of its own (human_input_mode "TERMINATE", no code execution).
-- See @{agentbox.agent.ConversableAgent}.
-- @function ConversableAgent
-- @tparam agentbox.agent.AgentOptions opts its options
-- @treturn agentbox.agent.ConversableAgent the agent
-- @raise on a bad or unknown option
M.ConversableAgent = agent.ConversableAgent
--- An agent with AutoGen's assistant defaults (give it an llm_config).
-- See @{agentbox.agent.classes}.
-- @function AssistantAgent
-- @tparam agentbox.agent.AgentOptions opts its options
-- @treturn agentbox.agent.ConversableAgent the agent
-- @raise on a bad or unknown option, or a missing llm_config
M.AssistantAgent = agent.AssistantAgent
--- An agent with AutoGen's user-proxy defaults (human_input_mode "ALWAYS", code execution on).
-- See @{agentbox.agent.classes}.
-- @function UserProxyAgent
-- @tparam agentbox.agent.AgentOptions opts its options
-- @treturn agentbox.agent.ConversableAgent the agent
-- @raise on a bad or unknown option, or Docker requested and not reachable
M.UserProxyAgent = agent.UserProxyAgent
--- Register `fn` as a tool: `caller`'s model may call it, `executor` runs it.
-- See @{agentbox.agent.register_function}.
-- @function register_function
-- @tparam function fn the tool
-- @tparam agentbox.agent.ToolOptions opts caller, executor, name, description, parameters
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
