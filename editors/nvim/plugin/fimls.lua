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
if vim.lsp.enable ~= nil then
  vim.lsp.enable('fimls')
else
  require('fimls.start').setup(options.lsp)
end

local accept
if vim.lsp.inline_completion ~= nil then
  -- Neovim 0.12+: the built-in inline completion shows fimls' items and runs their command on
  -- accept; the plugin enables it for fimls' buffers and maps the accept key there.
  local shown = vim.api.nvim_create_namespace('nvim.lsp.inline_completion')
  accept = function(buf)
    if #vim.api.nvim_buf_get_extmarks(buf, shown, 0, -1, { limit = 1 }) == 0 then
      return false -- nothing shown: the key does what it did before
    end
    vim.lsp.inline_completion.get({ bufnr = buf })
    return true
  end
else
  local inline = require('fimls.inline')
  inline.setup(options)
  accept = inline.accept
end

local keys = require('fimls.keys')
local group = vim.api.nvim_create_augroup('fimls_attach', { clear = true })
vim.api.nvim_create_autocmd('LspAttach', {
  group = group,
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'fimls' then
      if vim.lsp.inline_completion ~= nil then
        vim.lsp.inline_completion.enable(true, { bufnr = args.buf })
      end
      keys.attach(args.buf, accept_key, accept)
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
