-- What every executor shares below the base (base.lua): block preparation (language, file name,
-- workspace check), the output budget and the AutoGen result assembly.
local code = require("agentbox.code")
local core = require("agentbox.core")
local errors = require("agentbox.errors")

local M = {}

M.TIMEOUT_MSG = "Timeout"
-- a block stopped (or not started) by the workspace quota (src/quota.h)
M.QUOTA_EXIT = 122
M.QUOTA_DEFAULT = { bytes = 1 << 30, files = 100000 }

local UNITS = { [""] = 1, b = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4 }

--- The `quota` option of both executors: nil gives the defaults, false
--- none; { bytes = n | "1g" | false, files = n | false } (a missing key
--- keeps its default, false turns that one off). Returns { bytes =, files = }
--- (0 = off) or false.
function M.quota(v, what)
  if v == false then return false end
  if v == nil then v = {} end
  local function bad(msg) errors.misuse("%s: %s", what, msg) end
  if type(v) ~= "table" then bad("quota must be false or a table { bytes = \"1g\", files = 100000 }") end
  for k in pairs(v) do
    if k ~= "bytes" and k ~= "files" then bad(("quota: unknown key '%s' (known: bytes, files)"):format(tostring(k))) end
  end
  local q = { bytes = M.QUOTA_DEFAULT.bytes, files = M.QUOTA_DEFAULT.files }
  local b = v.bytes
  if b == false then
    q.bytes = 0
  elseif b ~= nil then
    local n, unit
    if type(b) == "string" then n, unit = b:lower():match("^%s*(%d+%.?%d*)%s*([bkmgt]?)i?b?%s*$") end
    if math.type(b) == "integer" and b > 0 then q.bytes = b
    elseif n and tonumber(n) * UNITS[unit] >= 1 then q.bytes = math.floor(tonumber(n) * UNITS[unit])
    else bad(("quota.bytes must be a size such as \"1g\" or \"500m\", a positive byte count, or false; got %s")
      :format(tostring(b))) end
  end
  local f = v.files
  if f == false then
    q.files = 0
  elseif f ~= nil then
    if math.type(f) ~= "integer" or f <= 0 then
      bad(("quota.files must be a positive integer or false; got %s"):format(tostring(f)))
    end
    q.files = f
  end
  if q.bytes == 0 and q.files == 0 then return false end
  return q
end

function M.check_blocks(blocks)
  if type(blocks) ~= "table" then
    errors.misuse("execute: expected an array of { lang = ..., code = ... } blocks, got %s", type(blocks))
  end
  for i, b in ipairs(blocks) do
    if type(b) ~= "table" or type(b.code) ~= "string" then
      errors.misuse("execute: block %d must be a table with a string 'code' field", i)
    end
    if b.lang ~= nil and type(b.lang) ~= "string" then
      errors.misuse("execute: block %d has a non-string 'lang'", i)
    end
  end
end

--- Prepare one block: returns { lang=, info=, rel=, ext= } or nil, message.
function M.prepare(block)
  local lang = (block.lang or ""):lower()
  if lang == "" then lang = code.infer_lang(block.code) end
  local info = code.language(lang)
  if not info then return nil, "unknown language " .. lang end
  local name = code.filename(block.code, info.name)
  if not name then name = code.default_filename(block.code, info.ext, core.md5) end
  local rel, err = code.resolve_in_workspace(".", name)
  if not rel then return nil, err end
  return { lang = lang, info = info, rel = rel, code = block.code }
end

function M.truncation_marker(dropped, max_output)
  return ("\n[agentbox: output truncated, %d bytes dropped (max_output = %d)]"):format(dropped, max_output)
end

-- Accumulates the outputs of the blocks of one execute call.
function M.result_builder(max_output)
  local parts, kept, dropped = {}, 0, 0
  local b = {}
  function b.budget() return math.max(0, max_output - kept) end
  function b.counts() return kept, dropped end
  function b.add(s, lost)
    if s and #s > 0 then
      parts[#parts + 1] = s
      kept = kept + #s
    end
    dropped = dropped + (lost or 0)
  end
  function b.text()
    local out = core.utf8_clean(table.concat(parts))
    if dropped > 0 then out = out .. M.truncation_marker(dropped, max_output) end
    return out
  end
  return b
end

local sup_cache
--- Path of the agentbox-sup program: AGENTBOX_SUP, else next to core.so
--- (where `make` and the rock put it). nil when neither exists.
function M.sup_path()
  if sup_cache == nil then
    local env = os.getenv("AGENTBOX_SUP")
    local so = package.searchpath("agentbox.core", package.cpath)
    local near = so and (so:match("^(.*)/[^/]*$") or ".") .. "/agentbox-sup"
    sup_cache = (env and env ~= "" and core.which(env)) or (near and core.which(near)) or false
  end
  return sup_cache or nil
end

function M.total_timeout_line(total, left, of)
  return ("\nagentbox: total_timeout of %g s for this execute ran out; %d of %d blocks not run"):format(total, left, of)
end

--- The block loop both executors share (AutoGen's semantics): blocks run in
--- order and stop at the first failure; outputs concatenate; code_file is
--- the first file written. The executor supplies
---   write(prep, code) -> path | nil, message      (puts the file in place)
---   run(prep, path, out, timeout) -> { exit_code =, timed_out = } | nil, message
--- limits = { timeout = per block, total = seconds for the whole call or
--- false }: each block runs for at most min(timeout, what is left of total);
--- when the total runs out, the rest does not run, the output says so and
--- the exit code is 124.
function M.run_blocks(blocks, max_output, save_only, write, run, limits)
  local out = M.result_builder(max_output)
  local exit_code, code_file = 0, nil
  local total = limits.total
  local deadline = total and core.now() + total
  for i, block in ipairs(blocks) do
    local left = deadline and deadline - core.now()
    if left and left <= 0 then
      out.add(M.total_timeout_line(total, #blocks - i + 1, #blocks))
      exit_code = 124
      break
    end
    local prep, err = M.prepare(block)
    local path
    if prep then path, err = write(prep, block.code) end
    if not path then
      out.add(err)
      exit_code = 1
      break
    end
    code_file = code_file or path
    if save_only[prep.info.name] then
      out.add("Code saved to " .. path .. "\n")
      exit_code = 0
    else
      local cut = left and left < limits.timeout
      local r, rerr = run(prep, path, out, cut and left or limits.timeout)
      if not r then
        out.add(rerr)
        exit_code = 1
        break
      end
      exit_code = r.exit_code
      if r.timed_out then
        out.add("\n" .. M.TIMEOUT_MSG)
        if cut then out.add(M.total_timeout_line(total, #blocks - i, #blocks)) end
        break
      end
      if exit_code ~= 0 then break end
    end
  end
  return { exit_code = exit_code, output = out.text(), code_file = code_file }
end

--- Map a core process result (or a supervisor exit status) to an exit code.
function M.exit_code(r)
  if r.timed_out then return 124 end
  if r.quota_exceeded then return M.QUOTA_EXIT end
  if r.exit_code then return r.exit_code end
  if r.signal then return 128 + r.signal end
  return 1
end

return M
