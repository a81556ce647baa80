"""`backend: inprocess`: the model loaded in this process (the engine), behind the `Backend`
interface. Nothing travels: the request's parts are rendered and completed here."""

from __future__ import annotations

from fimls.contract import Completion, CompletionRequest, ModelSpec, StateListener, Tuning
from fimls.engine.model.engine import Engine, open_engine


class InProcessBackend:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.problem: str | None = None

    @property
    def window(self) -> int:
        return self.engine.window

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def complete(self, request: CompletionRequest) -> Completion:
        return self.engine.complete(
            request.parts, max_new_tokens=request.max_new_tokens, temperature=request.temperature, top_p=request.top_p,
            cancelled=request.cancelled, rules=request.rules, candidates=request.candidates, session=request.session,
        )

    def tune(self, tuning: Tuning) -> None:
        self.engine.layout = tuning.layout
        self.engine.speculative_tokens = tuning.speculative_tokens
        self.engine.max_cached_tokens = tuning.max_cached_tokens

    def watch(self, on_state: StateListener) -> None:
        """A model in this process changes state only through the request path: nothing to tell."""

    def describe(self) -> str:
        return self.engine.describe()

    def close(self) -> None:
        self.engine.sessions.reset()


def open_inprocess(spec: ModelSpec, tuning: Tuning) -> InProcessBackend:
    """The model loaded here and warmed up; on CUDA with `cuda_graphs`, the static-cache, graphed decode."""

    engine = open_engine(
        spec, max_cached_tokens=tuning.max_cached_tokens, layout=tuning.layout, speculative_tokens=tuning.speculative_tokens,
    )
    return InProcessBackend(engine)
