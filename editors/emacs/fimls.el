;;; fimls.el --- fimls inline completions for lsp-mode  -*- lexical-binding: t; -*-

;;; Commentary:
;; Registers fimls (a language server for inline code completions from a local DeepSeek-Coder
;; model) with lsp-mode as an add-on server, so it runs beside the usual language server.

;;; Code:

(require 'lsp-mode)

(defgroup fimls nil "fimls inline completions." :group 'lsp-mode)

(defcustom fimls-command '("fimls" "--stdio")
  "Command that starts fimls."
  :type '(repeat string))

(defcustom fimls-initialization-options '(:model "TheBloke/deepseek-coder-1.3b-base-GPTQ")
  "Settings sent as initializationOptions (camelCase keys, see the fimls README)."
  :type 'plist)

(lsp-register-client
 (make-lsp-client
  :new-connection (lsp-stdio-connection (lambda () fimls-command))
  :activation-fn (lambda (&rest _) t)
  :add-on? t
  :server-id 'fimls
  :initialization-options (lambda () fimls-initialization-options)))

(provide 'fimls)
;;; fimls.el ends here
