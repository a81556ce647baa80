if vim.g.loaded_fimls then
  return
end
vim.g.loaded_fimls = true

if vim.fn.has('nvim-0.10') == 0 then
  vim.notify('fimls: Neovim 0.10 or newer is needed', vim.log.levels.WARN)
  return
end

local options = vim.g.fimls or {}
local accept_key = options.accept_key or '<Tab>'
-- Accepting part of a completion, as copilot.vim maps it; `false` leaves the key alone.
local accept_word_key = options.accept_word_key == nil and '<M-Right>' or options.accept_word_key
local accept_line_key = options.accept_line_key == nil and '<M-C-Right>' or options.accept_line_key
if vim.lsp.enable ~= nil then
  vim.lsp.enable('fimls')
else
  require('fimls.start').setup(options.lsp)
end

-- Neovim's built-in inline completion (0.12+) where it has what the plugin relies on, else the
-- plugin's own.
local uses_builtin = require('fimls.accept').setup(options)
local accept = require('fimls.accept').accept

local keys = require('fimls.keys')
local group = vim.api.nvim_create_augroup('fimls_attach', { clear = true })
vim.api.nvim_create_autocmd('LspAttach', {
  group = group,
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'fimls' then
      if uses_builtin then
        vim.lsp.inline_completion.enable(true, { bufnr = args.buf })
      end
      keys.attach(args.buf, accept_key, function(buf) return accept(buf) end)
      if accept_word_key then
        keys.attach(args.buf, accept_word_key, function(buf) return accept(buf, 'word') end)
      end
      if accept_line_key then
        keys.attach(args.buf, accept_line_key, function(buf) return accept(buf, 'line') end)
      end
    end
  end,
})
vim.api.nvim_create_autocmd('LspDetach', {
  group = group,
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'fimls' then
      keys.detach(args.buf)
    end
  end,
})
