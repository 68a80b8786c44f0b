-- LocalExecutor: runs code blocks as local processes under the C supervisor
-- (own session, whole-tree kill at the deadline, capped output, built
-- environment). AutoGen's LocalCommandLineCodeExecutor semantics.
local core = require("agentbox.core")
local code = require("agentbox.code")
local task = require("agentbox.task")
local common = require("agentbox.executor.common")

local LocalExecutor = {}
LocalExecutor.__index = LocalExecutor

local KNOWN = { work_dir = true, timeout = true, env = true, max_output = true, on_output = true,
                execution_policies = true, python = true, grace = true, rlimits = true,
                nice = true, quota = true }

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local cwd = os.getenv("PWD")
  local real = core.realpath(".")
  return (real or cwd or ".") .. "/" .. p
end

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
  local self = setmetatable({}, LocalExecutor)
  local work_dir = opts.work_dir or "."
  if type(work_dir) ~= "string" or work_dir == "" then error("LocalExecutor: work_dir must be a non-empty string", 2) end
  local ok, err = core.mkdir_p(work_dir)
  if not ok then error("LocalExecutor: " .. err, 2) end
  self.work_dir = assert(core.realpath(abspath(work_dir)))
  self.timeout = opts.timeout or 60
  if type(self.timeout) ~= "number" or self.timeout <= 0 then
    error("LocalExecutor: timeout must be a positive number of seconds", 2)
  end
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

local function write_file(dir, rel, text)
  local path = dir .. "/" .. rel
  local parent = path:match("^(.*)/[^/]*$")
  local ok, err = core.mkdir_p(parent)
  if not ok then return nil, err end
  -- a link planted by earlier code must not carry the file out of the workspace
  local real = core.realpath(parent)
  if not real or (real ~= dir and real:sub(1, #dir + 1) ~= dir .. "/") then
    return nil, "Filename is not in the workspace"
  end
  -- never through a link, never onto a FIFO; an unchanged file stays
  local ok, err = core.write_file(path, text)
  if not ok then return nil, err end
  return path
end

local function run_block(self, argv, budget, out)
  local p <close> = assert(core.spawn{ argv = argv, cwd = self.work_dir, env = self.env,
                                       timeout = self.timeout, grace = self.grace,
                                       max_output = budget, rlimits = self.rlimits,
                                       stream = self.on_output ~= nil, sup = common.sup_path(),
                                       nice = self.nice,
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
    function(prep, text) return write_file(self.work_dir, prep.rel, text) end,
    function(prep, path, out)
      local argv, err = self:_command(prep.info, path)
      if not argv then return nil, err end
      local r = run_block(self, argv, out.budget(), out)
      return { exit_code = common.exit_code(r), timed_out = r.timed_out }
    end)
end

--- Run the blocks in order, stopping at the first failure.
function LocalExecutor:execute(blocks)
  if self.closed then error("LocalExecutor: execute after close", 2) end
  common.check_blocks(blocks)
  return task.sync(self._execute, self, blocks)
end

function LocalExecutor:restart() end

function LocalExecutor:close()
  self.closed = true
end
LocalExecutor.__close = LocalExecutor.close

return { new = new, LocalExecutor = LocalExecutor }
