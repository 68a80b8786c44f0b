-- The executor contract: what every executor does, written once and run
-- against each kind in spec/support/contract.lua (LocalExecutor,
-- DockerExecutor; a new executor joins there and must pass all of it).
-- What only one executor does stays in local_executor_spec.lua or
-- docker_spec.lua. Where the kinds differ by design (the path the code sees,
-- how fast two pipes can be ordered), the expectation is a function of the
-- kind, never a weaker check.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local C = require("spec.support.contract")
local H = require("spec.support.helpers")

-- An executor and the real host path of the work_dir it was given.
local function mk(E, opts)
  opts = opts or {}
  local ex = E.new(opts)
  return ex, assert(core.realpath(opts.work_dir))
end

local function start(ex)
  if ex.start then ex:start() end   -- a container's cold start is not the code's time
  return ex
end

C.each("executor contract: blocks and results", function(E)
  E.it("runs python and sh blocks and formats AutoGen's result text", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "python", code = "print('hello')" }, { lang = "sh", code = "echo world" } }
    assert.equal(0, r.exit_code)
    assert.equal("hello\nworld\n", r.output)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: hello\nworld\n", agentbox.code.format_result(r))
  end)

  E.it("stops at the first failing block and keeps earlier output", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "sh", code = "echo one" },
                          { lang = "python", code = "import sys; print('two'); sys.exit(3)" },
                          { lang = "sh", code = "echo never > never_ran; echo never" } }
    assert.equal(3, r.exit_code)
    assert.equal("one\ntwo\n", r.output)
    assert.equal("exitcode: 3 (execution failed)\nCode output: one\ntwo\n", agentbox.code.format_result(r))
    assert.is_false(H.exists(ex.work_dir .. "/never_ran"))
  end)

  E.it("reports python errors with the traceback", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "python", code = "raise ValueError('boom')" } }
    assert.equal(1, r.exit_code)
    assert.matches("Traceback", r.output, 1, true)
    assert.matches("ValueError: boom", r.output)
  end)

  E.it("says unknown language and does not run the rest", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "cobol", code = "DISPLAY 'x'" }, { lang = "sh", code = "echo no > ran; echo no" } }
    assert.equal(1, r.exit_code)
    assert.equal("unknown language cobol", r.output)
    assert.is_false(H.exists(ex.work_dir .. "/ran"))
  end)

  E.it("runs an empty block list as success with empty output", function()
    local ex = mk(E)
    local r = ex:execute{}
    assert.same({ exit_code = 0, output = "" }, { exit_code = r.exit_code, output = r.output })
    assert.is_nil(r.code_file)
  end)

  E.it("infers the language of an untagged block", function()
    local ex = mk(E)
    local r = ex:execute(agentbox.code.extract("```\nprint('inferred')\n```"))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("inferred\n", r.output)
  end)

  E.it("gives the code an empty stdin", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "python", code = "import sys\nprint(repr(sys.stdin.read()))" } }
    assert.equal("''\n", r.output)
  end)

  -- Two pipes cannot order writes closer together than the reader wakes up:
  -- about a millisecond locally; the container's exec stream adds a hop.
  E.it("keeps stdout and stderr in arrival order", function()
    local ex = mk(E)
    local gap = not E.docker and "0.02" or "0.05"
    local r = ex:execute{ { lang = "python", code = ("import sys, time\nprint('a')\ntime.sleep(%s)\n"
      .. "print('b', file=sys.stderr)\ntime.sleep(%s)\nprint('c')\ntime.sleep(%s)\nraise SystemExit('d')")
      :format(gap, gap, gap) } }
    assert.equal("a\nb\nc\nd\n", r.output)
  end)

  E.it("replaces invalid UTF-8 instead of raising", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "python", code = "import sys\nsys.stdout.buffer.write(b'ok\\xff\\xfe\\x00end')" } }
    assert.equal(0, r.exit_code)
    assert.equal("ok\239\191\189\239\191\189\0end", r.output)
  end)

  E.it("streams output through on_output before the block ends", function()
    local seen = {}
    local ex = start(E.new{ on_output = function(chunk, stream)
      seen[#seen + 1] = { chunk = chunk, stream = stream, t = core.now() }
    end })
    local t0 = core.now()
    local r = ex:execute{ { lang = "python",
                            code = "import time,sys\nsys.stdout.write('early\\n')\ntime.sleep(0.6)\nsys.stderr.write('late\\n')" } }
    local t1 = core.now()
    assert.equal(0, r.exit_code, r.output)
    local trace = {}
    for i, c in ipairs(seen) do trace[i] = ("%s %q at +%.3f s"):format(c.stream, c.chunk, c.t - t0) end
    trace = table.concat(trace, "; ") .. (" (ended at +%.3f s)"):format(t1 - t0)
    assert.equal("early\n", seen[1].chunk, trace)
    assert.equal("stdout", seen[1].stream, trace)
    assert.is_true(seen[1].t - t0 < t1 - t0 - 0.4, trace)
    assert.equal("stderr", seen[#seen].stream, trace)
    assert.equal("late\n", seen[#seen].chunk, trace)
  end)

  E.it("rejects bad options and bad blocks clearly", function()
    assert.has_error(function() E.new{ timout = 3 } end)
    assert.has_error(function() E.new{ timeout = -1 } end,
      "agentbox." .. E.name .. ": timeout must be a positive number of seconds, got -1")
    assert.has_error(function() E.new{ max_output = 1.5 } end)
    assert.has_error(function() E.new{ on_output = "print" } end)
    local ex = mk(E)
    assert.has_error(function() ex:execute("print(1)") end)
    assert.has_error(function() ex:execute{ { lang = "python" } } end)
    assert.has_error(function() ex:execute{ { lang = 3, code = "print(1)" } } end)
  end)

  E.it("refuses a NaN, infinite, zero or negative timeout, naming the value", function()
    for _, bad in ipairs({ 0 / 0, math.huge, 0, -1, "60" }) do
      local ok, err = pcall(E.new, { timeout = bad })
      assert.is_false(ok, tostring(bad))
      assert.matches("agentbox." .. E.name .. ": timeout must be a positive number of seconds, got "
        .. tostring(bad), tostring(err), 1, true)
    end
  end)

  -- errors.misuse: the caller's line, whatever the depth inside agentbox
  E.it("blames a bad option on the caller's line", function()
    local info = debug.getinfo(1, "S")
    local line
    local ok, err = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local ex = agentbox[E.name]{ max_output = -1 }
      return ex
    end)
    assert.is_false(ok)
    assert.equal(info.short_src .. ":" .. line .. ": agentbox." .. E.name
      .. ": max_output must be a non-negative integer (bytes)", err)
  end)

  E.it("checks every option before creating anything on the host", function()
    local parent = E.tmpdir("nothing")
    for _, bad in ipairs({ { timeout = 0 / 0 }, { grace = -1 }, { quota = 5 }, { env = { X = 1 } },
                           { execution_policies = { python = "no" } }, { on_output = 1 }, { nope = 1 } }) do
      bad.work_dir = parent .. "/made"
      assert.is_false(pcall(E.new, bad))
      assert.is_false(H.exists(parent .. "/made"), next(bad))
    end
  end)

  E.it("names work_dir when it exists and is not a directory", function()
    local file = E.tmpdir("file") .. "/plain"
    H.write(file, "x")
    for _, wd in ipairs({ file, file .. "/sub" }) do
      local ok, err = pcall(E.new, { work_dir = wd })
      assert.is_false(ok)
      assert.matches("agentbox." .. E.name .. ": work_dir " .. file .. " exists and is not a directory",
        tostring(err), 1, true)
    end
  end)

  E.it("raises on use after close, and close is idempotent", function()
    local ex = mk(E)
    assert.is_true(ex:close())
    assert.is_true(ex:close())
    assert.has_error(function() ex:execute{} end, "agentbox." .. E.name .. ": execute after close")
  end)
end)

C.each("executor contract: file names and the workspace", function(E)
  E.it("names files tmp_code_<md5>.<ext> and reuses the name for identical code", function()
    local ex, dir = mk(E)
    assert.equal(dir, ex.work_dir)
    local r1 = ex:execute{ { lang = "python", code = "print(1)" } }
    local r2 = ex:execute{ { lang = "python", code = "print(1)" } }
    assert.equal(dir .. "/tmp_code_186bdbe41e79ea696410ba0a9e8d2762.py", r1.code_file)
    assert.equal(r1.code_file, r2.code_file)
    assert.equal("print(1)", H.read(r1.code_file))
    assert.equal("1\n", r2.output)
  end)

  E.it("honours # filename: and creates sub-directories inside the workspace", function()
    local ex, dir = mk(E)
    local r = ex:execute{ { lang = "python", code = "# filename: sub/dir/hello.py\nprint(__file__)" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal(E.inside(ex) .. "/sub/dir/hello.py\n", r.output)
    assert.equal(dir .. "/sub/dir/hello.py", r.code_file)
    assert.equal("# filename: sub/dir/hello.py\nprint(__file__)", H.read(dir .. "/sub/dir/hello.py"))
  end)

  E.it("does not take a comment sentence for a file name", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "python", code = "# This prints\nprint(2)" } }
    assert.equal(0, r.exit_code)
    assert.equal("2\n", r.output)
    assert.matches("/tmp_code_%x+%.py$", r.code_file)
  end)

  E.it("refuses file names outside the workspace", function()
    local ex, dir = mk(E)
    for _, name in ipairs({ "../x.py", "/tmp/x.py", "a/../../x.py" }) do
      local r = ex:execute{ { lang = "python", code = "# filename: " .. name .. "\nprint(1)" } }
      assert.equal(1, r.exit_code, name)
      assert.equal("Filename is not in the workspace", r.output, name)
    end
    assert.is_false(H.exists(dir .. "/../x.py"))
  end)

  E.it("refuses a file name that goes through a symlink out of the workspace", function()
    local ex, dir = mk(E)
    local outside = E.tmpdir("outside")
    os.execute(("ln -s '%s' '%s/link'"):format(outside, dir))
    local r = ex:execute{ { lang = "python", code = "# filename: link/evil.py\nprint(1)" } }
    assert.equal(1, r.exit_code)
    assert.equal("Filename is not in the workspace", r.output)
    assert.is_false(H.exists(outside .. "/evil.py"))
  end)

  E.it("never writes a code file through a planted link, nor blocks on a FIFO", function()
    local ex, dir = mk(E)
    local outside = E.tmpdir("victim")
    H.write(outside .. "/target", "precious")
    os.execute(("ln -s '%s/target' '%s/evil.py'"):format(outside, dir))
    os.execute(("mkfifo '%s/fifo.py'"):format(dir))
    local r = ex:execute{ { lang = "python", code = "# filename: evil.py\nprint('replaced')" },
                          { lang = "python", code = "# filename: fifo.py\nprint('no hang')" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("replaced\nno hang\n", r.output)
    assert.equal("precious", H.read(outside .. "/target"))
  end)

  E.it("never follows links the sandbox plants for the next code file", function()
    local ex = mk(E)
    local outside = E.tmpdir("victim")
    H.write(outside .. "/victim.py", "original")
    local r = ex:execute{ { lang = "sh", code = ("ln -s %s/victim.py planted.py && ln -s %s planted_dir && echo ok")
                                                :format(outside, outside) } }
    assert.equal("ok\n", r.output)
    r = ex:execute{ { lang = "python", code = "# filename: planted.py\nprint('replaced')" } }
    assert.equal("replaced\n", r.output)
    r = ex:execute{ { lang = "python", code = "# filename: planted_dir/x.py\nprint('no')" } }
    if E.fresh then
      -- a fresh call's work_dir is copied in and out, and links are never
      -- copied: the link the last call planted is not there to refuse
      assert.equal("no\n", r.output)
    elseif not E.remote then
      assert.equal(1, r.exit_code)
      assert.equal("Filename is not in the workspace", r.output)
    end
    -- a remote daemon's workspace is the container's volume: the links are
    -- planted there, and the archive API resolves them inside the container
    -- (the host path does not exist there); the host is what must not change
    assert.equal("original", H.read(outside .. "/victim.py"))
    assert.is_false(H.exists(outside .. "/x.py"))
  end)

  E.it("saves html, css and javascript without running them", function()
    local ex, dir = mk(E)
    local r = ex:execute{ { lang = "html", code = "<!-- filename: index.html -->\n<p>hi</p>" } }
    assert.equal(0, r.exit_code)
    assert.equal("Code saved to " .. dir .. "/index.html\n", r.output)
    assert.equal(dir .. "/index.html", r.code_file)
    assert.equal("<!-- filename: index.html -->\n<p>hi</p>", H.read(dir .. "/index.html"))
  end)
end)

C.each("executor contract: deadlines and the process tree", function(E)
  -- sh, not python, where the code must reach a point before the deadline:
  -- LocalExecutor runs code at nice 10, and a loaded host starves it
  E.it("times out with 124, keeps partial output and appends Timeout; the next call works", function()
    local ex = start(E.new{ timeout = 2 })
    local t0 = core.now()
    local r = ex:execute{ { lang = "sh", code = "echo partial; sleep 30" }, { lang = "sh", code = "echo never" } }
    assert.is_true(core.now() - t0 < 10, "took " .. (core.now() - t0) .. " s")
    assert.equal(124, r.exit_code)
    assert.equal("partial\n\nTimeout", r.output)
    assert.equal("fine\n", ex:execute{ { lang = "sh", code = "echo fine" } }.output)
  end)

  E.it("kills descendants that setsid or ignore TERM at the deadline; late files never appear", function()
    -- the children write 3 s after they start, before the deadline: checked 3.5 s after it
    local ex, dir = mk(E, { timeout = 2, grace = 0.2 })
    local code = table.concat({
      "setsid sh -c 'echo > s_setsid; sleep 3; echo x > late_setsid' </dev/null >/dev/null 2>&1 &",
      "sh -c 'trap \"\" TERM; echo > s_ignore; sleep 3; echo x > late_ignore' </dev/null >/dev/null 2>&1 &",
      "while [ ! -e s_setsid ] || [ ! -e s_ignore ]; do sleep 0.01; done",
      "echo spawned",
      "sleep 30",
    }, "\n")
    start(ex)
    local r = ex:execute{ { lang = "sh", code = code } }
    assert.equal(124, r.exit_code)
    assert.equal("spawned\n\nTimeout", r.output)
    agentbox.sleep(3.5)
    assert.is_false(H.exists(dir .. "/late_setsid"))
    assert.is_false(H.exists(dir .. "/late_ignore"))
  end)

  E.it("reports a program's own exit 124 as its exit code, not as a timeout", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "sh", code = "echo mine; exit 124" }, { lang = "sh", code = "echo never" } }
    assert.equal(124, r.exit_code)
    assert.equal("mine\n", r.output)
  end)

  E.it("reports a block killed by a signal as 128 + the signal's number", function()
    local ex = mk(E)
    local r = ex:execute{ { lang = "sh", code = "echo before; kill -TERM $$; echo after" } }
    assert.equal(143, r.exit_code, r.output)
    assert.matches("^before\n", r.output)
    assert.not_matches("after", r.output)
  end)

  E.it("kills what a block leaves running in the background when it exits", function()
    local ex, dir = mk(E)
    local code = table.concat({
      "import os, subprocess, time",
      "q = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)",
      "subprocess.Popen(['sh', '-c', 'echo s > bg_plain; sleep 1.5; echo x > late_plain'], **q)",
      "subprocess.Popen(['sh', '-c', 'echo s > bg_setsid; sleep 1.5; echo x > late_setsid'], start_new_session=True, **q)",
      "while not (os.path.exists('bg_plain') and os.path.exists('bg_setsid')): time.sleep(0.01)",
      "print('left them running')",
    }, "\n")
    local r = ex:execute{ { lang = "python", code = code } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("left them running\n", r.output)
    assert.is_true(H.exists(dir .. "/bg_plain") and H.exists(dir .. "/bg_setsid"))   -- they did start
    agentbox.sleep(2.5)
    assert.is_false(H.exists(dir .. "/late_plain"))
    assert.is_false(H.exists(dir .. "/late_setsid"))
    assert.equal("next\n", ex:execute{ { lang = "sh", code = "echo next" } }.output)
  end)
end)

C.each("executor contract: total_timeout", function(E)
  -- four blocks of 1 s, each well within its own 3 s
  local function four()
    local blocks = {}
    for i = 1, 4 do
      blocks[i] = { lang = "sh", code = ("echo b%d; echo x > b%d; sleep 1"):format(i, i) }
    end
    return blocks
  end

  E.it("ends an execute whose blocks, each within its own timeout, together exceed total_timeout", function()
    local ex, dir = mk(E, { timeout = 3, total_timeout = 2.5 })
    start(ex)
    local t0 = core.now()
    local r = ex:execute(four())
    local took = core.now() - t0
    assert.equal(124, r.exit_code, r.output)
    assert.matches("^b1\nb2\n", r.output)
    assert.not_matches("b4", r.output)
    assert.is_false(H.exists(dir .. "/b4"))
    -- the clear line, last; a block cut short also says Timeout before it
    assert.matches("\nagentbox: total_timeout of 2.5 s for this execute ran out; [12] of 4 blocks not run$", r.output)
    if H.exists(dir .. "/b3") then assert.matches("\nTimeout\nagentbox: ", r.output, 1, true) end
    assert.is_true(took < 2.5 + 2, "took " .. took .. " s")
    -- the same blocks under a larger total all run
    local ex2 = start(E.new{ work_dir = dir, timeout = 3, total_timeout = 30 })
    local r2 = ex2:execute(four())
    assert.equal(0, r2.exit_code, r2.output)
    assert.equal("b1\nb2\nb3\nb4\n", r2.output)
  end)

  E.it("gives a block only the time left of total_timeout", function()
    local ex = start(E.new{ timeout = 20, total_timeout = 1.5 })
    local t0 = core.now()
    local r = ex:execute{ { lang = "sh", code = "echo p; sleep 30" }, { lang = "sh", code = "echo never" } }
    local took = core.now() - t0
    assert.equal(124, r.exit_code)
    assert.equal("p\n\nTimeout\nagentbox: total_timeout of 1.5 s for this execute ran out; 1 of 2 blocks not run",
                 r.output)
    assert.is_true(took < 1.5 + 3, "took " .. took .. " s")
    assert.equal("fine\n", ex:execute{ { lang = "sh", code = "echo fine" } }.output)
  end)

  E.it("defaults total_timeout to 4 x timeout, enforced; false turns it off", function()
    local blocks = {}
    for i = 1, 7 do blocks[i] = { lang = "sh", code = "sleep 1.2; echo " .. i } end   -- 8.4 s
    local ex = start(E.new{ timeout = 2 })
    assert.equal(8, ex.total_timeout)
    local r = ex:execute(blocks)
    assert.equal(124, r.exit_code, r.output)
    assert.matches("^1\n2\n3\n", r.output)
    assert.not_matches("7\n", r.output)
    assert.matches("\nagentbox: total_timeout of 8 s for this execute ran out; [0-4] of 7 blocks not run$", r.output)
    local off = start(E.new{ timeout = 2, total_timeout = false })
    assert.is_false(off.total_timeout)
    local r2 = off:execute(blocks)
    assert.equal(0, r2.exit_code, r2.output)
    assert.equal("1\n2\n3\n4\n5\n6\n7\n", r2.output)
  end)

  E.it("rejects a total_timeout that is not a positive number of seconds or false", function()
    for _, bad in ipairs({ 0, -1, "60", true, 0 / 0 }) do
      assert.has_error(function() E.new{ total_timeout = bad } end,
        "agentbox." .. E.name .. ": total_timeout must be a positive number of seconds, or false for none")
    end
  end)
end)

C.each("executor contract: output and environment", function(E)
  E.it("caps a flood with a marker while the host's memory stays bounded", function()
    -- a container's stream is slower to drain: a smaller flood, the same cap
    local size = not E.docker and 200000000 or 100000000
    local dir = E.tmpdir("flood") .. "/work"   -- as E.new: agentbox creates it
    local src = ([[
      local agentbox = require("agentbox")
      local ex <close> = %s
      local r = ex:execute{ { lang = "sh", code = "head -c %d /dev/zero | tr '\\0' x" } }
      local hwm = io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)")
      io.write(r.exit_code, " ", #r.output, " ", hwm, "\n", r.output:sub(-80))
    ]]):format(E.new_src(("work_dir = %q, timeout = 60, max_output = 1048576"):format(dir)), size)
    local r = H.lua(src, nil, 120)
    assert.equal(0, r.exit_code, r.output)
    local code, len, hwm = r.stdout:match("^(%d+) (%d+) (%d+)")
    assert.equal("0", code, r.output)
    assert.is_true(tonumber(len) < 1048576 + 200, len)
    assert.is_true(tonumber(hwm) < 64 * 1024, "peak RSS " .. hwm .. " kB")
    assert.matches(("output truncated, %d bytes dropped %%(max_output = 1048576%%)]$"):format(size - 1048576),
                   r.stdout)
  end)

  E.it("counts max_output across the blocks of one execute, and starts afresh on the next", function()
    local ex = mk(E, { max_output = 1000 })
    local blocks = { { lang = "sh", code = "head -c 600 /dev/zero | tr '\\0' a" },
                     { lang = "sh", code = "head -c 600 /dev/zero | tr '\\0' b" } }
    local r = ex:execute(blocks)
    assert.equal(0, r.exit_code, r.output)
    assert.equal(("a"):rep(600) .. ("b"):rep(400)
                 .. "\n[agentbox: output truncated, 200 bytes dropped (max_output = 1000)]", r.output)
    assert.equal(r.output, ex:execute(blocks).output)
  end)

  E.it("builds the code's environment: host secrets never reach it", function()
    local dir = E.tmpdir("env") .. "/work"
    local src = ([[
      local ex <close> = %s
      local r = ex:execute{ { lang = "python", code = "import os\nprint(sorted(os.environ.items()))" } }
      io.write(r.output)
    ]]):format(E.new_src(("work_dir = %q, env = { MINE = 'given' }"):format(dir)))
    local r = H.lua(src, { OPENAI_API_KEY = "sk-secret-123", AGENTBOX_SPEC_SECRET = "hunter2" })
    assert.equal(0, r.exit_code, r.output)
    assert.not_matches("sk%-secret", r.stdout)
    assert.not_matches("hunter2", r.stdout)
    assert.not_matches("OPENAI_API_KEY", r.stdout)
    assert.matches("'MINE', 'given'", r.stdout)
    assert.matches("'PYTHONUNBUFFERED', '1'", r.stdout)
    local twin = E.new{ work_dir = dir }   -- where work_dir is, as the code sees it
    assert.matches("'HOME', '" .. E.inside(twin) .. "'", r.stdout, 1, true)
  end)
end)
