-- AutoGen's data-analysis example: an analyst agent (a model) writes pandas
-- code, the executor agent runs it in the hardened Docker sandbox (the
-- default) and sends the real output back, until the analyst says TERMINATE.
--
-- With AGENTBOX_DEMO_LIVE=1, OPENAI_BASE_URL and OPENAI_API_KEY it talks to
-- your model (AGENTBOX_DEMO_MODEL to choose it); otherwise a scripted
-- OpenAI-compatible server on 127.0.0.1 (spec/support/analyst_model.py)
-- plays the model, so the demo runs offline. Either way the code really runs
-- and every figure in the report comes from running it.
--
-- The data goes to ./data_workspace/sales.csv (the executor's work_dir); the
-- demo runs again over it as often as you like.
-- Run: make demo   (AGENTBOX_USE_DOCKER=0 make demo: on this host, no sandbox)
local agentbox = require("agentbox")
local core = require("agentbox.core")

local WORK_DIR = "data_workspace"

local SALES = [[
date,product,region,revenue,units
2026-01-05,Widget Pro,North,12500,125
2026-01-12,Gadget Lite,South,4200,84
2026-01-19,Widget Pro,East,8900,89
2026-02-03,Widget Pro,North,14200,142
2026-02-11,Gadget Lite,West,3800,76
2026-02-18,Widget Pro,South,11300,113
2026-03-02,Gadget Lite,North,5100,102
2026-03-09,Widget Pro,East,9600,96
2026-03-16,Widget Pro,West,16800,168
2026-03-23,Gadget Lite,South,4700,94
]]

local SYSTEM_MESSAGE = [[
You are a data analyst. The file sales.csv in your working directory holds sales records.
Solve the task with Python code in one ```python block; the user runs it and sends you its output.
Work in this order:
1. Read sales.csv with pandas.
2. Check the shape, the columns and their data types.
3. Compute total revenue by product.
4. Compute total revenue by region.
5. Find the month with the highest revenue.
6. Print a clean summary report.
When the report has been printed, summarise it from the output you were sent, then say TERMINATE.]]

local TASK = "Please analyse the sales data and produce a summary report."

local live = os.getenv("AGENTBOX_DEMO_LIVE") == "1" and os.getenv("OPENAI_API_KEY")
local srv, llm_config
if live then
  llm_config = { config_list = { { model = os.getenv("AGENTBOX_DEMO_MODEL") or "gpt-4o-mini" } }, temperature = 0 }
  print(("model: %s at %s (AGENTBOX_DEMO_LIVE=1)"):format(llm_config.config_list[1].model,
    os.getenv("OPENAI_BASE_URL") or "OpenAI"))
else
  print("model: scripted (a fake OpenAI-compatible server on 127.0.0.1, offline); for a real one: "
    .. "AGENTBOX_DEMO_LIVE=1 OPENAI_BASE_URL=https://... OPENAI_API_KEY=sk-... make demo (AGENTBOX_DEMO_MODEL to choose)")
  local fake = require("spec.support.fake_openai")
  srv = fake.start({}, { program = fake.script_path:gsub("fake_openai%.py$", "analyst_model.py") })
  -- cache_seed = false: the script is the model, so a re-run exercises it
  -- (a real model's replies are cached under .cache/41, as AutoGen does)
  llm_config = { config_list = { { model = "scripted-analyst", api_key = "none", base_url = srv.base_url } },
                 cache_seed = false }
end

local analyst = agentbox.AssistantAgent{ name = "analyst", system_message = SYSTEM_MESSAGE, llm_config = llm_config }
local executor = agentbox.UserProxyAgent{
  name = "executor",
  human_input_mode = "NEVER",
  max_consecutive_auto_reply = 8,
  is_termination_msg = function(msg) return (msg.content or ""):find("TERMINATE", 1, true) ~= nil end,
  -- Docker unless AGENTBOX_USE_DOCKER says otherwise
  code_execution_config = { work_dir = WORK_DIR, timeout = 30, last_n_messages = 3 },
}

-- The data is written once the executor has opened work_dir, for two
-- reasons. Made by agentbox, the directory belongs to the sandbox user, so
-- the next run finds it usable; made by this script as root, the
-- DockerExecutor would refuse it (root's directory is not handed to the
-- code). And the sandbox can write there, so a previous run's code may have
-- left a link at sales.csv: the workspace accessor replaces the file and
-- never follows a link, where io.open would write through it as root.
local ex = executor:code_executor()
local ws = assert(core.workspace(ex.work_dir))
assert(ws:write("sales.csv", SALES))
ws:close()

print(("code runs in: %s; work_dir %s"):format(executor:use_docker() and
  ("a hardened Docker container (" .. ex.image .. ")") or "local processes, without a sandbox", ex.work_dir))
local result = executor:initiate_chat(analyst, { message = TASK })
print("summary: " .. result.summary)
print(("messages: %d, tokens: %d"):format(#result.chat_history,
  (result.cost.usage_including_cached_inference[llm_config.config_list[1].model] or { total_tokens = 0 }).total_tokens))

-- what the model was sent, for spec/demo_spec.lua
local record = os.getenv("AGENTBOX_DEMO_RECORD")
if srv and record then
  local f = assert(io.open(record, "w"))
  f:write(require("cjson").encode(srv:requests()))
  f:close()
end
ex:close()
if srv then srv:stop() end
if result.error then
  io.stderr:write("demo: the chat failed: ", tostring(result.error), "\n")
  os.exit(1)
end
