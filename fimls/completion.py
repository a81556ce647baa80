"""One completion from document text and a cursor: context decides the prompt, the engine writes.

The language server and `fimls complete` both call this, so they answer alike for the same file
and position.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from fimls.context.builder import ContextBuilder
from fimls.context.paths import display_path
from fimls.context.window import window_lines, window_parts
from fimls.context.workspace import WorkspaceIndex
from fimls.engine.engine import Completion, Engine
from fimls.engine.stops import line_after, line_before, rules_for_cursor
from fimls.settings import Settings


def complete_text(
    engine: Engine,
    settings: Settings,
    text: str,
    offset: int,
    file_path: str,
    root: str | None,
    cancelled: Callable[[], bool] = lambda: False,
    context: ContextBuilder | None = None,
) -> Completion:
    prefix_tokens, suffix_tokens, context_tokens = fit_budgets(settings, engine.window)
    path = display_path(file_path, root)
    parts = window_parts(
        text,
        offset,
        path,
        engine.count_tokens,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
    )
    if context is not None and context_tokens > 0:
        window = window_lines(text, offset, parts)
        snippets = context.snippets(settings.ranker, path, text, offset, window, context_tokens, engine.count_tokens)
        parts = replace(parts, snippets=snippets)
    rules = rules_for_cursor(line_before(text[:offset]), line_after(text[offset:]))
    return engine.complete(
        parts,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        cancelled=cancelled,
        rules=rules,
    )


def workspace_context(root: str, settings: Settings) -> ContextBuilder:
    """A context builder over an index of `root` with the settings' file filters; `build()` scans."""
    index = WorkspaceIndex(root, max_file_bytes=settings.max_file_bytes, exclude_globs=settings.exclude_globs)
    return ContextBuilder(index)


# Room for the FIM tokens, BOS and the path header beyond the prefix and suffix budgets.
TEMPLATE_RESERVE = 64


def fit_budgets(settings: Settings, window: int) -> tuple[int, int, int]:
    """Prefix, suffix and context budgets shrunk in proportion, if needed, so that the whole
    prompt and the completion fit the model's window: an over-long prompt is cut here, never
    passed through."""
    room = window - settings.max_new_tokens - settings.speculative_tokens - TEMPLATE_RESERVE
    wanted = (settings.prefix_tokens, settings.suffix_tokens, settings.context_tokens)
    if sum(wanted) <= room:
        return wanted
    prefix, suffix, context = (max(0, w * room // sum(wanted)) for w in wanted)
    return max(1, prefix), suffix, context


def load_engine(settings: Settings) -> Engine:
    from fimls.engine.loading import load_model

    loaded = load_model(
        settings.model,
        device=settings.device,
        gptq_backend=settings.gptq_backend,
        dtype=settings.dtype,
        offline=settings.offline,
        trust_remote_code=settings.trust_remote_code,
    )
    cuda_fast_path = settings.cuda_graphs and loaded.device.type == "cuda"
    engine = Engine(
        loaded,
        max_cached_tokens=settings.max_cached_tokens,
        layout=settings.prompt_layout,
        speculative_tokens=settings.speculative_tokens,
        static_cache=cuda_fast_path,
        compile_decode=cuda_fast_path,
    )
    engine.warm_up()
    return engine
