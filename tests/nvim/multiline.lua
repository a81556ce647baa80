-- Driven by tests/test_nvim.py: a real headless Neovim with the fimls plugin, fimls serving a
-- completion the test knows (FIMLS_SERVER_URL answers every prompt with it) in the middle of a
-- line, before `)`. Types FIMLS_TYPED inside the parentheses of line FIMLS_LINE of FIMLS_FILE,
-- records the screen while the ghost shows, presses each of FIMLS_KEYS (space-separated; <Tab> by
-- default), recording the lines, the cursor and the ghost still offered after each, and writes it
-- all to FIMLS_OUT.
local env = vim.env
local out = {}

local function finish(extra)
  for k, v in pairs(extra or {}) do out[k] = v end
  local file = io.open(env.FIMLS_OUT, 'w')
  file:write(vim.json.encode(out))
  file:close()
  vim.cmd('qa!')
end

local function poll(timeout_ms, condition, next_step)
  local deadline = vim.uv.now() + timeout_ms
  local timer = vim.uv.new_timer()
  timer:start(20, 20, vim.schedule_wrap(function()
    if condition() then
      timer:stop()
      next_step()
    elseif vim.uv.now() > deadline then
      timer:stop()
      finish({ error = 'timed out', mode = vim.fn.mode(), lines = vim.api.nvim_buf_get_lines(0, 0, -1, false) })
    end
  end))
end

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

local function main()
  if env.FIMLS_INCOMPLETE_BUILTIN == '1' then
    vim.lsp.inline_completion = {} -- a built-in without what the plugin relies on
  end
  vim.opt.rtp:prepend(env.FIMLS_PLUGIN)
  local statuses = {}
  vim.lsp.handlers['fimls/status'] = function(_, params) table.insert(statuses, params.state) end
  local server = {
    cmd = { env.FIMLS_PYTHON, '-m', 'fimls', '--stdio' },
    root_markers = { '.fimls-test-root' },
    init_options = {
      model = env.FIMLS_MODEL, device = 'cpu', backend = 'server', serverUrl = env.FIMLS_SERVER_URL,
      debounceMinMs = 0, debounceMaxMs = 0,
    },
  }
  if vim.lsp.enable ~= nil then
    vim.lsp.config('fimls', server)
  else
    vim.g.fimls = { lsp = server }
  end
  vim.cmd('filetype on')
  vim.cmd('runtime plugin/fimls.lua')
  vim.cmd('edit ' .. env.FIMLS_FILE)
  local buf = vim.api.nvim_get_current_buf()
  local line = tonumber(env.FIMLS_LINE)
  out.version = tostring(vim.version())
  out.uses_builtin = require('fimls.accept').uses_builtin
  if not vim.wait(120000, function() return statuses[#statuses] == 'ready' or statuses[#statuses] == 'error' end, 50)
    or statuses[#statuses] ~= 'ready' then
    return finish({ error = 'server not ready', statuses = statuses })
  end
  local text = vim.api.nvim_buf_get_lines(buf, line - 1, line, false)[1]
  vim.api.nvim_win_set_cursor(0, { line, (text:find('(', 1, true)) })
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('i' .. env.FIMLS_TYPED, true, false, true), 't', false)
  poll(30000, function() return require('fimls.accept').shown(buf) ~= nil end, function()
    out.ghost = require('fimls.accept').shown(buf)
    out.screen = screen(line, 3)
    out.steps = {}
    local steps = vim.split(env.FIMLS_KEYS or '<Tab>', ' ', { trimempty = true })
    local function press(i)
      if i > #steps then
        return finish()
      end
      local before = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
      vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(steps[i], true, false, true), 't', false)
      poll(10000, function() return not vim.deep_equal(before, vim.api.nvim_buf_get_lines(buf, 0, -1, false)) end, function()
        -- What is offered once the answers to this change are in.
        vim.wait(1000)
        table.insert(out.steps, {
          lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false), cursor = vim.api.nvim_win_get_cursor(0),
          ghost = require('fimls.accept').shown(buf) or vim.NIL,
        })
        press(i + 1)
      end)
    end
    press(1)
  end)
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  finish({ error = err })
end
