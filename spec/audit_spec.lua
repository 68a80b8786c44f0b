-- The audit log (issue 10): the executor option `audit` records each block
-- that runs, as JSON Lines written by the host (or records handed to a
-- function). Read back here for every executor kind: what ran (sha256 of the
-- code file on disk, by sha256sum), where (the container, or the local
-- sandbox's settings), under which limits, and how it ended (exit code,
-- timeout, quota, OOM, output kept and dropped). Fail closed: a log that
-- cannot be written runs nothing.
local cjson = require("cjson.safe")
local core = require("agentbox.core")
local C = require("spec.support.contract")
local H = require("spec.support.helpers")

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

-- every line of the log, decoded; a line that does not parse fails the case
local function read_log(path)
  local records = {}
  for line in H.read(path):gmatch("([^\n]*)\n") do
    local rec, err = cjson.decode(line)
    assert(type(rec) == "table", ("line %d does not parse (%s): %s"):format(#records + 1, tostring(err), line))
    records[#records + 1] = rec
  end
  return records
end

local function ends(records)
  local out = {}
  for _, r in ipairs(records) do
    if r.event == "end" then out[#out + 1] = r end
  end
  return out
end

local function sha256sum(path)
  local r = H.run({ "sha256sum", path })
  assert.equal(0, r.exit_code, r.output)
  return r.stdout:match("^(%x+)")
end

C.each("audit log", function(E)
  local function log_path() return E.tmpdir("audit") .. "/audit.jsonl" end

  E.it("records a start and an end per block: code by sha256, outcome, sandbox and limits", function()
    local path = log_path()
    local ex = E.new{ audit = path }
    local blocks = { { lang = "python", code = "print('hello')" },
                     { lang = "sh", code = "echo world; exit 3" },
                     { lang = "sh", code = "echo never" } }
    local t0 = os.time()
    local r = ex:execute(blocks)
    assert.equal(3, r.exit_code, r.output)
    local records = read_log(path)
    assert.equal(4, #records)   -- the third block never ran: no record
    for i, rec in ipairs(records) do
      assert.equal(i % 2 == 1 and "start" or "end", rec.event)
      assert.equal(E.name, rec.executor)
      assert.matches(ISO, rec.time)
      -- UTC, now: ISO-8601 strings order as the times do
      local sec = rec.time:sub(1, 19)
      assert.is_true(sec >= os.date("!%Y-%m-%dT%H:%M:%S", t0 - 1) and sec <= os.date("!%Y-%m-%dT%H:%M:%S", os.time() + 1),
                     rec.time)
      assert.equal(ex.work_dir, rec.work_dir)
      assert.equal(10, rec.limits.timeout)
      assert.equal(40, rec.limits.total_timeout)
      assert.equal(1048576, rec.limits.max_output)
      assert.same({ bytes = 1 << 30, files = 100000 }, rec.limits.quota)
      if E.docker then
        -- fresh: the call's container, gone after it (ex.container_id is nil)
        if E.fresh then assert.matches("^%x+$", rec.sandbox.container_id)
        else assert.equal(ex.container_id, rec.sandbox.container_id) end
        assert.equal(C.IMAGE, rec.sandbox.image)
        assert.matches("^sha256:%x+$", rec.sandbox.image_id)
        assert.equal("none", rec.sandbox.network)
        assert.is_true(rec.sandbox.uid_drop)
        assert.not_matches("^0:", rec.sandbox.user)
        assert.equal(512 * 1024 * 1024, rec.limits.memory)
        assert.equal(256, rec.limits.pids_limit)
        assert.equal(1, rec.limits.cpus)
      else
        assert.is_true(rec.sandbox.seccomp)
        assert.is_false(rec.sandbox.uid_drop)
        assert.equal(core.geteuid(), rec.sandbox.uid)
        assert.equal(10, rec.sandbox.nice)
      end
    end
    local e = ends(records)
    assert.equal(r.code_file, ex.work_dir .. "/" .. e[1].code_file)
    for i, rec in ipairs(e) do
      assert.equal(records[2 * i - 1].sha256, rec.sha256)
      assert.equal(sha256sum(ex.work_dir .. "/" .. rec.code_file), rec.sha256)
      assert.equal(blocks[i].lang, rec.language)
      assert.is_false(rec.timed_out)
      assert.is_false(rec.quota_exceeded)
      assert.is_false(rec.oom)
      assert.is_true(rec.duration > 0 and rec.duration < 10, tostring(rec.duration))
      assert.equal(0, rec.output_dropped)
    end
    assert.equal(0, e[1].exit_code)
    assert.equal(#"hello\n", e[1].output_bytes)
    assert.equal(3, e[2].exit_code)
    assert.equal(#"world\n", e[2].output_bytes)
    -- written by the host for its user alone
    assert.equal("600", H.run({ "stat", "-c", "%a", path }).stdout:match("%d+"))
  end)

  E.it("a block stopped at its timeout has timed_out = true", function()
    local path = log_path()
    local ex = E.new{ audit = path, timeout = 1 }
    local r = ex:execute{ { lang = "sh", code = "echo before; sleep 30" } }
    assert.equal(124, r.exit_code, r.output)
    local rec = ends(read_log(path))[1]
    assert.is_true(rec.timed_out)
    assert.equal(124, rec.exit_code)
    assert.equal(1, rec.limits.timeout)
    assert.is_true(rec.duration >= 1 and rec.duration < 10, tostring(rec.duration))
    assert.equal(#"before\n", rec.output_bytes)
  end)

  E.it("a block stopped by the workspace quota has quota_exceeded = true", function()
    local path = log_path()
    local ex = E.new{ audit = path, quota = { files = 50 }, timeout = 30 }
    local r = ex:execute{ { lang = "python", code = "for i in range(500):\n    open('f%d' % i, 'w').close()" } }
    assert.equal(122, r.exit_code, r.output)
    local rec = ends(read_log(path))[1]
    assert.is_true(rec.quota_exceeded)
    assert.equal(122, rec.exit_code)
    assert.same({ bytes = 1 << 30, files = 50 }, rec.limits.quota)
  end)

  E.it("records the output bytes kept and dropped by max_output", function()
    local path = log_path()
    local ex = E.new{ audit = path, max_output = 100 }
    local r = ex:execute{ { lang = "sh", code = "head -c 1000 /dev/zero | tr '\\0' x" } }
    assert.equal(0, r.exit_code, r.output)
    local rec = ends(read_log(path))[1]
    assert.equal(100, rec.output_bytes)
    assert.equal(900, rec.output_dropped)
    assert.equal(100, rec.limits.max_output)
  end)

  E.it("hands the same records to a function", function()
    local got = {}
    local ex = E.new{ audit = function(rec) got[#got + 1] = rec end }
    local r = ex:execute{ { lang = "sh", code = "echo hi" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal(2, #got)
    assert.equal("start", got[1].event)
    assert.equal("end", got[2].event)
    assert.equal(0, got[2].exit_code)
    assert.equal(core.sha256("echo hi"), got[2].sha256)
    assert.equal(sha256sum(r.code_file), got[2].sha256)
    if E.docker and not E.fresh then assert.equal(ex.container_id, got[2].sandbox.container_id) end
  end)

  E.it("fails closed: a log that cannot be written runs nothing", function()
    local dir = E.tmpdir("unwritable")
    H.write(dir .. "/file", "")
    -- root ignores permission bits: a parent that is a regular file, and a directory
    for _, path in ipairs({ dir .. "/file/audit.jsonl", dir }) do
      local ex = E.new{ audit = path }
      local r = ex:execute{ { lang = "sh", code = "echo ran > ran.txt; echo ran" } }
      assert.equal(1, r.exit_code, r.output)
      assert.matches("agentbox: audit log: cannot write " .. path:gsub("%p", "%%%0")
                     .. ": [^\n]*; the block was not run", r.output)
      assert.not_matches("ran\n", r.output)
      assert.is_false(H.exists(ex.work_dir .. "/ran.txt"))
    end
  end)

  E.it("fails closed when the function raises: at start nothing runs, at end the result is a failure", function()
    local ex = E.new{ audit = function(rec) if rec.event == "start" then error("log server down") end end }
    local r = ex:execute{ { lang = "sh", code = "echo ran > ran.txt; echo ran" } }
    assert.equal(1, r.exit_code, r.output)
    assert.matches("agentbox: audit log: the audit function raised: [^\n]*log server down; the block was not run",
                   r.output)
    assert.is_false(H.exists(ex.work_dir .. "/ran.txt"))

    ex = E.new{ audit = function(rec) if rec.event == "end" then error("disk full") end end }
    r = ex:execute{ { lang = "sh", code = "echo ran > ran.txt; echo ran" }, { lang = "sh", code = "echo second" } }
    assert.equal(1, r.exit_code, r.output)
    assert.matches("^ran\n", r.output)
    assert.matches("disk full; the block ran but its record is missing, so its result is a failure", r.output)
    assert.not_matches("second", r.output)   -- the blocks after it do not run
    assert.is_true(H.exists(ex.work_dir .. "/ran.txt"))
  end)

  E.it("audit_required = false: the block runs and stderr says what the log missed", function()
    local dir = E.tmpdir("optional")
    H.write(dir .. "/file", "")
    local src = ([[
      local ex <close> = %s
      local r = ex:execute{ { lang = "sh", code = "echo ran" } }
      io.write(r.exit_code, " ", r.output)
    ]]):format(E.new_src(("work_dir = %q, audit = %q, audit_required = false"):format(
      dir .. "/work", dir .. "/file/audit.jsonl")))
    local r = H.lua(src, nil, 60)
    assert.equal(0, r.exit_code, r.output)
    assert.equal("0 ran\n", r.stdout)
    assert.matches("agentbox: audit log: cannot write [^\n]*Not a directory %(audit_required = false", r.stderr)
  end)

  E.it("refuses a log inside work_dir, however the path reaches it", function()
    local base = E.tmpdir("inside")
    local wd = base .. "/work"   -- agentbox creates it (a root-owned one is refused by Docker's rules)
    assert(os.execute(("ln -s %q %q"):format(wd, base .. "/link")))
    for _, path in ipairs({ wd .. "/audit.jsonl", wd .. "/new/dir/audit.jsonl", base .. "/link/audit.jsonl",
                            base .. "/nope/../work/audit.jsonl", wd }) do
      local ok, err = pcall(E.new, { work_dir = wd, audit = path })
      assert.is_false(ok, path)
      assert.matches("audit: the log [^\n]* is inside work_dir", err)
    end
    assert.is_false(H.exists(wd .. "/audit.jsonl"))
    for _, bad in ipairs({ 42, "", {} }) do
      local ok, err = pcall(E.new, { audit = bad })
      assert.is_false(ok)
      assert.matches("audit must be a file path %(JSON Lines%) or a function", err)
    end
    local ok, err = pcall(E.new, { audit = base .. "/a.jsonl", audit_required = "no" })
    assert.is_false(ok)
    assert.matches("audit_required must be a boolean", err)
  end)

  E.it("two executors in two processes append to one log: every line parses", function()
    local path = log_path()
    local n = not E.docker and 40 or 20
    local procs = {}
    for i = 1, 2 do
      local src = ([[
        local ex <close> = %s
        for i = 1, %d do
          local r = ex:execute{ { lang = "sh", code = "echo " .. i } }
          assert(r.exit_code == 0, r.output)
        end
      ]]):format(E.new_src(("work_dir = %q, audit = %q, timeout = 30"):format(E.tmpdir("w" .. i) .. "/work", path)), n)
      procs[i] = assert(core.spawn{ argv = { "lua5.4", "-e", src }, env = H.lua_env(), timeout = 300 })
    end
    while not (procs[1]:done() and procs[2]:done()) do core.step(-1) end
    for _, p in ipairs(procs) do
      local r = p:result()
      p:close()
      assert.equal(0, r.exit_code, r.output)
    end
    local records = read_log(path)
    assert.equal(2 * 2 * n, #records)
    local per = {}
    for _, rec in ipairs(records) do per[rec.work_dir] = (per[rec.work_dir] or 0) + 1 end
    local counts = {}
    for _, c in pairs(per) do counts[#counts + 1] = c end
    assert.same({ 2 * n, 2 * n }, counts)
  end)
end)

C.each("audit log: OOM", function(E)
  E.it("a block killed by the memory limit has oom = true", function()
    local path = E.tmpdir("audit") .. "/audit.jsonl"
    local ex = E.new{ audit = path, memory = "128m", timeout = 30 }
    local r = ex:execute{ { lang = "python", code = "x = bytearray(2 * 1024 ** 3)" } }
    assert.equal(137, r.exit_code, r.output)
    local rec = ends(read_log(path))[1]
    assert.is_true(rec.oom)
    assert.equal(128 * 1024 * 1024, rec.limits.memory)
  end)
end, { docker = true })
