-- Specs for lua/agentbox/code.lua. Cases marked "AutoGen" are ported from
-- microsoft/autogen 0.2 (test/test_code_utils.py,
-- test/coding/test_markdown_code_extractor.py,
-- test/coding/test_commandline_code_executor.py); the others pin the fixes
-- listed in AUTOGEN-PARITY.md.
local code = require("agentbox.code")

local SCRAPE = table.concat({
  "def scrape(url):",
  "    import requests",
  "    from bs4 import BeautifulSoup",
  "    response = requests.get(url)",
  '    soup = BeautifulSoup(response.text, "html.parser")',
  '    title = soup.find("title").text',
  '    text = soup.find("div", {"id": "bodyContent"}).text',
  "    return title, text",
}, "\n")

local TEST = table.concat({
  'url = "https://en.wikipedia.org/wiki/Web_scraping"',
  "title, text = scrape(url)",
  'print(f"Title: {title}")',
  'print(f"Text: {text}")',
}, "\n")

local function indent(text, prefix)
  return (prefix .. text:gsub("\n", "\n" .. prefix))
end

describe("code.infer_lang", function()
  it("AutoGen test_infer_lang", function()
    assert.are.equal("python", code.infer_lang("print('hello world')"))
    assert.are.equal("sh", code.infer_lang("pip install autogen"))
    assert.are.equal("unknown", code.infer_lang("dummy text"))
    assert.are.equal("unknown", code.infer_lang("print('hello world'))"))
  end)

  it("treats python/python3 running a file or a module as shell", function()
    assert.are.equal("sh", code.infer_lang("python temp.py"))
    assert.are.equal("sh", code.infer_lang("python3 scripts/run.py --fast"))
    assert.are.equal("sh", code.infer_lang("python3 -m pip install pandas"))
    assert.are.equal("sh", code.infer_lang("  \n python -m http.server 8000"))
    assert.are.equal("sh", code.infer_lang("pip3 install numpy"))
  end)

  it("does not mistake Python that merely starts with python/pip for shell", function()
    assert.are.equal("python", code.infer_lang("python = 3\nprint(python)"))
    assert.are.equal("python", code.infer_lang("pipeline = make()\npipeline.run()"))
  end)

  it("reads sh/bash/python shebangs and refuses other interpreters", function()
    assert.are.equal("sh", code.infer_lang("#!/bin/sh\necho hi"))
    assert.are.equal("sh", code.infer_lang("#!/bin/bash\nset -e\nls"))
    assert.are.equal("sh", code.infer_lang("#!/usr/bin/env bash\necho hi"))
    assert.are.equal("python", code.infer_lang("#!/usr/bin/env python3\nprint(1)"))
    assert.are.equal("unknown", code.infer_lang("#!/usr/bin/env node\nconsole.log(1)"))
  end)

  it("recognises ordinary Python programs", function()
    assert.are.equal("python", code.infer_lang(SCRAPE))
    assert.are.equal("python", code.infer_lang(TEST))
    assert.are.equal("python", code.infer_lang("import sys; print('hello world!')"))
    assert.are.equal("python", code.infer_lang("a = 100 + 100; print(a)"))
    assert.are.equal("python", code.infer_lang("from . import util\nutil.go()"))
    assert.are.equal("python", code.infer_lang(
      "class A:\n    '''doc\n    string'''\n    def f(self, x: int) -> int:\n"
      .. "        return x ** 2  # square\n\nprint(A().f(3))\n"))
    assert.are.equal("python", code.infer_lang("total = (1 +\n         2)\nx = [i for i in range(3)\n     if i]\n"))
    assert.are.equal("python", code.infer_lang("x = 1 + \\\n    2\nprint(x)"))
    assert.are.equal("python", code.infer_lang("print('a')\r\nprint('b')\r\n"))
  end)

  it("rejects prose, shell and other languages (Lua's load() is not Python)", function()
    for _, text in ipairs{
      "Hello, world!",
      "source setup.sh",
      "ls -la",
      "cd /tmp",
      "echo $HOME",
      "local x = 1\nprint(x)",
      "for i = 1, 10 do print(i) end",
      "x = a .. b",
      "function f() { return 1; }",
      "const x = 1;",
      "using System;\nnamespace App { }",
      "SELECT * FROM users;",
      "key: value",
      "",
    } do
      assert.are.equal("unknown", code.infer_lang(text), text)
    end
  end)

  it("rejects what Python's compiler rejects: bad strings, brackets, indentation", function()
    assert.are.equal("unknown", code.infer_lang("print('unterminated)"))
    assert.are.equal("unknown", code.infer_lang("x = [1, 2)"))
    assert.are.equal("unknown", code.infer_lang("    x = 1"))              -- unexpected indent
    assert.are.equal("unknown", code.infer_lang("def f():\nreturn 1"))     -- expected an indented block
    assert.are.equal("unknown", code.infer_lang("if x:\n"))
    assert.are.equal("unknown", code.infer_lang("if x:\n    a = 1\n  b = 2"))  -- dedent to no level
    assert.are.equal("unknown", code.infer_lang("print 'python 2'"))
  end)
end)

describe("code.extract", function()
  it("returns an empty list when there is no block (AutoGen message_7, 'no code block')", function()
    assert.are.same({}, code.extract("\nTest some message that has no code block.\n"))
    assert.are.same({}, code.extract("no code block"))
    assert.are.same({}, code.extract(""))
    assert.are.same({}, code.extract(nil))
  end)

  it("AutoGen: a bash block", function()
    assert.are.same({ { lang = "bash", code = "python temp.py" } },
      code.extract("```bash\npython temp.py\n```"))
    assert.are.same({ { lang = "bash", code = "echo 'hello world!'" } },
      code.extract("\nTest bash script:\n```bash\necho 'hello world!'\n```\n"))
  end)

  it("AutoGen message_1: a block without language is inferred as python", function()
    local text = '\nExample:\n```\nprint("hello extract code")\n```\n'
    local blocks = code.extract(text)
    assert.are.same({ { lang = "python", code = 'print("hello extract code")' } }, blocks)
    -- detect_single_line_code gives the same answer when a fenced block exists
    assert.are.same(blocks, code.extract(text, { inline = true }))
  end)

  it("AutoGen message_2: two python blocks in order", function()
    local text = "Example:\n```python\n" .. SCRAPE .. "\n```\nTest:\n```python\n" .. TEST .. "\n```\n"
    assert.are.same({ { lang = "python", code = SCRAPE }, { lang = "python", code = TEST } },
      code.extract(text))
  end)

  it("AutoGen: spaces between the fence and the language", function()
    local text = "Example:\n``` python\n" .. SCRAPE .. "\n```\nTest:\n``` python\n" .. TEST .. "\n```\n"
    local blocks = code.extract(text)
    assert.are.equal(2, #blocks)
    assert.are.equal("python", blocks[1].lang)
    assert.are.equal("python", blocks[2].lang)
    assert.are.equal(TEST, blocks[2].code)
  end)

  it("AutoGen message_3: an indented fence, body dedented by the fence indentation", function()
    local text = "\nExample:\n" .. indent("```python\n" .. SCRAPE .. "\n```", "   ") .. "\n"
    local blocks = code.extract(text)
    assert.are.same({ { lang = "python", code = SCRAPE } }, blocks)
    assert.are.equal("python", code.infer_lang(blocks[1].code))  -- it would compile now
  end)

  it("removes only the fence's own indentation and keeps deeper or different indentation", function()
    local blocks = code.extract("  ```\n  x = 1\n      y = 2\n\tz = 3\n x\n  ```")
    assert.are.equal("x = 1\n    y = 2\n\tz = 3\nx", blocks[1].code)
  end)

  it("keeps body indentation of an unindented fence", function()
    local blocks = code.extract("```python\n    x = 1\n\n  y\n```")
    assert.are.equal("    x = 1\n\n  y", blocks[1].code)
  end)

  it("AutoGen message_4: CRLF line ends", function()
    local text = ("\nExample:\n``` python\n" .. SCRAPE .. "\n```\n"):gsub("\n", "\r\n")
    local blocks = code.extract(text)
    assert.are.same({ { lang = "python", code = SCRAPE } }, blocks)
    assert.is_nil(blocks[1].code:find("\r", 1, true))
  end)

  it("AutoGen message_6: an unlabelled block that is not Python gets 'unknown'", function()
    local cs = "using System;\nusing System.Linq;\n\nnamespace ConsoleApplication1\n{\n"
      .. "    class Program\n    {\n        static void Main(string[] args)\n        {\n"
      .. '            Console.WriteLine("Hello World");\n        }\n    }\n}'
    assert.are.same({ { lang = "unknown", code = cs } },
      code.extract('\nTest some C# code, expecting ""\n```\n' .. cs .. "\n```\n"))
  end)

  it("infers sh for an unlabelled pip block", function()
    assert.are.same({ { lang = "sh", code = "pip install pandas" } },
      code.extract("Before you run the code above, run\n```\npip install pandas\n```\nfirst."))
  end)

  it("fix: tilde fences", function()
    assert.are.same({ { lang = "python", code = "print(1)" } },
      code.extract("~~~python\nprint(1)\n~~~"))
    assert.are.same({ { lang = "sh", code = "echo a" } },
      code.extract("text\n~~~~ sh\necho a\n~~~~~\nmore"))
  end)

  it("fix: a language with punctuation such as c++", function()
    assert.are.same({ { lang = "c++", code = "int main() { return 0; }" } },
      code.extract("```c++\nint main() { return 0; }\n```"))
  end)

  it("fix: info strings after the language; the language is lowercased", function()
    assert.are.same({ { lang = "python", code = "print(1)" } },
      code.extract('```Python title="demo.py" {linenos}\nprint(1)\n```'))
    assert.are.same({ { lang = "bash", code = "ls" } },
      code.extract("```   BASH   \t\nls\n```"))
  end)

  it("fix: the closing fence must be at least as long as the opening one", function()
    local text = "````markdown\n```python\nprint(1)\n```\n````"
    assert.are.same({ { lang = "markdown", code = "```python\nprint(1)\n```" } }, code.extract(text))
  end)

  it("fix: a closing fence must use the same character", function()
    assert.are.same({ { lang = "sh", code = "echo a\n```\necho b" } },
      code.extract("~~~sh\necho a\n```\necho b\n~~~"))
  end)

  it("fix: an opening fence inside a block neither closes it nor opens another", function()
    -- AutoGen's regex ends the first block at "```bash" and runs half of each.
    local text = "```python\nx = 1\n```bash\necho hi\n```\n"
    assert.are.same({ { lang = "python", code = "x = 1\n```bash\necho hi" } }, code.extract(text))
  end)

  it("text after a closing fence on the same line is fine, after a space or tab (AUTOGEN-PARITY)", function()
    assert.are.same({ { lang = "python", code = "print(1)" } }, code.extract("```python\nprint(1)\n``` and more"))
    assert.are.same({ { lang = "python", code = "print(1)" }, { lang = "sh", code = "ls" } },
      code.extract("```python\nprint(1)\n```\tthen:\n~~~sh\nls\n~~~~ done\n"))
    -- the text does not open another block: the next fence line does
    assert.are.same({ { lang = "python", code = "x = 1" } },
      code.extract("```python\nx = 1\n``` see ```sh below\n```sh\nunclosed\n"))
  end)

  it("a fence run followed directly by a word is an opening fence, not a close (CommonMark)", function()
    assert.are.same({ { lang = "python", code = "x = 1\n```and more" } },
      code.extract("```python\nx = 1\n```and more\n```  \t\n"))
    -- a shorter run with text after it does not close a longer fence
    assert.are.same({ { lang = "markdown", code = "```python\nprint(1)\n``` and more" } },
      code.extract("````markdown\n```python\nprint(1)\n``` and more\n````"))
  end)

  it("an unclosed fence is not a block (never run half a program)", function()
    assert.are.same({}, code.extract("```python\nimport os\nos.remove('x')\n"))
    -- a closed block before an unclosed one still counts
    assert.are.same({ { lang = "sh", code = "ls" } },
      code.extract("```sh\nls\n```\nand\n```python\nprint(1)"))
  end)

  it("a backtick fence whose info string contains a backtick is not a fence", function()
    assert.are.same({}, code.extract("```python``` is not a fence\nprint(1)\n```"))
  end)

  it("text after the closing fence and around blocks is ignored", function()
    assert.are.same({ { lang = "sh", code = "ls" }, { lang = "python", code = "print(2)" } },
      code.extract("a\n```sh\nls\n```\nTERMINATE\n```python\nprint(2)\n```\nbye"))
  end)

  it("keeps empty lines inside and at the edges of the body", function()
    assert.are.equal("\nx = 1\n", code.extract("```python\n\nx = 1\n\n```")[1].code)
  end)

  it("AutoGen: inline spans are ignored unless opts.inline is set", function()
    local line = "Run `source setup.sh` from terminal"
    assert.are.same({}, code.extract(line))
    assert.are.same({}, code.extract(line, { inline = false }))
  end)

  it("AutoGen: opts.inline turns inline spans into blocks with an inferred language", function()
    assert.are.same({ { lang = "unknown", code = "source setup.sh" } },
      code.extract("Run `source setup.sh` from terminal", { inline = true }))
    assert.are.same({ { lang = "sh", code = "pip install autogen" }, { lang = "python", code = "print(1)" } },
      code.extract("First `pip install autogen`, then ` print(1) `.", { inline = true }))
  end)

  it("inline mode ignores inline spans when a fenced block exists", function()
    local text = "Install with `pip install x`, then run:\n```python\nprint(1)\n```\nor `python3 -m x`."
    assert.are.same({ { lang = "python", code = "print(1)" } }, code.extract(text, { inline = true }))
  end)

  it("inline mode honours double-backtick spans and skips empty ones", function()
    assert.are.same({ { lang = "python", code = "x = '`'" } },
      code.extract("Set ``x = '`'`` and `` `` done", { inline = true }))
  end)

  it("AutoGen content_str: a list of text parts is joined before extraction", function()
    local content = { { type = "text", text = "```python\n" }, { type = "text", text = "print(1)\n```" } }
    assert.are.same({ { lang = "python", code = "print(1)" } }, code.extract(content))
  end)

  it("AutoGen content_str: images become <image>, empty lists give no blocks", function()
    local content = { { type = "text", text = "see `x = 1`" },
                      { type = "image_url", image_url = { url = "http://example.com/image.png" } } }
    assert.are.same({ { lang = "python", code = "x = 1" } }, code.extract(content, { inline = true }))
    assert.are.same({}, code.extract({}))
  end)

  it("content_str: unknown part types and non-table parts are skipped, never an error (one content_str)", function()
    assert.are.same({ { lang = "python", code = "x = 1" } },
      code.extract({ { type = "text", text = "```python\nx = 1\n```" }, { type = "wrong_type", url = "x" } }))
    assert.are.same({ { lang = "python", code = "y = 2" } },
      code.extract({ "string", { type = "text", text = "```python\ny = 2\n```" }, 7 }))
    assert.are.same({}, code.extract(42))
    -- the same text the transcript and the chat see
    local content = require("agentbox.content")
    assert.equal("a<image>b", content.str({ { type = "text", text = "a" }, { type = "audio" },
                                             { type = "image_url", image_url = { url = "u" } }, "s", { type = "text", text = "b" } }))
  end)
end)

describe("code: hostile sizes (issue 8 item 9)", function()
  it("language inference reads a bounded prefix: what follows it is never inspected", function()
    local py = ("x = 1\n"):rep(code.INFER_LIMIT // 6 + 10)
    assert.equal("python", code.infer_lang(py .. ("$$$ not python at all ???\n"):rep(100000)))
    assert.equal("unknown", code.infer_lang("$$$\n" .. py))
    -- a prefix may end inside brackets or a docstring that close later
    assert.equal("python", code.infer_lang("print(1)\nx = [\n" .. ("  1,\n"):rep(code.INFER_LIMIT // 4) .. "]\n"))
    assert.equal("python", code.infer_lang('print(1)\n"""\n' .. ("doc $ ? !\n"):rep(code.INFER_LIMIT // 8) .. '"""\n'))
  end)

  it("max_blocks keeps the first n blocks and counts the rest without keeping them", function()
    local parts = {}
    for i = 1, 10000 do parts[i] = ("```sh\necho %d\n```\n"):format(i) end
    local blocks, skipped = code.extract(table.concat(parts), { max_blocks = 32 })
    assert.equal(32, #blocks)
    assert.equal(9968, skipped)
    assert.same({ lang = "sh", code = "echo 32" }, blocks[32])
    local all, none = code.extract(table.concat(parts, "", 1, 40))
    assert.equal(40, #all)
    assert.equal(0, none)
  end)

  it("calls pause between chunks of a long message and inside a long inference", function()
    local calls = 0
    local text = "```\n" .. ("x = 1\n"):rep(100000) .. "```\n"
    local blocks = code.extract(text, { pause = function() calls = calls + 1 end })
    assert.equal("python", blocks[1].lang)
    assert.is_true(calls >= 100000 // 256, tostring(calls))
    calls = 0
    code.infer_lang(("x = 1\n"):rep(3000), function() calls = calls + 1 end)
    assert.is_true(calls >= 3, tostring(calls))
  end)
end)

describe("code.format_result", function()
  it("formats success exactly like AutoGen", function()
    assert.are.equal("exitcode: 0 (execution succeeded)\nCode output: hello\n",
      code.format_result({ exit_code = 0, output = "hello\n" }))
  end)

  it("formats failure and timeout exit codes", function()
    assert.are.equal("exitcode: 1 (execution failed)\nCode output: \nunknown language c++",
      code.format_result({ exit_code = 1, output = "\nunknown language c++" }))
    assert.are.equal("exitcode: 124 (execution failed)\nCode output: partial\nTimeout",
      code.format_result({ exit_code = 124, output = "partial\nTimeout" }))
  end)

  it("prints integral floats as integers and treats missing output as empty", function()
    assert.are.equal("exitcode: 0 (execution succeeded)\nCode output: ",
      code.format_result({ exit_code = 0.0 }))
  end)
end)

describe("code.language", function()
  it("maps AutoGen's names and aliases, case-insensitively", function()
    local cases = {
      python = { "python", "py", "python" }, Python = { "python", "py", "python" },
      py = { "python", "py", "python" }, python3 = { "python", "py", "python" }, PY = { "python", "py", "python" },
      bash = { "bash", "sh", "shell" }, sh = { "sh", "sh", "shell" }, shell = { "sh", "sh", "shell" },
      javascript = { "javascript", "js", "node" }, js = { "javascript", "js", "node" },
      pwsh = { "powershell", "ps1", "pwsh" }, powershell = { "powershell", "ps1", "pwsh" },
      ps1 = { "powershell", "ps1", "pwsh" }, PowerShell = { "powershell", "ps1", "pwsh" },
      html = { "html", "html", "save" }, CSS = { "css", "css", "save" },
    }
    for lang, want in pairs(cases) do
      assert.are.same({ name = want[1], ext = want[2], kind = want[3] }, code.language(lang), lang)
    end
  end)

  it("returns nil for languages nothing can run", function()
    for _, lang in ipairs{ "unknown", "c++", "", "rust", "markdown" } do
      assert.is_nil(code.language(lang), lang)
    end
    assert.is_nil(code.language(nil))
  end)

  it("returns a fresh table so callers cannot corrupt the mapping", function()
    code.language("python").ext = "txt"
    assert.are.equal("py", code.language("python").ext)
  end)

  it("makes javascript, html and css save-only by default", function()
    assert.are.same({ javascript = true, html = true, css = true }, code.SAVE_ONLY)
    assert.is_nil(code.SAVE_ONLY.python)
    assert.is_nil(code.SAVE_ONLY.sh)
  end)
end)

describe("code.filename", function()
  it("reads AutoGen's four first-line comment forms", function()
    assert.are.equal("test_file_name.py",
      code.filename("# filename: test_file_name.py\nimport sys\nprint('hello world!')", "python"))
    assert.are.equal("app.js", code.filename("// filename: app.js\nconsole.log(1)", "javascript"))
    assert.are.equal("style.css", code.filename("/* filename: style.css */\nbody {}", "css"))
    assert.are.equal("index.html", code.filename("<!-- filename: index.html -->\n<p>hi</p>", "html"))
  end)

  it("accepts a bare path-like token without the word filename:", function()
    assert.are.equal("x.py", code.filename("# x.py\nprint(1)", "python"))
    assert.are.equal("sub/dir/x.py", code.filename("# sub/dir/x.py\nprint(1)", "python"))
    assert.are.equal("page.html", code.filename("<!-- page.html -->\n<p/>", "html"))
    assert.are.equal("main.js", code.filename("//main.js\n1", "javascript"))
  end)

  it("fix: a comment that is not a single path-like token names nothing", function()
    assert.is_nil(code.filename("# This prints\nprint(1)", "python"))
    assert.is_nil(code.filename("# TODO\nprint(1)", "python"))
    assert.is_nil(code.filename("# e.g.\nprint(1)", "python"))
    assert.is_nil(code.filename("# version 1.5\nprint(1)", "python"))
    assert.is_nil(code.filename("/* reset the page */\nbody {}", "css"))
    assert.is_nil(code.filename("# https://example.com/a.py\nprint(1)", "python"))
  end)

  it("returns nil without a comment, for shebangs and for an empty filename:", function()
    assert.is_nil(code.filename("print(1)\n# x.py", "python"))
    assert.is_nil(code.filename("#!/bin/bash\necho hi", "sh"))
    assert.is_nil(code.filename("# filename:\nprint(1)", "python"))
    assert.is_nil(code.filename("", "python"))
  end)

  it("after filename: takes the rest of the line, trimmed, CR removed", function()
    assert.are.equal("x.py", code.filename("  # filename:   x.py  \r\nprint(1)", "python"))
    assert.are.equal("my script.py", code.filename("# filename: my script.py\nprint(1)", "python"))
    assert.are.equal("q.py", code.filename("# Filename: `q.py`\nprint(1)", "python"))
  end)

  it("returns names that escape the workspace as written; resolve_in_workspace rejects them", function()
    assert.are.equal("../x.py", code.filename("# filename: ../x.py\n", "python"))
    assert.are.equal("/tmp/test.py", code.filename('# filename: /tmp/test.py\n\nprint("hello world")\n', "python"))
  end)
end)

describe("code.default_filename", function()
  it("is tmp_code_<md5 of the code>.<ext>, hashing the exact code", function()
    local seen
    local function md5(s) seen = s; return "5eb63bbbe01eeed093cb22bb8f5acdc3" end
    assert.are.equal("tmp_code_5eb63bbbe01eeed093cb22bb8f5acdc3.py",
      code.default_filename("print('hello world')", "py", md5))
    assert.are.equal("print('hello world')", seen)
  end)

  it("gives identical code the same name and different code a different one", function()
    local function md5(s) return ("%08x"):format(#s) end
    assert.are.equal(code.default_filename("ab", "sh", md5), code.default_filename("ab", "sh", md5))
    assert.are_not.equal(code.default_filename("ab", "sh", md5), code.default_filename("abc", "sh", md5))
  end)

  it("requires the md5 function", function()
    assert.has_error(function() code.default_filename("x", "py") end)
  end)
end)

describe("code.resolve_in_workspace", function()
  local OUT = "Filename is not in the workspace"

  local function rejects(work_dir, name)
    local path, err = code.resolve_in_workspace(work_dir, name)
    assert.is_nil(path, tostring(name))
    assert.are.equal(OUT, err)
  end

  it("accepts plain names and sub-directories, normalized", function()
    assert.are.equal("x.py", code.resolve_in_workspace("coding", "x.py"))
    assert.are.equal("sub/x.py", code.resolve_in_workspace("coding", "sub/x.py"))
    assert.are.equal("sub/x.py", code.resolve_in_workspace("coding", "./sub//./x.py"))
    assert.are.equal("x.py", code.resolve_in_workspace("coding", "sub/../x.py"))
    assert.are.equal("b/x.py", code.resolve_in_workspace("coding", "a/../b/c/../x.py"))
  end)

  it("AutoGen: ../x.py and /tmp/x.py are not in the workspace", function()
    rejects("coding", "../x.py")
    rejects("coding", "/tmp/x.py")
    rejects("coding", "/tmp/test.py")
    rejects("/home/u/coding", "/tmp/x.py")
  end)

  it("rejects names that climb out after normalization", function()
    rejects("coding", "a/../../x")
    rejects("coding", "sub/../../coding/x.py")
    rejects("coding", "..")
  end)

  it("rejects empty names, names that are the root itself, and NUL bytes", function()
    rejects("coding", "")
    rejects("coding", ".")
    rejects("coding", "sub/..")
    rejects("coding", "x\0.py")
    rejects("coding", nil)
  end)

  it("accepts an absolute name only when it lies under an absolute work_dir", function()
    assert.are.equal("sub/x.py", code.resolve_in_workspace("/home/u/coding", "/home/u/coding/sub/x.py"))
    assert.are.equal("x.py", code.resolve_in_workspace("/home/u/coding/", "/home/u/./coding/x.py"))
    rejects("/home/u/coding", "/home/u/coding")
    rejects("/home/u/coding", "/home/u/coding/../x.py")
    rejects("/home/u/coding", "/home/u/codingx/x.py")
    rejects("coding", "/home/u/coding/x.py")
  end)
end)
