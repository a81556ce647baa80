-- Accepting the ghost text: all of it, the next word, or the rest of its first line. Through
-- fimls.builtin where Neovim's built-in inline completion (0.12+) draws the items and has what the
-- plugin relies on, else through the plugin's own (fimls.inline). Either way the text goes in at
-- the cursor at once and the cursor right after it, and a key with nothing to accept returns
-- false at once, so that it can do what it did before fimls.
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

M.uses_builtin = false

--- Decide once, when the plugin loads, which inline completion shows fimls' items.
function M.setup(options)
  M.uses_builtin = require('fimls.builtin').available()
  if M.uses_builtin then
    require('fimls.builtin').setup()
  else
    require('fimls.inline').setup(options)
  end
  return M.uses_builtin
end

local function source()
  return require(M.uses_builtin and 'fimls.builtin' or 'fimls.inline')
end

--- The ghost text shown at the cursor in `buf`, or nil.
function M.shown(buf)
  return source().ghost(buf)
end

--- Accept all of the shown completion (`unit` nil), its next 'word' or the rest of its 'line';
--- false when nothing is shown where the cursor is.
function M.accept(buf, unit)
  local shown = source()
  local ghost = shown.ghost(buf)
  if not ghost then
    return false
  end
  local piece = part_of(ghost, unit)
  if piece == '' then
    return false
  end
  return shown.accept(buf, piece)
end

return M
