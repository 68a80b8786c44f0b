-- LDoc and LuaLS both claim `---` comments but read different tags, and LDoc
-- stops at LuaCATS's `---@class` (its own item kind is called "class"). So
-- types/agentbox.d.lua is written once, in LuaCATS for editors, and this
-- script rewrites it into LDoc tags for `make doc`:
--   lua5.4 scripts/ldoc_from_luacats.lua types/agentbox.d.lua build/ldoc-src/agentbox.lua
-- ---@class X before `local X = {}` becomes `@type X` (a class with methods),
-- before `agentbox.x = {}` or the module table a `@section`, before nothing
-- a `@table` of its `---@field`s; `---@param` and `---@return` keep their
-- LuaCATS type in the text; `---@type` on a module field becomes a `@field`
-- of the "fields" table. Unknown annotations are an error, so a new one
-- cannot silently vanish from the reference.
local src, dst = arg[1], arg[2]
if not (src and dst) then
  io.stderr:write("usage: lua5.4 scripts/ldoc_from_luacats.lua <in.d.lua> <out.lua>\n")
  os.exit(2)
end

local lines = {}
for l in assert(io.open(src)):lines() do lines[#lines + 1] = l end

-- A LuaCATS type runs to the first space outside (), {}, <> and [].
local function split_type(s)
  local depth, i = 0, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == "(" or c == "{" or c == "<" or c == "[" then depth = depth + 1
    elseif c == ")" or c == "}" or c == ">" or c == "]" then depth = depth - 1
    elseif c == ":" and depth == 0 and s:sub(i + 1, i + 1) == " " and s:sub(1, i - 1):match("fun%(.*%)$") then
      i = i + 1                       -- `fun(x): ret`: the return type goes with it
    elseif c == " " and depth == 0 then
      return s:sub(1, i - 1), s:sub(i + 1)
    end
    i = i + 1
  end
  return s, ""
end

local function next_code(i)
  for j = i, #lines do
    local l = lines[j]
    if l:match("^%s*$") then return nil end
    if not l:match("^%-%-") then return l end
  end
end

local out, fields = {}, {}
local i = 1
while i <= #lines do
  local l = lines[i]
  if l:match("^%-%-%-@meta") then
    i = i + 1
  elseif l:match("^%-%-%-%-+") then          -- a rule line: not a doc comment
    out[#out + 1] = "-- " .. l:gsub("^%-+%s*", "")
    i = i + 1
  elseif l:match("^%-%-%-") then
    local j = i
    while j <= #lines and lines[j]:match("^%-%-") do j = j + 1 end
    local code = next_code(j) or ""
    local block, kind = {}, nil
    for k = i, j - 1 do
      local b = lines[k]
      local tag, rest = b:match("^%-%-%-@(%w+)%s*(.*)$")
      if not tag then
        block[#block + 1] = b
      elseif tag == "class" then
        local name = rest:match("^([%w_.]+)")
        local short = name:gsub("^agentbox%.", "")
        if code:match("^local agentbox = {}") then
          kind = "-- @section agentbox"
        elseif code:match("^agentbox%.(%w+) = {}") then
          kind = "-- @section " .. code:match("^agentbox%.(%w+)")
        elseif code:match("^local %w+ = {}") then
          kind = "-- @type " .. short
        else
          kind = "-- @table " .. short
        end
        local parent = rest:match(":%s*([%w_.]+)")
        if parent then block[#block + 1] = "-- Extends " .. parent:gsub("^agentbox%.", "") .. "." end
      elseif tag == "field" then
        local name, r = rest:match("^([%w_]+)%s*(.*)$")
        local ty, desc = split_type(r)
        block[#block + 1] = ("-- @field %s %s%s"):format(name, ty, desc ~= "" and ": " .. desc or "")
      elseif tag == "param" then
        local name, r = rest:match("^([%w_.]+)%s*(.*)$")
        local ty, desc = split_type(r)
        block[#block + 1] = ("-- @param %s %s%s"):format(name == "..." and "..." or name, ty,
          desc ~= "" and ": " .. desc or "")
      elseif tag == "return" then
        local ty, desc = split_type(rest)
        -- LuaCATS's optional return name: `---@return T name what it is`
        local rname, rdesc = desc:match("^([%a_][%w_]*)%s+(.+)$")
        if rname then desc = rname .. ": " .. rdesc end
        block[#block + 1] = ("-- @return %s%s"):format(ty, desc ~= "" and " " .. desc or "")
      elseif tag == "type" then
        local name = code:match("^agentbox%.([%w_]+)")
        assert(name, src .. ":" .. k .. ": ---@type only before an agentbox.<field>")
        local desc = {}
        for _, d in ipairs(block) do desc[#desc + 1] = (d:gsub("^%-+%s*", "")) end
        fields[#fields + 1] = ("-- @field %s %s: %s"):format(name, rest, table.concat(desc, " "))
          :gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")
        block, kind = nil, nil
        break
      else
        io.stderr:write(src, ":", k, ": no LDoc form for ---@", tag, " (teach scripts/ldoc_from_luacats.lua)\n")
        os.exit(1)
      end
    end
    if block then
      -- LDoc's plain format copies text into the HTML as is: `table<string, x>` must show
      for n, b in ipairs(block) do block[n] = b:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;") end
      if kind then block[#block + 1] = kind end
      if block[1] then block[1] = block[1]:gsub("^%-%-%-?", "---", 1) end
      for _, b in ipairs(block) do out[#out + 1] = b end
    end
    i = j
  else
    -- code: module-field assignments were documented as fields above
    if not l:match("^agentbox%.[%w_]+ = [^{]") then out[#out + 1] = l end
    i = i + 1
  end
end

-- The module's settable fields, as one table right after the module header.
if #fields > 0 then
  local at
  for k, l in ipairs(out) do if l:match("^%-%- @module") then at = k break end end
  assert(at, src .. ": no @module line")
  local t = { "", "--- The module's fields (read, or assign a hook).", "-- @table fields" }
  for _, f in ipairs(fields) do t[#t + 1] = f end
  for k = #t, 1, -1 do table.insert(out, at + 1, t[k]) end
end

local f = assert(io.open(dst, "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
