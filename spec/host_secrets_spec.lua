-- Item 7 of issue 8: what model-written code run by LocalExecutor can take
-- from the host process. A nested Lua host holds two secrets: one in its
-- environment (OPENAI_API_KEY) and one that exists only in a Lua table
-- (llm_config.api_key, built at run time, never in any argv or file). A
-- block then attacks it for real: reads /proc/<host>/environ, scans
-- /proc/<host>/mem for the table's secret, and PTRACE_ATTACHes the host and
-- the spawn server and the run's supervisor. Run as a normal user (uid 65534 via setpriv when the
-- spec runs as root) and as root: root code has CAP_SYS_PTRACE, which
-- overrides the non-dumpable flag, so as root every attack succeeds and the
-- spec says so; LocalExecutor is no boundary for root code.
local core = require("agentbox.core")
local H = require("spec.support.helpers")

local ATTACK = [[
import ctypes, os, re, sys
def ppid(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()
# walk up: the supervisor, the spawn server (agentbox-sup), the host (lua5.4)
chain, p = [], os.getppid()
while p > 1 and len(chain) < 6:
    chain.append(p)
    p = ppid(p)
host = next(p for p in chain if comm(p).startswith("lua"))
server = [p for p in chain if comm(p) == "agentbox-sup" and ppid(p) == host]
def attempt(name, fn):
    try:
        print(name + ": " + fn())
    except OSError as e:
        print(name + ": blocked " + (os.strerror(e.errno) if e.errno else str(e)))
def environ():
    with open("/proc/%d/environ" % host, "rb") as f:
        env = f.read()
    m = re.search(rb"OPENAI_API_KEY=([^\0]*)", env)
    return "read " + (m.group(1).decode() if m else "(no key)")
def mem():
    pat = re.compile(rb"AGENTBOX" + rb"SECRET[0-9a-f]{32}")
    with open("/proc/%d/maps" % host) as maps, open("/proc/%d/mem" % host, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            if not f[1].startswith("rw"):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if hi - lo > (256 << 20):
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except OSError:
                continue
            m = pat.search(data)
            if m:
                return "found " + m.group(0).decode()
    return "read, not found"
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
def ptrace(pid):
    def go():
        if libc.ptrace(16, pid, None, None) != 0:   # PTRACE_ATTACH
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        os.waitpid(pid, 0x40000000)                  # __WALL: the attach stop
        libc.ptrace(17, pid, None, None)             # PTRACE_DETACH, no signal
        return "attached"
    return go
attempt("environ", environ)
attempt("mem", mem)
attempt("ptrace host", ptrace(host))
attempt("ptrace supervisor", ptrace(os.getppid()))
if server:
    attempt("ptrace server", ptrace(server[0]))
else:
    print("ptrace server: no spawn server in " + repr([comm(p) for p in chain]))
]]

-- The nested host: builds the table secret from /dev/urandom, runs the
-- attack through a LocalExecutor, and reports what leaked.
local HOST = [[
local agentbox = require("agentbox")
local f = assert(io.open("/dev/urandom", "rb"))
local hex = f:read(16):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
f:close()
local llm_config = { config_list = { { model = "m", api_key = "AGENTBOX" .. "SECRET" .. hex } } }
local ex = agentbox.LocalExecutor{ work_dir = os.getenv("SPEC_WORK"), timeout = 30 }
local attack = assert(io.open(os.getenv("SPEC_ATTACK"), "rb")):read("a")
local r = ex:execute{ { lang = "python", code = attack } }
local out = r.output
local function verdict(name)
  local line = out:match(name .. ": ([^\n]*)") or "(no line)"
  return line
end
local env_line, mem_line = verdict("environ"), verdict("mem")
print("environ=" .. (env_line:find(os.getenv("OPENAI_API_KEY"), 1, true) and "leaked" or env_line))
print("mem=" .. (mem_line:find(llm_config.config_list[1].api_key, 1, true) and "leaked" or mem_line))
print("ptrace_host=" .. verdict("ptrace host"))
print("ptrace_server=" .. verdict("ptrace server"))
print("ptrace_sup=" .. verdict("ptrace supervisor"))
print("exit=" .. tostring(r.exit_code))
io.stderr:write(out)
]]

local function attack_as(uid)
  local dir = H.tmpdir("secrets")
  local work = dir .. "/work"
  assert(core.mkdir_p(work))
  local attack_file = dir .. "/attack.py"
  H.write(attack_file, ATTACK)
  os.execute("chmod 755 '" .. dir .. "' && chmod 777 '" .. work .. "' && chmod 644 '" .. attack_file .. "'")
  local key = "sk-env-" .. tostring(math.random(1e9)) .. tostring(math.random(1e9))
  local env = H.lua_env{ OPENAI_API_KEY = key, SPEC_WORK = work, SPEC_ATTACK = attack_file,
                         PATH = "/usr/bin:/bin", HOME = work }
  local argv = { "lua5.4", "-e", HOST }
  if uid then
    argv = { "setpriv", "--reuid=" .. uid, "--regid=" .. uid, "--clear-groups", "--",
             "lua5.4", "-e", HOST }
  end
  local r = H.run(argv, { env = env, timeout = 60 })
  H.rm_rf(dir)
  local v = {}
  for k, val in r.stdout:gmatch("(%w[%w_]*)=([^\n]*)") do v[k] = val end
  v.raw = r.stdout .. r.stderr
  return v
end

local root = core.geteuid() == 0

-- What protect_host costs an embedding host that is not root: a real chat
-- (libcurl to a scripted server, the spawn server, code run) after it, then
-- the host's view of its own /proc and a debugger of its own uid.
local COST = [[
local agentbox = require("agentbox")
local core = require("agentbox.core")
assert(core.protect_host())
local out = {}
local function say(k, v) out[#out + 1] = k .. "=" .. tostring(v) end
say("dumpable", core.dumpable())
local a = agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { {
  model = "m", api_key = "sk-x", base_url = os.getenv("SPEC_BASE_URL") } }, max_retries = 0, cache_seed = false } }
local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER",
  code_execution_config = { executor = agentbox.LocalExecutor{ work_dir = os.getenv("SPEC_WORK") } },
  is_termination_msg = function(m) return (m.content or ""):find("TERMINATE", 1, true) ~= nil end }
local r = u:initiate_chat(a, { message = "go", silent = true })
say("chat", r.chat_history[3] and r.chat_history[3].content:gsub("\n", " "))
local function try(path, mode)
  local f, err = io.open(path, mode)
  if not f then return "denied" end
  local ok = mode == "w" and f:write("") or f:read(1)
  f:close()
  return ok and "ok" or "denied"
end
say("self_status", try("/proc/self/status", "r"))
say("self_maps", try("/proc/self/maps", "r"))
-- stdin is /dev/null: reopening it goes through the host's own fd directory
say("self_fd", io.open("/proc/self/fd/0", "r") and "ok" or "denied")
say("self_environ", try("/proc/self/environ", "r"))
say("getenv", os.getenv("SPEC_WORK") ~= nil)
local f = io.open("/proc/self/stat")
local me = f:read("a"):match("^(%d+)")
f:close()
-- what gdb, strace or perf -p of the host's own user would do first
local g = io.popen("python3 -c 'import ctypes, os, sys; c = ctypes.CDLL(None, use_errno=True); " ..
  "r = c.ptrace(0x4206, int(sys.argv[1]), None, None); " ..  -- PTRACE_SEIZE: no stop
  "print(\"attached\" if r == 0 else os.strerror(ctypes.get_errno()))' " .. me .. " 2>&1")
local dbg = g:read("a"):gsub("%s+$", "")
g:close()
say("debugger", dbg == "Operation not permitted" and "denied" or dbg)
print(table.concat(out, "\n"))
]]

describe("LocalExecutor code against the host's secrets", function()
  it("as a normal user: cannot read the host's environ or memory, cannot ptrace the host or the spawn server", function()
    local v = attack_as(root and "65534" or nil)
    assert.equal("0", v.exit, v.raw)
    assert.matches("^blocked Permission denied", v.environ, 1, false, v.raw)
    assert.matches("^blocked Permission denied", v.mem, 1, false, v.raw)
    assert.equal("blocked Operation not permitted", v.ptrace_host, v.raw)
    assert.equal("blocked Operation not permitted", v.ptrace_server, v.raw)
    assert.equal("blocked Operation not permitted", v.ptrace_sup, v.raw)
  end)

  it("costs a normal-user host its own /proc/self/environ and debuggers, not its HTTP, spawn server or /proc/self/fd", function()
    local fake = require("spec.support.fake_openai")
    local srv = fake.start{ rules = {
      { when_last_contains = "exitcode: 0", content = "TERMINATE" },
      { when_last_role = "user", content = "```python\nprint(6 * 7)\n```" },
    } }
    local dir = H.tmpdir("protect-cost")
    local work = dir .. "/work"
    assert(core.mkdir_p(work))
    os.execute("chmod 755 '" .. dir .. "' && chmod 777 '" .. work .. "'")
    local argv = { "lua5.4", "-e", COST }
    if root then argv = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "lua5.4", "-e", COST } end
    local r = H.run(argv, { env = H.lua_env{ SPEC_BASE_URL = srv.base_url, SPEC_WORK = work, PATH = "/usr/bin:/bin",
                                             HOME = work }, timeout = 60 })
    srv:stop()
    H.rm_rf(dir)
    local raw = r.stdout .. r.stderr
    local v = {}
    for k, val in r.stdout:gmatch("([%w_]+)=([^\n]*)") do v[k] = val end
    assert.equal("false", v.dumpable, raw)
    assert.equal("exitcode: 0 (execution succeeded) Code output: 42 ", v.chat, raw)
    assert.equal("ok", v.self_status, raw)
    assert.equal("ok", v.self_maps, raw)
    assert.equal("ok", v.self_fd, raw)
    assert.equal("denied", v.self_environ, raw)   -- the cost: root-owned, mode 0400
    assert.equal("true", v.getenv, raw)           -- libc's copy is untouched
    assert.equal("denied", v.debugger, raw)       -- the cost: no debugger of the host's uid
  end)

  it("as root: CAP_SYS_PTRACE overrides the non-dumpable flag, so root code reads everything; our seccomp filter still refuses ptrace", function()
    if not root then pending("needs root: run the spec as root to check what root code can do") return end
    local v = attack_as(nil)
    assert.equal("0", v.exit, v.raw)
    assert.equal("leaked", v.environ, v.raw)
    assert.equal("leaked", v.mem, v.raw)
    -- ptrace is refused by the filter (seccomp_spec.lua), whatever the uid
    assert.matches("^blocked", v.ptrace_host, v.raw)
    assert.matches("^blocked", v.ptrace_server, v.raw)
    assert.matches("^blocked", v.ptrace_sup, v.raw)
  end)
end)
