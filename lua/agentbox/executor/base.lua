-- The executor base: what every executor shares, so that a new one (a warm
-- container, a daemonless sandbox) writes only what differs.
--   * its options: the ones every executor takes (work_dir, timeout, ...)
--     and their checks, all made before anything is created on the host;
--   * the language -> argv table;
--   * execute: one call at a time, the block loop of common.run_blocks;
--   * the close contract: close() is idempotent and returns true | nil,
--     message, code; `<close>` is close; a collected executor only queues
--     its release (gc_queue.lua), never does I/O in its finalizer.
--
-- An executor kind:
--   local X = base.class("XExecutor", { own_option = check(v, what, o) -> value, ... })
--   function X:_setup(o)    own fields from the checked options o (may misuse)
--   function X:_run(argv, prep, out, timeout) -> { exit_code =, timed_out = } | nil, message
-- and, where it differs from the default:
--   X:_program(cmd)          -> program | nil, message   (cmd: a COMMANDS row)
--   X:_write(prep, text)     -> path | nil, message      (default: host work_dir)
--   X:_attached()            after the workspace exists (may raise: it is detached)
--   X:_before(blocks)        before the block loop (start a container)
--   X:_release()             at close, before the workspace goes -> true | nil, message, code
--   X:_snapshot()            the files of work_dir (output_files.lua; default: host)
--   X:_ship(rel, text)       put one of agentbox's files where code sees it
--   X:_bring_back(res)       (optional) copy res.output_files into the host work_dir
--   X:_release_send()        at collection: a function that starts the release and
--                            returns its handle (gc_queue job.send), or nil; no I/O here
--   X:_audit(r)              the audit log's sandbox and own limits, two tables (audit.lua;
--                            r: the block's result, nil before it runs)
--   X._serial = true         one execute at a time (a second one raises)
--   X.new = base.constructor(X)
local code = require("agentbox.code")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local common = require("agentbox.executor.common")
local workspace = require("agentbox.executor.workspace")
local gc_queue = require("agentbox.executor.gc_queue")
local audit = require("agentbox.executor.audit")
local output_files = require("agentbox.executor.output_files")

local M = {}

---------------------------------------------------------------- options

local function positive(v) return type(v) == "number" and v > 0 and v < math.huge end

-- The options every executor takes: name -> check(v, what, o) -> value.
-- A check raises with errors.misuse (blamed on the caller's line).
M.COMMON = {
  work_dir = function(v, what)
    if v ~= nil and (type(v) ~= "string" or v == "") then
      errors.misuse("%s: work_dir must be a non-empty string (or nil for a fresh private directory)", what)
    end
    return v
  end,
  keep_work_dir = function(v, what)
    if v ~= nil and type(v) ~= "boolean" then errors.misuse("%s: keep_work_dir must be a boolean", what) end
    return v or false
  end,
  timeout = function(v, what)
    if v == nil then return 60 end
    if not positive(v) then
      errors.misuse("%s: timeout must be a positive number of seconds, got %s", what, tostring(v))
    end
    return v
  end,
  grace = function(v, what)
    if v == nil then return 0.5 end
    if type(v) ~= "number" or not (v >= 0 and v < math.huge) then
      errors.misuse("%s: grace must be a non-negative number of seconds, got %s", what, tostring(v))
    end
    return v
  end,
  total_timeout = function(v, what, o)
    if v == nil then return 4 * o.timeout end
    if v == false then return false end
    if not positive(v) then
      errors.misuse("%s: total_timeout must be a positive number of seconds, or false for none", what)
    end
    return v
  end,
  max_output = function(v, what)
    if v == nil then return 1048576 end
    if math.type(v) ~= "integer" or v < 0 then
      errors.misuse("%s: max_output must be a non-negative integer (bytes)", what)
    end
    return v
  end,
  on_output = function(v, what)
    if v ~= nil and type(v) ~= "function" then
      errors.misuse("%s: on_output must be a function(chunk, stream)", what)
    end
    return v
  end,
  env = function(v, what)
    if v ~= nil and type(v) ~= "table" then errors.misuse("%s: env must be a table of names to strings", what) end
    for k, s in pairs(v or {}) do
      if type(k) ~= "string" or type(s) ~= "string" or k == "" or k:find("=", 1, true) then
        errors.misuse("%s: env must map names to strings (got %s = %s)", what, type(k), type(s))
      end
    end
    return v or {}
  end,
  execution_policies = function(v, what)
    if v ~= nil and type(v) ~= "table" then
      errors.misuse("%s: execution_policies must be a table { language = true (run) | false (save only) }", what)
    end
    local save_only = {}
    for k, s in pairs(code.SAVE_ONLY) do save_only[k] = s end
    for k, run in pairs(v or {}) do
      if type(k) ~= "string" or type(run) ~= "boolean" then
        errors.misuse("%s: execution_policies must map language names to booleans", what)
      end
      save_only[k] = not run
    end
    return save_only
  end,
  quota = function(v, what) return common.quota(v, what) end,
  audit = function(v, what) return audit.check(v, what) end,
  audit_required = function(v, what) return audit.check_required(v, what) end,
}

-- timeout before total_timeout (its default depends on it); the rest in any order
local ORDER = { "work_dir", "keep_work_dir", "timeout", "total_timeout", "grace", "max_output", "on_output",
                "env", "execution_policies", "quota", "audit", "audit_required" }

--- Check opts against the common options and own (name -> check): unknown
--- names and bad values raise. Returns the checked options (defaults filled in).
function M.check(opts, own, what)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then errors.misuse("%s: options must be a table", what) end
  for k in pairs(opts) do
    if not M.COMMON[k] and not own[k] then
      local names = {}
      for n in pairs(M.COMMON) do names[#names + 1] = n end
      for n in pairs(own) do names[#names + 1] = n end
      table.sort(names)
      errors.misuse("%s: unknown option '%s' (known: %s)", what, tostring(k), table.concat(names, ", "))
    end
  end
  -- what was given, before defaults: a pooled DockerExecutor refuses only
  -- container options given here that differ from its pool's
  local o = { _raw = opts }
  for _, k in ipairs(ORDER) do o[k] = M.COMMON[k](opts[k], what, o) end
  local names = {}
  for k in pairs(own) do names[#names + 1] = k end
  table.sort(names)   -- a fixed order: the first bad option is always the same one
  for _, k in ipairs(names) do
    local check = own[k]
    if check == true then o[k] = opts[k] else o[k] = check(opts[k], what, o) end
  end
  return o
end

---------------------------------------------------------------- languages

--- Language -> how to run a file of it: the programs to try in order (the
--- first found wins), the arguments before the file, what to say when none
--- is found, and resolve = false for programs left to the PATH search of
--- the exec itself (a shell is everywhere).
M.COMMANDS = {
  python = { programs = { "python3", "python" },
             missing = "no Python interpreter found: looked for python3, then python," },
  sh = { programs = { "sh" }, resolve = false },
  bash = { programs = { "bash" }, resolve = false },
  node = { programs = { "node" }, missing = "javascript needs node, which was not found" },
  pwsh = { programs = { "pwsh", "powershell" }, args = { "-File" },
           missing = "powershell needs pwsh, which was not found" },
}

--- argv for running file (a path as the program sees it) of language info.
function M.argv(self, info, file)
  local cmd = M.COMMANDS[info.kind == "shell" and info.name or info.kind]
  if not cmd then return nil, "unknown language " .. info.name end
  local prog, err = self:_program(cmd)
  if not prog then return nil, err end
  local argv = { prog }
  for _, a in ipairs(cmd.args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = file
  return argv
end

---------------------------------------------------------------- the class

local Base = {}
M.Base = Base

-- default: the program by its first name, found by the sandbox's own PATH
function Base:_program(cmd) return cmd.programs[1] end
function Base:_write(prep, text) return workspace.write(self._ws, prep.rel, text) end
function Base:_attached() end
function Base:_before() end
function Base:_release() return true end
function Base:_release_send() return nil end
function Base:_audit() return {}, {} end

-- output_files (output_files.lua): a listing of work_dir on the host, and
-- agentbox's own files (the matplotlib backend) written where code files go
function Base:_snapshot() return output_files.on_host(self._ws) end
function Base:_ship(rel, text) return self:_write({ rel = rel }, text) end

function Base:_execute(blocks)
  self:_before(blocks)
  local watch = output_files.start(self, blocks)
  return output_files.finish(self, watch, common.run_blocks(blocks, self.max_output, self.save_only,
    function(prep, text) return self:_write(prep, text) end,
    audit.wrap(self, function(prep, path, out, timeout)
      local argv, err = M.argv(self, prep.info, self:_path_of(prep, path))
      if not argv then return nil, err end
      return self:_run(argv, prep, out, timeout)
    end), { timeout = self.timeout, total = self.total_timeout }))
end

-- the code file as the program sees it (default: the host path)
function Base:_path_of(_, path) return path end

--- Run the blocks in order, stopping at the first failure (AutoGen's
--- semantics). Tasks may run several calls at once, unless the kind says
--- _serial (one container's state between blocks).
function Base:execute(blocks)
  if self.closed then errors.misuse("%s: execute after close", self._what) end
  common.check_blocks(blocks)
  gc_queue.drain()
  if not self._serial then return task.sync(self._execute, self, blocks) end
  if self.busy then errors.misuse("%s: execute is already running on this executor", self._what) end
  self.busy = true
  local ok, res = pcall(task.sync, self._execute, self, blocks)
  self.busy = false
  if not ok then error(res, 0) end
  return res
end

--- Start what the executor needs now (otherwise the first execute does).
function Base:start()
  if self.closed then errors.misuse("%s: start after close", self._what) end
  gc_queue.drain()
  return self
end

--- Forget state between chats; the default has none.
function Base:restart() return true end

--- Idempotent. Releases what the executor holds (its container, ...), then
--- its workspace (a temporary work_dir goes unless keep_work_dir).
function Base:close()
  if self.closed then return true end
  self.closed = true
  gc_queue.drain()
  local ok, err, ecode = self:_release()
  local wok, werr = workspace.detach(self)   -- after: nothing writes there any more
  if not ok then return nil, err, ecode end
  if not wok then return errors.fail("io", "%s: removing work_dir: %s", self._what, tostring(werr)) end
  return true
end

-- Collected without close: queue the release, do nothing else here.
local function gc(self)
  if self.closed then return end
  self.closed = true
  local ok, send = pcall(self._release_send, self)
  gc_queue.enqueue({ send = ok and send or nil, after = workspace.releaser(self) })
end

--- A new executor kind named name ("LocalExecutor"), with its own options
--- (name -> check(v, what, o), or true for "any value, checked in _setup").
function M.class(name, own)
  local X = setmetatable({}, { __index = Base })
  X.__index = X
  X.__close = function(self) return self:close() end
  X.__gc = gc
  X._name = name
  X._what = "agentbox." .. name
  X._options = own or {}
  return X
end

--- The constructor of kind X: checks every option, then builds the
--- executor, then attaches the workspace (nothing is created on the host
--- before every option is checked). The metatable, and with it the
--- finalizer, comes last: Lua finalizes in reverse order of creation, so
--- the executor's __gc runs before its workspace's (which gc_queue.hold
--- keeps open until the release, except at lua_close).
function M.constructor(X)
  return function(opts)
    gc_queue.drain()
    local what = X._what
    local o = M.check(opts, X._options, what)
    local self = { timeout = o.timeout, total_timeout = o.total_timeout, grace = o.grace,
                   max_output = o.max_output, on_output = o.on_output, save_only = o.execution_policies,
                   quota = o.quota }
    X._setup(self, o)
    workspace.attach(self, o, what)
    local ok, err = pcall(X._attached, self, o)
    if ok then ok, err = pcall(audit.attach, self, o, what) end
    if not ok then
      workspace.detach(self)
      error(err, 0)
    end
    return setmetatable(self, X)
  end
end

return M
