"""What the model sees: the text around the cursor and (later) neighbouring snippets, within
token budgets counted by a function the caller passes in. Never imports the engine."""
