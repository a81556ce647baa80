-- Driven by tests/test_nvim.py: a real headless Neovim with the fimls plugin and the test model.
-- Opens FIMLS_FILE, types FIMLS_TYPED at the end of line FIMLS_LINE in Insert mode, waits for the
-- ghost text, records it, accepts it with the plugin's key, and writes what it saw to FIMLS_OUT.
local env = vim.env
local out = {}
local function finish(extra)
  for k, v in pairs(extra or {}) do out[k] = v end
  local file = io.open(env.FIMLS_OUT, 'w')
  file:write(vim.json.encode(out))
  file:close()
  vim.cmd('qa!')
end

local function main()
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
  local buf = vim.api.nvim_get_current_buf()

  local ready = vim.wait(120000, function() return statuses[#statuses] == 'ready' or statuses[#statuses] == 'error' end, 50)
  out.statuses = statuses
  out.version = tostring(vim.version())
  out.fallback = vim.lsp.inline_completion == nil
  out.started_by = vim.lsp.enable and 'vim.lsp.enable' or 'vim.lsp.start'
  if not ready or statuses[#statuses] ~= 'ready' then
    return finish({ error = 'server not ready' })
  end

  local line = tonumber(env.FIMLS_LINE)
  vim.api.nvim_win_set_cursor(0, { line, 0 })
  -- 0.12+ shows the ghost text with the built-in inline completion, older ones with the plugin's.
  local ns = vim.lsp.inline_completion and vim.api.nvim_create_namespace('nvim.lsp.inline_completion') or require('fimls.inline').ns

  -- Keys are queued, not executed here: the main loop types them once this script returns, as it
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
        finish({ error = 'timed out', mode = vim.fn.mode(), line_text = vim.api.nvim_buf_get_lines(buf, line - 1, line, false)[1] })
      end
    end))
  end

  local function marks()
    return vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
  end

  vim.api.nvim_feedkeys('A' .. env.FIMLS_TYPED, 't', false)
  poll(60000, function() return #marks() > 0 end, function()
    local mark = marks()[1]
    local ghost = {}
    for _, chunk in ipairs(mark[4].virt_text or {}) do table.insert(ghost, chunk[1]) end
    local rest = {}
    for _, virt_line in ipairs(mark[4].virt_lines or {}) do
      local text = {}
      for _, chunk in ipairs(virt_line) do table.insert(text, chunk[1]) end
      table.insert(rest, table.concat(text))
    end
    out.ghost = table.concat(ghost) .. (#rest > 0 and ('\n' .. table.concat(rest, '\n')) or '')
    out.mode_with_ghost = vim.fn.mode()
    local before = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<Tab>', true, false, true), 't', false)
    poll(10000, function()
      return #marks() == 0 and not vim.deep_equal(before, vim.api.nvim_buf_get_lines(buf, 0, -1, false))
    end, function()
      out.after_accept = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
      out.marks_after_accept = #marks()
      finish()
    end)
  end)
end

-- A Lua error would leave a headless Neovim waiting forever: report it and quit instead.
local ok, err = xpcall(main, debug.traceback)
if not ok then
  finish({ error = err })
end
