"""One inline-completion request, start to end, as a plain async method the server calls:
filters, typing-as-suggested cache, debounce, the model worker, post-processing, statistics."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fimls.backends import tuning
from fimls.completion import complete_text
from fimls.context.syntax import cursor_in
from fimls.contract import Backend, BackendError
from fimls.engine.worker import ModelWorker, Superseded
from fimls.lsp.debounce import TypingRhythm
from fimls.lsp.postprocess import around_cursor, postprocess
from fimls.lsp.stats import Stats
from fimls.lsp.suggestion_cache import SuggestionCache
from fimls.settings import RELOAD_FIELDS, Settings

log = logging.getLogger(__name__)

# What one window shares whatever folder a document is in: the one model and how it is reached,
# the backend's tuning, the service's debounce and cache, and the index (one for all folders).
WINDOW_FIELDS = RELOAD_FIELDS | {
    "prompt_layout", "speculative_tokens", "max_cached_tokens", "max_resident_models", "daemon_idle_exit_s",
    "debounce_min_ms", "debounce_max_ms", "cache_size", "max_file_bytes", "exclude_globs",
}


@dataclass
class Request:
    uri: str
    path: str
    relative_path: str
    language_id: str | None
    text: str
    offset: int
    invoked: bool


@dataclass
class CompletionService:
    settings: Settings
    worker: ModelWorker = field(default_factory=ModelWorker)
    backend: Backend | None = None  # None while the model (re)loads: completions answer empty
    root: str | None = None
    context: object = None  # a ContextBuilder over the workspace index, once there is a root
    stats: Stats = field(default_factory=Stats)
    # Told of the first failing generation after good ones (a message) and of the first good one
    # after failures (None), so the editor's status follows the model's health.
    on_health: Callable[[str | None], None] = lambda problem: None
    # A workspace folder's own settings (its root, resolved → what the client answered for it).
    folder_settings: dict[str, Settings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache = SuggestionCache(self.settings.cache_size)
        self.rhythm = TypingRhythm(self.settings.debounce_min_ms, self.settings.debounce_max_ms)
        self._latest: dict[str, int] = {}
        self._sequence = 0
        self.failing = False

    def apply(self, settings: Settings) -> None:
        """Settings that take effect from the next request (no reload)."""
        self.settings = settings
        self.cache.max_entries = settings.cache_size
        self.rhythm.min_s, self.rhythm.max_s = settings.debounce_min_ms / 1000, settings.debounce_max_ms / 1000
        if self.backend is not None:
            self.backend.tune(tuning(settings))

    def use(self, backend: Backend | None) -> None:
        """Serve with `backend` from the next request on (None: answer empty while loading), tuned
        to the settings in force now, which may have changed while it loaded."""
        if backend is not None:
            backend.tune(tuning(self.settings))
        self.backend = backend

    def settings_for(self, path: str | None) -> Settings:
        """The settings a request in the document at `path` is served with: those of the innermost
        folder holding it, the window's own (WINDOW_FIELDS) kept, else the window's."""
        if not self.folder_settings or not path:
            return self.settings
        try:
            resolved = Path(path).resolve()
        except (OSError, ValueError):
            return self.settings
        holding = [root for root in self.folder_settings if resolved.is_relative_to(root)]
        if not holding:
            return self.settings
        own = self.folder_settings[max(holding, key=len)]
        return own.model_copy(update={name: getattr(self.settings, name) for name in WINDOW_FIELDS})

    def allowed(self, relative_path: str, language_id: str | None, settings: Settings | None = None) -> bool:
        settings = settings or self.settings
        languages = settings.enabled_languages
        if "*" not in languages and (language_id or "") not in languages:
            return False
        path = relative_path.replace("\\", "/")
        return not any(
            fnmatch.fnmatch(path, glob) or fnmatch.fnmatch("/" + path, glob) for glob in settings.exclude_globs
        )

    async def complete(self, request: Request) -> list[str]:
        """The completions to show for `request`, best first (none: an empty list). An invoked
        request gets up to `candidates` different ones, an automatic one at most one."""
        started = time.perf_counter()
        self.stats.requests += 1
        self._sequence += 1
        self._latest[request.uri] = self._sequence
        waits = {"debounce_ms": 0.0, "queue_ms": 0.0, "context_ms": 0.0, "model_ms": 0.0}
        try:
            texts = await self._respond(request, self._sequence, waits)
        except asyncio.CancelledError:
            self.stats.cancelled += 1  # its time is no one's latency: nobody got an answer
            raise
        total_ms = (time.perf_counter() - started) * 1000
        self.stats.latency_ms.append(total_ms)
        # The debounce is by design, waiting for an older generation to stop at its next token is
        # that generation's, and the model's time is the model's; building the prompt is counted
        # apart, and everything else (the cache, post-processing, the protocol) is the server's.
        self.stats.overhead_ms.append(max(0.0, total_ms - sum(waits.values())))
        if not texts:
            self.stats.empty += 1
        return texts

    async def _respond(self, request: Request, sequence: int, waits: dict[str, float]) -> list[str]:
        settings = self.settings_for(request.path)
        if self.backend is None or not self.allowed(request.relative_path, request.language_id, settings):
            return []
        if settings.disabled_in and cursor_in(request.path, request.text, request.offset) in settings.disabled_in:
            return []
        cached = self.cache.get(request.uri, request.text, request.offset)
        if cached is not None and not request.invoked:
            self.stats.cache_hits += 1
            return [cached]
        if not request.invoked:
            delay = self.rhythm.delay(request.uri)
            await asyncio.sleep(delay)
            waits["debounce_ms"] = delay * 1000
            if self._latest.get(request.uri) != sequence:  # a newer keystroke's request came
                self.stats.superseded += 1
                return []
        backend = self.backend
        queued = time.perf_counter()

        def run(cancelled):
            waits["queue_ms"] = (time.perf_counter() - queued) * 1000
            self.stats.model_calls += 1  # counted in the worker: queued requests that were superseded never get here
            completion = complete_text(
                backend, settings, request.text, request.offset, request.path, self.root, cancelled, self.context,
                candidates=settings.candidates if request.invoked else 1, session=request.uri,
            )
            if cancelled():
                self.stats.stopped_early += 1  # superseded mid-generation: stopped at the next decode step
            return completion

        try:
            completion = await self.worker.generate(request.uri, run)
        except Superseded:
            self.stats.superseded += 1
            return []
        except Exception as error:  # the model failed; the server answers empty and goes on
            self.stats.errors += 1
            problem = describe_generation_failure(error)
            log.error("%s", problem, exc_info=not is_out_of_memory(error))
            if not self.failing:
                self.failing = True
                self.on_health(problem)
            return []
        if self.failing:
            self.failing = False
            self.on_health(None)
        waits["context_ms"], waits["model_ms"] = completion.context_s * 1000, completion.model_s * 1000
        self.stats.engine_ms.append(waits["model_ms"])
        self.stats.context_ms.append(waits["context_ms"])
        self.stats.queue_ms.append(waits["queue_ms"])
        generation = completion.completion.generation
        if generation.prompt_tokens:
            self.stats.reuse.append(generation.reused_tokens / generation.prompt_tokens)
        if completion.completion.transport_s is not None:
            self.stats.hop_ms.append(completion.completion.transport_s * 1000)
        before, after = around_cursor(request.text, request.offset)
        texts = distinct(postprocess(c.text, before, after) for c in (completion.completion, *completion.completion.alternatives))
        if texts:
            self.cache.put(request.uri, request.text, request.offset, texts[0], completion.window)
        return texts


def distinct(texts) -> list[str]:
    """The non-empty texts, each once, in order."""
    return [text for text in dict.fromkeys(texts) if text]


def is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError, known by name: this process may never have imported torch."""
    return any(kind.__name__ == "OutOfMemoryError" for kind in type(error).__mro__) or "out of memory" in str(error).lower()


def describe_generation_failure(error: BaseException) -> str:
    if isinstance(error, BackendError):
        return str(error)
    if is_out_of_memory(error):
        return (
            "out of GPU memory while completing; the KV cache was dropped and the next request tries "
            "again. If it persists, lower contextTokens, prefixTokens or maxCachedTokens, or use a "
            f"smaller model ({str(error).splitlines()[0] if str(error) else 'OutOfMemoryError'})"
        )
    return f"completion failed: {type(error).__name__}: {error}"
