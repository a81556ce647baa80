-- Driven by tests/test_nvim.py: a real headless Neovim with the fimls plugin and the test model.
-- A user's own Insert-mode <Tab> mapping exists before the plugin loads. Opens FIMLS_FILE; on line
-- FIMLS_LINE presses <Tab> with nothing shown (the user's mapping must run, in typing order); then
-- writes `print()` there and types FIMLS_TYPED inside the parentheses, waits for the ghost text,
-- records it, accepts it with <Tab>, and writes what it saw to FIMLS_OUT.
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

local function shown_text()
  local mark = marks()[1]
  local ghost = {}
  for _, chunk in ipairs(mark[4].virt_text or {}) do table.insert(ghost, chunk[1]) end
  local rest = {}
  for _, virt_line in ipairs(mark[4].virt_lines or {}) do
    local text = {}
    for _, chunk in ipairs(virt_line) do table.insert(text, chunk[1]) end
    table.insert(rest, table.concat(text))
  end
  return table.concat(ghost) .. (#rest > 0 and ('\n' .. table.concat(rest, '\n')) or ''), mark[4].virt_text_pos
end

-- Accept the next word, then (the rest reappears from the server's cache) the rest of the line,
-- then everything left.
local function accept_shown()
  out.ghost, out.ghost_position = shown_text()
  out.mode_with_ghost = vim.fn.mode()
  -- Wait for the answer to the last keystroke: shown at the cursor (an older one is drawn where
  -- the cursor was).
  local function changed_from(lines)
    return function()
      local cursor = vim.api.nvim_win_get_cursor(0)
      local mark = marks()[1]
      return mark ~= nil and mark[2] == cursor[1] - 1 and mark[3] == cursor[2]
        and not vim.deep_equal(lines, vim.api.nvim_buf_get_lines(buf, 0, -1, false))
    end
  end
  local start = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  keys('<M-Right>')
  poll(30000, changed_from(start), function()
    out.line_after_word = line_text()
    local after_word = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    keys('<M-C-Right>')
    poll(30000, changed_from(after_word), function()
      out.line_after_line = line_text()
      if out.ghost:find('\n', 1, true) then
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

local function main()
  -- The user's mapping, set before fimls loads (an expression mapping, as completion plugins use).
  vim.keymap.set('i', '<Tab>', function() return '[tab]' end, { expr = true, desc = 'user tab' })
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
  ns = vim.lsp.inline_completion and vim.api.nvim_create_namespace('nvim.lsp.inline_completion') or require('fimls.inline').ns

  local ready = vim.wait(120000, function() return statuses[#statuses] == 'ready' or statuses[#statuses] == 'error' end, 50)
  out.statuses = statuses
  out.version = tostring(vim.version())
  out.fallback = vim.lsp.inline_completion == nil
  out.started_by = vim.lsp.enable and 'vim.lsp.enable' or 'vim.lsp.start'
  local client = vim.lsp.get_clients({ bufnr = buf, name = 'fimls' })[1]
  out.root_dir = client and client.root_dir
  if not ready or statuses[#statuses] ~= 'ready' then
    return finish({ error = 'server not ready' })
  end

  out.tab_mapping_is_buffer_local = vim.fn.maparg('<Tab>', 'i', false, true).buffer == 1
  local other = vim.api.nvim_create_buf(true, false)
  out.other_buffer_tab_desc = vim.api.nvim_buf_call(other, function() return vim.fn.maparg('<Tab>', 'i', false, true).desc end)

  -- Nothing shown yet: <Tab> is the user's mapping, and the key typed after it comes after it.
  vim.api.nvim_win_set_cursor(0, { line, 0 })
  keys('A<Tab>z<Esc>')
  poll(10000, function() return line_text() ~= '    ' and vim.fn.mode() == 'n' end, function()
    out.line_after_plain_tab = line_text()
    vim.api.nvim_buf_set_lines(buf, line - 1, line, false, { '    print()' })
    vim.api.nvim_win_set_cursor(0, { line, #'    print(' })
    keys('i' .. env.FIMLS_TYPED)
    poll(60000, function() return #marks() > 0 end, accept_shown)
  end)
end

-- A Lua error would leave a headless Neovim waiting forever: report it and quit instead.
local ok, err = xpcall(main, debug.traceback)
if not ok then
  finish({ error = err })
end
