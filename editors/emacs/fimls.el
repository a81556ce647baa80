;;; fimls.el --- fimls inline completions for lsp-mode  -*- lexical-binding: t; -*-

;;; Commentary:
;; Registers fimls (a language server for inline code completions from a local DeepSeek-Coder
;; model) with lsp-mode (10.0 or newer, which has `lsp-inline-completion-mode') as an add-on
;; server, so it runs beside the usual language server.

;;; Code:

(require 'lsp-mode)

(defgroup fimls nil "fimls inline completions." :group 'lsp-mode)

(defcustom fimls-command '("fimls" "--stdio")
  "Command that starts fimls."
  :type '(repeat string))

(defcustom fimls-initialization-options nil
  "Settings sent as initializationOptions (camelCase keys, see the fimls README).
Empty means the server's defaults, `$FIMLS_MODEL' included, for example
\\='(:model \"TheBloke/deepseek-coder-1.3b-base-GPTQ\" :maxNewTokens 48)."
  :type 'plist)

(defun fimls--workspace ()
  "The fimls workspace of the current buffer, or nil."
  (seq-find (lambda (workspace)
              (eq (lsp--client-server-id (lsp--workspace-client workspace)) 'fimls))
            (lsp-workspaces)))

(defun fimls--accepted (action)
  "Tell fimls alone that a completion was accepted (ACTION is the item's command).
lsp-mode sends `workspace/executeCommand' to every server of the buffer that executes
commands, so without this handler the count would also reach, say, pyright."
  (when-let ((workspace (fimls--workspace)))
    (with-lsp-workspace workspace
      (lsp-request-async "workspace/executeCommand"
                         (list :command "fimls.accepted"
                               :arguments (or (lsp:command-arguments? action) []))
                         #'ignore
                         :mode 'detached))))

(lsp-register-client
 (make-lsp-client
  :new-connection (lsp-stdio-connection (lambda () fimls-command))
  :activation-fn (lambda (&rest _) t)
  :add-on? t
  :server-id 'fimls
  :action-handlers (ht ("fimls.accepted" #'fimls--accepted))
  :initialization-options (lambda () fimls-initialization-options)))

(provide 'fimls)
;;; fimls.el ends here
