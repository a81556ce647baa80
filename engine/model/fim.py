"""Fill-in-the-middle templates, read from the tokenizer's own vocabulary.

Only token *strings* are known here; ids always come from the tokenizer, since the same strings
have different ids in DeepSeek-Coder v1 (32015-32017) and V2 (different vocab).
"""

from __future__ import annotations

from dataclasses import dataclass

from fimls.contract import ModelUnavailable, PromptParts
from fimls.engine.model.tokenizer import CodeTokenizer

# (begin, hole, end) in prefix-suffix-middle order; the model writes the middle after `end`.
FIM_FAMILIES = {
    "deepseek-coder": ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    "starcoder": ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    "qwen2.5-coder": ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
}
# Ends of a completion besides the tokenizer's EOS: the instruct models' end-of-turn, and the
# FIM markers themselves (a model that writes one has left the middle).
_EXTRA_STOP_STRINGS = ("<|EOT|>", "<|endoftext|>", "<|file_sep|>")


class FimUnsupported(ModelUnavailable, ValueError):
    """The model has no fill-in-the-middle tokens fimls knows."""


@dataclass(frozen=True)
class FimTemplate:
    family: str
    bos_id: int | None
    begin_id: int
    hole_id: int
    end_id: int
    stop_ids: frozenset[int]

    @classmethod
    def from_tokenizer(cls, tokenizer: CodeTokenizer, model_name: str) -> FimTemplate:
        for family, strings in FIM_FAMILIES.items():
            ids = [tokenizer.token_id(s) for s in strings]
            if all(i is not None for i in ids):
                begin_id, hole_id, end_id = ids
                break
        else:
            known = ", ".join(f"{name} ({' '.join(s)})" for name, s in FIM_FAMILIES.items())
            raise FimUnsupported(
                f"Model '{model_name}' has no fill-in-the-middle tokens in its tokenizer; fimls needs a "
                f"FIM-trained code model such as DeepSeek-Coder base. Known FIM token sets: {known}."
            )
        stops = {begin_id, hole_id, end_id}
        if tokenizer.eos_id is not None:
            stops.add(tokenizer.eos_id)
        stops.update(i for i in (tokenizer.token_id(s) for s in _EXTRA_STOP_STRINGS) if i is not None)
        return cls(
            family=family,
            bos_id=tokenizer.bos_id if tokenizer.adds_bos else None,
            begin_id=begin_id,
            hole_id=hole_id,
            end_id=end_id,
            stop_ids=frozenset(stops),
        )

    def render(self, parts: PromptParts, encode, layout: str = "line-in-middle") -> list[int]:
        """Token ids of `[BOS] <begin> snippets header prefix <hole> suffix <end>`.

        Each piece is encoded on its own, so an edit in the prefix never re-tokenizes the pieces
        before it and their ids (and KV cache) stay put. In the `line-in-middle` layout (after
        llama.vim) the cursor line's text before the cursor goes after `<end>`, as the start of the
        middle the model is writing: typing on a line then changes only the prompt's tail, and the
        model's output is still exactly what follows the cursor.
        """
        head, typed = parts.prefix, ""
        if layout == "line-in-middle":
            line_start = parts.prefix.rfind("\n") + 1
            head, typed = parts.prefix[:line_start], parts.prefix[line_start:]
        ids: list[int] = [] if self.bos_id is None else [self.bos_id]
        ids.append(self.begin_id)
        for piece in [s.text for s in parts.snippets] + [parts.header, head]:
            ids.extend(encode(piece))
        ids.append(self.hole_id)
        ids.extend(encode(parts.suffix))
        ids.append(self.end_id)
        ids.extend(encode(typed))
        return ids
