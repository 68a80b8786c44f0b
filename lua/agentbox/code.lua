--- Code blocks in messages (`agentbox.code`): extraction, language inference
-- and the reply text of a result.
--
-- AutoGen 0.2 parity plus the fixes listed in AUTOGEN-PARITY.md. Pure Lua:
-- no I/O, no C core. The agent's reply that runs the blocks is
-- agent/code_execution.lua; file naming is used by the executors.
-- @module agentbox.code
local M = {}

local UNKNOWN = "unknown"

local function set(list)
  local t = {}
  for _, v in ipairs(list) do t[v] = true end
  return t
end

-- Messages may carry OpenAI multimodal content (a list of parts): see content.lua.
local content_str = require("agentbox.content").str

-- Language inference. AutoGen asks Python's compile() whether the text is
-- Python. We cannot run Python here (and Lua's load() only knows Lua), so we
-- approximate what makes compile() fail on the texts a model actually sends:
-- prose, shell commands and C-family/Lua/JS code. A small tokenizer checks
--  * strings terminate and brackets balance ("print('x'))" is not Python);
--  * no two operands touch without an operator or keyword between them
--    ("dummy text", "local x = 1", "echo hi", "using System;" all fail this,
--    while Python itself only allows it around keywords);
--  * no characters Python never uses outside strings ($ ? ! `), a "." is
--    followed by a name (catches Lua "..");
--  * indentation follows Python's INDENT/DEDENT rules.
-- compile() accepts any expression, so "ls -la" and "cd /tmp" would pass; we
-- additionally require a statement-like signal (a call, an assignment or a
-- statement keyword). Rejecting a bare expression costs little: such a
-- block gets "unknown" instead of running as Python.

local KEYWORDS = set{ "and", "as", "assert", "async", "await", "break", "class",
  "continue", "def", "del", "elif", "else", "except", "finally", "for", "from",
  "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
  "pass", "raise", "return", "try", "while", "with", "yield",
  "match", "case", "type" }   -- soft keywords: "match x:" must not look like prose
-- Keywords that only occur inside expressions do not mark a statement.
local WEAK_KEYWORDS = set{ "and", "as", "in", "is", "not", "or", "match", "case", "type" }
local STRING_PREFIXES = set{ "r", "u", "b", "f", "br", "rb", "fr", "rf" }
local OPERATORS = { "**=", "//=", ">>=", "<<=", "...", "**", "//", "<<", ">>",
  "<=", ">=", "==", "!=", "->", "+=", "-=", "*=", "/=", "%=", "@=", "&=", "|=",
  "^=", ":=", "+", "-", "*", "/", "%", "@", "&", "|", "^", "~", "<", ">", "=",
  ".", ",", ":", ";" }
local ASSIGN = set{ "=", "**=", "//=", ">>=", "<<=", "+=", "-=", "*=", "/=",
  "%=", "@=", "&=", "|=", "^=" }
local CLOSERS = { [")"] = "(", ["]"] = "[", ["}"] = "{" }

-- Returns the index after the closing quote, or nil when unterminated.
local function scan_string(src, i)
  local q = src:sub(i, i)
  local triple = src:sub(i, i + 2) == q:rep(3)
  local close = triple and q:rep(3) or q
  local j = i + #close
  while j <= #src do
    local c = src:sub(j, j)
    if not triple and c == "\n" then return nil end
    if src:sub(j, j + #close - 1) == close then return j + #close end
    j = j + (c == "\\" and 2 or 1)
  end
  return nil
end

-- partial: src is a prefix of a longer block (cut at a line end), so what is
-- still open at its end (brackets, a block after ":", a triple-quoted
-- string) is not held against it. pause (optional) is called every few
-- hundred tokens so a long scan can yield to the reactor.
local function looks_like_python(src, partial, pause)
  local i, n = 1, #src
  local tokens = 0
  local stack, levels = {}, { 0 }
  local at_bol, colon_end, signal = true, false, false
  local prev, last     -- class and text of the previous token on this logical line
  local from_line      -- "from . import x": leading dots are legal there

  local function push(class, text)
    local operand = class == "name" or class == "number" or class == "string"
    if operand and (prev == "name" or prev == "number" or prev == "close"
        or (prev == "string" and class ~= "string")) then
      return false
    end
    if prev == "dot" and class ~= "name" and not from_line then return false end
    prev, last = class, text
    return true
  end

  while i <= n do
    tokens = tokens + 1
    if pause and tokens % 512 == 0 then pause() end
    if at_bol and #stack == 0 then
      local ws = src:match("^[ \t\f]*", i)
      local nxt = src:sub(i + #ws, i + #ws)
      if nxt ~= "" and nxt ~= "\n" and nxt ~= "\r" and nxt ~= "#" then
        local width = 0
        for k = 1, #ws do
          width = ws:sub(k, k) == "\t" and (width // 8 + 1) * 8 or width + 1
        end
        if colon_end ~= (width > levels[#levels]) then return false end   -- (un)expected indent
        if colon_end then levels[#levels + 1], colon_end = width, false end
        while width < levels[#levels] do levels[#levels] = nil end
        if width ~= levels[#levels] then return false end
      end
      at_bol, i = false, i + #ws
    end
    local c = src:sub(i, i)
    if c == "\n" and #stack == 0 then
      if prev then colon_end = last == ":" end
      prev, last, at_bol, from_line, i = nil, nil, true, false, i + 1
    elseif c:find("%s") then
      i = i + 1
    elseif c == "#" then
      i = (src:find("\n", i, true) or n + 1)
    elseif c == "\\" then                       -- only as a line continuation
      i = src:match("^\\\r?\n()", i)
      if not i then return false end
    elseif c:find("%d") or (c == "." and src:sub(i + 1, i + 1):find("%d")) then
      if not push("number") then return false end
      i = src:match("^[%w_%.]*()", i)
    elseif c:find("[%a_\128-\255'\"]") then
      local word = src:match("^[%w_\128-\255]*", i)
      local q = src:sub(i + #word, i + #word)
      if (q == "'" or q == '"') and (word == "" or STRING_PREFIXES[word:lower()]) then
        local j = scan_string(src, i + #word)
        if not j and partial and src:sub(i + #word, i + #word + 2) == src:sub(i + #word, i + #word):rep(3) then
          return signal                  -- a docstring that goes on past the prefix
        end
        i = j
        if not i or not push("string") then return false end
      else
        if KEYWORDS[word] and (prev ~= "dot" or from_line) then
          signal = signal or not WEAK_KEYWORDS[word]
          if word == "from" and prev == nil then from_line = true end
          prev, last = "kw", word
        elseif not push("name", word) then
          return false
        end
        i = i + #word
      end
    elseif c == "(" or c == "[" or c == "{" then
      if c == "(" and prev == "name" then signal = true end
      if prev == "dot" then return false end
      stack[#stack + 1] = c
      prev, last, i = "open", c, i + 1
    elseif CLOSERS[c] then
      if stack[#stack] ~= CLOSERS[c] or prev == "dot" then return false end
      stack[#stack] = nil
      prev, last, i = "close", c, i + 1
    else
      local op
      for _, o in ipairs(OPERATORS) do
        if src:sub(i, i + #o - 1) == o then op = o; break end
      end
      if not op then return false end          -- $ ? ! ` and friends
      if ASSIGN[op] and #stack == 0 then signal = true end
      if op == "." and not from_line and prev ~= "name" and prev ~= "close" and prev ~= "string"
          or op ~= "." and op ~= "..." and prev == "dot" then
        return false
      end
      if op == "..." then
        if not push("name", op) then return false end
      else
        prev, last = op == "." and "dot" or "op", op
      end
      i = i + #op
    end
  end
  if prev then colon_end = last == ":" end
  if partial then return signal end
  return #stack == 0 and not colon_end and signal
end

-- Inference reads at most this many bytes (cut at a line end), so a hostile
-- 5 MB untagged block costs what a 16 KiB one does.
M.INFER_LIMIT = 16 * 1024

--- The language of an untagged block.
-- Reads at most the first 16 KiB (`INFER_LIMIT`, cut at a line end). A
-- shebang decides; otherwise "python" only when the text would compile as
-- Python and looks like a statement, "sh" for `pip ...` and `python x.py`.
-- @tparam string code the block
-- @tparam[opt] function pause called every few hundred tokens (inside a task:
-- a checkpoint, so a long scan yields)
-- @treturn string "python", "sh" or "unknown"
function M.infer_lang(code, pause)
  code = tostring(code or "")
  local partial = false
  if #code > M.INFER_LIMIT then
    local cut = code:sub(1, M.INFER_LIMIT)
    code, partial = cut:match("^(.*)\n") or cut, true
  end
  local s = code:match("^%s*(.*)$")
  local interp = s:match("^#!%s*(%S+)")
  if interp then
    local line = s:match("^[^\n]*")
    if interp:match("[^/]*$") == "env" then
      interp = line:match("^#!%s*%S+%s+%-S%s+(%S+)") or line:match("^#!%s*%S+%s+(%S+)") or ""
    end
    local base = interp:match("[^/]*$")
    if base == "sh" or base == "bash" then return "sh" end
    if base:find("^python[%d%.]*$") then return "python" end
    return UNKNOWN                       -- some other interpreter: never run it as Python
  end
  -- "pip" must be a whole word: AutoGen's bare prefix test made "pipeline = 1" shell.
  if s:find("^pip3?%s") then return "sh" end
  -- "python x.py", "python3 -m pip ..."; "python = 3" stays Python.
  local arg = s:match("^python[%d%.]*[ \t]+(%S+)")
  if arg and (arg:find("%.py$") or arg:find("^%-%-?%a")) then return "sh" end
  return looks_like_python(code, partial, pause) and "python" or UNKNOWN
end

-- Extraction: CommonMark-style fenced blocks, line by line.

local function opening_fence(line)
  local indent, fence, info = line:match("^([ \t]*)(```+)(.*)$")
  if not indent then
    indent, fence, info = line:match("^([ \t]*)(~~~+)(.*)$")
  elseif info:find("`", 1, true) then
    return nil                           -- "```x```" is an inline span, not a fence
  end
  if not indent then return nil end
  return { indent = indent, char = fence:sub(1, 1), len = #fence,
           lang = info:match("^%s*(%S*)"):lower(), body = {} }
end

-- A closing fence is a run at least as long as the opening one, then the end
-- of the line or a space/tab and any text ("``` and more" closes, as in
-- AutoGen's CODE_BLOCK_PATTERN). A word straight after the run ("```bash") is
-- an info string, i.e. an opening fence, which never closes a block.
local function closes(line, open)
  local run, rest = line:match("^[ \t]*(" .. open.char:rep(3) .. "+)(.*)$")
  return run ~= nil and #run >= open.len and (rest == "" or rest:find("^[ \t]") ~= nil)
end

-- CommonMark: a fence indented by N removes up to N of the same indentation
-- from each body line, so an indented answer still compiles.
local function dedent(line, indent)
  local k = 0
  while k < #indent and line:byte(k + 1) == indent:byte(k + 1) do k = k + 1 end
  return line:sub(k + 1)
end

-- Lines between pause() calls, when extraction may yield (see extract).
local LINES_PER_PAUSE = 256

-- A fence without indentation in a text without CR keeps its body as a
-- byte range of the text (one sub() at the close, no table of lines);
-- otherwise lines are collected, dedented and CR-stripped one by one.
local function fenced_blocks(text, max, pause)
  local blocks, open, skipped, nlines = {}, nil, 0, 0
  local ranged = not text:find("\r", 1, true)
  for pos, line in (text .. "\n"):gmatch("()([^\n]*)\n") do
    nlines = nlines + 1
    if pause and nlines % LINES_PER_PAUSE == 0 then pause() end
    line = line:gsub("\r$", "")
    if not open then
      open = opening_fence(line)
      if open then
        open.ranged = ranged and open.indent == ""
        -- past the cap a block is only counted: no body kept, nothing inferred
        open.counted_only = #blocks >= max
      end
    elseif closes(line, open) then
      if open.counted_only then
        skipped = skipped + 1
      else
        local code
        if open.ranged then
          code = open.from and text:sub(open.from, open.to) or ""
        else
          code = table.concat(open.body, "\n")
        end
        local lang = open.lang ~= "" and open.lang or M.infer_lang(code, pause)
        blocks[#blocks + 1] = { lang = lang, code = code }
      end
      open = nil
    elseif open.ranged then
      open.from = open.from or pos
      open.to = pos + #line - 1
    elseif not open.counted_only then
      open.body[#open.body + 1] = dedent(line, open.indent)
    end
  end
  return blocks, skipped                  -- a still-open fence is dropped on purpose
end

-- Inline spans: a run of N backticks up to the next run of exactly N.
local function inline_blocks(text)
  local blocks, i = {}, 1
  while true do
    local s, e = text:find("`+", i)
    if not s then break end
    local close, after = text:find("%f[`]" .. ("`"):rep(e - s + 1) .. "%f[^`]", e + 1)
    local code = close and text:sub(e + 1, close - 1):match("^%s*(.-)%s*$")
    if code and code ~= "" then
      blocks[#blocks + 1] = { lang = M.infer_lang(code), code = code }
    end
    i = (after or e) + 1
  end
  return blocks
end

--- The fenced code blocks of a message.
-- Fences of ``` or ~~~, CommonMark style. An untagged block's language is inferred (@{infer_lang}); a fence still
-- open at the end is dropped.
-- @tparam string|table text a message content: a string, or a list of
-- multimodal parts (text parts are read, others skipped)
-- @tparam[opt] table opts options:
--
--  - `max_blocks` (integer): keep the first n fenced blocks, only count the rest;
--  - `inline` (boolean): with no fenced block, take `inline spans` instead;
--  - `pause` (function): called between chunks of a long message (the agents
--    pass a task checkpoint, so extraction yields to the reactor).
-- @treturn {agentbox.CodeBlock,...} the blocks, in order
-- @treturn integer how many more fenced blocks there were past max_blocks
function M.extract(text, opts)
  opts = opts or {}
  text = content_str(text)
  local max = opts.max_blocks or math.huge
  local blocks, skipped = fenced_blocks(text, max, opts.pause)
  if #blocks == 0 and skipped == 0 and opts.inline then
    blocks = inline_blocks(text)
  end
  return blocks, skipped
end

-- names the reply to the model spells out; the rest are counted
M.MAX_NAMED_FILES = 20

-- "\nFiles: chart.png (12345 bytes), ..." for a result's output_files ("" when none)
local function files_line(files, incomplete)
  if (type(files) ~= "table" or #files == 0) and not incomplete then return "" end
  local names = {}
  for i, f in ipairs(type(files) == "table" and files or {}) do
    if i > M.MAX_NAMED_FILES then
      names[#names + 1] = ("and %d more"):format(#files - M.MAX_NAMED_FILES)
      break
    end
    -- names come from the code: no control characters or broken UTF-8 in the reply
    local p = tostring(f.path):gsub("%c", "?")
    if not utf8.len(p) then p = p:gsub("[\128-\255]", "?") end
    names[#names + 1] = ("%s (%s bytes)"):format(p, tostring(math.tointeger(f.size) or f.size))
  end
  local line = "\nFiles: " .. (#names > 0 and table.concat(names, ", ") or "none listed")
  if incomplete then line = line .. " (incomplete: " .. tostring(incomplete) .. ")" end
  return line
end

--- AutoGen's reply text for a result.
-- Then the files the call produced (result.output_files), when there are any:
-- `\nFiles: chart.png (12345 bytes), ...`.
-- @tparam agentbox.ExecResult result the result
-- @treturn string `exitcode: <n> (execution succeeded|failed)\nCode output: <output>[\nFiles: ...]`
function M.format_result(result)
  local n = math.tointeger(result.exit_code) or result.exit_code
  return "exitcode: " .. tostring(n) .. " ("
    .. (n == 0 and "execution succeeded" or "execution failed")
    .. ")\nCode output: " .. tostring(result.output or "")
    .. files_line(result.output_files, result.output_files_incomplete)
end

local LANGUAGES = {
  python     = { "python", "py", "python" },
  sh         = { "sh", "sh", "shell" },
  bash       = { "bash", "sh", "shell" },
  javascript = { "javascript", "js", "node" },
  powershell = { "powershell", "ps1", "pwsh" },
  html       = { "html", "html", "save" },
  css        = { "css", "css", "save" },
}
local ALIASES = { py = "python", python3 = "python", shell = "sh", js = "javascript",
                  pwsh = "powershell", ps1 = "powershell" }

--- A language's name, file extension and how it runs, nil when unknown.
-- @local
function M.language(lang)
  if type(lang) ~= "string" then return nil end
  local key = lang:match("^%s*(.-)%s*$"):lower()
  local info = LANGUAGES[ALIASES[key] or key]
  if not info then return nil end
  -- a fresh table each call: executors may annotate it
  return { name = info[1], ext = info[2], kind = info[3] }
end

-- Default execution policy; executors copy it before changing it.
M.SAVE_ONLY = { javascript = true, html = true, css = true }

-- First-line comment forms AutoGen recognises, whatever the block's language.
local NAME_COMMENTS = { "^<!%-%-%s*(.-)%s*%-%->", "^/%*%s*(.-)%s*%*/", "^//%s*(.*)$", "^#%s*(.*)$" }

-- Without "filename:", only a lone path-like token names a file, so that a
-- first line such as "# This prints" or "# e.g." stays a comment.
local function path_like(s)
  if not s:find("^[%w_%-%.%+/\128-\255]+$") or s:find("/$") then return false end
  return s:find("%.%a[%w_]*$") ~= nil or s:find("/", 1, true) ~= nil
end

-- lang is accepted for symmetry with the executor call; AutoGen reads the
-- same comment forms for every language.
--- The file name a block's first line gives, nil when none.
-- @local
function M.filename(code, lang) -- luacheck: ignore lang
  local first = tostring(code or ""):match("^[^\n]*"):gsub("\r$", "")
  first = first:match("^%s*(.-)%s*$")
  if first:find("^#!") then return nil end
  for _, pat in ipairs(NAME_COMMENTS) do
    local inner = first:match(pat)
    if inner then
      local named = inner:match("^[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]:%s*(.-)%s*$")
      if named then
        named = named:match("^([`'\"])(.+)%1$") and named:sub(2, -2) or named
        return named ~= "" and named or nil
      end
      return path_like(inner) and inner or nil
    end
  end
  return nil
end

--- `tmp_code_<md5>.<ext>`, AutoGen's name for an unnamed block.
-- @local
function M.default_filename(code, ext, md5)
  assert(type(md5) == "function", "default_filename needs an md5 function")
  return "tmp_code_" .. md5(code) .. "." .. ext
end

local OUTSIDE = "Filename is not in the workspace"

local function normalize(path)
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      if #parts == 0 then return nil end
      parts[#parts] = nil
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  return parts
end

-- String logic only: a normalized relative path that never climbs above the
-- root stays inside it (symlinks already in the workspace are the executor's
-- concern). An absolute name is accepted only when it lies textually under an
-- absolute work_dir, which AutoGen's resolve()/relative_to() also allowed.
--- A file name as a path relative to the workspace, or nil, message.
-- @local
function M.resolve_in_workspace(work_dir, name)
  if type(name) ~= "string" or name:find("\0", 1, true) then return nil, OUTSIDE end
  local parts, skip = normalize(name), 0
  if name:sub(1, 1) == "/" then
    local root = type(work_dir) == "string" and work_dir:sub(1, 1) == "/" and normalize(work_dir)
    if not root or not parts then return nil, OUTSIDE end
    for k = 1, #root do
      if root[k] ~= parts[k] then return nil, OUTSIDE end
    end
    skip = #root
  end
  if not parts or #parts <= skip then return nil, OUTSIDE end
  return table.concat(parts, "/", skip + 1)
end

-- Execution results from a chat history ---------------------------------------

-- An execution reply starts with this (format_result, or the denial of
-- agent/code_execution.lua). Only the start of a message is matched: one
-- message is one reply, so output that itself prints "exitcode: ..." lines
-- stays part of the output.
local REPLY_HEAD = "^exitcode: (%-?%d+) %(execution (%a+)%)\nCode output: ()"
local STATUS = { succeeded = true, failed = true, denied = true }
-- the line the agent adds when a message had more than max_blocks blocks
local MAX_BLOCKS_NOTE = "\nagentbox: %d+ more code block%(s%) in this message were not run: at most %d+ run per "
  .. "message %(code_execution_config%.max_blocks%)%. Send fewer, larger blocks%.$"

-- The "\nFiles: a.png (12 bytes), b.csv (3 bytes)[, and 4 more][ (incomplete: why)]"
-- line format_result ends with: output_files, and why the list is short (nil
-- when complete); nil when the line is not exactly that (then it is output).
local function parse_files(line)
  local list, why = line:match("^(.-) %(incomplete: (.*)%)$")
  list = list or line
  local files, more = {}, nil
  if list ~= "none listed" then
    local rest = list:gsub(", and (%d+) more$", function(k) more = k return "" end)
    local pos = 1
    while true do
      -- up to the first " (<n> bytes)": a path may hold ", " itself
      local path, size, after = rest:match("^(.-) %((%d+) bytes%)()", pos)
      if not path or path == "" then return nil end
      files[#files + 1] = { path = path, size = math.tointeger(tonumber(size)) }
      if after > #rest then break end
      if rest:sub(after, after + 1) ~= ", " then return nil end
      pos = after + 2
    end
  end
  if more then
    why = (why and why .. "; " or "") .. ("the reply named %d of %d files"):format(#files, #files + tonumber(more))
  end
  return files, why
end

--- One code execution of a chat: an entry of ChatResult.execution_results
-- (kept as the code ran) and of @{execution_results} (read back from the
-- reply text; output_files from its `Files:` line).
-- @table ExecutionRecord
-- @tfield integer exit_code the result's exit code (124 timeout, 122 quota; 1 for a denial)
-- @tfield string output the result's output (for a denial: "Code execution was not approved. Reason: <reason>")
-- @tfield boolean succeeded exit_code == 0 (false for a denial)
-- @tfield table|nil output_files the executor's output_files (`{ path =, size = }`), when it lists them
-- @tfield string|nil output_files_incomplete why output_files may miss files
-- @tfield true|nil denied code_execution_config.approve said no: nothing ran

--- One record per execution reply in a chat history (a message that starts
-- `exitcode: <n> (execution succeeded|failed|denied)\nCode output: `), read
-- back from the text; a ChatResult's execution_results needs no parsing.
-- Output that itself prints `exitcode:` lines stays inside its one record.
-- @tparam {table,...} history e.g. a ChatResult's chat_history
-- @treturn {ExecutionRecord,...} records
-- @raise when history is not a table (misuse)
function M.execution_results(history)
  if type(history) ~= "table" then
    require("agentbox.errors").misuse("agentbox.code.execution_results: history must be a list of messages "
      .. "(a ChatResult's chat_history), got %s", type(history))
  end
  local out = {}
  for _, m in ipairs(history) do
    local text = type(m) == "table" and m.content ~= nil and content_str(m.content) or ""
    local n, status, from = text:match(REPLY_HEAD)
    n = n and math.tointeger(tonumber(n))
    if n and STATUS[status] then
      local output = text:sub(from):gsub(MAX_BLOCKS_NOTE, "")
      local files, incomplete
      local head, line = output:match("^(.*)\nFiles: ([^\n]*)$")
      if head then files, incomplete = parse_files(line) end
      if files then output = head end
      out[#out + 1] = { exit_code = n, output = output, succeeded = status == "succeeded",
                        output_files = files, output_files_incomplete = incomplete,
                        denied = status == "denied" or nil }
    end
  end
  return out
end

return M
