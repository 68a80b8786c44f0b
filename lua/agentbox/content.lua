-- A message's content as text (AutoGen's content_str), the one
-- implementation that code extraction, the transcript and the chat share.
-- Content is a string, or OpenAI multimodal content: a list of parts, where
-- text parts are joined and images become "<image>". A part of any other
-- type (or not a table) is skipped, never an error: a model or a caller
-- may send parts this library does not know yet.
local M = {}

function M.str(content)
  if content == nil then return "" end
  if type(content) == "string" then return content end
  if type(content) ~= "table" then return tostring(content) end
  local parts = {}
  for _, p in ipairs(content) do
    if type(p) == "table" and p.type == "text" then
      parts[#parts + 1] = tostring(p.text or "")
    elseif type(p) == "table" and p.type == "image_url" then
      parts[#parts + 1] = "<image>"
    end
  end
  return table.concat(parts)
end

return M
