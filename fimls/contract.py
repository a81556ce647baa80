"""The types `context`, `engine`, `lsp` and the orchestration share, and nothing else: the parts of a
fill-in-the-middle prompt (what `context` decides), one completion request and what every backend
answers, and the `Backend` interface that the model in this process, the shared daemon's client and
a team's inference server's client implement side by side. A leaf: it imports no other fimls
module but the stop rules, and no torch (an editor's process that sends its prompts to the daemon
never imports it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

from fimls.stops import StopRules

TokenCounter = Callable[[str], int]


def never() -> bool:
    return False


# -- the prompt, as context decides it --------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    """Text from another file, already headed by its path comment; the lines it came from (0-based,
    end exclusive) let an evaluation tell what was retrieved."""

    path: str
    text: str
    start_line: int = 0
    end_line: int = 0


@dataclass(frozen=True)
class PromptParts:
    """Ordered from what changes least to what changes on every keystroke, so that a renderer
    that concatenates them in this order keeps the longest reusable token prefix."""

    header: str
    prefix: str
    suffix: str
    snippets: tuple[Snippet, ...] = field(default_factory=tuple)


# -- one request, and what a backend answers --------------------------------------------------


@dataclass(frozen=True)
class CompletionRequest:
    """One completion asked of a backend. `session` names the document, whose KV cache a backend
    that keeps caches keeps apart from other documents'; `candidates` > 1 asks for alternatives
    from the same prefill; `cancelled` is asked between tokens (a superseded request stops within
    one decode step), and where it has `on_cancel` a remote backend hangs up the moment it fires."""

    parts: PromptParts
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    rules: StopRules | None = None
    candidates: int = 1
    session: str = ""
    cancelled: Callable[[], bool] = never


@dataclass(frozen=True)
class Tuning:
    """The settings a backend applies from its next request on, without a reload."""

    layout: str = "line-in-middle"  # how the FIM template orders the prompt (`promptLayout`)
    speculative_tokens: int = 0  # prompt-lookup draft length (`speculativeTokens`)
    max_cached_tokens: int = 8192  # KV positions kept between requests (`maxCachedTokens`)


@dataclass
class Generation:
    token_ids: list[int]
    stop_reason: str  # "eos" | "rule" | "length" | "cancelled"
    prompt_tokens: int
    reused_tokens: int
    first_token_s: float
    total_s: float
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    log_probability: float = 0.0  # of `token_ids` (and of the stop token, when EOS ended it)
    scored_tokens: int = 0
    # The most likely first tokens after the prompt, with their log-probabilities, best first
    # (asked for with `first_choices`): where alternative completions branch off.
    first_choices: list[tuple[int, float]] = field(default_factory=list)

    @property
    def mean_log_probability(self) -> float:
        return self.log_probability / self.scored_tokens if self.scored_tokens else float("-inf")


@dataclass(frozen=True)
class Completion:
    text: str
    generation: Generation
    render_s: float = 0.0  # turning the prompt parts into token ids
    alternatives: tuple[Completion, ...] = ()  # other candidates from the same prefill, best first
    transport_s: float | None = None  # a daemon's answer: the time it took beyond the daemon's model time

    @property
    def model_s(self) -> float:
        return self.generation.total_s + sum(alternative.generation.total_s for alternative in self.alternatives)


@dataclass(frozen=True)
class ModelSpec:
    """What loading a model takes. Windows asking for equal specs share one loaded model."""

    model: str
    device: str = "auto"
    gptq_backend: str = "auto"
    dtype: str = "auto"
    offline: bool = False
    trust_remote_code: bool = False
    cuda_graphs: bool = True
    cpu_forward: str = "lean"

    @property
    def id(self) -> str:
        """The model's name, and the load options that differ from the defaults."""
        defaults = ModelSpec(self.model)
        differing = [f"{name}={getattr(self, name)}" for name in self.__dataclass_fields__ if getattr(self, name) != getattr(defaults, name)]
        return f"{self.model} ({', '.join(differing)})" if differing else self.model


# -- the interface ----------------------------------------------------------------------------


class ModelUnavailable(RuntimeError):
    """The model could not be had (missing, damaged, refused, or its home unreachable at load);
    the message is one sentence a user can act on."""


class BackendError(RuntimeError):
    """A backend failed a completion (a server or the daemon refused, broke off or went away); the
    message is one sentence for the user, and the next request tries again."""


StateListener = Callable[[str, str], None]  # (state: "ready" | "error", message)


@runtime_checkable
class Backend(Protocol):
    """Where completions are made. The request path holds one of these and never asks which.

    `problem` is None while the backend can serve, else one sentence saying why it cannot yet (a
    server that does not answer, a daemon being replaced); `watch` is told, from any thread, when
    that changes on the backend's own initiative."""

    problem: str | None

    @property
    def window(self) -> int:
        """Most positions one prompt plus its completion may take."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def complete(self, request: CompletionRequest) -> Completion: ...

    def tune(self, tuning: Tuning) -> None:
        """Apply `tuning` from the next request on."""
        ...

    def watch(self, on_state: StateListener) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...
