-- fimls: inline completions from a local DeepSeek-Coder model. Override any field with
-- vim.lsp.config('fimls', { init_options = { model = '...' } }).
return {
  cmd = { 'fimls', '--stdio' },
  filetypes = {
    'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact', 'go', 'rust', 'java',
    'kotlin', 'c', 'cpp', 'cs', 'php', 'ruby', 'sh', 'bash', 'lua', 'sql', 'scala', 'swift', 'zig',
  },
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml', 'pom.xml' },
  init_options = {},
}
