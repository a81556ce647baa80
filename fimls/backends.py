"""The one place that knows the three homes of generation: the settings pick one, and everything
after holds it as a `Backend` (`fimls.contract`) without asking which."""

from __future__ import annotations

from fimls.contract import Backend, ModelSpec, Tuning
from fimls.settings import Settings


def model_spec(settings: Settings) -> ModelSpec:
    return ModelSpec(
        settings.model, device=settings.device, gptq_backend=settings.gptq_backend, dtype=settings.dtype,
        offline=settings.offline, trust_remote_code=settings.trust_remote_code, cuda_graphs=settings.cuda_graphs,
        cpu_forward=settings.cpu_forward,
    )


def tuning(settings: Settings) -> Tuning:
    return Tuning(
        layout=settings.prompt_layout, speculative_tokens=settings.speculative_tokens,
        max_cached_tokens=settings.max_cached_tokens,
    )


def daemon_args(settings: Settings) -> list[str]:
    return ["--max-resident-models", str(settings.max_resident_models), "--idle-exit-s", f"{settings.daemon_idle_exit_s:g}"]


def open_backend(settings: Settings) -> Backend:
    """The backend the settings name: this machine's shared daemon (`local`), the model in this
    process (`inprocess`), warmed up, or a team's inference server (`server`). Each backend's
    modules are imported only when it is chosen."""
    if settings.backend == "server":
        # Each backend's modules only when it is chosen (see the docstring).
        from fimls.engine.backends.server import ServerOptions, open_server_backend

        options = ServerOptions(
            url=settings.server_url, model=settings.server_model, api_key_env=settings.server_api_key_env,
            timeout_s=settings.server_timeout_s, stall_s=settings.server_stall_s,
        )
        return open_server_backend(
            settings.model, options, tuning(settings), offline=settings.offline, trust_remote_code=settings.trust_remote_code,
        )
    if settings.backend == "local":
        # An editor's process that talks to the daemon never imports the model's loading code.
        from fimls.engine.backends.daemon import open_daemon_backend

        return open_daemon_backend(
            model_spec(settings), tuning(settings), daemon_args=daemon_args(settings),
            timeout_s=max(settings.server_timeout_s, 600.0), stall_s=max(settings.server_stall_s, 120.0),
        )
    from fimls.engine.backends.inprocess import open_inprocess  # torch and the model code, here only

    return open_inprocess(model_spec(settings), tuning(settings))
