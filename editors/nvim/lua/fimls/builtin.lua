-- Neovim 0.12+: the built-in inline completion asks fimls and draws its items; accepting, whole or
-- in part, is done here, at once, from what the built-in draws at the cursor.
--
-- The built-in's own accept cannot serve a key that must otherwise do what it did before fimls:
-- `get()` returns true as soon as it holds an item, and applies it later (scheduled), even when
-- the line has changed since the item was asked for (it keeps drawing an item from before the last
-- keystroke for up to 200 ms). So the decision is made here, synchronously: an item counts only
-- while the buffer is as it was when the item was asked for, or has since been typed on with the
-- item's own text; anything else leaves the key to its earlier meaning. Nothing here uses the
-- built-in's unstable parts (get()'s on_accept, vim.range): only enable(), the LspRequest event and
-- the extmarks the built-in draws in its namespace, and `available()` checks those are there.
local M = {}

local NAMESPACE = 'nvim.lsp.inline_completion'
local METHOD = 'textDocument/inlineCompletion'

local pending = {} -- request id -> { buf, tick, cursor } when the built-in asked fimls
local shown = {} -- buf -> { tick, cursor, line, ghost, own }: the item drawn, as the buffer was then

--- Whether this build's built-in offers what the plugin relies on.
function M.available()
  local builtin = vim.lsp.inline_completion
  return type(builtin) == 'table' and type(builtin.enable) == 'function'
    and vim.fn.exists('##LspRequest') == 1
    and vim.api.nvim_get_namespaces()[NAMESPACE] ~= nil
end

local function cursor_of(buf)
  local win = vim.fn.bufwinid(buf)
  return win ~= -1 and vim.api.nvim_win_get_cursor(win) or nil
end

local function line_of(buf, row)
  return vim.api.nvim_buf_get_lines(buf, row - 1, row, false)[1] or ''
end

local function chunks(list)
  local text = {}
  for _, chunk in ipairs(list or {}) do
    if chunk[2] ~= 'ComplHintMore' then -- the " (1/3)" the built-in adds while cycling
      table.insert(text, chunk[1])
    end
  end
  return table.concat(text)
end

-- What the built-in draws at the cursor as an insertion there (an item whose range is empty at
-- the cursor, fimls' shape for Neovim 0.12), or nil.
local function drawn_at_cursor(buf, cursor)
  local ns = vim.api.nvim_get_namespaces()[NAMESPACE]
  local row, col = cursor[1] - 1, cursor[2]
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(buf, ns, { row, col }, { row, col }, { details = true })) do
    local details = mark[4]
    if details.virt_text_pos == 'inline' and details.virt_text then
      local lines = { chunks(details.virt_text) }
      for _, virt_line in ipairs(details.virt_lines or {}) do
        table.insert(lines, chunks(virt_line))
      end
      return table.concat(lines, '\n')
    end
  end
  return nil
end

local function draws_anything(buf)
  local ns = vim.api.nvim_get_namespaces()[NAMESPACE]
  return #vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { limit = 1 }) > 0
end

-- The item the built-in draws, if it still applies where the cursor is now: the rest of its text.
local function current(buf)
  local s = shown[buf]
  local cursor = cursor_of(buf)
  if not (s and cursor) or not (s.own or draws_anything(buf)) then
    return nil
  end
  if vim.b[buf].changedtick == s.tick and cursor[1] == s.cursor[1] and cursor[2] == s.cursor[2] then
    return drawn_at_cursor(buf, cursor) or s.ghost
  end
  -- Typed on since: the line must be the item's line with the start of the item typed in.
  local first = s.ghost:match('^[^\n]*')
  local typed = cursor[2] - s.cursor[2]
  local line = line_of(buf, cursor[1])
  if cursor[1] ~= s.cursor[1] or typed <= 0 or typed > #first
    or line ~= s.line:sub(1, s.cursor[2]) .. first:sub(1, typed) .. s.line:sub(s.cursor[2] + 1) then
    return nil
  end
  return s.ghost:sub(typed + 1)
end

function M.ghost(buf)
  return current(buf)
end

-- Stop drawing the item (the built-in has no call for that): off and on again for this buffer.
local function dismiss(buf)
  vim.lsp.inline_completion.enable(false, { bufnr = buf })
  vim.lsp.inline_completion.enable(true, { bufnr = buf })
end

--- Insert `piece`, the start of the ghost the built-in draws (all of it by default), and put the
--- cursor right after it. False when nothing applies here.
function M.accept(buf, piece)
  local ghost = current(buf)
  if not ghost or ghost == '' then
    return false
  end
  piece = piece or ghost
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local lines = vim.split(piece, '\n', { plain = true })
  vim.api.nvim_buf_set_text(buf, row - 1, col, row - 1, col, lines)
  local last = #lines == 1 and col + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row + #lines - 1, last })
  local left = ghost:sub(#piece + 1)
  if left == '' then
    shown[buf] = nil
    dismiss(buf)
    local client = vim.lsp.get_clients({ bufnr = buf, name = 'fimls' })[1]
    if client then -- the acceptance, as the item's own command would count it
      client:exec_cmd({ title = 'fimls: completion accepted', command = 'fimls.accepted', arguments = {} }, { bufnr = buf })
    end
  else
    -- What is left is known here until the built-in's next answer (fimls' typing-as-suggested
    -- cache: the same rest) replaces it. The built-in goes on drawing its item over the text
    -- typed in, which reads right on the item's line; below it, it would not.
    if #lines > 1 then
      dismiss(buf)
    end
    local cursor = vim.api.nvim_win_get_cursor(0)
    shown[buf] = { tick = vim.b[buf].changedtick, cursor = cursor, line = line_of(buf, cursor[1]), ghost = left, own = true }
  end
  return true
end

function M.setup()
  local group = vim.api.nvim_create_augroup('fimls_builtin', { clear = true })
  vim.api.nvim_create_autocmd('LspRequest', {
    group = group,
    callback = function(args)
      local data = args.data or {}
      local request = data.request or {}
      if request.method ~= METHOD then
        return
      end
      local client = vim.lsp.get_client_by_id(data.client_id)
      if not (client and client.name == 'fimls') then
        return
      end
      local buf = request.bufnr or args.buf
      if request.type == 'pending' then
        pending[data.request_id] = { buf = buf, tick = vim.b[buf].changedtick, cursor = cursor_of(buf) }
      elseif request.type == 'complete' or request.type == 'cancel' then
        local asked = pending[data.request_id]
        pending[data.request_id] = nil
        if request.type == 'complete' and asked then
          -- The built-in draws the answer right after this event: read it once it has.
          vim.schedule(function()
            local cursor = cursor_of(buf)
            if not vim.api.nvim_buf_is_valid(buf) or vim.b[buf].changedtick ~= asked.tick or not cursor
              or not asked.cursor or cursor[1] ~= asked.cursor[1] or cursor[2] ~= asked.cursor[2] then
              shown[buf] = nil -- answered for a buffer that has changed since: not accepted here
              return
            end
            local ghost = drawn_at_cursor(buf, cursor)
            shown[buf] = ghost and { tick = asked.tick, cursor = cursor, line = line_of(buf, cursor[1]), ghost = ghost } or nil
          end)
        end
      end
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    callback = function(args) shown[args.buf] = nil end,
  })
end

return M
