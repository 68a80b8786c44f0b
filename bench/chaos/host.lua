-- bench/chaos/host.lua: one host process of the chaos benchmark (started by
-- bench/chaos/chaos.lua, never by hand). Public API only, so the bench runs
-- on any agentbox that keeps LocalExecutor/DockerExecutor, the agents and
-- initiate_chat.
--
--   CHAOS_ROLE=chat     a chat with code against the scripted model server;
--                       the runner SIGKILLs this process at a random moment
--   CHAOS_ROLE=restart  the fresh start that follows: build an executor of
--                       the same kind (a DockerExecutor's start reaps the
--                       containers of dead owners), close it, exit
--
-- Everything else comes from the environment the runner sets: CHAOS_KIND
-- (local|docker), CHAOS_TRANSFER (bind|archive; docker), CHAOS_IMAGE,
-- CHAOS_TIMEOUT, CHAOS_BASE_URL, CHAOS_WORK_DIR (empty: omit work_dir, so
-- the executor picks its default), CHAOS_HB (the heartbeat directory) and
-- CHAOS_MARK (copied into the code's environment: every process of the
-- iteration carries it, which is how the runner finds leftovers).

-- Line buffered: a SIGKILL must not eat the phase lines the runner reads.
io.stdout:setvbuf("line")

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

-- seconds since boot, the runner's clock too (10 ms resolution)
local function uptime()
  local f = io.open("/proc/uptime")
  local t = f:read("n")
  f:close()
  return t
end
local function phase(name) io.stdout:write(("#CHAOS phase %.2f %s\n"):format(uptime(), name)) end

-- pid and start time (field 22 of /proc/self/stat): the runner matches them
-- against the agentbox.pid/agentbox.started labels of leftover containers
local stat = assert(io.open("/proc/self/stat")):read("a")
local pid = stat:match("^(%d+)")
local fields = {}
for f in stat:match("^.*%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = f end
io.stdout:write("#CHAOS pid ", pid, " ", fields[20], "\n")

local agentbox = require("agentbox")

local kind = env("CHAOS_KIND", "local")
local role = env("CHAOS_ROLE", "chat")
local timeout = tonumber(env("CHAOS_TIMEOUT", "1"))
local hb = env("CHAOS_HB")
local opts = {
  timeout = timeout,
  work_dir = env("CHAOS_WORK_DIR"),
  env = { CHAOS_MARK = env("CHAOS_MARK", "?"), CHAOS_TIMEOUT = tostring(timeout), CHAOS_HB = hb },
}
phase("executor")
local ex
if kind == "docker" then
  opts.image = env("CHAOS_IMAGE", "agentbox/sandbox:latest")
  opts.transfer = env("CHAOS_TRANSFER", "bind")
  -- the heartbeat directory is the one place the code writes that outlives
  -- a private work_dir; read-write on purpose
  opts.env.CHAOS_HB = "/chaos-hb"
  opts.mounts = { { source = hb, target = "/chaos-hb", read_only = false } }
  ex = agentbox.DockerExecutor(opts)
else
  ex = agentbox.LocalExecutor(opts)
end
io.stdout:write("#CHAOS work_dir ", tostring(ex.work_dir), "\n")

if role == "restart" then
  if ex.start then ex:start() end
  phase("close")
  ex:close()
  phase("exit")
  os.exit(0)
end

-- The user proxy runs code through this wrapper only to log which block is
-- running when the kill comes.
local runs = 0
local logged = {
  execute = function(_, blocks)
    runs = runs + 1
    phase("execute" .. runs)
    local r = ex:execute(blocks)
    phase("executed" .. runs .. " exit " .. tostring(r.exit_code))
    return r
  end,
}

local assistant = agentbox.AssistantAgent{
  name = "assistant",
  llm_config = { config_list = { { model = "chaos", api_key = "chaos", base_url = env("CHAOS_BASE_URL") } },
                 cache_seed = false },
}
local user = agentbox.UserProxyAgent{
  name = "user_proxy",
  human_input_mode = "NEVER",
  max_consecutive_auto_reply = 6,
  is_termination_msg = function(m) return (m.content or ""):find("TERMINATE", 1, true) ~= nil end,
  code_execution_config = { executor = logged },
}
phase("chat")
user:initiate_chat(assistant, { message = "CHAOS-START: leave some state around" })
phase("close")
ex:close()
phase("exit")
os.exit(0)
