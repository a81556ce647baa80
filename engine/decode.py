"""The decode path as a few small functions over tensors (after gpt-fast's generate.py):
`prefill` a run of prompt tokens into the cache, `decode_one_token`, and `pick_next_token`.
`KVSession` keeps the cache of the last prompt so the next one only prefills what changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@torch.inference_mode()
def prefill(model: Any, token_ids: list[int], cache: Any, start: int, device: torch.device) -> torch.Tensor:
    """Run `token_ids` at positions start.. into `cache`; return the logits after the last one."""
    input_ids = torch.tensor([token_ids], dtype=torch.long, device=device)
    positions = torch.arange(start, start + len(token_ids), device=device)
    out = model(
        input_ids=input_ids,
        past_key_values=cache,
        cache_position=positions,
        position_ids=positions.unsqueeze(0),
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[0, -1]


def decode_one_token(model: Any, token_id: int, cache: Any, position: int, device: torch.device) -> torch.Tensor:
    return prefill(model, [token_id], cache, position, device)


def pick_next_token(
    logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> int:
    """Greedy at temperature 0; otherwise nucleus sampling."""
    if temperature <= 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


@dataclass
class KVSession:
    """The token ids whose keys and values are in `cache`, position by position."""

    make_cache: Callable[[], Any]
    tokens: list[int] = field(default_factory=list)
    cache: Any = None

    def reset(self) -> None:
        self.tokens = []
        self.cache = None

    def reuse(self, prompt: list[int]) -> int:
        """Crop the cache to the longest common token-id prefix with `prompt`; return its length.

        Token ids, never strings, are compared: equal ids at every earlier position mean equal keys
        and values there. At least one prompt token is always left to feed, for its logits.
        """
        if self.cache is None:
            self.cache = self.make_cache()
            self.tokens = []
        limit = min(len(self.tokens), len(prompt) - 1)
        common = 0
        while common < limit and self.tokens[common] == prompt[common]:
            common += 1
        if common == 0:
            self.cache = self.make_cache()
        elif common < len(self.tokens):
            self.cache.crop(common - len(self.tokens))
        self.tokens = self.tokens[:common]
        return common


@dataclass
class Generation:
    token_ids: list[int]
    stop_reason: str  # "eos" | "rule" | "length" | "cancelled"
    prompt_tokens: int
    reused_tokens: int
    first_token_s: float
    total_s: float


def generate(
    model: Any,
    session: KVSession,
    prompt: list[int],
    *,
    max_new_tokens: int,
    stop_ids: frozenset[int],
    device: torch.device,
    temperature: float = 0.0,
    top_p: float = 1.0,
    cancelled: Callable[[], bool] = lambda: False,
    finished: Callable[[list[int]], bool] = lambda token_ids: False,
    clock: Callable[[], float],
) -> Generation:
    """Greedy (or sampled) decoding until a stop id, the token limit, `finished(tokens so far)`
    or `cancelled()`, each checked after every token so no token is made past a stop."""
    started = clock()
    reused = session.reuse(prompt)
    try:
        logits = prefill(model, prompt[reused:], session.cache, reused, device)
        session.tokens.extend(prompt[reused:])
        first_token_s = clock() - started
        out: list[int] = []
        stop_reason = "length"
        while len(out) < max_new_tokens:
            token = pick_next_token(logits, temperature, top_p)
            if token in stop_ids:
                stop_reason = "eos"
                break
            out.append(token)
            if finished(out):
                stop_reason = "rule"
                break
            if len(out) == max_new_tokens:
                break
            if cancelled():
                stop_reason = "cancelled"
                break
            logits = decode_one_token(model, token, session.cache, len(session.tokens), device)
            session.tokens.append(token)
    except BaseException:
        # A failure mid-forward can leave the cache one layer ahead of `tokens`: start clean.
        session.reset()
        raise
    return Generation(out, stop_reason, len(prompt), reused, first_token_s, clock() - started)
