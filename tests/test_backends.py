"""The three homes of generation behind one interface: each is a `Backend`, and every setting that
applies "from the next request" (no reload) takes effect on each, changed at run time the way the
language server changes it (`CompletionService.apply`, as on didChangeConfiguration).

What each setting does is observed on the backend's own answers, never on the code that applies it:
- promptLayout: the rendered prompt. The in-process engine and the daemon keep a document's KV
  cache of its last prompt: the same request again reuses all of it but the last position, and
  after a layout change less (the two layouts part where the cursor's line starts). A team's
  server is sent the prompt itself (a recording server shows it).
- speculativeTokens: prompt-lookup drafts are made (and verified) only when it is above 0.
- maxCachedTokens: a budget smaller than the prompt keeps nothing for the next request.
A team's server is told neither of the last two: its draft length and cache are its own settings
(docs/backends.md), so for it only the layout is a run-time setting.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from conftest import stop_daemon
from misbehaving_server import MisbehavingServer

from fimls.backends import open_backend
from fimls.contract import Backend, CompletionRequest, PromptParts
from fimls.engine.backends.inprocess import InProcessBackend
from fimls.lsp.serving import CompletionService
from fimls.settings import RELOAD_FIELDS, Settings

pytestmark = pytest.mark.slow  # loads the test model, starts a daemon

RUN_TIME_FIELDS = ("prompt_layout", "speculative_tokens", "max_cached_tokens")
# The cursor's line has text before the cursor, so the two layouts render it in different places.
LAYOUT_PARTS = PromptParts(header="#calc.py\n", prefix="def add(a, b):\n    return a + b\n\n\nvalue = add(1, ", suffix=")\n")
# Text that repeats: whatever the model writes next, its recent tokens are likely found earlier
# in the prompt, which is where prompt-lookup drafts come from. Several, since which one drafts
# depends on what the local test model writes.
REPEATING = [
    "".join(f"    total += values[{i}] * weights[{i}]\n" for i in range(12)) + "    total += values[",
    "".join(f"print('row', {i}, rows[{i}])\n" for i in range(12)) + "print('row', ",
    "".join(f"self.{name} = {name}\n        " for name in ("alpha", "beta", "gamma", "delta", "epsilon") * 3) + "self.",
    "x = 1\ny = 2\nz = 3\n" * 10 + "x = ",
]


def test_run_time_settings_do_not_reload_the_model():
    assert not set(RUN_TIME_FIELDS) & set(RELOAD_FIELDS)


def test_every_backend_is_a_backend(test_model_dir, fake):
    backends = [_inprocess(test_model_dir), _server(test_model_dir, fake)]
    try:
        assert all(isinstance(backend, Backend) for backend in backends)
    finally:
        for backend in backends:
            backend.close()


@pytest.fixture(scope="module")
def settings(test_model_dir) -> Settings:
    return Settings(model=str(test_model_dir), device="cpu", speculative_tokens=0, max_cached_tokens=8192)


@pytest.fixture(scope="module")
def drafting_parts(test_model_dir) -> PromptParts:
    """A prompt at which the local test model, with drafts on, makes prompt-lookup drafts."""
    probe = _inprocess(test_model_dir)
    probe.engine.speculative_tokens = 8
    try:
        for text in REPEATING:
            parts = PromptParts(header="#repeat.py\n", prefix=text, suffix="\n")
            if probe.complete(CompletionRequest(parts, 24)).generation.drafted_tokens > 0:
                return parts
    finally:
        probe.close()
    pytest.fail("the test model made no prompt-lookup draft on any repeating prompt: it is not reasonably trained")


@pytest.fixture
def fake():
    server = MisbehavingServer()
    yield server
    server.close()


@pytest.fixture
def daemon_env(monkeypatch):
    """A runtime directory of the test's own (short: a socket path has at most 108 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="fimls-b-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    yield directory
    stop_daemon(directory, timeout=1.0)


def _inprocess(model_dir: Path) -> InProcessBackend:
    backend = open_backend(Settings(model=str(model_dir), device="cpu", backend="inprocess", speculative_tokens=0))
    assert isinstance(backend, InProcessBackend)
    return backend


def _server(model_dir: Path, fake: MisbehavingServer) -> Backend:
    return open_backend(Settings(model=str(model_dir), device="cpu", backend="server", server_url=fake.url))


def _service(settings: Settings, backend: Backend) -> CompletionService:
    service = CompletionService(settings)
    service.use(backend)
    return service


def _twice(backend: Backend, parts: PromptParts, session: str, **asked) -> tuple:
    """The same request twice in a row: the second one's generation (what it reused)."""
    request = CompletionRequest(parts, asked.pop("max_new_tokens", 4), session=session, **asked)
    backend.complete(request)
    return backend.complete(request).generation


def _cached_backend_follows_run_time_settings(service: CompletionService, settings: Settings, drafting: PromptParts) -> None:
    backend = service.backend
    # promptLayout
    warm = _twice(backend, LAYOUT_PARTS, "layout")
    assert warm.reused_tokens == warm.prompt_tokens - 1, warm  # all but the last position
    service.apply(settings.model_copy(update={"prompt_layout": "psm"}))
    switched = backend.complete(CompletionRequest(LAYOUT_PARTS, 4, session="layout")).generation
    assert switched.reused_tokens < warm.reused_tokens - 3, (switched, warm)
    # speculativeTokens
    service.apply(settings.model_copy(update={"speculative_tokens": 8}))
    assert backend.complete(CompletionRequest(drafting, 24, session="drafts")).generation.drafted_tokens > 0
    service.apply(settings.model_copy(update={"speculative_tokens": 0}))
    assert backend.complete(CompletionRequest(drafting, 24, session="drafts")).generation.drafted_tokens == 0
    # maxCachedTokens
    kept = _twice(backend, LAYOUT_PARTS, "budget")
    assert kept.reused_tokens > 0
    service.apply(settings.model_copy(update={"max_cached_tokens": 16}))  # smaller than the prompt
    backend.complete(CompletionRequest(LAYOUT_PARTS, 4, session="budget"))  # settles within the new budget
    dropped = backend.complete(CompletionRequest(LAYOUT_PARTS, 4, session="budget")).generation
    assert dropped.reused_tokens == 0, dropped
    service.apply(settings)
    assert _twice(backend, LAYOUT_PARTS, "budget").reused_tokens > 0


def test_run_time_settings_take_effect_in_process(settings, drafting_parts, test_model_dir):
    backend = _inprocess(test_model_dir)
    try:
        _cached_backend_follows_run_time_settings(_service(settings, backend), settings, drafting_parts)
    finally:
        backend.close()


@pytest.mark.timeout(600)
def test_run_time_settings_take_effect_through_the_daemon(settings, drafting_parts, daemon_env):
    local = settings.model_copy(update={"backend": "local"})
    backend = open_backend(local)
    try:
        _cached_backend_follows_run_time_settings(_service(local, backend), local, drafting_parts)
    finally:
        backend.close()


def test_run_time_settings_take_effect_on_a_team_server(settings, test_model_dir, fake):
    remote = settings.model_copy(update={"backend": "server", "server_url": fake.url})
    backend = open_backend(remote)
    try:
        service = _service(remote, backend)
        backend.complete(CompletionRequest(LAYOUT_PARTS, 8))
        line_in_middle = fake.requests[-1]["payload"]["prompt"]
        service.apply(remote.model_copy(update={"prompt_layout": "psm", "speculative_tokens": 8, "max_cached_tokens": 16}))
        backend.complete(CompletionRequest(LAYOUT_PARTS, 8))
        sent = fake.requests[-1]["payload"]
        psm = _inprocess(test_model_dir)
        try:
            psm.engine.layout = "psm"
            assert sent["prompt"] == psm.engine.render(LAYOUT_PARTS) != line_in_middle
        finally:
            psm.close()
        assert not {key for key in sent if "specul" in key or "cache" in key}  # the server's own business
    finally:
        backend.close()
