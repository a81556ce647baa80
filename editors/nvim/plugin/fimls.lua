if vim.g.loaded_fimls then
  return
end
vim.g.loaded_fimls = true

if vim.fn.has('nvim-0.10') == 0 then
  vim.notify('fimls: Neovim 0.10 or newer is needed', vim.log.levels.WARN)
  return
end

local options = vim.g.fimls or {}
if vim.lsp.enable ~= nil then
  vim.lsp.enable('fimls')
else
  require('fimls.start').setup(options.lsp)
end

if vim.lsp.inline_completion ~= nil then
  -- Neovim 0.12+: the built-in inline completion shows fimls' items and runs their command on
  -- accept; the plugin only enables it for fimls' buffers and maps the accept key.
  vim.api.nvim_create_autocmd('LspAttach', {
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == 'fimls' then
        vim.lsp.inline_completion.enable(true, { bufnr = args.buf })
      end
    end,
  })
  local accept_key = options.accept_key or '<Tab>'
  vim.keymap.set('i', accept_key, function()
    if not vim.lsp.inline_completion.get() then
      return accept_key -- nothing shown: the key does what it always does
    end
  end, { expr = true, desc = 'fimls: accept the inline completion' })
else
  require('fimls.inline').setup(options)
end
