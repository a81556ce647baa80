"""What every backend answers (the in-process engine, the shared daemon's client, a team's
server's client): the completion's text, its token ids and its timings. No torch here: an editor's
process that sends its prompts to the daemon never imports it."""

from __future__ import annotations

from dataclasses import dataclass, field


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
