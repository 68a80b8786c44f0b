-- A script for build/host (examples/host/host.c) used by spec/embed_spec.lua:
-- one streamed chat (a long reply in small events, with a pause mid-stream)
-- stepped by the host's frame loop, and a task counting frames meanwhile.
local agentbox = require("agentbox")
local fake = require("spec.support.fake_openai")
local TEXT = ("streamed through agentbox_step. "):rep(2000)
local srv, chat, ticks, tokens, ticks_at_first = nil, nil, 0, {}, nil

local M = {}
function M.start()
  srv = fake.start{ models = { m = { { content = TEXT, piece = 8, pause_after = 20, pause = 0.3 } } } }
  local a = agentbox.AssistantAgent{ name = "a", llm_config = { config_list = { {
    model = "m", api_key = "none", base_url = srv.base_url } }, stream = true, max_retries = 0, cache_seed = false },
    on_token = function(text)
      ticks_at_first = ticks_at_first or ticks
      tokens[#tokens + 1] = text
    end }
  local u = agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = false }
  chat = agentbox.spawn(function()
    return u:initiate_chat(a, { message = "hi", max_turns = 1, silent = true }).summary
  end)
  agentbox.spawn(function()
    while not chat:done() do
      ticks = ticks + 1
      agentbox.sleep(0)
    end
  end)
end
function M.chat() return chat end
function M.ok()
  return chat:result() == TEXT and table.concat(tokens) == TEXT
end
function M.report()
  srv:stop()
  return ("streamed: %s; %d tokens; ticks of another task during the stream: %d"):format(
    M.ok() and "whole reply" or "WRONG reply", #tokens, ticks - (ticks_at_first or ticks))
end
return M
