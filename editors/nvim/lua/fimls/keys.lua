-- The accept key, mapped only in the buffers fimls is attached to. When nothing is shown it does
-- what it did before fimls mapped it: the earlier mapping (buffer-local or global, expression
-- mappings included) or the key itself, put at the front of the typeahead, so keys typed after
-- it (fast typing, a macro) still come after it.
local M = {}

local saved = {} -- bufnr -> key -> the maparg() dict of the mapping fimls replaced, or {}

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, true, true)
end

-- The keys `previous` (a maparg() dict) stands for now, running it if it is a Lua function.
local function keys_of(previous)
  if previous.expr == 1 then
    local result
    if previous.callback then
      result = previous.callback()
    else
      result = vim.api.nvim_eval((previous.rhs:gsub('<SID>', ('<SNR>%d_'):format(previous.sid or 0))))
    end
    if type(result) ~= 'string' then
      return nil
    end
    return previous.replace_keycodes == 1 and termcodes(result) or result
  end
  if previous.callback then
    previous.callback() -- a Lua mapping acts itself
    return nil
  end
  return termcodes((previous.rhs or ''):gsub('<SID>', ('<SNR>%d_'):format(previous.sid or 0)))
end

--- Do what `key` did in `buf` before fimls mapped it.
function M.fallback(buf, key)
  local previous = (saved[buf] or {})[key] or {}
  if vim.tbl_isempty(previous) then
    vim.api.nvim_feedkeys(termcodes(key), 'ni', false)
    return
  end
  local keys = keys_of(previous)
  if not keys or keys == '' then
    return
  end
  local lhs = termcodes(key)
  if previous.noremap == 1 then
    vim.api.nvim_feedkeys(keys, 'ni', false)
  elseif keys:sub(1, #lhs) == lhs then
    -- A remappable mapping whose keys begin with its own key (`pumvisible() ? "\<C-n>" :
    -- "\<Tab>"`): Vim does not map that key again (:help recursive_mapping), and here it would
    -- be fimls' mapping, again and again. It goes in as it is, the rest after it remappable
    -- (each 'i' feed goes before the one fed earlier).
    vim.api.nvim_feedkeys(keys:sub(#lhs + 1), 'mi', false)
    vim.api.nvim_feedkeys(lhs, 'ni', false)
  else
    vim.api.nvim_feedkeys(keys, 'mi', false)
  end
end

--- Map `key` in Insert mode in `buf`: `accept()` takes a shown completion and returns true, or
--- returns false and the key does what it did before.
function M.attach(buf, key, accept)
  saved[buf] = saved[buf] or {}
  if saved[buf][key] then
    return
  end
  saved[buf][key] = vim.api.nvim_buf_call(buf, function()
    return vim.fn.maparg(key, 'i', false, true)
  end)
  vim.keymap.set('i', key, function()
    if not accept(buf) then
      M.fallback(buf, key)
    end
  end, { buffer = buf, desc = 'fimls: accept the inline completion' })
end

--- Undo `attach`: the buffer's own earlier mappings come back; global ones were never touched.
function M.detach(buf)
  local keys = saved[buf]
  saved[buf] = nil
  if not keys or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  for key, previous in pairs(keys) do
    pcall(vim.keymap.del, 'i', key, { buffer = buf })
    if previous.buffer == 1 then
      vim.api.nvim_buf_call(buf, function()
        vim.fn.mapset('i', false, previous)
      end)
    end
  end
end

return M
