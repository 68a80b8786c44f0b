-- bench/hostile_model.lua: a hostile model server against one chat
-- (issue 8 item 9). Each scenario runs in its own process (peak RSS is per
-- process) and prints one line: the longest single task resume, the longest
-- host frame (agentbox_step's budget, called in a busy loop like a game at
-- uncapped frame rate), the chat's wall time, peak RSS, blocks run, files
-- left in work_dir and how the chat ended. Not part of `make test`:
--   eval "$(make -s paths)"; lua5.4 bench/hostile_model.lua [scenario ...]
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local MB = 1024 * 1024

local SCENARIOS = {
  -- one reply, one 5 MB code block without a language tag
  untagged5 = { reply = { content_gen = { head = "Here:\n```\n", unit = "x = 1\n", count = 5 * MB // 6, tail = "```\n" } } },
  untagged5_uncapped = { max_reply_bytes = 64 * MB,
    reply = { content_gen = { head = "Here:\n```\n", unit = "x = 1\n", count = 5 * MB // 6, tail = "```\n" } } },
  -- one reply, 50 MB of tool-call arguments (default reply cap, then raised)
  args50 = { reply = { content = "calling", tool_calls = { { name = "t",
    arguments_gen = { head = '{"a": "', unit = "x", count = 50 * MB, tail = '"}' } } } } },
  args50_uncapped = { max_reply_bytes = 64 * MB, reply = { content = "calling", tool_calls = { { name = "t",
    arguments_gen = { head = '{"a": "', unit = "x", count = 50 * MB, tail = '"}' } } } } },
  -- one reply, 10,000 distinct shell blocks
  blocks10k = { reply = { content_gen = { unit = "```sh\necho {i}\n```\n", count = 10000 } } },
}
local ORDER = { "untagged5", "untagged5_uncapped", "args50", "args50_uncapped", "blocks10k" }

local function rss_kib(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

local function run_one(name)
  local sc = assert(SCENARIOS[name], "unknown scenario " .. name)
  local agentbox = require("agentbox")
  local core = require("agentbox.core")
  local task = require("agentbox.task")
  local fake = require("spec.support.fake_openai")
  local H = require("spec.support.helpers")

  local srv = fake.start{ models = { m = { sc.reply, { content = "TERMINATE" } } } }
  local dir = H.tmpdir("hostile")
  local printed, executing = 0, 0
  agentbox.print = function(s)
    printed = printed + #s
    for _ in s:gmatch("EXECUTING CODE BLOCK") do executing = executing + 1 end
  end
  local llm = { config_list = { { model = "m", api_key = "sk-test", base_url = srv.base_url } },
                max_retries = 0, timeout = 600, max_reply_bytes = sc.max_reply_bytes, cache_seed = false }
  local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm }
  local user = agentbox.UserProxyAgent{ name = "user", human_input_mode = "NEVER", max_consecutive_auto_reply = 2,
    code_execution_config = { work_dir = dir, use_docker = false, timeout = 600 },
    function_map = { t = function(a) return #a.a end } }

  -- the longest single resume of a task: task.lua calls coroutine.resume
  -- (wall time, and CPU time, which a loaded machine's preemption does not
  -- inflate; HOSTILE_TRACE=1 prints where the longest one stopped)
  local max_resume, max_cpu, where = 0, 0, nil
  local resume = coroutine.resume
  coroutine.resume = function(co, ...)    -- luacheck: ignore
    local from = os.getenv("HOSTILE_TRACE") and debug.traceback(co)
    local t0, c0 = core.now(), os.clock()
    local r = table.pack(resume(co, ...))
    local dt, dc = core.now() - t0, os.clock() - c0
    if dt > max_resume then max_resume = dt end
    if dc > max_cpu then
      max_cpu = dc
      if from then where = "from " .. from .. "\nto " .. debug.traceback(co) end
    end
    return table.unpack(r, 1, r.n)
  end
  -- core.step (the C reactor: curl reading, process events), separately
  local max_core, max_core_cpu = 0, 0
  local core_step = core.step
  core.step = function(...)
    local t0, c0 = core.now(), os.clock()
    local a, b = core_step(...)
    max_core = math.max(max_core, core.now() - t0)
    max_core_cpu = math.max(max_core_cpu, os.clock() - c0)
    return a, b
  end
  local rss0 = rss_kib("VmRSS")
  local t0 = core.now()
  local t = agentbox.spawn(function() return user:initiate_chat(assistant, { message = "go" }) end)
  local max_frame, frames = 0, 0
  while not t:done() do
    local f0 = core.now()
    task.step(0, 0.5)                     -- what agentbox_step(L, 0) does
    local dt = core.now() - f0
    frames = frames + 1
    if dt > max_frame then max_frame = dt end
  end
  local wall = core.now() - t0
  coroutine.resume = resume               -- luacheck: ignore
  core.step = core_step
  local _, err = t:result()
  local p = io.popen("find '" .. dir .. "' -type f | wc -l")
  local files = tonumber(p:read("a"))
  p:close()
  srv:stop()
  H.rm_rf(dir)
  local ended = err and ("error: " .. (tostring(err):match("larger than [%w_.]+") or tostring(err):sub(1, 80))) or "ok"
  io.write(("| %s | %.1f | %.1f | %.1f | %.1f / %.1f | %.2f | %d | %d | %d | %d | %s |\n"):format(name, max_cpu * 1000,
    max_resume * 1000, max_frame * 1000, max_core_cpu * 1000, max_core * 1000, wall, rss_kib("VmHWM") // 1024, rss0 // 1024, executing, files, ended))
  if where then io.stderr:write(name, ": the longest resume, from where it started to where it stopped:\n", where, "\n") end
end

if arg[1] and arg[1] ~= "all" then
  for _, name in ipairs(arg) do run_one(name) end
  return
end
io.write("| scenario | max resume CPU ms | max resume wall ms | max frame wall ms | max core.step CPU / wall ms | wall s "
  .. "| peak RSS MiB | RSS before MiB | blocks run | files left | ended |\n")
io.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
for _, name in ipairs(ORDER) do
  io.stdout:flush()
  os.execute(("lua5.4 %s/hostile_model.lua %s"):format(here, name))
end
