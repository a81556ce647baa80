"""One completion from document text and a cursor: context decides the prompt, the engine writes.

The language server and `fimls complete` both call this, so they answer alike for the same file
and position.
"""

from __future__ import annotations

from typing import Callable

from fimls.context.paths import display_path
from fimls.context.window import window_parts
from fimls.engine.engine import Completion, Engine
from fimls.settings import Settings


def complete_text(
    engine: Engine,
    settings: Settings,
    text: str,
    offset: int,
    file_path: str,
    root: str | None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Completion:
    parts = window_parts(
        text,
        offset,
        display_path(file_path, root),
        engine.count_tokens,
        prefix_tokens=settings.prefix_tokens,
        suffix_tokens=settings.suffix_tokens,
    )
    return engine.complete(parts, max_new_tokens=settings.max_new_tokens, cancelled=cancelled)


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
    engine = Engine(loaded)
    engine.warm_up()
    return engine
