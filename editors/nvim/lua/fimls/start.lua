-- Neovim 0.10 has vim.lsp.start but not vim.lsp.config/enable: start fimls ourselves for the
-- filetypes that lsp/fimls.lua lists (all when it lists none), with the same config merged with
-- vim.g.fimls.lsp.
local M = {}

local function default_config()
  local file = vim.api.nvim_get_runtime_file('lsp/fimls.lua', false)[1]
  return file and dofile(file) or {}
end

function M.config(overrides)
  return vim.tbl_deep_extend('force', default_config(), overrides or {})
end

function M.setup(overrides)
  local config = M.config(overrides)
  vim.api.nvim_create_autocmd('FileType', {
    group = vim.api.nvim_create_augroup('fimls_start', { clear = true }),
    pattern = config.filetypes or '*',
    callback = function(args)
      if vim.bo[args.buf].buftype ~= '' then
        return -- help, terminals, prompts: nothing to complete on disk
      end
      if vim.bo[args.buf].filetype == '' then
        return
      end
      vim.lsp.start({
        name = 'fimls',
        cmd = config.cmd,
        root_dir = vim.fs.root(args.buf, config.root_markers) or vim.fn.getcwd(),
        init_options = config.init_options,
        settings = config.settings,
        get_language_id = config.get_language_id,
      }, { bufnr = args.buf })
    end,
  })
end

return M
