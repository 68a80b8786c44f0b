-- A pooled container's work dir is its own private host directory, made
-- before anyone knew which work_dir it would serve. When the executor has a
-- work_dir of its own (one given, or fresh = true), its files are copied
-- into the container's directory before an execute call and what the call
-- changed is copied back after it, both through the workspace accessor
-- (src/workspace.c): every path resolved beneath a directory fd with no link
-- at any component, files opened O_NOFOLLOW and read only when regular, so a
-- link the code planted is never followed and a FIFO never opened. Copies
-- run while nothing of the sandbox runs (the block server killed every
-- process of the sandbox user after the last block), so nothing can be
-- swapped under them. Links and special files are not copied either way;
-- hard links stay links (ws:link), so a block cannot make the host write a
-- file once per name; files over MAX_FILE are not copied, nor anything once
-- the copy back has written the quota's bytes (a sparse file costs the
-- quota its blocks, the host its size); the result says what was skipped.
-- Permission bits: executable or not (0755 or 0644), nothing else.
local M = {}

M.MAX_ENTRIES = 10000            -- as output_files.lua: code may fill a directory with millions of names
M.MAX_FILE = 64 * 1024 * 1024    -- read whole into memory: bounded

-- agentbox's own files (the matplotlib backend), written again each call
local SKIP = { [".agentbox"] = true }

-- Everything under ws that is copied: { map = { [rel] = stat }, order =
-- { rel, ... } (a directory before what it holds), odd = links and special
-- files seen, full = the listing stopped at MAX_ENTRIES }
local function walk(ws)
  local map, order, odd, full = {}, {}, 0, false
  local stack = { false }
  while #stack > 0 and not full do
    local dir = table.remove(stack)
    local names = ws:list(dir or nil, M.MAX_ENTRIES + 1) or {}
    table.sort(names)
    for _, name in ipairs(names) do
      if #order >= M.MAX_ENTRIES then
        full = true
        break
      end
      local rel = dir and (dir .. "/" .. name) or name
      if dir or not SKIP[name] then
        local st = ws:stat(rel)
        if st and (st.type == "dir" or st.type == "file") then
          map[rel], order[#order + 1] = st, rel
          if st.type == "dir" then stack[#stack + 1] = rel end
        elseif st then
          odd = odd + 1
        end
      end
    end
  end
  return { map = map, order = order, odd = odd, full = full }
end
M.walk = walk

-- One copy pass: notes, the names already copied by source inode (a hard
-- link becomes a link), the bytes written and the most it may write.
local function pass(max_bytes)
  return { notes = {}, by_ino = {}, bytes = 0, max = max_bytes or math.huge }
end

local function note(p, rel, why) p.notes[#p.notes + 1] = ("%s (%s)"):format(rel, why) end

local function copy_file(from, to, rel, st, p)
  local first = p.by_ino[st.ino]
  if first and to:link(first, rel) then return end
  if st.size > M.MAX_FILE then return note(p, rel, ("%d bytes, over %d"):format(st.size, M.MAX_FILE)) end
  if p.bytes + st.size > p.max then return note(p, rel, ("over the %d bytes of the quota"):format(p.max)) end
  local data, err = from:read(rel, M.MAX_FILE)
  local ok
  if data then
    -- 0x49: any execute bit
    ok, err = to:write(rel, data, st.mode & 0x49 ~= 0 and 493 or 420)
    p.bytes = p.bytes + #data
  end
  if not ok then return note(p, rel, tostring(err)) end
  p.by_ino[st.ino] = rel
end

-- remove from ws what `was` holds and `now` does not (or holds as another type), deepest first
local function remove_gone(ws, was, now)
  for i = #was.order, 1, -1 do
    local rel = was.order[i]
    local n = now.map[rel]
    if not n or n.type ~= was.map[rel].type then ws:remove(rel) end
  end
end

local function summary(what, p, w)
  local parts, notes = {}, p.notes
  if #notes > 0 then
    parts[#parts + 1] = ("%d file(s) not copied %s: %s"):format(#notes, what, table.concat(notes, ", ", 1, math.min(#notes, 5)))
  end
  if w.odd > 0 then
    parts[#parts + 1] = ("%d link(s) or special file(s) not copied %s (never followed)"):format(w.odd, what)
  end
  if w.full then parts[#parts + 1] = ("only the first %d entries were copied %s"):format(M.MAX_ENTRIES, what) end
  return #parts > 0 and table.concat(parts, "; ") or nil
end

--- Before a call: work_dir (from) into the container's directory (to).
--- mirror: to was used by an earlier call, so what from no longer holds
--- goes. Returns the state of `to` the call starts from, and a note or nil.
function M.into(from, to, mirror)
  local w = walk(from)
  if mirror then remove_gone(to, walk(to), w) end
  local p = pass()
  for _, rel in ipairs(w.order) do
    local st = w.map[rel]
    if st.type == "dir" then
      local ok, err = to:mkdir(rel)
      if not ok then note(p, rel .. "/", tostring(err)) end
    else
      copy_file(from, to, rel, st, p)
    end
  end
  return walk(to), summary("into the sandbox", p, w)
end

--- After a call: what it created, changed or removed in the container's
--- directory (from), compared with `before` (M.into's), into work_dir (to),
--- writing at most max_bytes (the quota's; nil: no limit). Returns a note or nil.
function M.back(from, to, before, max_bytes)
  local now = walk(from)
  remove_gone(to, before, now)
  local p = pass(max_bytes)
  local changed = {}
  for _, rel in ipairs(now.order) do
    local st, b = now.map[rel], before.map[rel]
    if st.type == "file" then
      changed[rel] = not b or b.type ~= "file" or b.size ~= st.size or b.mtime_ns ~= st.mtime_ns or b.ino ~= st.ino
      -- an unchanged file is in work_dir already: a new name of it becomes a link there
      if not changed[rel] and not p.by_ino[st.ino] then p.by_ino[st.ino] = rel end
    end
  end
  for _, rel in ipairs(now.order) do
    local st, b = now.map[rel], before.map[rel]
    if st.type == "dir" then
      if not b then
        local ok, err = to:mkdir(rel)
        if not ok then note(p, rel .. "/", tostring(err)) end
      end
    elseif changed[rel] then
      copy_file(from, to, rel, st, p)
    end
  end
  return summary("back into work_dir", p, now)
end

return M
