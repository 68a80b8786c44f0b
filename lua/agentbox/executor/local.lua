-- LocalExecutor: runs code blocks as local processes under the C supervisor
-- (own session, whole-tree kill at the deadline, capped output, built
-- environment). AutoGen's LocalCommandLineCodeExecutor semantics.
local core = require("agentbox.core")
local code = require("agentbox.code")
local task = require("agentbox.task")
local common = require("agentbox.executor.common")
local workspace = require("agentbox.executor.workspace")

local LocalExecutor = {}
LocalExecutor.__index = LocalExecutor

local KNOWN = { work_dir = true, timeout = true, env = true, max_output = true, on_output = true,
                execution_policies = true, python = true, grace = true, rlimits = true,
                nice = true, keep_work_dir = true, total_timeout = true, quota = true }

local function build_env(work_dir, extra)
  local env = {
    PATH = os.getenv("PATH") or "/usr/local/bin:/usr/bin:/bin",
    HOME = work_dir,
    TMPDIR = os.getenv("TMPDIR") or "/tmp",
    -- stdout and stderr must interleave in arrival order: an unbuffered
    -- Python writes each print when it happens
    PYTHONUNBUFFERED = "1",
  }
  for _, k in ipairs({ "LANG", "LC_ALL" }) do env[k] = os.getenv(k) end
  for k, v in pairs(extra or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      error("LocalExecutor: env must map names to strings (got " .. type(k) .. " = " .. type(v) .. ")", 3)
    end
    env[k] = v
  end
  return env
end

local function new(opts)
  opts = common.check_options(opts, KNOWN, "LocalExecutor")
  -- code of the host's uid must not read its environ or heap, nor ptrace it
  -- (one-way: secrets stay in freed memory); README "What LocalExecutor protects"
  assert(core.protect_host())
  -- what hosts killed with their spawn servers left running (cgroup.c)
  core.reap_runs()
  local self = setmetatable({}, LocalExecutor)
  workspace.attach(self, opts, "LocalExecutor")
  self.timeout = opts.timeout or 60
  if type(self.timeout) ~= "number" or self.timeout <= 0 then
    error("LocalExecutor: timeout must be a positive number of seconds", 2)
  end
  self.total_timeout = common.total_timeout(opts.total_timeout, self.timeout, "LocalExecutor")
  self.max_output = opts.max_output or 1048576
  if math.type(self.max_output) ~= "integer" or self.max_output < 0 then
    error("LocalExecutor: max_output must be a non-negative integer (bytes)", 2)
  end
  if opts.on_output ~= nil and type(opts.on_output) ~= "function" then
    error("LocalExecutor: on_output must be a function(chunk, stream)", 2)
  end
  self.on_output = opts.on_output
  self.grace = opts.grace or 0.5
  self.rlimits = opts.rlimits
  -- below the host's priority by default, so code cannot starve its frame loop
  self.nice = opts.nice or 10
  if math.type(self.nice) ~= "integer" or self.nice < 0 or self.nice > 19 then
    error("LocalExecutor: nice must be an integer from 0 to 19", 2)
  end
  self.quota = common.quota(opts.quota, "LocalExecutor")
  self.env = build_env(self.work_dir, opts.env)
  self.save_only = {}
  for k, v in pairs(code.SAVE_ONLY) do self.save_only[k] = v end
  for k, v in pairs(opts.execution_policies or {}) do self.save_only[k] = not v end
  self.python = opts.python
  return self
end

function LocalExecutor:_python()
  if self.python == nil then
    self.python = core.which("python3", self.env.PATH) or core.which("python", self.env.PATH) or false
  end
  return self.python or nil
end

function LocalExecutor:_command(info, file)
  if info.kind == "python" then
    local py = self:_python()
    if not py then
      return nil, "no Python interpreter found: looked for python3, then python, on PATH=" .. self.env.PATH
    end
    return { py, file }
  elseif info.kind == "shell" then
    return { info.name == "bash" and "bash" or "sh", file }
  elseif info.kind == "node" then
    local node = core.which("node", self.env.PATH)
    if not node then return nil, "javascript needs node, which was not found on PATH=" .. self.env.PATH end
    return { node, file }
  elseif info.kind == "pwsh" then
    local pwsh = core.which("pwsh", self.env.PATH) or core.which("powershell", self.env.PATH)
    if not pwsh then return nil, "powershell needs pwsh, which was not found on PATH=" .. self.env.PATH end
    return { pwsh, "-File", file }
  end
  return nil, "unknown language " .. info.name
end

local function run_block(self, argv, budget, out, timeout)
  local p <close> = assert(core.spawn{ argv = argv, cwd = self.work_dir, env = self.env,
                                       timeout = timeout, grace = self.grace,
                                       max_output = budget, rlimits = self.rlimits,
                                       stream = self.on_output ~= nil, sup = common.sup_path(),
                                       nice = self.nice, seccomp = true,
                                       quota = self.quota and { dir = self.work_dir, bytes = self.quota.bytes,
                                                                files = self.quota.files } })
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
  local r = p:result()
  out.add(r.output, r.dropped)
  if r.error then out.add("\nagentbox: " .. r.error) end
  return r
end

function LocalExecutor:_execute(blocks)
  return common.run_blocks(blocks, self.max_output, self.save_only,
    function(prep, text) return workspace.write(self._ws, prep.rel, text) end,
    function(prep, path, out, timeout)
      local argv, err = self:_command(prep.info, path)
      if not argv then return nil, err end
      local r = run_block(self, argv, out.budget(), out, timeout)
      return { exit_code = common.exit_code(r), timed_out = r.timed_out }
    end, { timeout = self.timeout, total = self.total_timeout })
end

--- Run the blocks in order, stopping at the first failure.
function LocalExecutor:execute(blocks)
  if self.closed then error("LocalExecutor: execute after close", 2) end
  common.check_blocks(blocks)
  return task.sync(self._execute, self, blocks)
end

function LocalExecutor:restart() end

--- Idempotent; a temporary work_dir is removed (unless keep_work_dir).
function LocalExecutor:close()
  self.closed = true
  return workspace.detach(self)
end
LocalExecutor.__close = LocalExecutor.close
LocalExecutor.__gc = function(self) pcall(workspace.detach, self) end

return { new = new, LocalExecutor = LocalExecutor }
