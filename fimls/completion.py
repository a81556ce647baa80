"""One completion from document text and a cursor: context decides the prompt, the engine writes.

The language server and `fimls complete` both call this, so they answer alike for the same file
and position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from fimls.context.builder import ContextBuilder
from fimls.context.paths import display_path
from fimls.prompt import PromptParts
from fimls.context.window import window_lines, window_parts
from fimls.context.workspace import WorkspaceIndex
from fimls.engine.results import Completion
from fimls.engine.stops import StopRules, line_after_cursor, line_before_cursor, rules_for_cursor
from fimls.settings import Settings

if TYPE_CHECKING:  # an editor's process that uses the daemon never imports torch
    from fimls.engine.engine import Engine


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
    engine: Engine, settings: Settings, text: str, offset: int, file_path: str, root: str | None,
    context: ContextBuilder | None = None,
) -> Prompt:
    """What the model is shown for a cursor at `offset` of `text`, the file at `file_path`: the
    window around the cursor, headed by the file's path in its workspace folder, and snippets of
    the workspace (`context`) within the token budgets; and the stop rules for the cursor."""
    started = time.perf_counter()
    offset = max(0, min(offset, len(text)))
    prefix_tokens, suffix_tokens, context_tokens = fit_budgets(settings, engine.window)
    located = context.locate(file_path) if context is not None else None
    key, shown = located if located is not None else (display_path(file_path, root),) * 2
    parts = window_parts(
        text,
        offset,
        shown,
        engine.count_tokens,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
    )
    if context is not None and context_tokens > 0:
        line = text.count("\n", 0, offset)
        snippets = context.snippets(
            settings.ranker, key, text, offset, window_lines(line, parts), context_tokens, engine.count_tokens, line
        )
        parts = replace(parts, snippets=snippets)
    rules = rules_for_cursor(line_before_cursor(text, offset), line_after_cursor(text, offset))
    span = (offset - len(parts.prefix), offset + len(parts.suffix))
    return Prompt(parts, rules, span, time.perf_counter() - started)


def complete_text(
    engine: Engine,
    settings: Settings,
    text: str,
    offset: int,
    file_path: str,
    root: str | None,
    cancelled: Callable[[], bool] = lambda: False,
    context: ContextBuilder | None = None,
    candidates: int = 1,
    session: str = "",
) -> PromptedCompletion:
    """`candidates` > 1 adds alternatives made from the same prefill (`completion.alternatives`);
    `session` names the document, whose KV cache the engine keeps apart from other documents'."""
    prompt = build_prompt(engine, settings, text, offset, file_path, root, context)
    completion = engine.complete(
        prompt.parts,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        cancelled=cancelled,
        rules=prompt.rules,
        candidates=candidates,
        session=session,
    )
    return PromptedCompletion(completion, prompt.span, prompt.built_s + completion.render_s)


def complete_in_workspace(
    engine: Engine, settings: Settings, text: str, offset: int, file_path: str, root: str, candidates: int = 1,
) -> tuple[str, PromptedCompletion]:
    """`fimls complete`: the completion at `offset` of the file at `file_path` with the context a
    server would have for the workspace `root`, and what an editor would be shown of it (the
    server post-processes the same way)."""
    from fimls.lsp.postprocess import around_cursor, postprocess

    context = workspace_context(root, settings)
    context.build()
    completion = complete_text(engine, settings, text, offset, file_path, root, context=context, candidates=candidates)
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


def model_spec(settings: Settings):
    from fimls.engine.results import ModelSpec

    return ModelSpec(
        settings.model, device=settings.device, gptq_backend=settings.gptq_backend, dtype=settings.dtype,
        offline=settings.offline, trust_remote_code=settings.trust_remote_code, cuda_graphs=settings.cuda_graphs,
        cpu_forward=settings.cpu_forward,
    )


def load_engine(settings: Settings):
    """The backend the settings name: this machine's shared daemon (`local`), the model in this
    process (`inprocess`), warmed up, or a team's inference server (`server`); for the daemon and a
    server, the model's tokenizer is loaded here without its weights. A daemon or server that does
    not answer yet is no load error: the backend says so in `problem`, and the first completion it
    serves clears it."""
    if settings.backend == "server":
        return load_server_backend(settings)
    if settings.backend == "local":
        from fimls.engine.daemon_client import open_daemon_backend

        return open_daemon_backend(settings, model_spec(settings))
    from fimls.engine.engine import open_engine

    return open_engine(
        model_spec(settings), max_cached_tokens=settings.max_cached_tokens, layout=settings.prompt_layout,
        speculative_tokens=settings.speculative_tokens,
    )


def load_server_backend(settings: Settings):
    from fimls.engine.loading import ModelUnavailable, load_tokenizer_and_window
    from fimls.engine.server import ServerBackend, ServerError, ServerOptions

    if not settings.server_url:
        raise ModelUnavailable("backend is set to server, but serverUrl is empty; set it to the inference server's base URL.")
    tokenizer, window = load_tokenizer_and_window(settings.model, offline=settings.offline, trust_remote_code=settings.trust_remote_code)
    options = ServerOptions(
        url=settings.server_url, model=settings.server_model, api_key_env=settings.server_api_key_env,
        timeout_s=settings.server_timeout_s, stall_s=settings.server_stall_s,
    )
    backend = ServerBackend(tokenizer, options, name=settings.model, window=window, layout=settings.prompt_layout)
    backend.problem = None
    try:
        backend.warm_up()
    except ServerError as error:
        backend.problem = str(error)
    return backend
