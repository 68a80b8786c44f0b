-- Starts spec/support/fake_openai.py (a scripted OpenAI-compatible server) for
-- specs, the demo and the benchmark:
--
--   local fake = require("spec.support.fake_openai")
--   local srv = fake.start{ models = { m = { { content = "hi" } } } }
--   ... point the client at srv.base_url ...
--   srv:requests()   -- decoded log lines so far (what the client sent)
--   srv:stop()
--
-- The script format is documented at the top of fake_openai.py.
local cjson = require("cjson")

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
M.script_path = here .. "/fake_openai.py"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function find_python()
  local env = os.getenv("FAKE_OPENAI_PYTHON")
  if env and env ~= "" then return env end
  -- Debian's python3 is always there when the lua5.4 package is; a pyenv shim
  -- in PATH can be slow to start or point at a missing version.
  local f = io.open("/usr/bin/python3", "r")
  if f then f:close(); return "/usr/bin/python3" end
  if os.execute("command -v python3 >/dev/null 2>&1") then return "python3" end
  error("fake_openai: python3 not found (install python3 or set FAKE_OPENAI_PYTHON)", 3)
end

local Server = {}
Server.__index = Server

local function decode_log(data)
  local out = {}
  -- Only newline-terminated lines: the server may be mid-write on another request.
  for line in (data or ""):gmatch("([^\n]*)\n") do
    if line ~= "" then out[#out + 1] = cjson.decode(line) end
  end
  return out
end

function Server:requests()
  if self.stopped then return decode_log(self.final_log) end
  return decode_log(read_file(self.log_path))
end

function Server:last_request()
  local reqs = self:requests()
  return reqs[#reqs]
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  -- The child stays a zombie until pclose, so "still running" means "not in state Z".
  os.execute(([[
p=%d; kill -TERM $p 2>/dev/null; i=0
alive() { [ -r /proc/$p/stat ] && ! grep -q ') Z' /proc/$p/stat 2>/dev/null; }
while [ $i -lt 250 ] && alive; do sleep 0.02; i=$((i+1)); done
if alive; then kill -KILL $p 2>/dev/null; fi]]):format(self.pid))
  self.pipe:close()
  self.final_log = read_file(self.log_path)
  os.remove(self.log_path)
  os.remove(self.script_file)
  os.remove(self.err_path)
end

Server.__gc = Server.stop
Server.__close = Server.stop

-- script: a table (encoded with cjson) or a JSON string.
-- opts.port: fixed port instead of a random free one.
-- opts.program: another server with fake_openai.py's command line and log
-- (spec/support/analyst_model.py, the demo's model).
function M.start(script, opts)
  opts = opts or {}
  local python = find_python()
  local json = type(script) == "string" and script or cjson.encode(script or {})
  local script_file, log_path, err_path = os.tmpname(), os.tmpname(), os.tmpname()
  write_file(script_file, json)
  write_file(log_path, "")
  local program = opts.program or M.script_path
  local cmd = ("exec env -u LD_PRELOAD %s %s %s %s%s 2>%s"):format(q(python), q(program), q(script_file),
    q(log_path), opts.port and (" --port " .. math.tointeger(opts.port)) or "", q(err_path))
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("l")
  local port, pid = (line or ""):match("^PORT (%d+) PID (%d+)$")
  if not port then
    pipe:close()
    local err = read_file(err_path) or ""
    os.remove(script_file); os.remove(log_path); os.remove(err_path)
    error(("fake_openai: server failed to start (%s %s): %s"):format(python, program,
      err ~= "" and err or ("unexpected output: " .. tostring(line))), 2)
  end
  -- Created after the pipe so finalizers stop the server before the pipe's own
  -- __gc would block in pclose waiting for it.
  local self = setmetatable({
    port = tonumber(port),
    pid = tonumber(pid),
    pipe = pipe,
    script_file = script_file,
    log_path = log_path,
    err_path = err_path,
    stopped = false,
  }, Server)
  self.root_url = "http://127.0.0.1:" .. self.port
  self.base_url = self.root_url .. "/v1"
  return self
end

return M
