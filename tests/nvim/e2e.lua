-- Driven by tests/test_nvim.py: a real headless Neovim with the fimls plugin and the test model.
-- A user's own Insert-mode <Tab> mapping exists before the plugin loads: a remappable expression
-- mapping whose keys are <Tab> itself, as completion set-ups write it. Opens FIMLS_FILE; on line
-- FIMLS_LINE presses <Tab> with nothing shown (the user's mapping must run, in typing order); then
-- writes `print()` there and types FIMLS_TYPED inside the parentheses, waits for the ghost text,
-- records it and the screen, deletes a character and presses <Tab> at once (the ghost drawn no
-- longer fits: the user's mapping must run), types the character again, accepts the ghost in
-- parts and whole, and writes what it saw to FIMLS_OUT.
local env = vim.env
local out = {}
local buf, line, ns
local accept_rest

local function finish(extra)
  for k, v in pairs(extra or {}) do out[k] = v end
  local file = io.open(env.FIMLS_OUT, 'w')
  file:write(vim.json.encode(out))
  file:close()
  vim.cmd('qa!')
end

local function line_text()
  return vim.api.nvim_buf_get_lines(buf, line - 1, line, false)[1]
end

local function marks()
  return vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
end

-- Keys are queued, not executed here: the main loop types them once the caller returns, as it
-- would a user's, so Insert mode and its autocommands run for real. Timers check what happened.
local function poll(timeout_ms, condition, next_step)
  local deadline = vim.uv.now() + timeout_ms
  local timer = vim.uv.new_timer()
  timer:start(20, 20, vim.schedule_wrap(function()
    if condition() then
      timer:stop()
      next_step()
    elseif vim.uv.now() > deadline then
      timer:stop()
      finish({ error = 'timed out', mode = vim.fn.mode(), line_text = line_text() })
    end
  end))
end

local function keys(text)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(text, true, false, true), 't', false)
end

-- The screen rows from buffer line `first` on, as drawn (trailing blanks dropped).
local function screen(first, count)
  vim.cmd('redraw')
  local top = vim.fn.screenpos(0, first, 1).row
  local rows = {}
  for row = top, top + count - 1 do
    local cells = {}
    for col = 1, vim.o.columns do table.insert(cells, vim.fn.screenstring(row, col)) end
    table.insert(rows, (table.concat(cells):gsub('%s+$', '')))
  end
  return rows
end

-- A shell script outside any project: fimls attaches (every filetype), with the working
-- directory as its workspace, and Neovim's `sh` goes to the server as `shellscript`.
local function open_outside()
  vim.cmd('stopinsert')
  vim.cmd('edit ' .. env.FIMLS_OUTSIDE)
  local other = vim.api.nvim_get_current_buf()
  local attached = vim.wait(120000, function() return vim.lsp.get_clients({ bufnr = other, name = 'fimls' })[1] ~= nil end, 50)
  local client = vim.lsp.get_clients({ bufnr = other, name = 'fimls' })[1]
  out.outside_attached = attached
  out.outside_root_dir = client and client.root_dir
  local get_language_id = client and (client.config.get_language_id or client.get_language_id)
  out.outside_language_id = get_language_id and get_language_id(other, vim.bo[other].filetype)
  finish()
end

-- Accept the next word, then the rest of the line, then everything left.
local function accept_shown()
  out.ghost = require('fimls.accept').shown(buf)
  out.mode_with_ghost = vim.fn.mode()
  -- Wait for the part to go in and what is left of the ghost to be drawn and offered at the cursor.
  local function changed_from(lines, left)
    return function()
      local changed = not vim.deep_equal(lines, vim.api.nvim_buf_get_lines(buf, 0, -1, false))
      return changed and (not left or (#marks() > 0 and require('fimls.accept').shown(buf) ~= nil))
    end
  end
  local start = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local multi_line = out.ghost:find('\n', 1, true) ~= nil
  keys('<M-Right>')
  poll(30000, changed_from(start, true), function()
    out.line_after_word = line_text()
    local after_word = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    keys('<M-C-Right>')
    poll(30000, changed_from(after_word, multi_line), function()
      out.line_after_line = line_text()
      if multi_line then
        accept_rest()
      else
        -- A one-line ghost is all accepted now; <Tab> would take whatever is suggested next.
        out.after_accept = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
        open_outside()
      end
    end)
  end)
end

accept_rest = function()
  local before = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  keys('<Tab>')
  poll(10000, function()
    return #marks() == 0 and not vim.deep_equal(before, vim.api.nvim_buf_get_lines(buf, 0, -1, false))
  end, function()
    out.after_accept = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    out.marks_after_accept = #marks()
    open_outside()
  end)
end

-- Delete the last character typed and press <Tab> in the same breath: the ghost drawn was asked for
-- before, and no longer fits. Then type the character again and wait for the ghost.
local function tab_on_a_stale_ghost()
  out.screen_with_ghost = screen(line, 1 + select(2, out.ghost:gsub('\n', '')))
  local typed = env.FIMLS_TYPED
  keys('<BS><Tab>')
  poll(10000, function() return line_text():find('\t', 1, true) ~= nil end, function()
    out.line_after_stale_tab = line_text()
    out.user_tab_calls_after_stale_tab = vim.g.user_tab_calls
    keys('<BS>' .. typed:sub(-1))
    poll(60000, function()
      local cursor = vim.api.nvim_win_get_cursor(0)
      return line_text() == '    print(' .. typed .. ')' and require('fimls.accept').shown(buf) ~= nil
        and cursor[2] == #('    print(' .. typed)
    end, accept_shown)
  end)
end

local function main()
  -- The user's mapping, set before fimls loads: remappable, and its keys are <Tab> itself when no
  -- menu shows, as completion set-ups write it.
  vim.cmd([[
    let g:user_tab_calls = 0
    function! UserTab() abort
      let g:user_tab_calls += 1
      return pumvisible() ? "\<C-n>" : "\<Tab>"
    endfunction
    imap <expr> <Tab> UserTab()
  ]])
  if env.FIMLS_INCOMPLETE_BUILTIN == '1' then
    vim.lsp.inline_completion = {} -- a built-in without what the plugin relies on
  end
  vim.opt.rtp:prepend(env.FIMLS_PLUGIN)
  local statuses = {}
  vim.lsp.handlers['fimls/status'] = function(_, params) table.insert(statuses, params.state) end
  local server = {
    cmd = { env.FIMLS_PYTHON, '-m', 'fimls', '--stdio' },
    root_markers = { '.fimls-test-root' },
    init_options = { model = env.FIMLS_MODEL, device = 'cpu', maxNewTokens = 12 },
  }
  if env.FIMLS_WITHOUT_ENABLE == '1' then
    vim.lsp.enable = nil -- take the 0.10 path (vim.lsp.start) on a newer Neovim
  end
  if vim.lsp.enable ~= nil then
    vim.lsp.config('fimls', server)
  else
    vim.g.fimls = { lsp = server }
  end
  vim.cmd('filetype on') -- -u NONE leaves detection off; a user's config has it
  vim.cmd('runtime plugin/fimls.lua')
  vim.cmd('edit ' .. env.FIMLS_FILE)
  buf = vim.api.nvim_get_current_buf()
  line = tonumber(env.FIMLS_LINE)
  -- 0.12+ shows the ghost text with the built-in inline completion, older ones with the plugin's.
  local uses_builtin = require('fimls.accept').uses_builtin
  ns = uses_builtin and vim.api.nvim_create_namespace('nvim.lsp.inline_completion') or require('fimls.inline').ns

  local ready = vim.wait(120000, function() return statuses[#statuses] == 'ready' or statuses[#statuses] == 'error' end, 50)
  out.statuses = statuses
  out.version = tostring(vim.version())
  out.fallback = not uses_builtin
  out.started_by = vim.lsp.enable and 'vim.lsp.enable' or 'vim.lsp.start'
  local client = vim.lsp.get_clients({ bufnr = buf, name = 'fimls' })[1]
  out.root_dir = client and client.root_dir
  if not ready or statuses[#statuses] ~= 'ready' then
    return finish({ error = 'server not ready' })
  end

  out.tab_mapping_is_buffer_local = vim.fn.maparg('<Tab>', 'i', false, true).buffer == 1
  local other = vim.api.nvim_create_buf(true, false)
  out.other_buffer_tab_rhs = vim.api.nvim_buf_call(other, function() return vim.fn.maparg('<Tab>', 'i', false, true).rhs end)

  -- Nothing shown yet: <Tab> is the user's mapping, and the key typed after it comes after it.
  vim.api.nvim_win_set_cursor(0, { line, 0 })
  keys('A<Tab>z<Esc>')
  poll(10000, function() return line_text() ~= '    ' and vim.fn.mode() == 'n' end, function()
    out.line_after_plain_tab = line_text()
    out.user_tab_calls = vim.g.user_tab_calls
    vim.api.nvim_buf_set_lines(buf, line - 1, line, false, { '    print()' })
    vim.api.nvim_win_set_cursor(0, { line, #'    print(' })
    keys('i' .. env.FIMLS_TYPED)
    poll(60000, function() return #marks() > 0 and require('fimls.accept').shown(buf) ~= nil end, function()
      out.ghost = require('fimls.accept').shown(buf)
      tab_on_a_stale_ghost()
    end)
  end)
end

-- A Lua error would leave a headless Neovim waiting forever: report it and quit instead.
local ok, err = xpcall(main, debug.traceback)
if not ok then
  finish({ error = err })
end
