-- AutoGen's response cache (cache_seed), against the scripted server on
-- 127.0.0.1: what it answers without a request, what misses, its files'
-- privacy, two processes sharing it, and the usage split.
local llm = require("agentbox.llm")
local agentbox = require("agentbox")
local core = require("agentbox.core")
local cjson = require("cjson")
local fake = require("spec.support.fake_openai")
local H = require("spec.support.helpers")

local MSGS = { { role = "system", content = "sys" }, { role = "user", content = "hi" } }

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- names in dir (not . and ..)
local function ls(dir)
  local out = {}
  for name in sh("ls -A " .. q(dir) .. " 2>/dev/null"):gmatch("[^\n]+") do out[#out + 1] = name end
  table.sort(out)
  return out
end

local function mode(path) return sh("stat -c %a " .. q(path)) end

describe("llm response cache (cache_seed)", function()
  local srv, root
  before_each(function() root = H.tmpdir("llmcache") end)
  after_each(function()
    if srv then srv:stop() srv = nil end
    H.rm_rf(root)
  end)

  local function client(extra, entry)
    local e = { model = "m", api_key = "sk-test", base_url = srv.base_url }
    for k, v in pairs(entry or {}) do e[k] = v end
    local cfg = { config_list = { e }, timeout = 5, max_retries = 0, cache_path_root = root }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    if cfg.cache_seed == false then cfg.cache_path_root = nil end
    return llm.new(cfg)
  end

  it("answers a second identical chat from the cache with no request, and a changed message misses", function()
    srv = fake.start{ models = { m = {
      { content = "I will compute it.\n```python\nprint(6 * 7)\n```" },
      { content = "The answer is 42.\nTERMINATE", expect = { last_contains = "Code output: 42" } },
      { content = "A fresh answer.\nTERMINATE", expect = { last_equals = "What is 6*8?" } },
    } } }
    local work = H.tmpdir("llmcache-work")
    local function chat(message)
      local llm_config = { config_list = { { model = "m", api_key = "sk-test", base_url = srv.base_url } },
                           max_retries = 0, timeout = 5, cache_path_root = root }
      local assistant = agentbox.AssistantAgent{ name = "assistant", llm_config = llm_config }
      local user = agentbox.UserProxyAgent{ name = "user", human_input_mode = "NEVER",
        is_termination_msg = function(m) return (m.content or ""):find("TERMINATE", 1, true) ~= nil end,
        code_execution_config = { work_dir = work, use_docker = false } }
      return user:initiate_chat(assistant, { message = message, silent = true })
    end
    local ok, err = pcall(function()
      local r1 = chat("What is 6*7?")
      assert.is_nil(r1.error)
      assert.equal(2, #srv:requests())
      local r2 = chat("What is 6*7?")
      assert.is_nil(r2.error)
      assert.equal(2, #srv:requests())        -- not one more request
      assert.same(r1.summary, r2.summary)
      assert.equal(#r1.chat_history, #r2.chat_history)
      -- the cost split: the second chat's replies cost no request
      local inc1, exc1 = r1.cost.usage_including_cached_inference, r1.cost.usage_excluding_cached_inference
      local inc2, exc2 = r2.cost.usage_including_cached_inference, r2.cost.usage_excluding_cached_inference
      assert.same(inc1, exc1)
      assert.is_true(inc1.m.total_tokens > 0)
      assert.same(inc1, inc2)
      assert.same({ total_cost = 0 }, exc2)
      local r3 = chat("What is 6*8?")
      assert.is_nil(r3.error)
      assert.equal(3, #srv:requests())
      assert.equal("A fresh answer.\n", r3.summary)
    end)
    H.rm_rf(work)
    assert(ok, err)
  end)

  it("keeps a streamed reply as the assembled one and answers it again, streamed or not, without a request", function()
    srv = fake.start{ models = { m = { { content = "streamed, then kept", piece = 3 } } } }
    local msgs = { { role = "user", content = "stream it" } }
    local seen = {}
    local c1 = client{ stream = true }
    local m1 = assert(c1:create{ messages = msgs, on_token = function(t) seen[#seen + 1] = t end })
    assert.equal("streamed, then kept", m1.content)
    assert.is_true(#seen > 1)                      -- it did stream
    assert.equal(1, #srv:requests())
    -- the same request again: from the cache; on_token gets the whole text once
    for _, stream in ipairs({ true, false }) do
      local got = {}
      local c2 = client{ stream = stream }
      local m2 = assert(c2:create{ messages = msgs, on_token = function(t) got[#got + 1] = t end })
      assert.equal("streamed, then kept", m2.content)
      assert.same({ "streamed, then kept" }, got)
      assert.equal(1, #srv:requests())
    end
  end)

  it("keys by every request field, the model and the tools, not by the endpoint or the key", function()
    srv = fake.start{ rules = { { content = "n={{n}}" } } }
    local tools = { { type = "function", ["function"] = { name = "f", description = "d",
                                                          parameters = { type = "object", properties = {} } } } }
    client():create{ messages = MSGS }
    client({}, { api_key = "sk-other" }):create{ messages = MSGS }     -- same request: a hit
    assert.equal(1, #srv:requests())
    client({ temperature = 0 }):create{ messages = MSGS }
    client({ temperature = 0.5 }):create{ messages = MSGS }
    client({}, { model = "m2" }):create{ messages = MSGS }
    client():create{ messages = MSGS, tools = tools }
    client():create{ messages = MSGS, extra = { seed = 1 } }
    client():create{ messages = { MSGS[1], { role = "user", content = "hi", name = "bob" } } }
    assert.equal(7, #srv:requests())
    -- the same fields in another order, in another process: still a hit
    local src = ([[
      local c = require("agentbox.llm").new{ temperature = 0.5, max_retries = 0, cache_path_root = %q,
        config_list = { { api_key = "k", base_url = %q, model = "m" } } }
      local msg = c:create{ messages = { { content = "sys", role = "system" }, { content = "hi", role = "user" } } }
      io.write(msg.content, " hits=", c.cache_hits)]]):format(root, srv.base_url)
    local r = H.lua(src)
    assert.equal("n=2 hits=1", r.stdout, r.stderr)
    assert.equal(7, #srv:requests())
  end)

  it("replays a reply with tool calls as it came", function()
    srv = fake.start{ models = { m = { { tool_calls = { { id = "c1", name = "f", arguments = "{\"x\":1}" } } } } } }
    local a = client():create{ messages = MSGS }
    local b = client():create{ messages = MSGS }
    assert.equal(1, #srv:requests())
    assert.same(a, b)
    assert.equal("c1", b.tool_calls[1].id)
  end)

  it("never caches an error", function()
    srv = fake.start{ models = { m = { { status = 500 }, { status = 400 }, { content = "ok" } } } }
    assert.is_nil(client():create{ messages = MSGS })
    assert.is_nil(client():create{ messages = MSGS })
    assert.same({}, ls(root .. "/41"))
    assert.equal("ok", client():create{ messages = MSGS }.content)
    assert.equal(3, #srv:requests())
  end)

  it("is off with cache_seed = false, and a seed is its own directory", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    client({ cache_seed = false }):create{ messages = MSGS }
    client({ cache_seed = false }):create{ messages = MSGS }
    assert.equal(2, #srv:requests())
    client({ cache_seed = 7 }):create{ messages = MSGS }
    client({ cache_seed = "exp-1" }):create{ messages = MSGS }
    client({ cache_seed = 7 }):create{ messages = MSGS }
    assert.equal(4, #srv:requests())
    assert.same({ "7", "exp-1" }, ls(root))
  end)

  it("defaults to AutoGen's seed 41 under .cache in the current directory", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    local src = ([[
      local c = require("agentbox.llm").new{ config_list = { { model = "m", api_key = "k", base_url = %q } },
                                              max_retries = 0 }
      for _ = 1, 2 do c:create{ messages = { { role = "user", content = "hi" } } } end
      io.write("hits=", c.cache_hits)]]):format(srv.base_url)
    local r = H.run({ "lua5.4", "-e", src }, { cwd = root, env = H.lua_env() })
    assert.equal("hits=1", r.stdout, r.stderr)
    assert.equal(1, #srv:requests())
    assert.equal(1, #ls(root .. "/.cache/41"))
    assert.matches("^%x+%.json$", ls(root .. "/.cache/41")[1])
  end)

  it("keeps its directory 0700 and files 0600 whatever the umask, and narrows a wider directory of the user's", function()
    srv = fake.start{ rules = { { content = "ok" } } }
    local src = ([[
      local c = require("agentbox.llm").new{ config_list = { { model = "m", api_key = "k", base_url = %q } },
                                              max_retries = 0, cache_path_root = %q }
      local msg, err = c:create{ messages = { { role = "user", content = "hi" } } }
      local f = assert(io.open(%q, "w")) f:close()    -- what a plain file gets under this umask
      io.write(msg and msg.content or tostring(err))]]):format(srv.base_url, root .. "/a/b", root .. "/plain")
    local r = H.run({ "sh", "-c", "umask 000; exec lua5.4 -e " .. q(src) }, { env = H.lua_env() })
    assert.equal("ok", r.stdout, r.stderr)
    assert.equal("666", mode(root .. "/plain"))
    for _, d in ipairs({ "/a", "/a/b", "/a/b/41" }) do assert.equal("700", mode(root .. d), d) end
    local files = ls(root .. "/a/b/41")
    assert.equal(1, #files)
    assert.equal("600", mode(root .. "/a/b/41/" .. files[1]))
    -- AutoGen's diskcache left .cache/41 at 0755: narrowed when used
    assert(core.mkdir_p(root .. "/wide/41", 493))     -- 0755
    os.execute("chmod 755 " .. q(root .. "/wide/41"))
    assert.equal("755", mode(root .. "/wide/41"))
    client({ cache_path_root = root .. "/wide" }):create{ messages = MSGS }
    assert.equal("700", mode(root .. "/wide/41"))
  end)

  it("refuses a directory another user owns (a planted cache) before sending anything", function()
    if core.geteuid() ~= 0 then
      pending("needs root to make a directory another user owns")
      return
    end
    srv = fake.start{ rules = { { content = "from server" } } }
    assert.equal("from server", client():create{ messages = MSGS }.content)
    os.execute("chown -R 65534 " .. q(root .. "/41"))
    local msg, err, code = client():create{ messages = MSGS }
    assert.is_nil(msg)
    assert.equal("io", code)
    assert.matches("owned by another user", err)
    assert.matches("cache_seed = false", err)
    assert.equal(1, #srv:requests())
  end)

  it("takes a corrupt, truncated or foreign entry as a miss and replaces it; a FIFO does not hang it", function()
    srv = fake.start{ rules = { { content = "fresh" } } }
    client():create{ messages = MSGS }
    local name = ls(root .. "/41")[1]
    local path = root .. "/41/" .. name
    local good = H.read(path)
    local bad = { good:sub(1, #good // 2), "", "not json", '{"format":"other","response":{}}',
                  '{"format":"agentbox.llm_cache.v1","response":{"choices":[]}}', "\0\1\2" }
    for i, data in ipairs(bad) do
      H.write(path, data)
      local msg, err = client():create{ messages = MSGS }
      assert.equal("fresh", msg and msg.content, err)
      assert.equal(1 + i, #srv:requests())
      assert.same(cjson.decode(good).format, cjson.decode(H.read(path)).format)    -- replaced
    end
    os.remove(path)
    assert(os.execute("mkfifo " .. q(path)))
    local t0 = core.now()
    assert.equal("fresh", client():create{ messages = MSGS }.content)
    assert.is_true(core.now() - t0 < 3)
    assert.equal("600", mode(path))                       -- the FIFO was replaced by an entry
    os.remove(path)
    assert(core.mkdir_p(path))                            -- a directory cannot be replaced: the reply still comes
    assert.equal("fresh", client():create{ messages = MSGS }.content)
  end)

  it("leaves only valid entries when two processes fill one cache at once", function()
    -- large replies, so a write is many pages and a reader can meet a half-written file
    srv = fake.start{ rules = { { content_gen = { head = "{{last}}:", unit = "0123456789abcdef", count = 40000 } } } }
    local N, ROUNDS = 16, 3
    local src = ([[
      local agentbox = require("agentbox")
      local llm = require("agentbox.llm")
      local dir, order = %q, os.getenv("ORDER")
      local bad, hits = 0, 0
      for round = 1, %d do
        for j = 1, %d do
          local k = order == "up" and j or (%d + 1 - j)
          local c = llm.new{ config_list = { { model = "m", api_key = "k", base_url = %q } },
                             max_retries = 0, timeout = 20, cache_path_root = dir }
          local msg, err = c:create{ messages = { { role = "user", content = "q" .. k } } }
          if not msg or msg.content:sub(1, #("q" .. k) + 1) ~= "q" .. k .. ":" or #msg.content ~= 640000 + #("q" .. k) + 1 then
            bad = bad + 1
            io.stderr:write(tostring(err), "\n")
          end
          if round > 1 then hits = hits + c.cache_hits end
        end
      end
      io.write("bad=", bad, " hits=", hits)]]):format(root, ROUNDS, N, N, srv.base_url)
    -- a third process reads every entry over and over while the two write:
    -- a file it finds must be a whole entry, never one being written
    local stop = root .. "/stop"
    local watch = ([[
      local core, cache = require("agentbox.core"), require("agentbox.llm_cache")
      local names = {}
      for k = 1, %d do names[k] = cache.key({ model = "m" }, { { role = "user", content = "q" .. k } }) .. ".json" end
      local seen, torn, t0 = 0, 0, core.now()
      while not io.open(%q) and core.now() - t0 < 100 do
        for _, name in ipairs(names) do
          local data = core.private_read(%q, name)
          if data then            -- whole: the entry's start and end (decoding would slow the watch)
            if data:sub(1, 34) == '{"format":"agentbox.llm_cache.v1",' and data:sub(-3) == "}}\n" then seen = seen + 1
            else torn = torn + 1 end
          end
        end
      end
      io.write("torn=", torn, " seen>0=", tostring(seen > 0))]]):format(N, stop, root .. "/41")
    local watcher = assert(core.spawn{ argv = { "lua5.4", "-e", watch }, env = H.lua_env(), timeout = 120 })
    local procs = {}
    for i, order in ipairs({ "up", "down" }) do
      procs[i] = assert(core.spawn{ argv = { "lua5.4", "-e", src }, env = H.lua_env{ ORDER = order }, timeout = 120 })
    end
    local results = {}
    for i, p in ipairs(procs) do
      while not p:done() do core.step(-1) end
      results[i] = p:result()
      p:close()
    end
    H.write(stop, "")
    while not watcher:done() do core.step(-1) end
    local w = watcher:result()
    watcher:close()
    os.remove(stop)
    assert.equal("torn=0 seen>0=true", w.stdout, w.stderr)
    for _, r in ipairs(results) do
      -- rounds after the first are answered from the cache: every entry read was whole
      assert.equal(("bad=0 hits=%d"):format(N * (ROUNDS - 1)), r.stdout, r.stderr)
    end
    assert.is_true(#srv:requests() <= 2 * N, "requests: " .. #srv:requests())
    local files = ls(root .. "/41")
    assert.equal(N, #files, table.concat(files, " "))
    for _, name in ipairs(files) do
      assert.matches("^%x+%.json$", name)                 -- no temporary file left
      local doc = cjson.decode(H.read(root .. "/41/" .. name))
      assert.equal("agentbox.llm_cache.v1", doc.format)
      assert.matches("^q%d+:", doc.response.choices[1].message.content)
    end
  end)

  it("fills cost from price, including and excluding cached inference as AutoGen does", function()
    srv = fake.start{ rules = { { content = "a reply of some length" } } }
    local c = client({}, { price = { 1.5, 3 } })
    c:create{ messages = MSGS }
    c:create{ messages = MSGS }                           -- from the cache
    local u = c:usage()
    local inc, exc = u.usage_including_cached_inference, u.usage_excluding_cached_inference
    local m1 = exc.m
    local one = (m1.prompt_tokens * 1.5 + m1.completion_tokens * 3) / 1000
    assert.is_true(one > 0)
    assert.near(one, m1.cost, 1e-12)
    assert.near(one, exc.total_cost, 1e-12)
    assert.near(2 * one, inc.m.cost, 1e-12)
    assert.near(2 * one, inc.total_cost, 1e-12)
    assert.equal(2 * m1.total_tokens, inc.m.total_tokens)
    -- one number: the same price for both, as AutoGen takes it
    local d = client({ cache_seed = false, cache_path_root = nil }, { price = 2 })
    d:create{ messages = MSGS }
    local du = d:usage().usage_excluding_cached_inference.m
    assert.near((du.prompt_tokens + du.completion_tokens) * 2 / 1000, du.cost, 1e-12)
    -- no price: AutoGen's 0 for a model it has no price for
    local e = client({ cache_seed = false })
    e:create{ messages = MSGS }
    assert.equal(0, e:usage().usage_including_cached_inference.total_cost)
  end)

  it("refuses a bad cache_seed or cache_path_root by name", function()
    local function refused(cfg, pattern)
      cfg.config_list = { { model = "m" } }
      local ok, err = pcall(llm.new, cfg)
      assert.is_false(ok)
      assert.matches(pattern, err)
    end
    refused({ cache_seed = "../../etc" }, "cache_seed must be an integer")
    refused({ cache_seed = true }, "cache_seed must be an integer")
    refused({ cache_seed = 4.5 }, "cache_seed must be an integer")
    refused({ cache_seed = "" }, "cache_seed must be an integer")
    refused({ cache_path_root = "" }, "cache_path_root must be a directory path")
    refused({ cache_path_root = 3 }, "cache_path_root must be a directory path")
    refused({ cache_seed = false, cache_path_root = "/tmp/x" }, "cache_seed = false turns the cache off")
  end)
end)
