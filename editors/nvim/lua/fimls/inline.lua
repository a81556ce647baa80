-- The plugin's own inline completion, for Neovim 0.10 and 0.11 (which have none) and for a build
-- whose built-in lacks what fimls.builtin needs: request textDocument/inlineCompletion while
-- typing in Insert mode, draw the item as ghost text with extmarks, accept it (all of it or a
-- part) with a key, running the item's command (which counts the acceptance), and dismiss it when
-- the cursor moves away or Insert mode ends.
local M = {
  ns = vim.api.nvim_create_namespace('fimls_inline'),
  config = { accept_key = '<Tab>', highlight = 'Comment' },
}

local state = {} -- bufnr -> { client, request_id, item, ghost, tick, cursor }

local has_011 = vim.fn.has('nvim-0.11') == 1

-- 0.11 made client methods take self (client:request); on 0.10 they are plain functions.
local function client_call(client, method, ...)
  if has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

-- Byte offset of an LSP character offset; 0.10's vim.str_byteindex knows only UTF-32/UTF-16 and
-- raises past the end of the line, where the item's range may legitimately point.
local function byte_index(line, encoding, index)
  if has_011 then
    return vim.str_byteindex(line, encoding, index, false)
  end
  if encoding == 'utf-8' then
    return math.min(index, #line)
  end
  local ok, byte = pcall(vim.str_byteindex, line, index, encoding == 'utf-16')
  return ok and byte or #line
end

local function fimls_client(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = 'fimls' })[1]
end

function M.clear(buf)
  local s = state[buf]
  if s and s.request_id and s.client then
    client_call(s.client, 'cancel_request', s.request_id)
  end
  vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  state[buf] = nil
end

-- The text to insert at the cursor (byte column `col`), or nil when the item does not fit the
-- line: the item replaces its range with insertText, so the range's text before the cursor must
-- begin insertText and its text after the cursor end it (fimls' items for Neovim have an empty
-- range at the cursor; other shapes read the same way).
local function ghost_of(buf, item, encoding, col)
  local range = item.range
  local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
  if range == nil or type(text) ~= 'string' then
    return text
  end
  local line = vim.api.nvim_buf_get_lines(buf, range.start.line, range.start.line + 1, false)[1] or ''
  local from = byte_index(line, encoding, range.start.character)
  local to = math.max(col, byte_index(line, encoding, range['end'].character))
  local before, after = line:sub(from + 1, col), line:sub(col + 1, to)
  if #text < #before + #after or text:sub(1, #before) ~= before or text:sub(#text - #after + 1) ~= after then
    return nil
  end
  return text:sub(#before + 1, #text - #after)
end

-- Draw `s.ghost` at the cursor. Its first line goes in at the cursor; the lines after it below.
-- With text after the cursor, a ghost of several lines is drawn as the buffer will read once it
-- is accepted: its first line over that text (padded to hide all of it) and that text after its
-- last line, where accepting puts it.
local function show(buf, s)
  vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  local lines = vim.split(s.ghost, '\n', { plain = true })
  local row, col = s.cursor[1] - 1, s.cursor[2]
  local rest = (vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''):sub(col + 1)
  local opts = { virt_text = { { lines[1], M.config.highlight } }, virt_text_pos = 'inline' }
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { lines[i], M.config.highlight } })
    end
    if rest ~= '' then
      local pad = vim.fn.strdisplaywidth(rest) - vim.fn.strdisplaywidth(lines[1])
      opts.virt_text = { { lines[1], M.config.highlight }, { string.rep(' ', math.max(pad, 0)), M.config.highlight } }
      opts.virt_text_pos = 'overlay'
      table.insert(opts.virt_lines[#opts.virt_lines], { rest, 'Normal' })
    end
  end
  vim.api.nvim_buf_set_extmark(buf, M.ns, row, col, opts)
end

function M.request(buf)
  local client = fimls_client(buf)
  if not client then
    return
  end
  M.clear(buf)
  local win = vim.api.nvim_get_current_win()
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = 2 }
  local s = { client = client, tick = vim.b[buf].changedtick, cursor = vim.api.nvim_win_get_cursor(win) }
  state[buf] = s
  local ok, id = client_call(client, 'request', 'textDocument/inlineCompletion', params, function(err, result)
    if state[buf] ~= s then
      return -- superseded by a newer keystroke
    end
    s.request_id = nil
    local items = result and (result.items or result) or {}
    local item = items[1]
    if err or not item or vim.b[buf].changedtick ~= s.tick or vim.fn.mode() ~= 'i' then
      return
    end
    local ghost = ghost_of(buf, item, client.offset_encoding, s.cursor[2])
    if ghost and ghost ~= '' then
      s.item, s.ghost = item, ghost
      show(buf, s)
    end
  end, buf)
  s.request_id = ok and id or nil
end

--- The ghost text shown in `buf` at its cursor, or nil.
function M.ghost(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local s = state[buf]
  if not (s and s.ghost) or vim.b[buf].changedtick ~= s.tick then
    return nil
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  if cursor[1] ~= s.cursor[1] or cursor[2] ~= s.cursor[2] then
    return nil
  end
  return s.ghost
end

--- Insert `piece`, the start of the ghost shown in `buf` (all of it by default): the cursor goes
--- right after it, and what is left of the ghost stays shown (from here, not from the server:
--- it may answer nothing there). False when nothing is shown.
function M.accept(buf, piece)
  buf = buf or vim.api.nvim_get_current_buf()
  local ghost = M.ghost(buf)
  if not ghost then
    return false
  end
  local s = state[buf]
  piece = piece or ghost
  local row, col = s.cursor[1] - 1, s.cursor[2]
  local lines = vim.split(piece, '\n', { plain = true })
  vim.api.nvim_buf_set_text(buf, row, col, row, col, lines)
  local last = #lines == 1 and col + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row + #lines, last })
  local left = ghost:sub(#piece + 1)
  if left == '' then
    M.clear(buf)
    if s.item.command then
      client_call(s.client, 'request', 'workspace/executeCommand', { command = s.item.command.command, arguments = s.item.command.arguments }, function() end, buf)
    end
  else
    -- The change just made is this ghost's: TextChangedI finds the tick it expects and asks
    -- nothing, CursorMovedI finds the cursor where it expects it.
    s.ghost, s.tick, s.cursor = left, vim.b[buf].changedtick, vim.api.nvim_win_get_cursor(0)
    show(buf, s)
  end
  return true
end

function M.setup(opts)
  M.config = vim.tbl_extend('force', M.config, opts or {})
  local group = vim.api.nvim_create_augroup('fimls_inline', { clear = true })
  vim.api.nvim_create_autocmd('TextChangedI', {
    group = group,
    callback = function(args)
      local s = state[args.buf]
      if s and s.ghost and vim.b[args.buf].changedtick == s.tick then
        return -- a part accepted: the rest is shown already
      end
      M.request(args.buf)
    end,
  })
  vim.api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    callback = function(args)
      local s = state[args.buf]
      if s and vim.b[args.buf].changedtick == s.tick then
        local cursor = vim.api.nvim_win_get_cursor(0)
        if cursor[1] ~= s.cursor[1] or cursor[2] ~= s.cursor[2] then
          M.clear(args.buf) -- moved without typing: the suggestion no longer applies
        end
      end
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    callback = function(args) M.clear(args.buf) end,
  })
  -- The accept keys are mapped per buffer by fimls.keys when fimls attaches.
end

return M
