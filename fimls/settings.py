"""The one typed settings model. Every other module reads its configuration from here.

Editors send camelCase keys (`maxNewTokens`); Python code uses snake_case. Every field has a
default, so an empty `initializationOptions` is a valid configuration.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

DEFAULT_MODEL = "TheBloke/deepseek-coder-1.3b-base-GPTQ"
from fimls.testmodel import TEST_MODEL_ALIAS


# Files that look like secrets: never completed in, never read into a prompt.
SECRET_GLOBS = (
    "**/.env", "**/.env.*", "**/*.pem", "**/*.key", "**/id_rsa*", "**/id_ed25519*", "**/id_ecdsa*",
    "**/.netrc", "**/.npmrc", "**/.pypirc", "**/credentials", "**/credentials.*", "**/*.p12", "**/*.pfx",
)


def default_model() -> str:
    """The model used when none is configured: `FIMLS_MODEL` if set, else the user default."""
    return os.environ.get("FIMLS_MODEL") or DEFAULT_MODEL


class Settings(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    model: str = Field(
        default_factory=default_model,
        min_length=1,
        description="Hugging Face model id or local directory of a DeepSeek-Coder checkpoint "
        f"(GPTQ or fp16/bf16). `{TEST_MODEL_ALIAS}` builds and uses the small offline test model.",
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="Where the model runs: `auto` picks CUDA when available."
    )
    gptq_backend: str = Field(
        "auto",
        min_length=1,
        description="gptqmodel kernel for GPTQ checkpoints (`auto`, `gptq_marlin`, `gptq_torch_aten`, "
        "...). `auto` takes the fastest kernel that loads on the device.",
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto", description="Activation dtype: `auto` is float16 on CUDA, bfloat16 on CPU."
    )
    max_new_tokens: int = Field(64, ge=1, le=2048, description="Most tokens one completion may have.")
    candidates: int = Field(
        3, ge=1, le=8,
        description="Most completions an invoked request (`triggerKind` Invoked: the editor's 'show "
        "suggestions' command) returns, from one prefill: the greedy one first, then alternatives "
        "that start with the next most likely tokens, by mean log-probability. Automatic requests "
        "return one.",
    )
    context_tokens: int = Field(
        1024, ge=0, le=16000,
        description="Token budget for snippets of other files (0 turns cross-file context off).",
    )
    ranker: Literal["fused", "symbols", "imports", "recent", "jaccard", "bm25", "none"] = Field(
        "fused", description="How snippets of other files are chosen; `fused` combines the others. `recent` "
        "shows what was just edited in other files (unsaved changes included) that matters at the cursor.",
    )
    max_file_bytes: int = Field(
        1_000_000, ge=1000, le=100_000_000, description="Larger files are not indexed."
    )
    prefix_tokens: int = Field(
        1536, ge=16, le=16000, description="Token budget for the text before the cursor."
    )
    suffix_tokens: int = Field(
        512, ge=0, le=16000, description="Token budget for the text after the cursor."
    )
    prompt_layout: Literal["line-in-middle", "psm"] = Field(
        "line-in-middle",
        description="`line-in-middle` puts the cursor line's typed text after the FIM end token, so a "
        "keystroke only changes the prompt's tail and the KV cache survives; `psm` is plain "
        "prefix-suffix-middle.",
    )
    speculative_tokens: int = Field(
        8, ge=0, le=32,
        description="Most draft tokens per step of prompt-lookup speculative decoding (lossless: the "
        "output is plain greedy's); 0 turns it off. Used only when temperature is 0.",
    )
    temperature: float = Field(
        0.0, ge=0.0, le=2.0, description="0 is greedy (deterministic); above 0 samples."
    )
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass when temperature > 0.")
    max_cached_tokens: int = Field(
        8192, ge=256, le=131072, description="Most tokens kept in the KV cache between requests."
    )
    cuda_graphs: bool = Field(
        True,
        description="On CUDA: a static KV cache and a decode step compiled with CUDA graphs "
        "(torch.compile reduce-overhead); falls back to eager decoding with a log line if it fails.",
    )
    cpu_forward: Literal["lean", "transformers"] = Field(
        "lean",
        description="On CPU: `lean` runs Llama models through fimls' own forward pass (the model's "
        "weights, its int4 kernel called directly, a KV cache that grows without copying per token; "
        "logits bit-identical to transformers', decoding faster); `transformers` through "
        "transformers' forward.",
    )
    debounce_min_ms: int = Field(
        20, ge=0, le=2000, description="Shortest wait before an automatic request runs the model."
    )
    debounce_max_ms: int = Field(
        300, ge=0, le=5000,
        description="Longest wait; in between, the delay follows the user's typing rhythm.",
    )
    cache_size: int = Field(
        100, ge=0, le=10000, description="Completions kept for typing-as-suggested answers (LRU)."
    )
    enabled_languages: list[str] = Field(
        default_factory=lambda: ["*"], description="LSP language ids to complete in; `*` is all."
    )
    disabled_in: list[Literal["comment", "string"]] = Field(
        default_factory=list,
        description="No completions while the cursor is inside these: `comment`, `string` (decided "
        "by tree-sitter for Python, JavaScript/TypeScript, Go, Rust, Java, C and C++).",
    )
    exclude_globs: list[str] = Field(
        default_factory=lambda: list(SECRET_GLOBS),
        description="Files (globs on the path) that never get completions or enter a prompt.",
    )
    offline: bool = Field(
        False, description="Never contact the model hub; load only models already on disk."
    )
    backend: Literal["local", "inprocess", "server"] = Field(
        "local",
        description="Where completions are made: `local` (this machine's shared fimls daemon, started on "
        "first use: one model on the GPU however many editor windows are open), `inprocess` (the model "
        "inside this editor window's own process) or `server` (a team's inference server at `serverUrl`: "
        "vLLM, SGLang, llama-server, TGI, Ollama). With `local` and `server`, `model` also names the "
        "tokenizer, which this process loads without the weights.",
    )
    max_resident_models: int = Field(
        1, ge=1, le=8,
        description="Most models the shared daemon holds at once (read when this window starts the daemon); "
        "a window asking for another model gets a status message instead of the GPU running out.",
    )
    daemon_idle_exit_s: float = Field(
        600.0, ge=0, le=86400,
        description="Seconds the shared daemon stays up with no editor window attached (0: until stopped); "
        "read when this window starts the daemon.",
    )
    server_url: str = Field(
        "", description="The inference server's OpenAI-compatible base URL, e.g. `http://gpu-box:8000` "
        "(with or without `/v1`).",
    )
    server_model: str = Field("", description="The model the server serves (empty: the first of `GET /v1/models`).")
    server_api_key_env: str = Field(
        "", description="Name of the environment variable holding the server's API key (the key itself "
        "never goes in settings, logs or errors).",
    )
    server_timeout_s: float = Field(20.0, gt=0, le=600, description="Most seconds one server completion may take.")
    server_stall_s: float = Field(5.0, gt=0, le=600, description="Most seconds the server's stream may stay silent.")
    trust_remote_code: bool = Field(
        False, description="Allow model repositories to run their own Python code (off by default)."
    )


def parse_settings(options: object) -> Settings:
    """Build Settings from an editor's options object; `None` means all defaults.

    Raises `SettingsError` with one readable line per problem.
    """
    if options is None:
        return Settings()
    if not isinstance(options, dict):
        raise SettingsError([f"settings must be an object, got {type(options).__name__}"])
    try:
        settings = Settings.model_validate(options)
    except ValidationError as exc:
        raise SettingsError(
            [
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
                for err in exc.errors()
            ]
        ) from None
    if settings.debounce_min_ms > settings.debounce_max_ms:
        raise SettingsError(["debounceMinMs: must not exceed debounceMaxMs"])
    return settings


# Fields whose change needs the model loaded again; the others apply to the next request.
RELOAD_FIELDS = frozenset({
    "model", "device", "gptq_backend", "dtype", "offline", "trust_remote_code", "cuda_graphs", "cpu_forward",
    "backend", "server_url", "server_model", "server_api_key_env", "server_timeout_s", "server_stall_s",
})


class SettingsError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid fimls settings: " + "; ".join(problems))
