--- LocalExecutor: runs code blocks on this host (`agentbox.LocalExecutor`).
--
-- Each block runs as a local process under the C supervisor (own session,
-- whole-tree kill at the deadline, capped output, built environment, our
-- seccomp filter, a workspace quota). AutoGen's LocalCommandLineCodeExecutor
-- semantics; what every executor does is in base.lua. Not an isolation
-- boundary: README "Security model".
-- @module agentbox.executor.local
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local base = require("agentbox.executor.base")
local common = require("agentbox.executor.common")
local output_files = require("agentbox.executor.output_files")
local python_preload = require("agentbox.executor.python_preload")
local sandbox = require("agentbox.executor.sandbox")
local python_session = require("agentbox.executor.python_session")

--- LocalExecutor's own options; it takes every @{agentbox.ExecutorOptions} too.
-- @table LocalExecutorOptions
-- @tfield[opt=10] integer nice CPU weight of each run's whole tree (0 to 19), in a cgroup of its own
-- @tfield[opt] table rlimits resource limits for the code, `{ cpu =, as =, fsize =, nofile =, nproc = }`
-- @tfield[opt] string python the python interpreter (default python3, then python, on the code's PATH)
-- @tfield[opt] {string,...} preload Python modules a template interpreter imports once; each python
-- block is then a fork of it (executor/python_preload.lua). Default: none (every block is a fresh python3)
-- @tfield[opt=false] boolean stateful python blocks share one interpreter, like a Jupyter kernel: variables
-- and imports persist between blocks; a timeout or a crash restarts it (the output says the state was
-- lost); `restart()` restarts it; with `preload`, the interpreter starts with those modules imported.
-- One `execute` at a time (executor/python_session.lua)
-- @tfield[opt] boolean|agentbox.SandboxSettings sandbox the daemonless sandbox (README "Three ways to run
-- code"): true, or settings `{ read_only =, read_write =, tmp_size =, memory =, require =, network = false }`. Default:
-- AGENTBOX_SANDBOX (1/true/yes: on), else off. Construction fails closed when the kernel cannot give it.

--- The daemonless sandbox's settings (LocalExecutor's `sandbox` option).
-- @table SandboxSettings
-- @tfield[opt] {string,...} read_only host paths bound read-only at the same path inside (over work_dir too)
-- @tfield[opt] {string,...} read_write host paths bound writable at the same path inside
-- @tfield[opt=67108864] integer tmp_size bytes of the private /tmp (/dev/shm is a link to it)
-- @tfield[opt=536870912] integer|false memory bytes of the run's memory cgroup, /tmp included, no swap (DockerExecutor's
-- default); false for none. In force where a cgroup is writable (`enforced().cgroup`)
-- @tfield[opt] {string,...} require optional guarantees made mandatory: "landlock", "cgroup"
-- @tfield[opt=false] boolean network only false: no network at all (a loopback of its own)

--- What `LocalExecutor:enforced()` reports.
-- @table Enforced
-- @tfield boolean sandbox
-- @tfield boolean user_ns
-- @tfield boolean pid_ns
-- @tfield boolean mount_ns
-- @tfield boolean net_ns
-- @tfield boolean ipc_ns
-- @tfield boolean uts_ns
-- @tfield[opt] string uid_map "<uid> -> <uid>" (a normal user's ids map to themselves) or, as root,
-- "0 -> 2147483644" (an unprivileged host uid that owns no root file)
-- @tfield string capabilities "none" in the sandbox
-- @tfield string|integer landlock "none", or the Landlock ABI in force
-- @tfield boolean seccomp
-- @tfield boolean no_new_privs
-- @tfield string limits "rlimits", "rlimits, cgroup v1: memory N, pids N, cpu weight", or "rlimits (no writable
-- cgroup: why)"
-- @tfield[opt] integer|string|false memory the sandbox's memory limit in force (a string says why it is not enforced)
-- @tfield[opt] table|false cgroup the run's cgroup: `{ version = 1|2, memory =, pids =, cpu = }` (booleans), false without
-- one
-- @tfield[opt] integer nproc processes at once (RLIMIT_NPROC in the sandbox's user namespace, binding a root
-- caller too)
-- @tfield string network "none" (sandbox) or "host"
-- @tfield string filesystem what the code may write
-- @tfield[opt] {string,...} readable the sandbox's read view: the host paths it sees read-only (mounts and
-- Landlock alike)
-- @tfield[opt] {string,...} interpreter_added prefixes of the interpreter added to the read view (it lived under a
-- hidden path)

--- An executor made by `agentbox.LocalExecutor(opts)` (@{agentbox.Executor}).
-- Its fields: `work_dir` (string), the work dir (a fresh private one when
-- none was given); `env` (table), the environment the code runs with.
-- @type LocalExecutor

--- Run blocks (THE EXECUTOR CONTRACT, @{agentbox.ExecResult|ExecResult}).
-- In order, stopping at the first failure; several tasks may run
-- execute at once on one LocalExecutor. Blocking outside a task, yields
-- inside one.
-- @function LocalExecutor:execute
-- @tparam {agentbox.CodeBlock,...} blocks the blocks
-- @treturn agentbox.ExecResult the result
-- @raise on malformed blocks, or after close

--- What is really in force for this executor's blocks (namespaces, Landlock, seccomp, limits, network).
-- Fields: each namespace (`user_ns`, `pid_ns`, `mount_ns`, `net_ns`, `ipc_ns`,
-- `uts_ns`), `landlock` (an ABI number or "none"), `seccomp`, `no_new_privs`,
-- `capabilities`, `limits` ("rlimits" or with cgroup controllers), `memory`, `cgroup`, `nproc`,
-- `network` ("none" or "host"), `filesystem`, `uid_map`.
-- @function LocalExecutor:enforced
-- @treturn table the guarantees

--- Start the Python session now when `stateful` (otherwise the first python
-- block does); nothing to start otherwise (each block is its own process).
-- @function LocalExecutor:start
-- @treturn LocalExecutor self
-- @raise after close

--- Forget state: with `stateful`, end the Python session (variables and
-- imports); the next python block starts a new one. Without it there is no
-- state, and restart does nothing.
-- @function LocalExecutor:restart
-- @treturn true

--- Remove a temporary work_dir and end what is running; also `<close>`.
-- Idempotent. A LocalExecutor collected without close is released the
-- same way, from the next scheduler step (never inside its finalizer).
-- @function LocalExecutor:close
-- @treturn[1] true
-- @return[2] nil
-- @treturn[2] string message what could not be removed
-- @treturn[2] string code "io"

local LocalExecutor = base.class("LocalExecutor", {
  rlimits = function(v, what)
    if v ~= nil and type(v) ~= "table" then
      errors.misuse("%s: rlimits must be a table { cpu =, as =, fsize =, nofile =, nproc = }", what)
    end
    return v
  end,
  -- below the host's priority by default, so code cannot starve its frame loop
  nice = function(v, what)
    if v == nil then return 10 end
    if math.type(v) ~= "integer" or v < 0 or v > 19 then
      errors.misuse("%s: nice must be an integer from 0 to 19", what)
    end
    return v
  end,
  python = function(v, what)
    if v ~= nil and (type(v) ~= "string" or v == "") then
      errors.misuse("%s: python must be the path of an interpreter", what)
    end
    return v
  end,
  preload = python_preload.check,
  sandbox = sandbox.check,
  stateful = python_session.check,
})

local function build_env(work_dir, extra, sandboxed)
  local env = {
    PATH = os.getenv("PATH") or "/usr/local/bin:/usr/bin:/bin",
    HOME = work_dir,
    -- in the sandbox, the host's TMPDIR is read-only (or hidden): its /tmp is private
    TMPDIR = sandboxed and "/tmp" or os.getenv("TMPDIR") or "/tmp",
    -- stdout and stderr must interleave in arrival order: an unbuffered
    -- Python writes each print when it happens
    PYTHONUNBUFFERED = "1",
  }
  for _, k in ipairs({ "LANG", "LC_ALL" }) do env[k] = os.getenv(k) end
  for k, v in pairs(extra) do env[k] = v end
  return env
end

function LocalExecutor._setup(self, o)
  -- a preloaded block's tree is killed by its session at half the grace,
  -- before the supervisor's KILL: with no grace it would outlive the report
  if (o.preload or o.stateful) and o.grace == 0 then
    errors.misuse("agentbox.LocalExecutor: %s needs a grace > 0 (the block's tree is killed within it)",
                  o.stateful and "stateful" or "preload")
  end
  self.rlimits, self.nice, self.python, self.preload = o.rlimits, o.nice, o.python, o.preload
  -- one interpreter's state between blocks: one execute at a time
  self.stateful, self._serial = o.stateful, o.stateful
  self._extra_env = o.env
  if o.sandbox then
    if o.preload or o.stateful then
      errors.misuse("agentbox.LocalExecutor: %s does not work with sandbox yet (its interpreter would have to "
        .. "live in the sandbox); drop one of them", o.stateful and "stateful" or "preload")
    end
    -- fail closed before anything is created on the host
    self._sandbox_info = sandbox.probe(o.sandbox, "agentbox.LocalExecutor", o.work_dir)
    self.sandbox = o.sandbox
    self._rlimits = { nproc = sandbox.DEFAULT_NPROC }
    for k, v in pairs(o.rlimits or {}) do self._rlimits[k] = v end
  else
    self._rlimits = o.rlimits
  end
  -- code of the host's uid must not read its environ or heap, nor ptrace it
  -- (one-way: secrets stay in freed memory); README "What LocalExecutor protects"
  assert(core.protect_host())
  -- what hosts killed with their spawn servers left running (cgroup.c)
  core.reap_runs()
end

function LocalExecutor._attached(self)
  self.env = build_env(self.work_dir, output_files.python_env(self.work_dir, self._extra_env), self.sandbox ~= nil)
  if self.sandbox then
    -- the interpreter must be in the view: resolved now (not at the first
    -- block), its prefix added read-only where it lives under a hidden path
    if self.python == nil then
      self.python = core.which("python3", self.env.PATH) or core.which("python", self.env.PATH) or false
    end
    self._sandbox_interp = sandbox.interpreter_paths(self.sandbox, self.python, self.work_dir)
    self._sandbox_opt = sandbox.spawn_option(self.sandbox, self._sandbox_interp)
    self._landlock = sandbox.landlock_option(self.sandbox, self._sandbox_info, self.work_dir, self._sandbox_interp)
  end
  self._extra_env = nil
end

-- Interpreters are looked up on the code's PATH, once (python: the option
-- `python`, else python3, else python).
function LocalExecutor:_program(cmd)
  if cmd.resolve == false then return cmd.programs[1] end
  local PATH = self.env.PATH
  if cmd.programs[1] == "python3" then
    if self.python == nil then self.python = core.which("python3", PATH) or core.which("python", PATH) or false end
    if self.python then return self.python end
  else
    for _, name in ipairs(cmd.programs) do
      local p = core.which(name, PATH)
      if p then return p end
    end
  end
  return nil, cmd.missing .. " on PATH=" .. PATH
end

-- tree: the preload template's pid, whose tree holds the block (its
-- deleted files held open count against the quota)
local function run(self, argv, out, timeout, tree)
  local p <close> = assert(core.spawn{ argv = argv, cwd = self.work_dir, env = self.env,
                                       timeout = timeout, grace = self.grace,
                                       max_output = out.budget(), rlimits = self._rlimits,
                                       sandbox = self._sandbox_opt, landlock = self._landlock,
                                       stream = self.on_output ~= nil, sup = common.sup_path(),
                                       nice = self.nice, seccomp = true,
                                       quota = self.quota and { dir = self.work_dir, bytes = self.quota.bytes,
                                                                files = self.quota.files, tree = tree } })
  local on_output = self.on_output
  repeat
    task.wait(p)
    if on_output then
      local chunks = p:read()
      if chunks then
        for i = 1, #chunks, 2 do on_output(chunks[i + 1], chunks[i]) end
      end
    end
  until p:done()
  return p:result()
end

function LocalExecutor:_run(argv, prep, out, timeout)
  local r, lost, note
  if self.stateful and prep.info.kind == "python" then
    -- the block runs in the session's interpreter, through a client the
    -- supervisor runs in its place
    r, note, lost = python_session.run(self, argv[1], argv[#argv], function(a) return run(self, a, out, timeout) end)
    if not r then return nil, note end
  elseif self.preload and prep.info.kind == "python" then
    -- the block becomes a fork of the template, through a client the
    -- supervisor runs in the interpreter's place
    for _ = 1, 2 do
      local cargv, err = python_preload.argv(self, argv[1], argv[#argv])
      if not cargv then return nil, err end
      local tpl = self._preload_tpl
      r = run(self, cargv, out, timeout, tpl and tpl.proc:pid() or nil)
      local what = python_preload.outcome(self, r)
      lost = what == "lost"
      note = lost and python_preload.LOST_LINE or nil
      if what ~= "retry" then break end
    end
  else
    r = run(self, argv, out, timeout)
  end
  out.add(r.output, r.dropped)
  if r.error then out.add("\nagentbox: " .. r.error) end
  if note then out.add(note) end
  if lost then
    return { exit_code = 1, timed_out = r.timed_out }
  end
  return { exit_code = common.exit_code(r), timed_out = r.timed_out, oom = r.oom, quota_exceeded = r.quota_exceeded }
end

function LocalExecutor:enforced()
  if self.closed then errors.misuse("agentbox.LocalExecutor: enforced after close") end
  return sandbox.enforced(self)
end

function LocalExecutor:start()
  base.Base.start(self)
  if self.stateful then
    local python, err = self:_program(base.COMMANDS.python)
    if python then python, err = task.sync(python_session.start, self, python) end
    if not python then error(err, 0) end
  end
  return self
end

function LocalExecutor:restart()
  python_session.stop(self)
  return true
end

function LocalExecutor:_release()
  python_preload.stop(self)
  python_session.stop(self)
  -- the spare sandbox made for our next block binds our work_dir
  if self.sandbox then core.spare_drop() end
  return true
end

-- The audit log's view (audit.lua): what _run and _setup put in force. The
-- cpu cgroup is asked for (nice > 0); the supervisor uses it where the host
-- may create cgroups.
function LocalExecutor:_audit()
  return { uid = core.geteuid(), uid_drop = false, seccomp = true, no_new_privs = true, protect_host = true,
           env = "built", nice = self.nice, cpu_cgroup = self.nice > 0,
           supervisor = common.sup_path() and "spawn server" or "forked",
           -- python blocks are forks of a template that imported these
           preload = self.preload or false, sandbox = self.sandbox and sandbox.enforced(self) or false,
           -- python blocks run in one interpreter that keeps their state
           stateful = self.stateful },
         { rlimits = self._rlimits or false }
end

return { new = base.constructor(LocalExecutor), LocalExecutor = LocalExecutor }
