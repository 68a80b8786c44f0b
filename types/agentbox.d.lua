---@meta agentbox
-- luacheck: ignore (declarations for editors: nothing here runs)

-- agentbox: AutoGen's two-agent code loop for Lua 5.4.
--
-- `local agentbox = require("agentbox")`. This file describes the public API
-- for editors: LuaLS reads the `---@` LuaCATS annotations (add this folder to
-- `workspace.library`). It is never loaded at run time. The reference
-- (`make doc`) is generated from the doc comments in lua/agentbox, which
-- hold the full descriptions; here each function keeps the code's one-line
-- summary, and `make doc` (scripts/check_types.lua) fails when a function,
-- a method, an options table's field or a summary differs between the two.
--
-- Errors (doc/errors.md): misuse (a bad argument, an unknown option) raises;
-- a runtime failure returns `nil, message, code`.

------------------------------------------------------------------ data shapes

--- A code block: what `agentbox.code.extract` returns a list of, and what an
--- executor's `execute` takes a list of.
---@class agentbox.CodeBlock
---@field lang string the language ("python", "sh", "bash", "javascript", "html", "css", "powershell", or "unknown")
---@field code string the source; a first line `# filename: sub/x.py` names the file it is written to

--- THE EXECUTOR CONTRACT: what `execute(blocks)` returns, for LocalExecutor,
--- DockerExecutor and any executor of your own given as
--- `code_execution_config = { executor = ex }`. Blocks run in order and stop
--- at the first failure. A block that exits non-zero, times out (124) or
--- overruns its quota (122) is a result, not an error: it goes to the model
--- as `exitcode: <exit_code> (...)\nCode output: <output>`
--- (`agentbox.code.format_result`).
---@class agentbox.ExecResult
---@field exit_code integer 0 when every block succeeded, else the failing block's exit code (124 timeout, 122 quota, 128 + signal)
---@field output string what the blocks printed (stdout and stderr in arrival order), plus agentbox's own lines
---@field code_file string|nil the path of the first code file written, nil when none was
---@field output_files agentbox.OutputFile[]|nil LocalExecutor and DockerExecutor: the regular files under work_dir this call created or changed, sorted by path (not the code files agentbox wrote, links, or `.agentbox/`); a chart shown with `plt.show()` is `figure_<n>.png`. The reply to the model ends with `\nFiles: <path> (<size> bytes), ...`
---@field output_files_incomplete string|nil why output_files may miss files (the listing stopped after `MAX_ENTRIES` = 10,000 entries, or failed) or, with a remote daemon, how many were not copied back; nil otherwise

--- One entry of `ExecResult.output_files`.
---@class agentbox.OutputFile
---@field path string relative to work_dir (a remote daemon's files are copied back there)
---@field size integer bytes

--- One code execution of a chat: an entry of ChatResult.execution_results
--- (kept as the code ran) and of `agentbox.code.execution_results(history)`
--- (read back from the reply text; output_files from its `Files:` line).
---@class agentbox.ExecutionRecord
---@field exit_code integer the result's exit code (124 timeout, 122 quota; 1 for a denial)
---@field output string the result's output (for a denial: "Code execution was not approved. Reason: <reason>")
---@field succeeded boolean exit_code == 0 (false for a denial)
---@field output_files table[]|nil the executor's output_files (`{ path =, size = }`), when it lists them
---@field output_files_incomplete string|nil why output_files may miss files
---@field denied true|nil code_execution_config.approve said no: nothing ran

--- One entry of `llm_config.config_list`.
---@class agentbox.LLMEntry
---@field model string the model name sent to the server; for Azure the deployment (dots removed, as AutoGen does)
---@field api_key string|nil sent as `Authorization: Bearer` (Azure: the `api-key` header; `azure_ad`: Bearer); never reaches model-written code
---@field base_url string|nil an OpenAI-compatible endpoint (default `OPENAI_BASE_URL`, else OpenAI's); for Azure the resource (required)
---@field api_type "openai"|"azure"|"azure_ad"|nil the protocol (default "openai"); any other is an error at construction
---@field api_version string|nil the Azure OpenAI API version (required for Azure), e.g. "2024-02-01"
---@field azure_endpoint string|nil the Azure resource: another name for base_url
---@field tags string[]|nil accepted for AutoGen compatibility (not sent)
---@field price number[]|number|nil `{ prompt_per_1k, completion_per_1k }`: fills `cost` and `total_cost`

--- An agent's model configuration. Other keys (temperature, ...) are sent
--- with every request.
---@class agentbox.LLMConfig
---@field config_list agentbox.LLMEntry[] the models to try, in order
---@field timeout number|nil seconds per request
---@field max_retries integer|nil retries of a failed request
---@field retry_base number|nil first backoff, seconds
---@field retry_max number|nil longest backoff, seconds
---@field max_reply_bytes integer|nil a larger reply body is refused while it streams (default 2 MiB)
---@field stream boolean|nil ask for server-sent events and assemble them into the same reply (default false)
---@field cache_seed integer|string|false|nil AutoGen's response cache: absent is 41, false is off (AutoGen's None)
---@field cache_path_root string|nil the cache's directory (default ".cache", relative to the current directory)
---@field tools table[]|nil OpenAI tool schemas (register_for_llm fills this)
---@field functions table[]|nil legacy OpenAI function schemas

--- `code_execution_config` of an agent: a table, or `false` for none.
---@class agentbox.CodeExecutionConfig
---@field work_dir string|nil executor's work_dir (default: a fresh private temporary directory)
---@field use_docker boolean|string|nil true, false or an image name (default: `AGENTBOX_USE_DOCKER`, else on)
---@field timeout number|nil seconds per block (default 60)
---@field last_n_messages integer|"auto"|nil messages scanned for code, newest first (default "auto")
---@field max_blocks integer|nil blocks run per message (default 32)
---@field sandbox boolean|agentbox.SandboxSettings|nil run local code in agentbox's daemonless sandbox (LocalExecutor's `sandbox`); with use_docker unset it means local; with use_docker = true an error
---@field executor agentbox.Executor|nil an executor of your own (then work_dir, use_docker, timeout and sandbox are errors)
---@field approve (fun(blocks: agentbox.CodeBlock[], agent: agentbox.ConversableAgent, sender: agentbox.ConversableAgent|nil): boolean, string?)|nil asked before any block runs: true runs them, false and a reason sends the model `exitcode: 1 (execution denied)` and runs nothing; may yield; a raise (or another answer) ends the chat with `error`

--- A message of the chat history.
---@class agentbox.Message
---@field role string "user", "assistant", "tool" or "system"
---@field content string|table|nil text, or a list of multimodal parts
---@field name string|nil the sending agent's name
---@field tool_calls table[]|nil OpenAI tool calls
---@field tool_responses table[]|nil the results of tool calls

--- The options of every agent constructor (AutoGen's arguments as one table).
--- An unknown or badly typed option is an error that names it.
---@class agentbox.AgentOptions
---@field name string the agent's name
---@field system_message string|nil defaults differ per class (README "Agents")
---@field human_input_mode "ALWAYS"|"TERMINATE"|"NEVER"|nil when to ask a human
---@field llm_config agentbox.LLMConfig|false|nil the model (false: no model replies)
---@field code_execution_config agentbox.CodeExecutionConfig|false|nil run code found in messages
---@field max_consecutive_auto_reply integer|nil per sender (default 100)
---@field is_termination_msg (fun(msg: agentbox.Message): boolean)|nil default: content equal to "TERMINATE"
---@field default_auto_reply string|table|nil the reply when nothing else answers (default "")
---@field function_map table<string, function>|nil tools this agent executes, by name
---@field description string|nil how other agents see it
---@field silent boolean|nil print nothing
---@field chat_messages table|nil an initial history, `{ [agent] = messages }`
---@field get_human_input (fun(prompt: string, agent: agentbox.ConversableAgent): string|nil)|nil ask a human; may yield (a future)
---@field on_token (fun(text: string, agent: agentbox.ConversableAgent, kind: "retry"|nil))|nil the model's reply text as it arrives (`llm_config.stream`); kind "retry" (text "") when a failed attempt's text must be dropped

--- The options of `initiate_chat`.
---@class agentbox.ChatOptions
---@field message string|agentbox.Message|(fun(sender, recipient, context): string|agentbox.Message)|nil the first message (nil: ask the human)
---@field max_turns integer|nil at most this many exchanges (nil: until termination)
---@field clear_history boolean|nil start from an empty history (default true)
---@field summary_method "last_msg"|"reflection_with_llm"|function|false|nil how `summary` is made (default "last_msg")
---@field summary_args table|nil e.g. `{ summary_prompt = "..." }`
---@field silent boolean|nil print nothing
---@field carryover string|string[]|nil context appended to the first message

--- What `initiate_chat` returns (AutoGen's ChatResult).
---@class agentbox.ChatResult
---@field chat_history agentbox.Message[] the initiator's messages with the recipient
---@field summary string the last message without "TERMINATE", or the summary_method's result
---@field summary_error string|nil why reflection_with_llm gave no summary
---@field cost table both agents' token usage per model: usage_including_cached_inference, usage_excluding_cached_inference
---@field human_input string[] what the initiator's human typed
---@field human_input_ended string|nil why a human's input ended the chat ("end of input")
---@field error string|nil a failure that ended the chat (doc/errors.md)
---@field error_code string|nil its code (doc/errors.md)
---@field execution_results agentbox.ExecutionRecord[] one per execution reply in chat_history, in order, kept as the code ran

--- The options LocalExecutor and DockerExecutor share (README "A minimal example").
---@class agentbox.ExecutorOptions
---@field work_dir string|nil created when missing; default a fresh private directory removed at close
---@field keep_work_dir boolean|nil keep the temporary work_dir at close
---@field timeout number|nil seconds per block (default 60); then exit 124 and "\nTimeout"
---@field total_timeout number|false|nil seconds for one execute call (default 4 x timeout)
---@field env table<string, string>|nil added to the built environment
---@field max_output integer|nil bytes per execute (default 1 MiB)
---@field on_output (fun(chunk: string, stream: "stdout"|"stderr"))|nil output as it arrives
---@field quota table|false|nil `{ bytes = "1g", files = 100000 }`; exit 122 when passed
---@field execution_policies table<string, boolean>|nil per language: false saves without running
---@field grace number|nil seconds between TERM and KILL at the deadline
---@field audit string|(fun(record: agentbox.AuditRecord))|nil a JSON Lines file outside work_dir, or a function; README "Audit log"
---@field audit_required boolean|nil default true: a log that cannot be written fails the block (false: a line on stderr)

--- One record of the audit log (README "Audit log"): two per block that runs.
--- The fields from exit_code to error are in "end" records only.
---@class agentbox.AuditRecord
---@field time string UTC ISO-8601 with milliseconds ("2026-11-29T13:58:36.604Z")
---@field event "start"|"end" before the block runs, after it
---@field executor string "LocalExecutor" or "DockerExecutor"
---@field host string the host's name
---@field pid integer the host process
---@field work_dir string the executor's work_dir on the host
---@field sandbox table Docker: container_id, container_name, image, image_id, user, uid_drop, network, read_only, cap_add, transfer; local: uid, uid_drop, seccomp, no_new_privs, protect_host, env, nice, cpu_cgroup, supervisor
---@field limits table timeout (this block's), total_timeout, grace, max_output, quota; Docker: memory, cpus, pids_limit, tmpfs; local: rlimits
---@field language string
---@field code_file string relative to work_dir
---@field sha256 string of the code as written to code_file
---@field exit_code integer|nil
---@field timed_out boolean|nil
---@field oom boolean|nil
---@field quota_exceeded boolean|nil
---@field duration number|nil seconds
---@field output_bytes integer|nil this block's output kept in the result
---@field output_dropped integer|nil read past max_output and discarded
---@field error string|nil why the block could not run

--- LocalExecutor's own options (not an isolation boundary: README "Security model").
---@class agentbox.LocalExecutorOptions: agentbox.ExecutorOptions
---@field nice integer|nil CPU weight of the run (default 10)
---@field rlimits table|nil resource limits for the code `{ cpu =, as =, fsize =, nofile =, nproc = }`
---@field python string|nil the python interpreter (default python3, then python)
---@field sandbox boolean|agentbox.SandboxSettings|nil the daemonless sandbox (README "Three ways to run code"); default `AGENTBOX_SANDBOX` (1: on), else off; construction fails closed where the kernel cannot give it
---@field preload string[]|nil experimental: Python modules a template interpreter imports once; each python block is a fork of it (README "Preloaded Python")
---@field stateful boolean|nil experimental: python blocks share one interpreter, variables and imports persist; a timeout or crash restarts it (default false)

--- The daemonless sandbox's settings (LocalExecutor's `sandbox`), checked by name.
---@class agentbox.SandboxSettings
---@field read_only string[]|nil host paths bound read-only at the same path inside (over work_dir too)
---@field read_write string[]|nil host paths bound writable at the same path inside
---@field tmp_size integer|nil bytes of the private /tmp, which /dev/shm links to (default 64 MiB)
---@field memory integer|false|nil bytes of the run's memory cgroup, /tmp included, no swap (default 512 MiB, as DockerExecutor); false for none
---@field require ("landlock"|"cgroup")[]|nil optional guarantees made mandatory (construction fails without them)
---@field network false|nil only false: no network, not even the host's loopback

--- What `LocalExecutor:enforced()` reports.
---@class agentbox.Enforced
---@field sandbox boolean
---@field user_ns boolean
---@field pid_ns boolean
---@field mount_ns boolean
---@field net_ns boolean
---@field ipc_ns boolean
---@field uts_ns boolean
---@field uid_map string|nil "<uid> -> <uid>" (a normal user's ids map to themselves) or, as root, "0 -> 2147483644" (an unprivileged host uid that owns no root file)
---@field capabilities string "none" in the sandbox
---@field landlock string|integer "none", or the Landlock ABI in force
---@field seccomp boolean
---@field no_new_privs boolean
---@field limits string "rlimits", "rlimits, cgroup v1: memory N, pids N, cpu weight", or "rlimits (no writable cgroup: why)"
---@field memory integer|string|false|nil the sandbox's memory limit in force (a string says why it is not enforced)
---@field cgroup table|false|nil the run's cgroup: `{ version = 1|2, memory =, pids =, cpu = }` (booleans), false without one
---@field nproc integer|nil processes at once (RLIMIT_NPROC in the sandbox's user namespace, binding a root caller too)
---@field network string "none" (sandbox) or "host"
---@field filesystem string what the code may write
---@field readable string[]|nil the sandbox's read view: the host paths it sees read-only (mounts and Landlock alike)
---@field interpreter_added string[]|nil prefixes of the interpreter added to the read view (it lived under a hidden path)

--- DockerExecutor's own options (README "Docker sandbox").
---@class agentbox.DockerExecutorOptions: agentbox.ExecutorOptions
---@field image string|nil default `AGENTBOX_IMAGE`, else "python:3-slim"
---@field network string|nil NetworkMode (default "none")
---@field read_only boolean|nil read-only root (default true)
---@field user string|nil numeric "uid:gid", never 0
---@field memory string|false|nil default "512m"
---@field cpus number|nil default 1
---@field pids_limit integer|nil default 256
---@field tmpfs string|table|nil size of /tmp (default "64m")
---@field mounts table[]|nil `{ source =, target =, read_only = true }`
---@field docker_host string|nil `unix:///path` or `tcp://host:port` (default DOCKER_HOST, else the local socket)
---@field auto_remove boolean|nil default true
---@field container_name string|nil default "agentbox-<12 hex>"
---@field transfer "bind"|"archive"|nil how code files reach the container
---@field warm boolean|nil experimental: blocks go to a block server in the container instead of a `docker exec`: a unix socket with a local daemon, the container's attach stream with a remote one
---@field pool agentbox.DockerPool|nil experimental: take a ready container from this pool (implies warm; its container options are the pool's)
---@field fresh boolean|nil experimental: a never-used container for every execute call (without pool: an internal pool of one)
---@field preload string[]|nil experimental: Python modules a template in the container imports once; each python block is a fork of it; turns warm on (README "Docker sandbox")
---@field stateful boolean|nil experimental: python blocks share one interpreter in the container, variables and imports persist; a timeout or crash restarts it; restart() restarts it, not the container; turns warm on (default false)
---@field on_progress (fun(line: string))|nil image pull progress

--- Options of `register_function`, `register_for_llm` and `register_for_execution`.
---@class agentbox.ToolOptions
---@field name string|nil letters, digits, `_` and `-`, at most 64
---@field description string|nil required for the model
---@field parameters table|nil a JSON schema of the arguments
---@field caller agentbox.ConversableAgent|nil the agent whose model may call it (register_function)
---@field executor agentbox.ConversableAgent|nil the agent that runs it (register_function)

------------------------------------------------------------------ the module

--- The functions of `require("agentbox")`.
---@class agentboxlib
local agentbox = {}

--- The release, e.g. "0.2.0" (CHANGELOG.md, the rockspec and src/agentbox.h agree).
---@type string
agentbox.version = ""

--- Called with every task error nobody waits for (default: printed on stderr).
---@type fun(err: any, task: agentbox.Task)|nil
agentbox.on_error = nil

--- Where the transcript goes (default io.write); assign nil to restore.
---@type fun(text: string)|nil
agentbox.print = nil

--- false: never colour the transcript.
---@type boolean|nil
agentbox.color = nil

--- Run `fn(...)` as a task (a coroutine on the reactor).
---@param fn function the task's body
---@param ... any its arguments
---@return agentbox.Task task the handle
function agentbox.spawn(fn, ...) end

--- Advance whatever is ready; never blocks with 0, -1 waits for the next event.
---@param timeout_ms integer|nil milliseconds to wait for an event
---@return integer live the number of live tasks
function agentbox.step(timeout_ms) end

--- Step until every task is done.
function agentbox.run() end

--- Sleep inside a task (the host keeps stepping).
---@param seconds number how long
function agentbox.sleep(seconds) end

--- A value provided later; `wait` yields inside a task.
---@return agentbox.Future future unset
function agentbox.future() end

--- Make an executor that runs code on this host under a supervisor.
---@param opts agentbox.LocalExecutorOptions|nil its options
---@return agentbox.LocalExecutor executor
function agentbox.LocalExecutor(opts) end

--- Make an executor that runs code in a hardened container.
---@param opts agentbox.DockerExecutorOptions|nil its options
---@return agentbox.DockerExecutor executor
function agentbox.DockerExecutor(opts) end

--- Make a pool of ready warm containers for DockerExecutors (experimental; README "Pools and fresh containers"): `DockerExecutor{ pool = p }` takes one.
---@param opts agentbox.DockerPoolOptions its options
---@return agentbox.DockerPool pool
function agentbox.DockerPool(opts) end

--- An agent with defaults of its own (human_input_mode "TERMINATE", no code execution).
---@param opts agentbox.AgentOptions its options
---@return agentbox.ConversableAgent agent
function agentbox.ConversableAgent(opts) end

--- An agent with AutoGen's assistant defaults (give it an llm_config).
---@param opts agentbox.AgentOptions its options
---@return agentbox.ConversableAgent agent
function agentbox.AssistantAgent(opts) end

--- An agent with AutoGen's user-proxy defaults (human_input_mode "ALWAYS", code execution on).
---@param opts agentbox.AgentOptions its options
---@return agentbox.ConversableAgent agent
function agentbox.UserProxyAgent(opts) end

--- Register `fn` as a tool: `caller`'s model may call it, `executor` runs it.
---@param fn fun(args: table): any the tool; gets the decoded arguments
---@param opts agentbox.ToolOptions caller, executor, name, description, parameters
---@return function fn
function agentbox.register_function(fn, opts) end

------------------------------------------------------------------ agentbox.code

--- Code blocks in messages.
---@class agentbox.codelib
agentbox.code = {}

--- The fenced code blocks of a message.
---@param text string|table a message content
---@param opts { inline: boolean?, max_blocks: integer?, pause: function? }|nil options
---@return agentbox.CodeBlock[] blocks the first max_blocks blocks
---@return integer skipped how many more there were
function agentbox.code.extract(text, opts) end

--- AutoGen's reply text for a result.
---@param result agentbox.ExecResult an executor's result
---@return string text `exitcode: <n> (execution succeeded|failed)\nCode output: <output>`
function agentbox.code.format_result(result) end

--- One record per execution reply in a chat history (a message that starts
--- `exitcode: <n> (execution succeeded|failed|denied)\nCode output: `), read
--- back from the text; a ChatResult's execution_results needs no parsing.
---@param history agentbox.Message[] e.g. a ChatResult's chat_history
---@return agentbox.ExecutionRecord[] records
function agentbox.code.execution_results(history) end

--- The language of an untagged block.
---@param code string the block
---@return string lang "python", "sh" or "unknown"
function agentbox.code.infer_lang(code) end

------------------------------------------------------------------ agentbox.docker

--- The Docker Engine API client's public part.
---@class agentbox.dockerlib
agentbox.docker = {}

--- Whether a Docker daemon answers (short timeouts: never hangs).
---@param host string|nil a DOCKER_HOST value (default DOCKER_HOST, else the local socket)
---@return true|nil ok
---@return string|nil message why not
---@return string|nil code "unreachable", "http", ... (doc/errors.md)
function agentbox.docker.available(host) end

--- Remove this host's agentbox containers whose owner process is gone.
---@param host string|nil a DOCKER_HOST value
---@return integer|nil removed the number removed
---@return string|nil message why not
---@return string|nil code doc/errors.md
function agentbox.docker.reap(host) end

------------------------------------------------------------------ classes

--- A task handle (`agentbox.spawn`).
---@class agentbox.Task
local Task = {}

--- Whether the task has ended (done, failed or cancelled).
---@return boolean done
function Task:done() end

--- The task's return values, or nil, message, code ("running", "cancelled", "error").
---@return any ...
function Task:result() end

--- Cancel it: kills its running process tree, aborts its request.
---@return boolean cancelled false when it had already ended
function Task:cancel() end

--- The raw value the task's function raised (not a string with a traceback).
---@return any err nil when it did not raise
function Task:error() end

--- Call `cb(task)` when it ends (at once when it has).
---@param cb fun(task: agentbox.Task) the callback
---@return agentbox.Task self
function Task:on_done(cb) end

--- A value some other code provides later (`agentbox.future`).
---@class agentbox.Future
local Future = {}

--- Provide the value; wakes whoever waits.
---@param value any the value
---@return boolean set false when it was already set
function Future:set(value) end

--- Wait for the value (yields inside a task).
---@return any value
function Future:wait() end

--- Whether the value is set.
---@return boolean
function Future:done() end

--- Any object with an `execute` method can run an agent's code. `execute` may
--- yield (it is called inside a task); it returns an ExecResult, never raises
--- for what the code did. `close` (optional) is called when you are done.
---@class agentbox.Executor
---@field work_dir string|nil where code files are written
local Executor = {}

--- Run the blocks in order, stopping at the first failure.
---@param blocks agentbox.CodeBlock[] the blocks to run
---@return agentbox.ExecResult|nil result exit_code, output and code_file
---@return string|nil message when the executor itself failed
---@return string|nil code doc/errors.md (else "executor")
function Executor:execute(blocks) end

--- Release what the executor holds (optional; also `<close>`).
function Executor:close() end

--- Runs code on this host under agentbox's supervisor (`agentbox.LocalExecutor`).
---@class agentbox.LocalExecutor: agentbox.Executor
---@field work_dir string the work dir (a fresh private one when none was given)
local LocalExecutor = {}

--- Run blocks (THE EXECUTOR CONTRACT, ExecResult).
---@param blocks agentbox.CodeBlock[] the blocks
---@return agentbox.ExecResult result
function LocalExecutor:execute(blocks) end

--- Start the Python session now when `stateful` (otherwise the first python
--- block does); nothing to start otherwise (each block is its own process).
---@return agentbox.LocalExecutor self
function LocalExecutor:start() end

--- What is really in force for this executor's blocks (namespaces, Landlock, seccomp, limits, network).
---@return agentbox.Enforced enforced
function LocalExecutor:enforced() end

--- Forget state: with `stateful`, end the Python session (variables and
--- imports); the next python block starts a new one. Without it there is no
--- state, and restart does nothing.
---@return true
function LocalExecutor:restart() end

--- Remove a temporary work_dir and end what is running; also `<close>`.
---@return true|nil ok
---@return string|nil message what could not be removed
---@return string|nil code "io"
function LocalExecutor:close() end

--- Runs code in one hardened container per executor (`agentbox.DockerExecutor`).
--- DockerPool's options: `size` and DockerExecutor's container options
---@class agentbox.DockerPoolOptions
---@field size integer containers kept ready, 1 to 64
---@field image string|nil as DockerExecutor
---@field network string|nil as DockerExecutor
---@field read_only boolean|nil as DockerExecutor
---@field user string|nil as DockerExecutor
---@field memory string|false|nil as DockerExecutor
---@field cpus number|nil as DockerExecutor
---@field pids_limit integer|nil as DockerExecutor
---@field tmpfs string|table|nil as DockerExecutor
---@field mounts table[]|nil as DockerExecutor
---@field docker_host string|nil as DockerExecutor (a local daemon: warm containers)
---@field env table<string, string>|nil the containers' added environment
---@field on_progress (fun(line: string))|nil image pull progress

--- A pool made by `agentbox.DockerPool` (README "Pools and fresh containers").
---@class agentbox.DockerPool
---@field size integer containers kept ready
---@field id string the value of its containers' `agentbox.pool` label
local DockerPool = {}

--- How many containers are ready now (started, not taken).
---@return integer n
function DockerPool:available() end

--- Wait until `size` containers are ready.
---@return true|nil ok
---@return string|nil message a container could not be started
---@return string|nil code doc/errors.md
function DockerPool:fill() end

--- Remove every container the pool holds (ready, or still starting) and their directories; also `<close>`.
---@return true|nil ok
---@return string|nil message what failed
---@return string|nil code doc/errors.md
function DockerPool:close() end

---@class agentbox.DockerExecutor: agentbox.Executor
---@field work_dir string the host directory mounted at /workspace
---@field warnings string[]|nil limits the daemon dropped (also printed on stderr)
---@field container_id string|nil the running container, nil before start and after close
local DockerExecutor = {}

--- Run blocks (THE EXECUTOR CONTRACT, ExecResult).
---@param blocks agentbox.CodeBlock[] the blocks
---@return agentbox.ExecResult result
function DockerExecutor:execute(blocks) end

--- Create and start the container now (otherwise the first execute does).
---@return agentbox.DockerExecutor self
function DockerExecutor:start() end

--- Drop the container; the next execute starts a fresh one. With
--- `stateful`, restart the Python session instead (the container stays).
---@return true|nil ok
---@return string|nil message what failed
---@return string|nil code doc/errors.md
function DockerExecutor:restart() end

--- Remove the container and its volumes; also `<close>`.
---@return true|nil ok
---@return string|nil message what failed
---@return string|nil code doc/errors.md
function DockerExecutor:close() end

--- An agent (`ConversableAgent`, `AssistantAgent`, `UserProxyAgent`: one class, other defaults).
---@class agentbox.ConversableAgent
---@field name string
local ConversableAgent = {}

--- Chat with `recipient` until a termination, a turn limit or a human says stop.
---@param recipient agentbox.ConversableAgent the other agent
---@param opts agentbox.ChatOptions message, max_turns, ...
---@return agentbox.ChatResult result
function ConversableAgent:initiate_chat(recipient, opts) end

--- Send a message (and by default ask for a reply).
---@param message string|agentbox.Message the message
---@param recipient agentbox.ConversableAgent the other agent
---@param request_reply boolean|nil ask for a reply
---@param silent boolean|nil print nothing
function ConversableAgent:send(message, recipient, request_reply, silent) end

--- Take a message from `sender` (and by default reply to it).
---@param message string|agentbox.Message the message
---@param sender agentbox.ConversableAgent the sending agent
---@param request_reply boolean|nil reply to it
---@param silent boolean|nil print nothing
function ConversableAgent:receive(message, sender, request_reply, silent) end

--- Ask the human (the get_human_input option, else a line from stdin); may yield in a task.
---@param prompt string the prompt
---@return string|nil text nil, reason ends the chat
function ConversableAgent:get_human_input(prompt) end

--- Replace the system message.
---@param s string the new system message
function ConversableAgent:update_system_message(s) end

--- Change max_consecutive_auto_reply, for one sender or all.
---@param n integer the new limit
---@param sender agentbox.ConversableAgent|nil one sender (all when nil)
function ConversableAgent:update_max_consecutive_auto_reply(n, sender) end

--- The auto-reply limit for a sender (or the default).
---@param sender agentbox.ConversableAgent|nil the other agent
---@return integer limit
function ConversableAgent:max_consecutive_auto_reply(sender) end

--- Reset the count of consecutive auto replies, for one sender or all.
---@param sender agentbox.ConversableAgent|nil one sender (all when nil)
function ConversableAgent:reset_consecutive_auto_reply_counter(sender) end

--- The count of consecutive auto replies to a sender.
---@param sender agentbox.ConversableAgent|nil the other agent
---@return integer count
function ConversableAgent:consecutive_auto_reply_count(sender) end

--- Stop replying on receive: to one sender, or reset for all.
---@param sender agentbox.ConversableAgent|nil the sender (nil: every sender's setting is cleared)
function ConversableAgent:stop_reply_at_receive(sender) end

--- A class of your own: `local Mine = agentbox.ConversableAgent:extend("Mine", function(opts) ... end)`.
---@param name string the class name
---@param defaults fun(opts: agentbox.AgentOptions)|nil fills in defaults before construction
---@return table class callable like agentbox.ConversableAgent
function ConversableAgent:extend(name, defaults) end

--- The reply this agent would give.
---@param args { messages: agentbox.Message[]?, sender: agentbox.ConversableAgent?, exclude: function[]? } what to answer
---@return string|agentbox.Message|nil reply
function ConversableAgent:generate_reply(args) end

--- Add a reply function: `fn(agent, messages, sender, config) -> final, reply`.
---@param trigger any a class, an agent, a name, a function or a list of them
---@param fn function the reply function
---@param position integer|table|nil 1-based (default 1: first), or an options table
---@param config any|nil passed to fn as its fourth argument
---@param reset_config fun(config: any)|nil resets config instead of a copy
function ConversableAgent:register_reply(trigger, fn, position, config, reset_config) end

--- Replace a registered reply function by another, in place.
---@param old function the registered function
---@param new function its replacement
function ConversableAgent:replace_reply_func(old, new) end

--- Built-in reply function: termination, the auto-reply limit and human input.
---@param messages agentbox.Message[]|nil the history
---@param sender agentbox.ConversableAgent|nil the other agent
---@return boolean final
---@return agentbox.Message|nil reply
function ConversableAgent:check_termination_and_human_reply(messages, sender) end

--- Built-in reply function: the model's reply (no model: not final).
---@param messages agentbox.Message[]|nil the history
---@param sender agentbox.ConversableAgent|nil the other agent
---@param config any|nil a client to use instead of the agent's
---@return boolean final
---@return string|agentbox.Message|nil reply
function ConversableAgent:generate_oai_reply(messages, sender, config) end

--- Built-in reply function: run the tool calls of the last message.
---@param messages agentbox.Message[]|nil the history
---@param sender agentbox.ConversableAgent|nil the other agent
---@return boolean final
---@return agentbox.Message|nil reply
function ConversableAgent:generate_tool_calls_reply(messages, sender) end

--- Built-in reply function: run the deprecated single function_call.
---@param messages agentbox.Message[]|nil the history
---@param sender agentbox.ConversableAgent|nil the other agent
---@return boolean final
---@return agentbox.Message|nil reply
function ConversableAgent:generate_function_call_reply(messages, sender) end

--- Built-in reply function: run the code of the newest message that has some (code_execution_config's last_n_messages and max_blocks).
---@param messages agentbox.Message[]|nil the history
---@param sender agentbox.ConversableAgent|nil the other agent
---@return boolean final
---@return string|nil reply
function ConversableAgent:generate_code_execution_reply(messages, sender) end

--- The message list with `other`, or every list by agent.
---@param other agentbox.ConversableAgent|nil the other agent
---@return agentbox.Message[]|table messages
function ConversableAgent:chat_messages(other) end

--- The last message with `agent`.
---@param agent agentbox.ConversableAgent|nil the other agent
---@return agentbox.Message|nil message
function ConversableAgent:last_message(agent) end

--- Forget the conversation with `other` (all of them when nil), keeping the newest `keep`.
---@param other agentbox.ConversableAgent|nil the other agent
---@param keep integer|nil messages kept
function ConversableAgent:clear_history(other, keep) end

--- Clear histories and counters.
function ConversableAgent:reset() end

--- A decorator that gives a tool's schema to this agent's model.
---@param opts agentbox.ToolOptions name and description
---@return fun(fn: function): function decorator
function ConversableAgent:register_for_llm(opts) end

--- A decorator that lets this agent run a tool.
---@param opts agentbox.ToolOptions|nil name
---@return fun(fn: function): function decorator
function ConversableAgent:register_for_execution(opts) end

--- Add tools this agent executes (AutoGen's register_function method).
---@param map table<string, function|false> false removes a name
function ConversableAgent:register_function(map) end

--- Add, replace (same name) or remove a tool schema in llm_config.tools.
---@param sig table|string an OpenAI tool schema, or the name to remove
---@param is_remove boolean|nil remove the tool named sig
function ConversableAgent:update_tool_signature(sig, is_remove) end

--- Run a tool call now.
---@param func_call { name: string, arguments: string } the call
---@return boolean ok
---@return agentbox.Message result role "function", the tool's output or the error text
function ConversableAgent:execute_function(func_call) end

--- Whether this agent can run a tool (every one of a list).
---@param name string|string[] the tool name(s)
---@return boolean
function ConversableAgent:can_execute_function(name) end

--- The tools this agent executes.
---@return table<string, function> map
function ConversableAgent:function_map() end

--- The agent's executor, or nil without code execution.
---@return agentbox.Executor|nil executor
function ConversableAgent:code_executor() end

--- Where code runs: true or an image name in Docker, false locally.
---@return boolean|string|nil where nil without code execution (or with an executor of your own)
function ConversableAgent:use_docker() end

return agentbox
