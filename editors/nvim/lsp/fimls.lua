-- fimls: inline completions from a local DeepSeek-Coder model. Override any field with
-- vim.lsp.config('fimls', { init_options = { model = '...' } }).

-- Neovim filetypes whose LSP language id (what VS Code sends, and `enabledLanguages` names) differs.
local language_ids = {
  cs = 'csharp', sh = 'shellscript', bash = 'shellscript', zsh = 'shellscript', objc = 'objective-c',
  objcpp = 'objective-cpp', cuda = 'cuda-cpp', tex = 'latex', plaintex = 'tex', make = 'makefile',
  text = 'plaintext', gitcommit = 'git-commit', gitrebase = 'git-rebase', fsharp = 'fsharp',
  dosbatch = 'bat', ps1 = 'powershell', vb = 'vb', sshconfig = 'ssh_config', razor = 'razor',
}

local root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml', 'pom.xml' }

return {
  cmd = { 'fimls', '--stdio' },
  -- Every filetype, as VS Code's extension does: the server's `enabledLanguages` decides where
  -- completions appear. (Neovim attaches only to buffers of files, never to help or terminals.)
  filetypes = nil,
  root_markers = root_markers,
  -- Neovim 0.11+: a file outside any project still gets a workspace (the working directory), as
  -- Neovim 0.10 and the plugin's 0.10 path give it; without one the server indexes nothing.
  root_dir = function(bufnr, on_dir)
    local markers = (vim.lsp.config.fimls or {}).root_markers or root_markers -- a user's override counts
    on_dir(vim.fs.root(bufnr, markers) or vim.fn.getcwd())
  end,
  get_language_id = function(_, filetype)
    return language_ids[filetype] or filetype
  end,
  init_options = {},
}
