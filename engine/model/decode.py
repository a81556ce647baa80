"""The decode path as a few small functions over tensors (after gpt-fast's generate.py):
`prefill` a run of prompt tokens into the cache, `decode_one_token`, and `pick_next_token`.
`KVSession` keeps the cache of the last prompt so the next one only prefills what changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from fimls.contract import Generation


@torch.inference_mode()
def forward_tokens(
    model: Any, token_ids: list[int], cache: Any, start: int, device: torch.device, keep: int = 1, forward: Any = None
) -> torch.Tensor:
    """Run `token_ids` at positions start.. into `cache`; return the logits after the last `keep`.
    `forward` replaces `model` (a compiled, CUDA-graphed copy of its forward, for one token)."""
    input_ids = torch.tensor([token_ids], dtype=torch.long, device=device)
    positions = torch.arange(start, start + len(token_ids), device=device)
    out = (forward or model)(
        input_ids=input_ids,
        past_key_values=cache,
        cache_position=positions,
        position_ids=positions.unsqueeze(0),
        use_cache=True,
        logits_to_keep=keep,
    )
    return out.logits[0]


def prefill(model: Any, token_ids: list[int], cache: Any, start: int, device: torch.device) -> torch.Tensor:
    """The prompt's changed tail into the cache; the logits after its last token."""
    return forward_tokens(model, token_ids, cache, start, device)[-1]


def decode_one_token(
    model: Any, token_id: int, cache: Any, position: int, device: torch.device, forward: Any = None
) -> torch.Tensor:
    return forward_tokens(model, [token_id], cache, position, device, forward=forward)[-1]


def speculative_step(
    model: Any, token_id: int, draft: list[int], cache: Any, position: int, device: torch.device
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Feed `token_id` and a draft of what follows in one forward; keep the longest run of draft
    tokens the model itself would have picked greedily, and drop the rest from the cache.

    Returns how many draft tokens were accepted, the logits after the last kept token (so the
    output is exactly plain greedy decoding's, token for token), and the logits the accepted draft
    tokens were picked from.
    """
    logits = forward_tokens(model, [token_id] + draft, cache, position, device, keep=len(draft) + 1)
    picks = logits.argmax(dim=-1).tolist()
    accepted = 0
    while accepted < len(draft) and picks[accepted] == draft[accepted]:
        accepted += 1
    rewind(cache, position + 1 + accepted, position + 1 + len(draft))
    return accepted, logits[accepted], logits[:accepted]


def log_probability(logits: torch.Tensor, token_ids: list[int]) -> float:
    """Sum of log p(token) for each row of `logits` (one row per token, or one row for one token)."""
    if not token_ids:
        return 0.0
    rows = logits.float().reshape(-1, logits.shape[-1])
    picked = torch.log_softmax(rows, dim=-1)[torch.arange(len(token_ids)), torch.tensor(token_ids)]
    return float(picked.sum())


def find_draft(context: list[int], max_tokens: int, max_ngram: int = 3, min_ngram: int = 2) -> list[int]:
    """Prompt-lookup drafting: the tokens that followed the most recent earlier occurrence of the
    context's last n-gram (longest n first). Code repeats itself, so this is often right, and free."""
    if max_tokens <= 0:
        return []
    for n in range(min(max_ngram, len(context) - 1), min_ngram - 1, -1):
        pattern = context[-n:]
        for start in range(len(context) - n - 1, -1, -1):
            if context[start : start + n] == pattern:
                return context[start + n : start + n + max_tokens]
    return []


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


def is_static(cache: Any) -> bool:
    return bool(getattr(cache, "layers", None)) and hasattr(cache.layers[0], "cumulative_length")


def rewind(cache: Any, keep: int, length: int) -> None:
    """Forget cache positions `keep`..`length`.

    A dynamic cache is cropped. A static cache (fixed buffers, for CUDA graphs) keeps its memory:
    its write position goes back to `keep`, later writes overwrite the stale entries, and until
    then the causal mask hides them (each query sees only keys at positions up to its own).
    """
    if keep >= length:
        return
    if is_static(cache):
        for layer in cache.layers:
            layer.cumulative_length.fill_(keep)
    else:
        cache.crop(keep - length)


@dataclass
class KVSession:
    """The token ids whose keys and values are in `cache`, position by position."""

    make_cache: Callable[[], Any]
    tokens: list[int] = field(default_factory=list)
    cache: Any = None

    def reset(self) -> None:
        if self.cache is not None and is_static(self.cache):
            rewind(self.cache, 0, len(self.tokens) or 1)  # keep the buffers CUDA graphs point at
        else:
            self.cache = None
        self.tokens = []

    def reuse(self, prompt: list[int]) -> int:
        """Rewind the cache to the longest common token-id prefix with `prompt`; return its length.

        Token ids, never strings, are compared: equal ids at every earlier position mean equal keys
        and values there (a token that BPE re-merged at an edit has a new id, so it is not reused).
        At least one prompt token is always left to feed, for its logits.
        """
        if self.cache is None:
            self.cache = self.make_cache()
            self.tokens = []
        limit = min(len(self.tokens), len(prompt) - 1)
        common = 0
        while common < limit and self.tokens[common] == prompt[common]:
            common += 1
        rewind(self.cache, common, len(self.tokens))
        self.tokens = self.tokens[:common]
        return common


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
    speculative_tokens: int = 0,
    cancelled: Callable[[], bool] = lambda: False,
    finished: Callable[[list[int]], bool] = lambda token_ids: False,
    decode_forward: Any = None,
    clock: Callable[[], float],
    score: bool = False,
    first_choices: int = 0,
) -> Generation:
    """Decode until a stop id, the token limit, `finished(tokens so far)` or `cancelled()`, each
    checked after every token so no token is made past a stop. With `speculative_tokens` > 0 and
    greedy sampling, prompt-lookup drafts are verified in one forward per step. `score` sums the
    log-probability of what is made; `first_choices` keeps that many best first tokens."""
    started = clock()
    reused = session.reuse(prompt)
    speculate = speculative_tokens > 0 and temperature <= 0.0
    drafted = accepted_total = 0
    log_prob, scored = 0.0, 0
    try:
        logits = prefill(model, prompt[reused:], session.cache, reused, device)
        session.tokens.extend(prompt[reused:])
        first_token_s = clock() - started
        choices: list[tuple[int, float]] = []
        if first_choices:
            top = torch.log_softmax(logits.float(), dim=-1).topk(first_choices)
            choices = list(zip(top.indices.tolist(), top.values.tolist()))
        out: list[int] = []
        decided = [pick_next_token(logits, temperature, top_p)]
        decided_logits = [logits]  # the rows each decided token was picked from
        while True:
            stop_reason = None
            for token, row in zip(decided, decided_logits):
                if score:
                    log_prob += log_probability(row, [token])
                    scored += 1
                if token in stop_ids:
                    stop_reason = "eos"
                    break
                out.append(token)
                if finished(out):
                    stop_reason = "rule"
                elif len(out) == max_new_tokens:
                    stop_reason = "length"
                if stop_reason:
                    break
            if stop_reason is None and cancelled():
                stop_reason = "cancelled"
            if stop_reason is not None:
                break
            # `out[-1]` is decided but not yet in the cache; feed it (with a draft of what follows).
            token = out[-1]
            room = max_new_tokens - len(out) - 1
            draft = find_draft(session.tokens + [token], min(speculative_tokens, room)) if speculate else []
            if draft:
                accepted, logits, draft_logits = speculative_step(model, token, draft, session.cache, len(session.tokens), device)
                session.tokens.extend([token] + draft[:accepted])
                drafted, accepted_total = drafted + len(draft), accepted_total + accepted
                decided = draft[:accepted] + [pick_next_token(logits, temperature, top_p)]
                decided_logits = list(draft_logits) + [logits]
            else:
                logits = decode_one_token(model, token, session.cache, len(session.tokens), device, decode_forward)
                session.tokens.append(token)
                decided = [pick_next_token(logits, temperature, top_p)]
                decided_logits = [logits]
    except BaseException:
        # A failure mid-forward can leave the cache one layer ahead of `tokens`: start clean.
        session.reset()
        raise
    return Generation(
        out, stop_reason, len(prompt), reused, first_token_s, clock() - started, drafted, accepted_total,
        log_prob, scored, choices,
    )
