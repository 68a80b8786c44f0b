-- A script for build/host (examples/host/host.c) used by spec/embed_spec.lua:
-- each lua_State runs two local chats against its own scripted server.
local agentbox = require("agentbox")
local fake = require("spec.support.fake_openai")
local index = HOST_STATE_INDEX or 0   -- set by the host for each state (.luacheckrc)
local srv, tasks, dir = nil, {}, nil

local M = {}
function M.start()
  srv = fake.start{ rules = {
    { when_last_contains = "exitcode: 0", content = "{{last}}\nTERMINATE" },
    { when_last_role = "user", content = "```python\nprint({{last}})\n```" },
  } }
  dir = ("/tmp/agentbox-embed-%d-%d"):format(index, math.floor(require("agentbox.core").now() * 1e6))
  for i = 1, 2 do
    tasks[i] = agentbox.spawn(function()
      local ex = agentbox.LocalExecutor{ work_dir = dir .. "/" .. i, timeout = 20 }
      local a = agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { {
        model = "m", api_key = "none", base_url = srv.base_url } }, cache_seed = false } }
      local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER",
        is_termination_msg = function(m) return (m.content or ""):find("TERMINATE", 1, true) ~= nil end,
        code_execution_config = { executor = ex } }
      return u:initiate_chat(a, { message = ("%d + %d"):format(index * 100, i), silent = true }).summary
    end)
  end
end
function M.ok()
  for i = 1, 2 do
    local s = tasks[i]:result()
    if not (s and s:find(tostring(index * 100 + i), 1, true)) then return false end
  end
  return true
end
function M.report()
  srv:stop()
  os.execute("rm -rf '" .. dir .. "'")
  local out = {}
  for i = 1, 2 do out[i] = tostring((tasks[i]:result())):gsub("%s+", " ") end
  return ("state %d: chats finished: %s | %s"):format(index, out[1], out[2])
end
return M
