-- Inline completion for Neovim 0.10 and 0.11, which have no vim.lsp.inline_completion: request
-- textDocument/inlineCompletion while typing in Insert mode, show the item as ghost text with an
-- extmark, accept it with a key (running the item's command, which counts the acceptance), and
-- dismiss it when the cursor moves away or Insert mode ends.
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

-- The text to insert at the cursor (byte column `col`): the item replaces its range with
-- insertText, which keeps the range's text before the cursor and, after the completion, the
-- range's text after it (fimls' items span the whole line).
local function ghost_of(buf, item, encoding, col)
  local range = item.range
  if range == nil then
    return item.insertText
  end
  local line = vim.api.nvim_buf_get_lines(buf, range.start.line, range.start.line + 1, false)[1] or ''
  local from = byte_index(line, encoding, range.start.character)
  local to = math.max(col, byte_index(line, encoding, range['end'].character))
  local before, after = line:sub(from + 1, col), line:sub(col + 1, to)
  local text = item.insertText
  if #text < #before + #after or text:sub(1, #before) ~= before or text:sub(#text - #after + 1) ~= after then
    return nil
  end
  return text:sub(#before + 1, #text - #after)
end

local function show(buf, s)
  local lines = vim.split(s.ghost, '\n', { plain = true })
  local row, col = s.cursor[1] - 1, s.cursor[2]
  local opts = { virt_text = { { lines[1], M.config.highlight } }, virt_text_pos = 'inline' }
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { lines[i], M.config.highlight } })
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

--- The ghost text shown in `buf`, or nil.
function M.ghost(buf)
  local s = state[buf or vim.api.nvim_get_current_buf()]
  return s and s.ghost
end

function M.visible(buf)
  local s = state[buf or vim.api.nvim_get_current_buf()]
  return s ~= nil and s.ghost ~= nil
end

function M.accept(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local s = state[buf]
  if not (s and s.item) then
    return false
  end
  local item, client = s.item, s.client
  M.clear(buf)
  local row, col = s.cursor[1] - 1, s.cursor[2]
  local lines = vim.split(s.ghost, '\n', { plain = true })
  vim.api.nvim_buf_set_text(buf, row, col, row, col, lines)
  local last = #lines == 1 and col + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row + #lines, last })
  if item.command then
    client_call(client, 'request', 'workspace/executeCommand', { command = item.command.command, arguments = item.command.arguments }, function() end, buf)
  end
  return true
end

function M.setup(opts)
  M.config = vim.tbl_extend('force', M.config, opts or {})
  local group = vim.api.nvim_create_augroup('fimls_inline', { clear = true })
  vim.api.nvim_create_autocmd('TextChangedI', {
    group = group,
    callback = function(args) M.request(args.buf) end,
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
  -- The accept key is mapped per buffer by fimls.keys when fimls attaches.
end

return M
