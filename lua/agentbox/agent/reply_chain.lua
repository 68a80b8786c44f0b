-- The reply chain (AutoGen's register_reply / generate_reply): an ordered
-- list of reply functions per agent, each with a trigger that says which
-- senders it answers; the first final reply wins, else default_auto_reply.
-- The chains live here, keyed by agent.
local class = require("agentbox.agent.class")
local errors = require("agentbox.errors")

local is_class, is_agent, is_instance = class.is_class, class.is_agent, class.is_instance

local M = {}

local chains = setmetatable({}, { __mode = "k" })   -- agent -> { funcs = {...}, default = reply }

-- The built-in trigger: every sender, including none (AutoGen's [Agent, None]).
M.ANY = setmetatable({}, { __tostring = function() return "any sender" end })
local ANY = M.ANY

--- default: what generate_reply gives when no function gives a final reply
function M.init(agent, default)
  chains[agent] = { funcs = {}, default = default }
end

-- register_reply's config is copied, so reset() can restore the original (AutoGen's copy.copy)
local function shallow_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = x end
  return t
end

local function callable(f)
  local mt = type(f) == "table" and getmetatable(f)
  return type(f) == "function" or (mt and mt.__call ~= nil)
end

local function valid_trigger(t)
  if t == nil or t == ANY or type(t) == "string" or callable(t) or is_class(t) or is_agent(t) then
    return true
  end
  if type(t) ~= "table" or #t == 0 then return false end
  for _, x in ipairs(t) do
    if not valid_trigger(x) then return false end
  end
  return true
end

--- agent:register_reply(trigger, fn, position = 1, config, reset_config), or
--- agent:register_reply(trigger, fn, { position =, config =, reset_config =, remove_other_reply_funcs = })
--- fn(agent, messages, sender, config) -> final, reply. Position is 1-based;
--- the default puts the function first, so the newest registration wins.
function M.register_reply(agent, trigger, fn, position, config, reset_config)
  if not valid_trigger(trigger) then
    errors.misuse("register_reply: trigger must be nil, an agent name, an agent, an agent class, a function(sender) "
      .. "-> boolean or a list of these; got %s", tostring(trigger))
  end
  if not callable(fn) then
    errors.misuse("register_reply: the reply function must be a function(agent, messages, sender, config) -> final, reply")
  end
  local opts = type(position) == "table" and position or { position = position, config = config,
                                                           reset_config = reset_config }
  local pos = opts.position or 1
  if math.type(pos) ~= "integer" or pos < 1 then
    errors.misuse("register_reply: position must be a positive integer (1 = tried first)")
  end
  local chain = chains[agent]
  if opts.remove_other_reply_funcs then chain.funcs = {} end
  pos = math.min(pos, #chain.funcs + 1)
  table.insert(chain.funcs, pos, { trigger = trigger, fn = fn, config = shallow_copy(opts.config),
                                   init_config = opts.config, reset_config = opts.reset_config })
end

function M.replace_reply_func(agent, old, new)
  for _, rf in ipairs(chains[agent].funcs) do
    if rf.fn == old then rf.fn = new end
  end
end

local function match_trigger(trigger, sender)
  if trigger == ANY then return true end
  if trigger == nil then return sender == nil end
  if type(trigger) == "string" then return sender ~= nil and sender.name == trigger end
  if is_class(trigger) then return is_instance(sender, trigger) end
  if is_agent(trigger) then return trigger == sender end
  if callable(trigger) then
    local r = trigger(sender)
    if type(r) ~= "boolean" then
      errors.misuse("register_reply: trigger function must return a boolean, got %s", type(r))
    end
    return r
  end
  for _, t in ipairs(trigger) do
    if match_trigger(t, sender) then return true end
  end
  return false
end

--- agent:generate_reply{ messages =, sender =, exclude = { fn, ... } }
function M.generate_reply(agent, args)
  args = args or {}
  local messages, sender = args.messages, args.sender
  if messages == nil and sender == nil then
    errors.misuse("generate_reply: give messages = {...} or sender = agent (or both)")
  end
  if messages == nil then messages = agent:chat_messages(sender) end
  local excluded = {}
  for _, f in ipairs(args.exclude or {}) do excluded[f] = true end
  local chain = chains[agent]
  for _, rf in ipairs(chain.funcs) do
    if not excluded[rf.fn] and match_trigger(rf.trigger, sender) then
      local final, reply = rf.fn(agent, messages, sender, rf.config)
      if final then return reply end
    end
  end
  return chain.default
end

--- Every function's config back to what it was registered with (reset()).
function M.reset(agent)
  for _, rf in ipairs(chains[agent].funcs) do
    if rf.reset_config then rf.reset_config(rf.config) else rf.config = shallow_copy(rf.init_config) end
  end
end

return M
