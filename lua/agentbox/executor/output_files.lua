-- What an execute call produced: every executor result carries
-- output_files (AutoGen's IPythonCodeResult name), the regular files under
-- work_dir that the call created or changed, as { path =, size = } sorted
-- by path. Also the matplotlib backend that turns plt.show() into PNG files
-- there (python blocks have no display).
--
-- work_dir belongs to the code, which may plant links or millions of names:
-- the host reads it only through the workspace accessor (never following a
-- link, never leaving work_dir), and every listing is capped
-- (MAX_ENTRIES); a capped or failed listing says so in
-- output_files_incomplete instead of hanging or filling memory.
local common = require("agentbox.executor.common")
local task = require("agentbox.task")

local M = {}

-- agentbox's own corner of work_dir: the backend module, matplotlib's
-- cache. Never listed as an output.
M.DIR = ".agentbox"
M.BACKEND_FILE = M.DIR .. "/agentbox_mpl.py"
-- entries (files, directories, links) one listing looks at, at most
M.MAX_ENTRIES = 10000
-- a path longer than this is not followed (the accessor's rel has PATH_MAX)
local MAX_REL = 2048
-- entries between two task checkpoints: a listing of MAX_ENTRIES (a stat
-- each) is tens of milliseconds, which a host's frame must not pay at once
local PAUSE_EVERY = 128

-- plt.show() saves each open figure as figure_<n>.png in the working
-- directory, n counting the figures shown by this process (1, 2, ...), then
-- closes them, as an interactive show would. AutoGen-style code saves its
-- chart and then shows it: a figure saved and unchanged since is skipped.
M.BACKEND = [[
# agentbox's matplotlib backend (MPLBACKEND=module://agentbox_mpl): the
# sandbox has no display, so plt.show() saves every open figure as
# figure_<n>.png in the working directory, n counting the figures this
# process has shown; a figure already saved with savefig and not drawn
# on since is not saved again.
from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase
_shown = [0]
_savefig = Figure.savefig


def _saving(self, *args, **kwargs):
    result = _savefig(self, *args, **kwargs)
    self._agentbox_saved = True
    return result


Figure.savefig = _saving


def show(*args, **kwargs):
    for manager in Gcf.get_all_fig_managers():
        figure = manager.canvas.figure
        if getattr(figure, "_agentbox_saved", False) and not figure.stale:
            continue
        _shown[0] += 1
        figure.savefig("figure_%d.png" % _shown[0])
    Gcf.destroy_all()
]]

--- The environment python blocks get so that plt.show() saves PNGs: root is
--- work_dir as the code sees it, user the executor's env option (whose
--- MPLBACKEND and MPLCONFIGDIR win; its PYTHONPATH comes after ours).
--- mplconfig: a directory the sandbox user can create (default under root).
function M.python_env(root, user, mplconfig)
  local env = {}
  for k, v in pairs(user or {}) do env[k] = v end
  local dir = root .. "/" .. M.DIR
  env.MPLBACKEND = env.MPLBACKEND or "module://agentbox_mpl"
  env.MPLCONFIGDIR = env.MPLCONFIGDIR or mplconfig or (dir .. "/mpl")
  env.PYTHONPATH = env.PYTHONPATH and env.PYTHONPATH ~= "" and (dir .. ":" .. env.PYTHONPATH) or dir
  return env
end

---------------------------------------------------------------- snapshots

-- A snapshot: { files = { [rel] = { size =, mtime_ns =, ino = } }, incomplete = reason | nil }

--- The regular files under a host workspace (ws: core.workspace), at most
--- max entries looked at; links and other types are never followed nor listed.
function M.on_host(ws, max)
  max = max or M.MAX_ENTRIES
  local files, seen, incomplete = {}, 0, nil
  local stack = { false }   -- false: work_dir itself
  local ok, err = pcall(function()
    while #stack > 0 do
      local dir = table.remove(stack)
      local names, more = ws:list(dir or nil, max - seen + 1)
      if names then
        for _, name in ipairs(names) do
          seen = seen + 1
          if seen % PAUSE_EVERY == 0 then task.checkpoint() end
          if seen > max then
            incomplete = ("the listing stopped after %d entries"):format(max)
            return
          end
          local rel = dir and (dir .. "/" .. name) or name
          if rel ~= M.DIR then
            local st = ws:stat(rel)
            if st and st.type == "file" then
              files[rel] = { size = st.size, mtime_ns = st.mtime_ns, ino = st.ino }
            elseif st and st.type == "dir" then
              if #rel < MAX_REL then stack[#stack + 1] = rel
              else incomplete = "a directory nested too deep was not listed" end
            end
          end
        end
        if more then
          incomplete = ("the listing stopped after %d entries"):format(max)
          return
        end
      end
    end
  end)
  if not ok then
    if err == task.CANCELLED then error(err, 0) end   -- cancelled at a checkpoint: not a listing failure
    incomplete = "listing work_dir failed: " .. tostring(err)
  end
  return { files = files, incomplete = incomplete }
end

-- A path from inside the sandbox as a plain relative name: no "", "." or
-- ".." component, no leading "/" (the listing came from the code's side)
local function plain(rel)
  if rel == "" or rel:sub(1, 1) == "/" or #rel >= MAX_REL then return nil end
  for seg in (rel .. "/"):gmatch("([^/]*)/") do
    if seg == "" or seg == "." or seg == ".." then return nil end
  end
  return rel
end

-- "1732900000.123456789" (find's %T@) -> nanoseconds
local function ns(t)
  local s, f = t:match("^(%d+)%.?(%d*)$")
  if not s then return nil end
  f = (f .. "000000000"):sub(1, 9)
  return math.tointeger(tonumber(s)) * 1000000000 + math.tointeger(tonumber(f))
end

--- Parse find's records ("%y %s %T@ %i %P\0"): the listing of a sandbox
--- that holds work_dir itself (a remote daemon's volume). dropped: bytes
--- the capture lost.
function M.parse_find(out, max, dropped)
  max = max or M.MAX_ENTRIES
  local files, seen, incomplete = {}, 0, nil
  for rec in out:gmatch("([^%z]*)%z") do
    seen = seen + 1
    if seen > max then
      incomplete = ("the listing stopped after %d entries"):format(max)
      break
    end
    local typ, size, t, ino, rel = rec:match("^(%a) (%d+) ([%d%.]+) (%d+) (.+)$")
    rel = rel and plain(rel)
    if typ == "f" and rel and rel ~= M.DIR and rel:sub(1, #M.DIR + 1) ~= M.DIR .. "/" then
      files[rel] = { size = math.tointeger(tonumber(size)), mtime_ns = ns(t), ino = math.tointeger(tonumber(ino)) }
    end
  end
  if not incomplete and (dropped or 0) > 0 then
    incomplete = "the listing was cut short (too long)"
  end
  return { files = files, incomplete = incomplete }
end

--- The find command that lists dir inside a sandbox, stopping after max + 1 entries.
function M.find_argv(dir, max)
  max = max or M.MAX_ENTRIES
  return { "sh", "-c", ("find %s -mindepth 1 -path %s/%s -prune -o -printf '%%y %%s %%T@ %%i %%P\\0' | head -z -n %d")
    :format(dir, dir, M.DIR, max + 1) }
end

---------------------------------------------------------------- one execute call

--- Before the block loop: ship the backend when a python block will run,
--- and take the first snapshot. Returns what finish needs.
--- The kind provides self:_snapshot() -> snapshot, and self:_ship(rel, text)
--- -> true | nil, message (put one of agentbox's files where the code sees it).
function M.start(self, blocks)
  local code_files = {}
  local python = false
  for _, b in ipairs(blocks) do
    local prep = common.prepare(b)
    if prep then
      code_files[prep.rel] = true
      python = python or prep.info.name == "python"
    end
  end
  if python then self:_ship(M.BACKEND_FILE, M.BACKEND) end
  -- a second's slack: a file's mtime and this clock tick apart
  return { before = self:_snapshot(), code_files = code_files, t0 = (os.time() - 1) * 1000000000 }
end

--- The files created or changed since start, sorted by path, and why the
--- list may be incomplete (nil when it is not).
function M.diff(before, after, code_files, t0)
  local list, n = {}, 0
  for rel, f in pairs(after.files) do
    n = n + 1
    if n % PAUSE_EVERY == 0 then task.checkpoint() end
    local was = before.files[rel]
    local new
    if was then
      new = was.size ~= f.size or was.mtime_ns ~= f.mtime_ns or was.ino ~= f.ino
    else
      -- a capped first listing may have missed it: then only a recent one counts
      new = not before.incomplete or (f.mtime_ns or 0) >= t0
    end
    if new and not code_files[rel] then list[#list + 1] = { path = rel, size = f.size } end
  end
  table.sort(list, function(a, b) return a.path < b.path end)
  return list, after.incomplete or before.incomplete
end

--- After the block loop: res gains output_files (and output_files_incomplete);
--- a kind whose work_dir is elsewhere (a remote daemon's volume) brings
--- the files back into the host work_dir (self:_bring_back(res)).
function M.finish(self, watch, res)
  res.output_files, res.output_files_incomplete =
    M.diff(watch.before, self:_snapshot(), watch.code_files, watch.t0)
  if self._bring_back and #res.output_files > 0 then self:_bring_back(res) end
  return res
end

---------------------------------------------------------------- back from a remote sandbox

-- bytes of output files one execute call copies back, at most
M.COPY_BACK_MAX = 64 * 1024 * 1024

local function octal(field)
  local digits = field:match("^[ %z]*([0-7]+)")
  return digits and tonumber(digits, 8)
end

--- The data of the first regular file in a ustar/pax archive (what the
--- Engine's GET archive of one file returns), or nil when there is none.
function M.untar_one(tar)
  local pos = 1
  while pos + 511 <= #tar do
    local header = tar:sub(pos, pos + 511)
    if header:match("^%z*$") then return nil end   -- the end blocks
    local size = octal(header:sub(125, 136))
    local flag = header:sub(157, 157)
    if not size then return nil end
    if flag == "0" or flag == "\0" then
      if pos + 511 + size > #tar then return nil end
      return tar:sub(pos + 512, pos + 511 + size)
    end
    -- pax headers, long names, links, directories: not the file
    pos = pos + 512 + ((size + 511) // 512) * 512
  end
  return nil
end

--- Copy res.output_files from the container's dir into the host workspace
--- ws (the code is dead by now: the supervisor killed the sandbox user's
--- processes). A file that does not fit the budget, or is no longer a
--- regular file, is listed but not copied, and output_files_incomplete says so.
function M.copy_back(client, id, dir, ws, res)
  local budget, missed = M.COPY_BACK_MAX, 0
  for _, f in ipairs(res.output_files) do
    local data
    if f.size <= budget then
      local body = client:call("download " .. f.path, { path = "/containers/" .. id .. "/archive",
        query = { path = dir .. "/" .. f.path }, max_body = f.size + 1024 * 1024 })
      data = type(body) == "string" and M.untar_one(body)
    end
    if data and ws:write(f.path, data) then
      budget = budget - #data
    else
      missed = missed + 1
    end
  end
  if missed > 0 then
    local note = ("%d of these files were not copied back from the sandbox (over the %d MiB budget, or changed)")
      :format(missed, M.COPY_BACK_MAX // (1024 * 1024))
    res.output_files_incomplete = res.output_files_incomplete and (res.output_files_incomplete .. "; " .. note) or note
  end
end

return M
