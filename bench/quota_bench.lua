-- bench/quota_bench.lua: what the workspace quota costs a warm block.
-- An `echo hi` block on a started executor, with the quota off and on (the
-- default 1 GiB / 100,000 files), in an empty work_dir and in one holding
-- 10,000 files; the four variants take turns so load drifts hit them alike.
--
--   lua5.4 bench/quota_bench.lua local|docker [N]
local agentbox = require("agentbox")
local core = require("agentbox.core")
local B = require("bench.benchlib")

local kind, n = arg[1] or "local", tonumber(arg[2] or "") or 100
local base = (os.getenv("TMPDIR") or "/tmp") .. "/agentbox-quota-bench-" .. kind
assert(os.execute("rm -rf '" .. base .. "'"))
assert(core.mkdir_p(base))

local function fill(dir)
  -- 10,000 one-byte files in 10 directories
  local f = assert(io.popen(("cd '%s' && python3 -c \"import os\nfor d in range(10):\n os.mkdir('d%%d' %% d)\n"
    .. " for i in range(1000):\n  open('d%%d/f%%d' %% (d, i), 'w').write('x')\""):format(dir)))
  f:close()
end

local function new(dir, quota)
  assert(core.mkdir_p(dir))
  local opts = { work_dir = dir, timeout = 30, quota = quota }
  if kind == "docker" then
    opts.image = os.getenv("AGENTBOX_IMAGE") or "agentbox/sandbox:latest"
    return agentbox.DockerExecutor(opts)
  end
  return agentbox.LocalExecutor(opts)
end

local variants = {}
for _, files in ipairs({ 0, 10000 }) do
  for _, on in ipairs({ false, true }) do
    local dir = ("%s/%s-%d"):format(base, on and "on" or "off", files)
    local quota = nil   -- the default
    if not on then quota = false end
    local ex = new(dir, quota)
    if files > 0 then fill(dir) end
    if ex.start then ex:start() end
    variants[#variants + 1] = { name = ("quota %s, %d files"):format(on and "on " or "off", files), ex = ex, t = {} }
  end
end

local block = { { lang = "sh", code = "echo hi" } }
for _, v in ipairs(variants) do   -- warm-up
  for _ = 1, 3 do assert(v.ex:execute(block).exit_code == 0) end
end
for _ = 1, n do
  for _, v in ipairs(variants) do
    local t0 = core.now()
    local r = v.ex:execute(block)
    v.t[#v.t + 1] = (core.now() - t0) * 1000
    assert(r.exit_code == 0 and r.output == "hi\n", r.output)
  end
end

local f = io.popen("uptime")
print(kind .. ", " .. n .. " runs each; " .. f:read("l"):gsub("^%s+", ""))
f:close()
print(B.row({ "variant", "median ms", "p95 ms" }))
print(B.row({ "---", "---", "---" }))
for _, v in ipairs(variants) do
  local s = B.stats(v.t)
  print(B.row({ v.name, ("%.2f"):format(s.median), ("%.2f"):format(s.p95) }))
  v.ex:close()
end
os.execute("rm -rf '" .. base .. "'")
