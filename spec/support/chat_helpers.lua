-- Small builders the agent, chat and tools specs share.
local agentbox = require("agentbox")
local M = {}

-- An agent that answers every message with `reply` (its default_auto_reply).
function M.bot(name, reply, extra)
  local o = { name = name, human_input_mode = "NEVER", default_auto_reply = reply }
  for k, v in pairs(extra or {}) do o[k] = v end
  return agentbox.ConversableAgent(o)
end

function M.contents(history)
  local out = {}
  for i, m in ipairs(history) do out[i] = m.content end
  return out
end

-- llm_config for the scripted server (a dead port when there is none).
-- No response cache: a script answers each request once, in order, and
-- an earlier spec's (or run's) cached reply must not answer for it.
function M.llm_config(srv, model)
  return { config_list = { { model = model or "m", api_key = "sk-test",
                             base_url = srv and srv.base_url or "http://127.0.0.1:9/v1" } },
           max_retries = 0, timeout = 20, cache_seed = false }
end

return M
