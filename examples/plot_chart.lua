-- AutoGen's quick-start task, "Plot a chart of NVDA and TESLA stock price
-- change YTD", end to end: the assistant (a model) writes matplotlib code,
-- the user proxy runs it in the hardened Docker sandbox (the default), and
-- the chart comes back as a file: the execution result lists it in
-- output_files and the reply to the model names it ("Files: chart.png ...").
--
-- The sandbox has no network, so the prices come from a small CSV this
-- example writes (stock_prices.csv: daily closes of NVDA and TSLA). With
-- OPENAI_API_KEY set and AGENTBOX_DEMO_LIVE=1 it talks to your model
-- (OPENAI_BASE_URL / AGENTBOX_DEMO_MODEL to choose); otherwise a scripted
-- OpenAI-compatible server on 127.0.0.1 plays the model. Either way the
-- code really runs and chart.png is really drawn, in chart_workspace/.
-- Run: make demo-chart
local agentbox = require("agentbox")

local WORK_DIR = os.getenv("AGENTBOX_CHART_DIR") or "chart_workspace"

-- Closes on the first trading day of each week of 2026 up to the end of
-- March: made up, with the shape of a year where one rose and one fell.
local PRICES = { "date,NVDA,TSLA" }
do
  local nvda, tsla = { 136.2, 139.8, 142.1, 138.7, 145.3, 149.9, 147.2, 153.8, 158.4, 155.1, 161.7, 166.0, 163.2 },
                     { 248.5, 241.3, 236.9, 244.2, 231.8, 226.4, 229.9, 218.7, 212.3, 219.6, 208.1, 203.4, 206.8 }
  for i = 1, #nvda do
    local day = 5 + 7 * (i - 1)   -- Mondays from January 5th
    local month = day <= 31 and 1 or day <= 59 and 2 or 3
    local mday = day - (month == 1 and 0 or month == 2 and 31 or 59)
    PRICES[#PRICES + 1] = ("2026-%02d-%02d,%.1f,%.1f"):format(month, mday, nvda[i], tsla[i])
  end
end

local TASK = "Plot a chart of NVDA and TESLA stock price change YTD. "
  .. "The sandbox has no network: the daily closes are in stock_prices.csv in the working directory "
  .. "(columns date, NVDA, TSLA). Save the chart as chart.png."

local PLOT = [[
I will compute each stock's change since its first close of the year, in percent, and plot both.

```python
# filename: plot_ytd.py
import pandas as pd
import matplotlib.pyplot as plt

prices = pd.read_csv("stock_prices.csv", parse_dates=["date"], index_col="date")
ytd = (prices / prices.iloc[0] - 1) * 100

fig, ax = plt.subplots(figsize=(8, 4.5))
for ticker in ["NVDA", "TSLA"]:
    ax.plot(ytd.index, ytd[ticker], marker="o", label=ticker)
ax.axhline(0, color="grey", linewidth=0.8)
ax.set_title("NVDA vs TSLA: price change YTD (%)")
ax.set_ylabel("change since the first close (%)")
ax.legend()
ax.grid(True, alpha=0.3)
fig.autofmt_xdate()
plt.savefig("chart.png", dpi=100, bbox_inches="tight")
plt.show()

for ticker in ["NVDA", "TSLA"]:
    print(f"{ticker}: {ytd[ticker].iloc[-1]:+.1f}% YTD (last close {prices[ticker].iloc[-1]:.1f})")
```]]

local srv, llm_config
if os.getenv("AGENTBOX_DEMO_LIVE") == "1" and os.getenv("OPENAI_API_KEY") then
  llm_config = { config_list = { { model = os.getenv("AGENTBOX_DEMO_MODEL") or "gpt-4o-mini" } }, temperature = 0 }
  print(("model: %s at %s (your model: AGENTBOX_DEMO_LIVE=1)"):format(llm_config.config_list[1].model,
    os.getenv("OPENAI_BASE_URL") or "OpenAI"))
else
  print("model: a scripted OpenAI-compatible server on 127.0.0.1 (offline); for a real one: "
    .. "OPENAI_API_KEY=sk-... AGENTBOX_DEMO_LIVE=1 make demo-chart")
  local fake = require("spec.support.fake_openai")
  srv = fake.start{ models = { ["scripted-plotter"] = {
    { content = PLOT, expect = { last_contains = "stock_prices.csv" } },
    -- the model only answers once the reply names the chart the code drew
    { content = "The chart is saved as chart.png: NVDA rose over the year so far while TSLA fell.\nTERMINATE",
      expect = { last_contains = "\nFiles: chart.png (" } },
  } } }
  -- cache_seed = false: the script is the model (a real one's replies are cached under .cache/41)
  llm_config = { config_list = { { model = "scripted-plotter", api_key = "none", base_url = srv.base_url } },
                 cache_seed = false }
end

local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config }
local user_proxy = agentbox.UserProxyAgent{
  name = "user_proxy",
  human_input_mode = "NEVER",
  max_consecutive_auto_reply = 6,
  is_termination_msg = function(msg) return (msg.content or ""):find("TERMINATE", 1, true) ~= nil end,
  -- Docker by default (AGENTBOX_DEMO_DOCKER=0: local processes); work_dir stays for the chart
  code_execution_config = { work_dir = WORK_DIR, timeout = 60,
                            use_docker = os.getenv("AGENTBOX_DEMO_DOCKER") ~= "0" },
}
local ex = user_proxy:code_executor()
-- the sandbox can write in work_dir, so an earlier run's code may have left a
-- link at stock_prices.csv: the workspace accessor never follows one (io.open
-- would write through it, as root when root runs this)
local ws = assert(require("agentbox.core").workspace(ex.work_dir))
assert(ws:write("stock_prices.csv", table.concat(PRICES, "\n") .. "\n"))
ws:close()

print(("code runs in: %s"):format(user_proxy:use_docker() and "a hardened Docker container (" ..
  ex.image .. ")" or "local processes"))
local result = user_proxy:initiate_chat(assistant, { message = TASK })
print("summary: " .. result.summary)
local chart = ex.work_dir .. "/chart.png"
local png = io.open(chart, "rb")
local head = png and png:read(8)
if png then png:close() end
ex:close()
if srv then srv:stop() end
if head ~= "\137PNG\r\n\26\n" then
  io.stderr:write("plot_chart: no chart.png was drawn in ", WORK_DIR, "\n")
  os.exit(1)
end
print("chart: " .. chart)
