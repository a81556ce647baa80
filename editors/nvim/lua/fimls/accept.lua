-- Accepting the ghost text: all of it, the next word, or the rest of its first line.
--
-- On Neovim 0.12+ through the built-in's `get()`, with the item re-based on the line as it is
-- now: the built-in keeps showing an item from before the last keystroke for up to 200 ms (so the
-- text does not flicker), with the range it had then, and applying that range to the changed line
-- would garble it. On 0.10/0.11 through the plugin's own ghost text. A partial accept types its
-- part in; the buffer change asks fimls again, and its typing-as-suggested cache answers with the
-- rest at once, so the remainder stays shown.
local M = {}

--- The next word of `ghost`: white space, then a run of word characters or of other characters
--- (a line break with the next line's indentation, when the ghost starts with one).
function M.next_word(ghost)
  local space, rest = ghost:match('^(%s*)(.*)$')
  if space:find('\n') then
    return space:match('^[^\n]*\n[ \t]*')
  end
  return space .. (rest:match('^[%w_]+') or rest:match('^[^%w_%s]+') or '')
end

--- The rest of `ghost`'s first line (the line break and the next line when that rest is empty).
function M.next_line(ghost)
  local line = ghost:match('^[^\n]*')
  if line == '' and ghost:sub(1, 1) == '\n' then
    return '\n' .. ghost:sub(2):match('^[^\n]*')
  end
  return line
end

local function part_of(ghost, unit)
  if unit == 'word' then
    return M.next_word(ghost)
  elseif unit == 'line' then
    return M.next_line(ghost)
  end
  return ghost
end

local function place_cursor_after(row, col, piece)
  local lines = vim.split(piece, '\n', { plain = true })
  local last = #lines == 1 and col + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row + #lines - 1, last })
end

-- Neovim 0.12+: the built-in's item, cut to `unit` and fitted to the cursor's line as it is now.
local function builtin_accept(buf, unit)
  return vim.lsp.inline_completion.get({
    bufnr = buf,
    on_accept = function(item)
      local row, col = unpack(vim.api.nvim_win_get_cursor(0))
      local line = vim.api.nvim_buf_get_lines(buf, row - 1, row, false)[1] or ''
      local before, after = line:sub(1, col), line:sub(col + 1)
      local text = item.insert_text
      -- fimls' items are the cursor's whole line with the completion in it.
      if type(text) ~= 'string' or #text < #before + #after or text:sub(1, #before) ~= before
        or text:sub(#text - #after + 1) ~= after then
        return nil -- it does not fit this line any more
      end
      local piece = part_of(text:sub(#before + 1, #text - #after), unit)
      if piece == '' then
        return nil
      end
      item.insert_text = before .. piece .. after
      item.range = vim.range.extmark(buf, row - 1, 0, row - 1, #line)
      if unit then
        item.command = nil -- a part is not an acceptance
      end
      vim.schedule(function() place_cursor_after(row, col, piece) end) -- right after the part, not the line's end
      return item
    end,
  })
end

-- Neovim 0.10/0.11: the plugin's own ghost text.
local function fallback_accept(buf, unit)
  local inline = require('fimls.inline')
  if not unit then
    return inline.accept(buf)
  end
  local ghost = inline.ghost(buf)
  local piece = ghost and part_of(ghost, unit) or ''
  if piece == '' then
    return false
  end
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  vim.api.nvim_buf_set_text(buf, row - 1, col, row - 1, col, vim.split(piece, '\n', { plain = true }))
  place_cursor_after(row, col, piece)
  return true
end

--- Accept all of the shown completion (`unit` nil), its next 'word' or the rest of its 'line';
--- false when nothing is shown.
function M.accept(buf, unit)
  if vim.lsp.inline_completion ~= nil then
    return builtin_accept(buf, unit)
  end
  return fallback_accept(buf, unit)
end

return M
