-- LocalExecutor: AutoGen's LocalCommandLineCodeExecutor cases we keep, and
-- each fix from AUTOGEN-PARITY.md.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local H = require("spec.support.helpers")

describe("LocalExecutor", function()
  local dir, ex
  before_each(function()
    dir = H.tmpdir("local")
    ex = agentbox.LocalExecutor{ work_dir = dir, timeout = 10 }
  end)
  after_each(function()
    ex:close()
    H.rm_rf(dir)
  end)

  it("runs python and sh blocks and formats AutoGen's result text", function()
    local r = ex:execute{ { lang = "python", code = "print('hello')" }, { lang = "sh", code = "echo world" } }
    assert.equal(0, r.exit_code)
    assert.equal("hello\nworld\n", r.output)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: hello\nworld\n", agentbox.code.format_result(r))
  end)

  it("names files tmp_code_<md5>.<ext> and reuses the name for identical code", function()
    local r1 = ex:execute{ { lang = "python", code = "print(1)" } }
    local r2 = ex:execute{ { lang = "python", code = "print(1)" } }
    local real = core.realpath(dir)
    assert.equal(real .. "/tmp_code_186bdbe41e79ea696410ba0a9e8d2762.py", r1.code_file)
    assert.equal(r1.code_file, r2.code_file)
    assert.equal("print(1)", H.read(r1.code_file))
  end)

  it("stops at the first failing block and keeps earlier output", function()
    local r = ex:execute{ { lang = "sh", code = "echo one" }, { lang = "python", code = "import sys; print('two'); sys.exit(3)" },
                          { lang = "sh", code = "echo never" } }
    assert.equal(3, r.exit_code)
    assert.equal("one\ntwo\n", r.output)
    assert.equal("exitcode: 3 (execution failed)\nCode output: one\ntwo\n", agentbox.code.format_result(r))
  end)

  it("reports python errors with the traceback", function()
    local r = ex:execute{ { lang = "python", code = "raise ValueError('boom')" } }
    assert.equal(1, r.exit_code)
    assert.matches("ValueError: boom", r.output)
  end)

  it("says unknown language and does not run the rest", function()
    local r = ex:execute{ { lang = "cobol", code = "DISPLAY 'x'" }, { lang = "sh", code = "echo no" } }
    assert.equal(1, r.exit_code)
    assert.equal("unknown language cobol", r.output)
  end)

  it("runs an empty block list as success with empty output", function()
    local r = ex:execute{}
    assert.same({ exit_code = 0, output = "" }, { exit_code = r.exit_code, output = r.output })
    assert.is_nil(r.code_file)
  end)

  it("honours # filename: and creates sub-directories inside the workspace", function()
    local r = ex:execute{ { lang = "python", code = "# filename: sub/dir/hello.py\nprint('hi')" } }
    assert.equal(0, r.exit_code)
    assert.equal(core.realpath(dir) .. "/sub/dir/hello.py", r.code_file)
    assert.is_true(H.exists(dir .. "/sub/dir/hello.py"))
  end)

  it("does not take a comment sentence for a file name", function()
    local r = ex:execute{ { lang = "python", code = "# This prints\nprint(2)" } }
    assert.equal(0, r.exit_code)
    assert.matches("/tmp_code_%x+%.py$", r.code_file)
  end)

  it("refuses file names outside the workspace", function()
    for _, name in ipairs({ "../x.py", "/tmp/x.py", "a/../../x.py" }) do
      local r = ex:execute{ { lang = "python", code = "# filename: " .. name .. "\nprint(1)" } }
      assert.equal(1, r.exit_code)
      assert.equal("Filename is not in the workspace", r.output)
    end
    assert.is_false(H.exists(dir .. "/../x.py"))
  end)

  it("refuses a file name that goes through a symlink out of the workspace", function()
    local outside = H.tmpdir("outside")
    os.execute(("ln -s '%s' '%s/link'"):format(outside, dir))
    local r = ex:execute{ { lang = "python", code = "# filename: link/evil.py\nprint(1)" } }
    assert.equal(1, r.exit_code)
    assert.equal("Filename is not in the workspace", r.output)
    assert.is_false(H.exists(outside .. "/evil.py"))
    H.rm_rf(outside)
  end)

  it("never writes a code file through a planted link, nor blocks on a FIFO", function()
    local outside = H.tmpdir("victim")
    H.write(outside .. "/target", "precious")
    os.execute(("ln -s '%s/target' '%s/evil.py'"):format(outside, dir))
    os.execute(("mkfifo '%s/fifo.py'"):format(dir))
    local r = ex:execute{ { lang = "python", code = "# filename: evil.py\nprint('replaced')" },
                          { lang = "python", code = "# filename: fifo.py\nprint('no hang')" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("replaced\nno hang\n", r.output)
    assert.equal("precious", H.read(outside .. "/target"))
    H.rm_rf(outside)
  end)

  it("saves html, css and javascript without running them", function()
    local r = ex:execute{ { lang = "html", code = "<!-- filename: index.html -->\n<p>hi</p>" } }
    assert.equal(0, r.exit_code)
    assert.equal("Code saved to " .. core.realpath(dir) .. "/index.html\n", r.output)
  end)

  it("times out with 124, keeps partial output and appends Timeout", function()
    local e = agentbox.LocalExecutor{ work_dir = dir, timeout = 0.5 }
    local r = e:execute{ { lang = "python", code = "import time\nprint('partial', flush=True)\ntime.sleep(30)" },
                         { lang = "sh", code = "echo never" } }
    assert.equal(124, r.exit_code)
    assert.equal("partial\n\nTimeout", r.output)
  end)

  it("kills grandchildren that setsid or ignore TERM at the deadline", function()
    local e = agentbox.LocalExecutor{ work_dir = dir, timeout = 0.5, grace = 0.2 }
    local code = table.concat({
      "import os, signal, subprocess, time",
      "subprocess.Popen(['sh', '-c', 'sleep 1.5; echo x > late_setsid'], start_new_session=True)",
      "subprocess.Popen(['python3', '-c', 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1.5); open(\"late_ignore\",\"w\").write(\"x\")'])",
      "print('spawned', flush=True)",
      "time.sleep(30)",
    }, "\n")
    local r = e:execute{ { lang = "python", code = code } }
    assert.equal(124, r.exit_code)
    agentbox.sleep(2)
    assert.is_false(H.exists(dir .. "/late_setsid"))
    assert.is_false(H.exists(dir .. "/late_ignore"))
  end)

  -- Two pipes cannot order writes closer together than the reactor wakes up
  -- (about a millisecond); writes further apart keep their order.
  it("keeps stdout and stderr in arrival order", function()
    local r = ex:execute{ { lang = "python", code = "import sys, time\nprint('a')\ntime.sleep(0.02)\n"
      .. "print('b', file=sys.stderr)\ntime.sleep(0.02)\nprint('c')\ntime.sleep(0.02)\nraise SystemExit('d')" } }
    assert.equal("a\nb\nc\nd\n", r.output)
  end)

  it("replaces invalid UTF-8 instead of raising", function()
    local r = ex:execute{ { lang = "python", code = "import sys\nsys.stdout.buffer.write(b'ok\\xff\\xfe\\x00end')" } }
    assert.equal(0, r.exit_code)
    assert.equal("ok\239\191\189\239\191\189\0end", r.output)
  end)

  it("caps a 200 MB flood with a marker while memory stays bounded", function()
    local src = ([[
      local agentbox = require("agentbox")
      local ex = agentbox.LocalExecutor{ work_dir = %q, timeout = 60, max_output = 1048576 }
      local r = ex:execute{ { lang = "sh", code = "head -c 200000000 /dev/zero | tr '\\0' x" } }
      local hwm = io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)")
      io.write(r.exit_code, " ", #r.output, " ", hwm, "\n", r.output:sub(-80))
    ]]):format(dir)
    local r = H.lua(src, nil, 120)
    assert.equal(0, r.exit_code, r.output)
    local code, len, hwm = r.stdout:match("^(%d+) (%d+) (%d+)")
    assert.equal("0", code)
    assert.is_true(tonumber(len) < 1048576 + 200, len)
    assert.is_true(tonumber(hwm) < 64 * 1024, "peak RSS " .. hwm .. " kB")
    assert.matches("output truncated, 198951424 bytes dropped", r.stdout)
  end)

  it("does not pass host secrets to the code", function()
    local src = ([[
      local agentbox = require("agentbox")
      local ex = agentbox.LocalExecutor{ work_dir = %q, env = { MINE = "given" } }
      local r = ex:execute{ { lang = "python", code = "import os\nprint(sorted(os.environ.items()))" } }
      io.write(r.output)
    ]]):format(dir)
    local r = H.lua(src, { OPENAI_API_KEY = "sk-secret-123", AGENTBOX_SPEC_SECRET = "hunter2" })
    assert.equal(0, r.exit_code, r.output)
    assert.not_matches("sk%-secret", r.stdout)
    assert.not_matches("hunter2", r.stdout)
    assert.matches("'MINE', 'given'", r.stdout)
    assert.matches("'HOME', '" .. core.realpath(dir), r.stdout, 1, true)
  end)

  it("gives the code an empty stdin", function()
    local r = ex:execute{ { lang = "python", code = "import sys\nprint(repr(sys.stdin.read()))" } }
    assert.equal("''\n", r.output)
  end)

  it("streams output through on_output before the block ends", function()
    local seen = {}
    local e = agentbox.LocalExecutor{ work_dir = dir, on_output = function(chunk, stream)
      seen[#seen + 1] = { chunk = chunk, stream = stream, t = core.now() }
    end }
    local t0 = core.now()
    local r = e:execute{ { lang = "python", code = "import time,sys\nprint('early')\ntime.sleep(0.6)\nprint('late', file=sys.stderr)" } }
    local t1 = core.now()
    assert.equal(0, r.exit_code)
    assert.matches("^early", seen[1].chunk)
    assert.equal("stdout", seen[1].stream)
    assert.is_true(seen[1].t - t0 < t1 - t0 - 0.4)
    assert.equal("stderr", seen[#seen].stream)
  end)

  it("infers the language of an untagged block", function()
    local blocks = agentbox.code.extract("```\nprint('inferred')\n```")
    local r = ex:execute(blocks)
    assert.equal("inferred\n", r.output)
  end)

  it("resolves the python interpreter once and names it when missing", function()
    local e = agentbox.LocalExecutor{ work_dir = dir, env = { PATH = dir .. "/nowhere" } }
    local r = e:execute{ { lang = "python", code = "print(1)" } }
    assert.equal(1, r.exit_code)
    assert.matches("no Python interpreter found: looked for python3, then python", r.output)
  end)

  it("rejects bad options and bad blocks clearly", function()
    assert.has_error(function() agentbox.LocalExecutor{ timout = 3 } end)
    assert.has_error(function() agentbox.LocalExecutor{ timeout = -1 } end,
      "LocalExecutor: timeout must be a positive number of seconds")
    assert.has_error(function() ex:execute("print(1)") end)
    assert.has_error(function() ex:execute{ { lang = "python" } } end)
  end)

  it("raises on use after close", function()
    ex:close()
    assert.has_error(function() ex:execute{} end, "LocalExecutor: execute after close")
  end)
end)
