-- LocalExecutor: runs code blocks as local processes under the C supervisor
-- (own session, whole-tree kill at the deadline, capped output, built
-- environment). AutoGen's LocalCommandLineCodeExecutor semantics; what
-- every executor does is in base.lua.
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local base = require("agentbox.executor.base")
local common = require("agentbox.executor.common")
local output_files = require("agentbox.executor.output_files")

local LocalExecutor = base.class("LocalExecutor", {
  rlimits = function(v, what)
    if v ~= nil and type(v) ~= "table" then
      errors.misuse("%s: rlimits must be a table { cpu =, as =, fsize =, nofile = }", what)
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
})

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
  for k, v in pairs(extra) do env[k] = v end
  return env
end

function LocalExecutor._setup(self, o)
  self.rlimits, self.nice, self.python = o.rlimits, o.nice, o.python
  self._extra_env = o.env
  -- code of the host's uid must not read its environ or heap, nor ptrace it
  -- (one-way: secrets stay in freed memory); README "What LocalExecutor protects"
  assert(core.protect_host())
  -- what hosts killed with their spawn servers left running (cgroup.c)
  core.reap_runs()
end

function LocalExecutor._attached(self)
  self.env = build_env(self.work_dir, output_files.python_env(self.work_dir, self._extra_env))
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

function LocalExecutor:_run(argv, _, out, timeout)
  local p <close> = assert(core.spawn{ argv = argv, cwd = self.work_dir, env = self.env,
                                       timeout = timeout, grace = self.grace,
                                       max_output = out.budget(), rlimits = self.rlimits,
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
  return { exit_code = common.exit_code(r), timed_out = r.timed_out }
end

return { new = base.constructor(LocalExecutor), LocalExecutor = LocalExecutor }
