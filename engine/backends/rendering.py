"""The prompt as a backend that completes elsewhere renders it: the model's tokenizer (loaded
without the weights) and its FIM template, exactly as the in-process engine renders it, so that a
daemon or a server is sent the ids the engine would compute."""

from __future__ import annotations

from fimls.contract import PromptParts
from fimls.engine.model.fim import FimTemplate
from fimls.engine.model.tokenizer import CodeTokenizer


class PromptRenderer:
    def __init__(self, tokenizer: CodeTokenizer, model_name: str, layout: str = "line-in-middle"):
        self.tokenizer = tokenizer
        self.template = FimTemplate.from_tokenizer(tokenizer, model_name)
        self.layout = layout

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def render(self, parts: PromptParts) -> list[int]:
        return self.template.render(parts, self.encode, self.layout)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids)


def check_fits(prompt: list[int], max_new_tokens: int, window: int, speculative_tokens: int = 0) -> None:
    """Refuse a prompt that, with its completion, would not fit the model's window (the budgets
    are fitted before rendering, so this only fires on a budget set past the window)."""
    if len(prompt) + max_new_tokens + speculative_tokens + 1 > window:
        raise ValueError(
            f"prompt of {len(prompt)} tokens plus {max_new_tokens} new tokens exceeds the model's window of "
            f"{window}; lower the prefix/suffix budgets"
        )
