-- The audit log (AutoGen's Docker material: "capture logs for audit"): what
-- ran, where, under which limits and how it ended. The executor option
-- `audit` is a file path (JSON Lines) or a function that receives each
-- record as a table. Written by the host, never by the code: the file must
-- lie outside work_dir and is opened per record (core.append: O_APPEND,
-- 0600, one write(), so executors sharing a file never interleave lines).
--
-- Two records per block that runs:
--   event "start", before it runs: when it cannot be written the block does
--     not run, so nothing runs that the log does not show, even if the host
--     dies in the middle of the block;
--   event "end", with the outcome: when it cannot be written the block's
--     result becomes a failure (exit code 1 and a line that says why).
-- audit_required = false turns both failures into a line on stderr.
-- Saved-only blocks (execution_policies) do not run and are not recorded.
local cjson = require("cjson")
local core = require("agentbox.core")
local errors = require("agentbox.errors")

local json = cjson.new()   -- a private instance: settings here never leak
local M = {}

---------------------------------------------------------------- options

function M.check(v, what)
  if v == nil or v == false then return nil end
  if type(v) ~= "function" and (type(v) ~= "string" or v == "") then
    errors.misuse("%s: audit must be a file path (JSON Lines) or a function(record), got %s", what, type(v))
  end
  return v
end

function M.check_required(v, what)
  if v == nil then return true end
  if type(v) ~= "boolean" then errors.misuse("%s: audit_required must be a boolean", what) end
  return v
end

-- The path as the kernel would open it now: the longest existing prefix
-- with its links resolved, then the rest, whose "." and ".." can be taken
-- lexically because none of it exists (so none of it is a link).
local function resolved(path)
  local head, rest = path, {}
  while true do
    local real = core.realpath(head)
    if real then
      local parts = {}
      for p in real:gmatch("[^/]+") do parts[#parts + 1] = p end
      for i = #rest, 1, -1 do
        if rest[i] == ".." then parts[#parts] = nil
        elseif rest[i] ~= "." and rest[i] ~= "" then parts[#parts + 1] = rest[i] end
      end
      return "/" .. table.concat(parts, "/")
    end
    local dir, base = head:match("^(.*)/([^/]*)$")
    if not dir then return path end
    rest[#rest + 1] = base
    head = dir == "" and "/" or dir
  end
end

local function inside(path, dir)
  return path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

-- The keys a reader looks at first, in this order; the rest sorted.
local FIRST = { "time", "event", "executor", "exit_code", "timed_out", "oom", "quota_exceeded", "duration",
                "output_bytes", "output_dropped", "language", "code_file", "sha256", "error", "work_dir", "host", "pid",
                "sandbox", "limits" }
local RANK = {}
for i, k in ipairs(FIRST) do RANK[k] = i end
local function before(a, b)
  local ra, rb = RANK[a] or #FIRST + 1, RANK[b] or #FIRST + 1
  if ra ~= rb then return ra < rb end
  return a < b
end

-- JSON with the keys of every object in a fixed order (cjson's follows the
-- hash table), so that records read alike; values and arrays are cjson's.
local function encode(v)
  if type(v) ~= "table" or next(v) == nil or v[1] ~= nil then return json.encode(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, before)
  for i, k in ipairs(keys) do keys[i] = json.encode(k) .. ":" .. encode(v[k]) end
  return "{" .. table.concat(keys, ",") .. "}"
end

-- One record -> true | nil, message.
local function file_sink(path)
  return function(record)
    -- cjson escapes every "/" as "\/" (valid, but a path could not be
    -- grepped); it never emits a bare "/", so every "\/" is that escape
    local line = encode(record):gsub("\\/", "/")
    local ok, err = core.append(path, line .. "\n")
    if not ok then return nil, "cannot write " .. err end
    return true
  end
end

local function function_sink(fn)
  return function(record)
    local ok, err = pcall(fn, record)
    if not ok then return nil, "the audit function raised: " .. tostring(err) end
    return true
  end
end

--- Attach the audit log to an executor from its checked options, once its
--- workspace exists (self.work_dir). A path inside work_dir is misuse: the
--- code could rewrite the record of what it did.
function M.attach(self, o, what)
  local target = o.audit
  if target == nil then return end
  local sink
  if type(target) == "string" then
    local path = target
    if path:sub(1, 1) ~= "/" then
      local cwd, err = core.realpath(".")
      if not cwd then errors.misuse("%s: audit: cannot resolve the relative path %s: %s", what, path, err) end
      path = cwd .. "/" .. path
    end
    local wd = core.realpath(self.work_dir) or self.work_dir
    local real = resolved(path)
    if inside(real, wd) then
      errors.misuse("%s: audit: the log %s is inside work_dir %s, where the code could rewrite it; "
        .. "put it outside work_dir", what, target, wd)
    end
    -- the absolute path as given (not `real`): a link the user rotates is followed
    self.audit = path
    sink = file_sink(path)
  else
    self.audit = target
    sink = function_sink(target)
  end
  self._audit_log = { write = sink, required = o.audit_required }
end

---------------------------------------------------------------- records

-- UTC ISO-8601 with milliseconds
local function iso(t)
  local s = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(math.min(999, math.floor((t - s) * 1000)))
end

local function ms(seconds) return math.floor(seconds * 1000 + 0.5) / 1000 end

local pid = tonumber(((core.owner() or ""):match("^(%d+)")))

-- What start and end records share: who ran what, where, under which limits.
local function header(self, prep, timeout, r)
  local sandbox, own_limits = self:_audit(r)
  local limits = { timeout = timeout, total_timeout = self.total_timeout, grace = self.grace,
                   max_output = self.max_output, quota = self.quota or false }
  for k, v in pairs(own_limits or {}) do limits[k] = v end
  return {
    time = iso(core.wall_time()),
    executor = self._name,
    host = core.hostname(), pid = pid,
    work_dir = self.work_dir,
    sandbox = sandbox or {},
    limits = limits,
    language = prep.info.name,
    -- a name the model chose: any bytes, and the record must stay UTF-8
    code_file = core.utf8_clean(prep.rel),
    sha256 = core.sha256(prep.code),
  }
end

-- A failure to write: the message for the result when the log is required,
-- else a line on stderr and nil.
local function failed(a, msg, consequence)
  msg = "agentbox: audit log: " .. msg
  if a.required then return "\n" .. msg .. "; " .. consequence .. "\n" end
  io.stderr:write(msg, " (audit_required = false: the block's result stands)\n")
end

--- The block runner of an execute call (base.lua), wrapped so that each
--- block it runs is recorded; run itself when the executor has no audit log.
--- run(prep, path, out, timeout) -> { exit_code =, timed_out =, oom =,
--- quota_exceeded =, container_id = } | nil, message.
function M.wrap(self, run)
  local a = self._audit_log
  if not a then return run end
  return function(prep, path, out, timeout)
    local start = header(self, prep, timeout)
    start.event = "start"
    local ok, err = a.write(start)
    if not ok then
      local msg = failed(a, err, "the block was not run")
      if msg then return nil, msg end
    end
    local t0 = core.now()
    local kept0, dropped0 = out.counts()
    local rok, r, rerr = pcall(run, prep, path, out, timeout)
    local kept1, dropped1 = out.counts()
    local res = rok and r or nil
    local done
    if res then
      done = header(self, prep, timeout, res)
    else
      -- no I/O here (a cancelled task cannot wait): what the start knew
      done = {}
      for k, v in pairs(start) do done[k] = v end
      done.time = iso(core.wall_time())
    end
    done.event = "end"
    done.duration = ms(core.now() - t0)
    done.output_bytes, done.output_dropped = kept1 - kept0, dropped1 - dropped0
    done.exit_code = res and res.exit_code or 1
    done.timed_out = res and res.timed_out or false
    done.oom = res and res.oom or false
    done.quota_exceeded = res and res.quota_exceeded or false
    if not res then done.error = core.utf8_clean(tostring(rok and rerr or r)) end
    ok, err = a.write(done)
    -- a raised error (cancellation, a broken daemon) goes on whatever the log says
    if not rok then error(r, 0) end
    if not ok then
      local msg = failed(a, err, "the block ran but its record is missing, so its result is a failure")
      if msg then return nil, (res and "" or tostring(rerr)) .. msg end
    end
    return r, rerr
  end
end

return M
