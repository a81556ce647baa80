"""The engine: one object that owns the loaded model, its FIM template and its KV sessions (one per
document), and turns `PromptParts` into completion text. Calls are serialized: one model, one worker."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Callable

import torch
from transformers import DynamicCache, StaticCache

from fimls.contract import Completion, Generation, ModelSpec, PromptParts
from fimls.engine.model.cpu_forward import LeanLlama, supports
from fimls.engine.model.decode import KVSession, generate
from fimls.engine.model.fim import FimTemplate
from fimls.engine.model.loading import LoadedModel, load_model
from fimls.engine.model.sessions import SHARED, SessionPool
from fimls.stops import StopRules

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        loaded: LoadedModel,
        max_cached_tokens: int = 8192,
        layout: str = "line-in-middle",
        speculative_tokens: int = 0,
        static_cache: bool = False,
        compile_decode: bool = False,
        cpu_forward: str = "lean",
    ):
        """`static_cache` keeps the KV cache in fixed buffers of `max_cached_tokens` positions, and
        `compile_decode` runs the one-token decode step through `torch.compile` in
        `reduce-overhead` mode (CUDA graphs): together, the decode path of gpt-fast.
        `cpu_forward` "lean": on CPU, a Llama model runs through `cpu_forward.LeanLlama`."""
        self.loaded = loaded
        self.layout = layout
        self.speculative_tokens = speculative_tokens
        self.template = FimTemplate.from_tokenizer(loaded.tokenizer, loaded.name)
        self._lock = threading.Lock()

        config = loaded.model.config
        self.static_cache = static_cache
        if static_cache:
            make_cache = lambda: StaticCache(config=config, max_cache_len=max_cached_tokens)  # noqa: E731
        else:
            make_cache = lambda: DynamicCache(config=config)  # noqa: E731
        # What the decode path calls for a forward pass: the model, or the lean CPU forward.
        self.forward = loaded.model
        if cpu_forward == "lean" and loaded.device.type == "cpu" and not static_cache:
            reason = supports(loaded.model)
            if reason is None:
                self.forward = LeanLlama(loaded.model)
                make_cache = self.forward.new_cache
            else:
                log.info("transformers' forward on CPU: %s", reason)
        self.sessions = SessionPool(make_cache, max_cached_tokens, static_cache)
        self.decode_forward = None
        if compile_decode:
            self.decode_forward = torch.compile(loaded.model.forward, mode="reduce-overhead", dynamic=False)

    @property
    def forward_kind(self) -> str:
        """"lean" where the lean CPU forward runs, else "transformers"."""
        return "transformers" if self.forward is self.loaded.model else "lean"

    @property
    def max_cached_tokens(self) -> int:
        """Most positions all sessions together keep cached between requests."""
        return self.sessions.max_tokens

    @max_cached_tokens.setter
    def max_cached_tokens(self, tokens: int) -> None:
        self.sessions.max_tokens = tokens

    @property
    def session(self) -> KVSession:
        """The session of callers that name no document."""
        return self.sessions.take(SHARED)

    def describe(self) -> str:
        loaded = self.loaded
        forward = ", lean forward" if self.forward_kind == "lean" else ""
        return f"{loaded.name} ready on {loaded.device} ({loaded.kernel}{forward}) in {loaded.load_seconds:.1f}s"

    @property
    def window(self) -> int:
        """Most positions one prompt plus its completion may take."""
        if self.static_cache:
            return min(self.loaded.context_window, self.max_cached_tokens)
        return self.loaded.context_window

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as text (control-token strings in it stay characters)."""
        return self.loaded.tokenizer.encode(text)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def render(self, parts: PromptParts) -> list[int]:
        return self.template.render(parts, self.encode, self.layout)

    def decode(self, token_ids: list[int]) -> str:
        return self.loaded.tokenizer.decode(token_ids)

    def complete(self, parts: PromptParts, **options) -> Completion:
        """`complete_ids` for prompt parts, rendered here with the engine's layout."""
        rendering = time.perf_counter()
        prompt = self.render(parts)
        return self.complete_ids(prompt, render_s=time.perf_counter() - rendering, **options)

    def complete_ids(
        self,
        prompt: list[int],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        cancelled: Callable[[], bool] = lambda: False,
        stop_ids: frozenset[int] | None = None,
        rules: StopRules | None = None,
        candidates: int = 1,
        session: str = SHARED,
        speculative_tokens: int | None = None,
        render_s: float = 0.0,
    ) -> Completion:
        """The completion of `prompt` (token ids). `session` names the document whose KV cache
        the prompt reuses; `speculative_tokens` overrides the engine's for this call. `stop_ids`
        replaces the template's end tokens (an empty set times a fixed length, as benchmarks and
        the warm-up do).

        With `candidates` > 1, the prompt is prefilled once and the completion carries up to
        `candidates` - 1 `alternatives`: each starts with another of the most likely first tokens
        and goes on greedily from the shared KV cache (only its own tokens are computed),
        ordered by mean log-probability. The completion itself is exactly the single one.
        """
        speculative = self.speculative_tokens if speculative_tokens is None else speculative_tokens
        window = self.window
        if len(prompt) + max_new_tokens + speculative + 1 > window:
            raise ValueError(
                f"prompt of {len(prompt)} tokens plus {max_new_tokens} new tokens exceeds the model's "
                f"window of {window}; lower the prefix/suffix budgets"
            )
        stops = self.template.stop_ids if stop_ids is None else stop_ids
        branching = candidates > 1 and temperature <= 0.0
        with self._lock:
            kv = self.sessions.take(session)
            try:
                generation = self._generate(
                    kv, prompt, max_new_tokens, stops, temperature, top_p, cancelled, rules,
                    score=branching, first_choices=candidates + 1 if branching else 0, speculative_tokens=speculative,
                )
                alternatives = []
                if branching:
                    alternatives = self._branches(
                        kv, prompt, generation, candidates - 1, max_new_tokens, stops, cancelled, rules, speculative,
                    )
            except BaseException as error:
                # A generation that failed part-way leaves the cache out of step with its token
                # ids: drop both. Out of memory, every document's cache goes, and the freed GPU
                # memory is handed back.
                if isinstance(error, torch.OutOfMemoryError):
                    self.sessions.reset()
                else:
                    self.sessions.forget(session)
                if self.loaded.device.type == "cuda":
                    torch.cuda.empty_cache()
                raise
            self.sessions.settle(session)  # bounded memory: least recently used documents go first
        completion = self._completion(generation, rules, render_s)
        alternatives.sort(key=lambda alternative: -alternative.mean_log_probability)
        return replace(completion, alternatives=tuple(self._completion(g, rules, 0.0) for g in alternatives))

    def _generate(
        self, kv, prompt, max_new_tokens, stops, temperature, top_p, cancelled, rules, score=False, first_choices=0, made=(),
        speculative_tokens=0,
    ):
        """`made`: tokens of the completion already decided before `prompt`'s end (a branch's first)."""
        finished = self._finished_by(rules)
        return generate(
            self.forward,
            kv,
            prompt,
            max_new_tokens=max_new_tokens,
            stop_ids=stops,
            device=self.loaded.device,
            temperature=temperature,
            top_p=top_p,
            speculative_tokens=speculative_tokens,
            decode_forward=self.decode_forward,
            cancelled=cancelled,
            finished=(lambda token_ids: finished([*made, *token_ids])) if made else finished,
            clock=time.perf_counter,
            score=score,
            first_choices=first_choices,
        )

    def _branches(self, kv, prompt, greedy: Generation, count, max_new_tokens, stops, cancelled, rules, speculative_tokens) -> list[Generation]:
        """Greedy continuations of the best first tokens other than the greedy one's: each prompt
        is the prompt plus that token, so the KV session reuses the whole prompt."""
        branches = []
        taken = set(greedy.token_ids[:1])
        for token_id, first_log_probability in greedy.first_choices:
            if len(branches) == count or cancelled():
                break
            if token_id in taken or token_id in stops:
                continue
            taken.add(token_id)
            finished = self._finished_by(rules)
            if max_new_tokens == 1 or finished([token_id]):
                rest = Generation([], "rule", len(prompt) + 1, len(prompt), 0.0, 0.0)
            else:
                rest = self._generate(
                    kv, prompt + [token_id], max_new_tokens - 1, stops, 0.0, 1.0, cancelled, rules, score=True,
                    made=(token_id,), speculative_tokens=speculative_tokens,
                )
            branches.append(replace(
                rest, token_ids=[token_id] + rest.token_ids, log_probability=first_log_probability + rest.log_probability,
                scored_tokens=1 + rest.scored_tokens,
            ))
        return branches

    def _completion(self, generation: Generation, rules: StopRules | None, render_s: float) -> Completion:
        text = self.decode(generation.token_ids)
        cut = rules.cut(text) if rules is not None else None
        return Completion(text if cut is None else text[:cut], generation, render_s)

    def _finished_by(self, rules: StopRules | None) -> Callable[[list[int]], bool]:
        if rules is None:
            return lambda token_ids: False
        # A token can end inside a multi-byte character; judge only text that decoded whole.
        return lambda token_ids: not (text := self.decode(token_ids)).endswith("\ufffd") and rules.cut(text) is not None

    def warm_up(self) -> None:
        """Run a few tiny completions so JIT kernels compile (and CUDA graphs are recorded) at
        load, not on the first keystroke. A compiled decode that fails falls back to eager."""
        parts = PromptParts(header="", prefix="def f(", suffix=")\n")
        try:
            for _ in range(3):
                self.complete(parts, max_new_tokens=4, stop_ids=frozenset())
        except Exception as error:
            if self.decode_forward is None:
                raise
            log.warning("compiled decode step unavailable (%s: %s); decoding eagerly", type(error).__name__, error)
            self.decode_forward = None
            self.sessions.reset()
            self.complete(parts, max_new_tokens=4, stop_ids=frozenset())
        self.sessions.reset()


def open_engine(
    spec: ModelSpec, *, max_cached_tokens: int = 8192, layout: str = "line-in-middle", speculative_tokens: int = 0,
) -> Engine:
    """The model loaded and warmed up; on CUDA with `cuda_graphs`, the static-cache, graphed decode."""
    loaded = load_model(
        spec.model, device=spec.device, gptq_backend=spec.gptq_backend, dtype=spec.dtype, offline=spec.offline,
        trust_remote_code=spec.trust_remote_code,
    )
    cuda_fast_path = spec.cuda_graphs and loaded.device.type == "cuda"
    engine = Engine(
        loaded, max_cached_tokens=max_cached_tokens, layout=layout, speculative_tokens=speculative_tokens,
        static_cache=cuda_fast_path, compile_decode=cuda_fast_path, cpu_forward=spec.cpu_forward,
    )
    engine.warm_up()
    return engine
