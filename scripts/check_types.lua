-- `make doc` (scripts/build_doc.sh), after LDoc: types/agentbox.d.lua
-- (LuaCATS, what editors complete) and the reference LDoc made from the code
-- (build/doc) must describe the same API, so the two cannot drift apart:
--   * every function and method the types file declares is documented in the
--     code, with the same one-sentence summary;
--   * every class of fields (an options table, a result shape) has an LDoc
--     table of the same name with the same field names (its own: a parent's
--     are checked on the parent);
--   * every function of the agentbox, agentbox.code and agentbox.docker
--     pages, and every method of a class the types file declares, is in the
--     types file.
-- The code holds the full description; the types file repeats only the
-- summary, which this check keeps identical.
--   lua5.4 scripts/check_types.lua types/agentbox.d.lua build/doc
local types_path, doc_dir = arg[1], arg[2]
if not (types_path and doc_dir) then
  io.stderr:write("usage: lua5.4 scripts/check_types.lua <types.d.lua> <ldoc output dir>\n")
  os.exit(2)
end

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', ["#39"] = "'" }
local function plain(html)
  return (html:gsub("<[^>]*>", ""):gsub("&(#?%w+);", function(e) return ENTITIES[e] end)
    :gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- The first sentence, as LDoc cuts a summary: up to a "." that ends the
-- text or is followed by white space.
local function first_sentence(s)
  s = s:gsub("%s+", " "):gsub("^ ", "")
  local cut = s:find("%.%s") or s:find("%.$")
  return (cut and s:sub(1, cut) or s):gsub(" $", "")
end

------------------------------------------------------------------ the reference

-- page name (agentbox.agent) -> { items = { [anchor] = { summary =, fields = {..}|nil } } }
local pages = {}
local ls = assert(io.popen("ls " .. doc_dir .. "/modules"))
for file in ls:lines() do
  local name = file:match("^(.*)%.html$")
  if name then
    local html = read(doc_dir .. "/modules/" .. file)
    local items = {}
    -- each item: <a name = "X"></a> in a <dt>, its text in the <dd> that follows
    for anchor, body in html:gmatch('<dt>%s*<a name = "([^"]+)"></a>.-</dt>%s*<dd>(.-)</dd>') do
      local desc = body:match("^(.-)<h3>") or body
      local fields
      local f = body:match("<h3>Fields:</h3>(.-)</ul>")
      if f then
        fields = {}
        for field in f:gmatch('<span class="parameter">([^<]+)</span>') do fields[field] = true end
      end
      items[anchor] = { summary = first_sentence(plain(desc)), fields = fields }
    end
    pages[name] = { items = items, html = html }
  end
end
ls:close()
if not pages.agentbox then
  io.stderr:write("check_types: no ", doc_dir, "/modules/agentbox.html (run ldoc first)\n")
  os.exit(1)
end

local function find_anchor(anchor)
  local found = {}
  for page, p in pairs(pages) do
    if p.items[anchor] then found[#found + 1] = page end
  end
  table.sort(found)
  return found
end

------------------------------------------------------------------ the types file

local lines = {}
for l in io.lines(types_path) do lines[#lines + 1] = l end

local declared = {}   -- "page#anchor" -> true
local classes = {}    -- name -> { fields = {...}, parent =, line = }

local i = 1
while i <= #lines do
  if lines[i]:match("^%-%-%-") and not lines[i]:match("^%-%-%-%-") and not lines[i]:match("^%-%-%-@meta") then
    local start = i
    local text, class, fields, tfield = {}, nil, {}, nil
    while i <= #lines and lines[i]:match("^%-%-") do
      local l = lines[i]
      local tag, rest = l:match("^%-%-%-@(%w+)%s*(.*)$")
      if tag == "class" then
        class = { name = rest:match("^([%w_.]+)"), parent = rest:match(":%s*([%w_.]+)"), line = start }
      elseif tag == "field" then
        fields[rest:match("^([%w_]+)")] = true
      elseif tag == "type" then
        tfield = true
      elseif not tag then
        text[#text + 1] = l:gsub("^%-+%s?", "")
      end
      i = i + 1
    end
    local code = lines[i] or ""
    local summary = first_sentence(table.concat(text, " "):gsub("`", ""))
    if class then
      class.fields = fields
      class.is_type = code:match("^local %w+ = {}") ~= nil
      class.module_table = code:match("^local agentbox = {}") or code:match("^agentbox%.%w+ = {}")
      classes[class.name] = class
    elseif tfield then
      local name = code:match("^agentbox%.([%w_]+)")
      if not name then problem("%s:%d: ---@type only before agentbox.<field>", types_path, start) end
      local fieldsdoc = pages.agentbox.items.fields
      if name and not (fieldsdoc and fieldsdoc.fields and fieldsdoc.fields[name]) then
        problem("%s:%d: agentbox.%s is not a field of the code's `fields` table (lua/agentbox/init.lua)",
          types_path, start, name)
      end
    else
      local fname = code:match("^function ([%w_.:]+)%(")
      if fname then
        local page, anchor
        local mod, f = fname:match("^(agentbox%.%w+)%.([%w_]+)$")
        if mod then
          page, anchor = mod, f
        elseif fname:match("^agentbox%.[%w_]+$") then
          page, anchor = "agentbox", fname:match("^agentbox%.([%w_]+)$")
        else
          anchor = fname
          local found = find_anchor(anchor)
          if #found ~= 1 then
            problem("%s:%d: %s is documented in %d modules of the reference (%s), not 1", types_path, start,
              fname, #found, table.concat(found, ", "))
          end
          page = found[1]
        end
        local item = page and pages[page] and pages[page].items[anchor]
        if page and not item then
          problem("%s:%d: %s has no doc comment in the code (no %s in %s.html)", types_path, start, fname,
            anchor, page)
        elseif item and item.summary ~= summary then
          problem("%s:%d: %s: the summaries differ\n  types: %s\n  code:  %s", types_path, start, fname,
            summary, item.summary)
        end
        if page then declared[page .. "#" .. anchor] = true end
      end
    end
  else
    i = i + 1
  end
end

-- Classes: a shape (fields only) has an LDoc table with the same fields;
-- a class with methods has an LDoc @type.
for name, c in pairs(classes) do
  local short = name:gsub("^agentbox%.", "")
  -- c.module_table: the module tables themselves (agentboxlib, agentbox.codelib, ...)
  if c.module_table then goto continue end
  if c.is_type then
    local seen = false
    for _, p in pairs(pages) do
      if p.html:find('name="Class_' .. short .. '"', 1, true) then seen = true end
    end
    if not seen then
      problem("%s:%d: class %s has no `@type %s` in the code", types_path, c.line, name, short)
    end
  else
    local found = find_anchor(short)
    if #found ~= 1 then
      problem("%s:%d: %s is an LDoc table in %d modules (%s), not 1", types_path, c.line, name, #found,
        table.concat(found, ", "))
    else
      local doc = pages[found[1]].items[short].fields or {}
      -- own fields only: an LDoc table lists its own and names its parent
      -- (LocalExecutorOptions: "every ExecutorOptions too"), as ---@class X: Parent does
      local want = c.fields
      for f in pairs(want) do
        if not doc[f] then problem("%s:%d: %s.%s is not a field of %s in the code", types_path, c.line, name, f, found[1] .. "." .. short) end
      end
      for f in pairs(doc) do
        if not want[f] then problem("%s:%d: %s in the code has a field %s the types file lacks", types_path, c.line, found[1] .. "." .. short, f) end
      end
    end
  end
  ::continue::
end

-- The reverse: what the code documents as public, the types file declares.
local typed_class = {}
for name, c in pairs(classes) do
  if c.is_type then typed_class[(name:gsub("^agentbox%.", ""))] = true end
end
for page, p in pairs(pages) do
  for anchor in pairs(p.items) do
    local cls = anchor:match("^([%w_]+)[:.]")
    local is_function = p.html:find('<a href="#' .. anchor:gsub("%p", "%%%0") .. '">[^<]*%(', 1) ~= nil
    local wanted = (cls and typed_class[cls])
      or ((page == "agentbox" or page == "agentbox.code" or page == "agentbox.docker") and is_function and not cls)
    if wanted and is_function and not declared[page .. "#" .. anchor] then
      problem("%s.html: %s is documented in the code but not declared in %s", page, anchor, types_path)
    end
  end
end

if #problems > 0 then
  table.sort(problems)
  io.stderr:write(table.concat(problems, "\n"), "\n")
  io.stderr:write(("check_types: %d difference(s) between %s and the code's doc comments\n"):format(#problems, types_path))
  os.exit(1)
end
print("check_types: " .. types_path .. " agrees with the code's doc comments")
