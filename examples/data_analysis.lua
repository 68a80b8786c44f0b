-- The data-analysis example end to end: an assistant (a model) writes pandas
-- code, the user proxy runs it in the hardened Docker sandbox (the default)
-- and sends the real output back, until the assistant says TERMINATE.
--
-- With OPENAI_API_KEY set and AGENTBOX_DEMO_LIVE=1 it talks to your model
-- (OPENAI_BASE_URL / AGENTBOX_DEMO_MODEL to choose); otherwise a scripted
-- OpenAI-compatible server on 127.0.0.1 plays the model, so the demo runs
-- offline. Either way the code really runs and its output is real.
-- Run: make demo
local agentbox = require("agentbox")

-- the data goes into the executor's work_dir once it exists (a fresh private
-- directory agentbox creates for the sandbox and removes at close)
local SALES = [[
date,region,product,units,price
2026-01-05,north,widget,12,9.5
2026-01-05,south,widget,7,9.5
2026-01-12,north,gadget,3,24.0
2026-01-19,east,widget,20,9.0
2026-02-02,south,gadget,5,25.0
2026-02-09,north,widget,15,9.5
2026-02-16,east,gadget,8,23.5
2026-03-02,south,widget,11,9.0
2026-03-09,east,widget,18,9.0
2026-03-16,north,gadget,6,24.5
]]

local TASK = "sales.csv in the working directory holds our first-quarter sales. "
  .. "Which region earned the most revenue, and how did total revenue change month over month?"

local ANALYSIS = [[
I will load the data with pandas and compute revenue per region and per month.

```python
# filename: analysis.py
import pandas as pd

df = pd.read_csv("sales.csv", parse_dates=["date"])
df["revenue"] = df["units"] * df["price"]
by_region = df.groupby("region")["revenue"].sum().sort_values(ascending=False)
print("Revenue by region:")
print(by_region.to_string())
monthly = df.groupby(df["date"].dt.to_period("M"))["revenue"].sum()
print("\nRevenue by month:")
print(monthly.to_string())
print("\nMonth-over-month change (%):")
print((monthly.pct_change() * 100).round(1).dropna().to_string())
```]]

local REPORT = [[
The analysis ran. Now I will save a short report next to the data.

```sh
python3 analysis.py > report.txt && echo "report.txt written: $(wc -l < report.txt) lines"
```]]

local srv, llm_config
if os.getenv("AGENTBOX_DEMO_LIVE") == "1" and os.getenv("OPENAI_API_KEY") then
  llm_config = { config_list = { { model = os.getenv("AGENTBOX_DEMO_MODEL") or "gpt-4o-mini" } }, temperature = 0 }
  print(("model: %s at %s (your model: AGENTBOX_DEMO_LIVE=1)"):format(llm_config.config_list[1].model,
    os.getenv("OPENAI_BASE_URL") or "OpenAI"))
else
  print("model: a scripted OpenAI-compatible server on 127.0.0.1 (offline); for a real one: "
    .. "OPENAI_API_KEY=sk-... AGENTBOX_DEMO_LIVE=1 make demo (OPENAI_BASE_URL, AGENTBOX_DEMO_MODEL to choose)")
  local fake = require("spec.support.fake_openai")
  srv = fake.start{ models = { ["scripted-analyst"] = {
    { content = ANALYSIS, expect = { last_contains = "sales.csv" } },
    { content = REPORT, expect = { last_contains = "exitcode: 0 (execution succeeded)" } },
    { content = "East earned the most revenue; see the month-over-month figures above and report.txt.\nTERMINATE",
      expect = { last_contains = "report.txt written" } },
  } } }
  llm_config = { config_list = { { model = "scripted-analyst", api_key = "none", base_url = srv.base_url } } }
end

local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config }
local user_proxy = agentbox.UserProxyAgent{
  name = "user_proxy",
  human_input_mode = "NEVER",
  max_consecutive_auto_reply = 6,
  is_termination_msg = function(msg) return (msg.content or ""):find("TERMINATE", 1, true) ~= nil end,
  code_execution_config = { timeout = 60 },   -- Docker by default; work_dir: a fresh private one
}
local f = assert(io.open(user_proxy:code_executor().work_dir .. "/sales.csv", "w"))
f:write(SALES)
f:close()

print(("code runs in: %s"):format(user_proxy:use_docker() and "a hardened Docker container (" ..
  user_proxy:code_executor().image .. ")" or "local processes"))
local result = user_proxy:initiate_chat(assistant, { message = TASK })
print("summary: " .. result.summary)
print(("messages: %d, tokens: %d"):format(#result.chat_history,
  (result.cost.usage_including_cached_inference[llm_config.config_list[1].model] or { total_tokens = 0 }).total_tokens))
user_proxy:code_executor():close()
if srv then srv:stop() end
