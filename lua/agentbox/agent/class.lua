-- The small class system of the agents: a class is the metatable of its
-- instances, marked __agentbox_class, with __parent for is-a checks
-- (register_reply class triggers), __defaults filling options, and
-- __known naming the options a constructor accepts.
local errors = require("agentbox.errors")

local M = {}

function M.is_class(t)
  return type(t) == "table" and rawget(t, "__agentbox_class") == true
end

function M.is_agent(t)
  local mt = type(t) == "table" and getmetatable(t)
  return type(mt) == "table" and rawget(mt, "__agentbox_class") == true
end

function M.is_instance(obj, cls)
  local c = M.is_agent(obj) and getmetatable(obj)
  while c do
    if c == cls then return true end
    c = rawget(c, "__parent")
  end
  return false
end

local function new_instance(cls, opts)
  if type(opts) ~= "table" then
    errors.misuse("%s: expected an options table such as { name = \"assistant\", ... }", cls.__name)
  end
  local known = cls.__known
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      errors.misuse("%s: unknown option '%s' (known: %s)", cls.__name, tostring(k), table.concat(names, ", "))
    end
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  cls.__defaults(o)
  local self = setmetatable({}, cls)
  self:_init(o)
  return self
end

-- subclass: local MyAgent = agentbox.ConversableAgent:extend("MyAgent", function(o) ... defaults ... end)
function M.extend(parent, name, defaults)
  local cls = { __agentbox_class = true, __parent = parent, __name = name or "Agent" }
  cls.__index = cls
  -- the subclass fills its defaults first; the parent only fills what is left
  cls.__defaults = function(o)
    if defaults then defaults(o) end
    parent.__defaults(o)
  end
  cls.__tostring = rawget(parent, "__tostring")   -- metamethods are not inherited through __index
  cls.extend = M.extend
  return setmetatable(cls, { __index = parent, __call = new_instance })
end

--- A root class: known = the set of option names its constructor accepts.
function M.base(name, known)
  local cls = { __agentbox_class = true, __name = name, __known = known }
  cls.__index = cls
  cls.extend = M.extend
  return setmetatable(cls, { __call = new_instance })
end

return M
