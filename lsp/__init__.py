"""Protocol only: pygls wiring, document sync, and turning completions into LSP items."""
