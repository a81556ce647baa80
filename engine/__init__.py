"""How tokens are made: model loading, FIM templates, the KV-cached decode loop."""
