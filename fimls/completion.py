"""One completion from document text and a cursor: context decides the prompt, the engine writes.

The language server and `fimls complete` both call this, so they answer alike for the same file
and position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from fimls.context.builder import ContextBuilder
from fimls.context.paths import display_path
from fimls.context.window import window_lines, window_parts
from fimls.context.workspace import WorkspaceIndex
from fimls.contract import Backend, Completion, CompletionRequest, PromptParts, never
from fimls.lsp.postprocess import around_cursor, postprocess
from fimls.settings import Settings
from fimls.stops import StopRules, line_after_cursor, line_before_cursor, rules_for_cursor


@dataclass(frozen=True)
class PromptedCompletion:
    completion: Completion
    window: tuple[int, int]  # the span of the document the prompt's prefix and suffix came from
    context_s: float  # building the prompt: window, snippets, rendering

    @property
    def text(self) -> str:
        return self.completion.text

    @property
    def model_s(self) -> float:
        return self.completion.model_s


@dataclass(frozen=True)
class Prompt:
    parts: PromptParts
    rules: StopRules
    span: tuple[int, int]  # the span of the document the prefix and suffix came from
    built_s: float


def build_prompt(
    backend: Backend, settings: Settings, text: str, offset: int, file_path: str, root: str | None,
    context: ContextBuilder | None = None,
) -> Prompt:
    """What the model is shown for a cursor at `offset` of `text`, the file at `file_path`: the
    window around the cursor, headed by the file's path in its workspace folder, and snippets of
    the workspace (`context`) within the token budgets; and the stop rules for the cursor."""
    started = time.perf_counter()
    offset = max(0, min(offset, len(text)))
    prefix_tokens, suffix_tokens, context_tokens = fit_budgets(settings, backend.window)
    located = context.locate(file_path) if context is not None else None
    key, shown = located if located is not None else (display_path(file_path, root),) * 2
    parts = window_parts(
        text,
        offset,
        shown,
        backend.count_tokens,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
    )
    if context is not None and context_tokens > 0:
        line = text.count("\n", 0, offset)
        snippets = context.snippets(
            settings.ranker, key, text, offset, window_lines(line, parts), context_tokens, backend.count_tokens, line
        )
        parts = replace(parts, snippets=snippets)
    rules = rules_for_cursor(line_before_cursor(text, offset), line_after_cursor(text, offset))
    span = (offset - len(parts.prefix), offset + len(parts.suffix))
    return Prompt(parts, rules, span, time.perf_counter() - started)


def complete_text(
    backend: Backend,
    settings: Settings,
    text: str,
    offset: int,
    file_path: str,
    root: str | None,
    cancelled: Callable[[], bool] = never,
    context: ContextBuilder | None = None,
    candidates: int = 1,
    session: str = "",
) -> PromptedCompletion:
    """`candidates` > 1 adds alternatives made from the same prefill (`completion.alternatives`);
    `session` names the document, whose KV cache the engine keeps apart from other documents'."""
    prompt = build_prompt(backend, settings, text, offset, file_path, root, context)
    completion = backend.complete(CompletionRequest(
        prompt.parts, max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, top_p=settings.top_p,
        rules=prompt.rules, candidates=candidates, session=session, cancelled=cancelled,
    ))
    return PromptedCompletion(completion, prompt.span, prompt.built_s + completion.render_s)


def complete_in_workspace(
    backend: Backend, settings: Settings, text: str, offset: int, file_path: str, root: str, candidates: int = 1,
) -> tuple[str, PromptedCompletion]:
    """`fimls complete`: the completion at `offset` of the file at `file_path` with the context a
    server would have for the workspace `root`, and what an editor would be shown of it (the
    server post-processes the same way)."""
    context = workspace_context(root, settings)
    context.build()
    completion = complete_text(backend, settings, text, offset, file_path, root, context=context, candidates=candidates)
    return postprocess(completion.text, *around_cursor(text, offset)), completion


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
