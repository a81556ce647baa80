import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import fimls  # noqa: F401  (sets GPTQMODEL_CPU_WORKERS before any model library is imported)

# Tests never touch the network: a hub lookup fails at once instead of downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Every `fimls --stdio` the tests start shares one daemon (the default backend), in a runtime
# directory of this run's own, never the user's; it is stopped when the run ends.
RUN_DIR = Path(tempfile.mkdtemp(prefix="fimls-test-run-"))
os.environ["XDG_RUNTIME_DIR"] = str(RUN_DIR)


# The fast part of the suite, `pytest -m "not slow"`, starts no server and builds or loads no
# model. A test that uses a model fixture is marked slow here; one that starts a server (the LSP
# client, `fimls` in a subprocess) without being marked slow fails and says so.
MODEL_FIXTURES = {"test_model_dir", "engine", "test_gguf", "llama", "llama_server_binary", "vscode_dependencies"}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_running_slow = True


def pytest_collection_modifyitems(items):
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fast_tests_start_no_server(request):
    global _running_slow
    _running_slow = request.node.get_closest_marker("slow") is not None
    yield
    _running_slow = True


def require_slow(what: str) -> None:
    """Called by everything that starts a server or a model: refused in a test not marked slow."""
    if not _running_slow:
        pytest.fail(f"this test {what}: mark it @pytest.mark.slow (the fast suite starts no server)")


def require_binary(path: Path | str | None, why: str) -> str:
    """An external program a test needs: a skip with the reason outside CI, a failure under CI=true
    (where the README's set-up command must have provided it)."""
    if path is not None and Path(path).is_file():
        return str(path)
    (pytest.fail if IN_CI else pytest.skip)(why)


def stop_daemon(run_dir: Path = RUN_DIR, timeout: float = 10.0) -> None:
    """Stop the daemon of the runtime directory `run_dir` (if one runs) and wait until it is gone."""
    from fimls.engine.daemon.rundir import stop_daemon as stop

    stop(run_dir / "fimls", timeout)


def pytest_sessionfinish(session, exitstatus):
    stop_daemon()


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    """The offline DeepSeek-Coder-shaped GPTQ model, built once and cached across runs."""
    from fimls.testmodel import ensure_test_model

    return ensure_test_model()


@pytest.fixture(scope="session")
def engine(test_model_dir):
    from fimls.engine.model.engine import Engine
    from fimls.engine.model.loading import load_model

    return Engine(load_model(str(test_model_dir), device="cpu"))


def run_fimls(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    require_slow("runs fimls")
    env = dict(os.environ)
    env.pop("FIMLS_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", "fimls", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


@pytest.fixture(scope="session")
def llama_server_binary() -> str:
    from fimls.bench.llama_server import default_llama_server

    return require_binary(default_llama_server(), f"{default_llama_server()} is missing: the README's test set-up "
                          "command unpacks Debian's llama.cpp there")


@pytest.fixture(scope="session")
def test_gguf(test_model_dir) -> Path:
    """The test model's dense weights as a GGUF for llama-server, written once next to it."""
    from fimls.bench.gguf_export import write_gguf

    target = test_model_dir.parent / f"{test_model_dir.name}.gguf"
    if not target.is_file():
        write_gguf(test_model_dir / "dense", target.with_suffix(".partial"))
        target.with_suffix(".partial").rename(target)
    return target


@pytest.fixture
def llama(llama_server_binary, test_gguf):
    """A real llama-server serving the test model, on a free loopback port, for one test."""
    from fimls.bench.llama_server import LlamaServer

    server = LlamaServer(Path(llama_server_binary), test_gguf, start=True)
    yield server
    server.stop()


@pytest.fixture
def free_port() -> int:
    from fimls.bench.llama_server import free_port as port

    return port()


@pytest.fixture
def fimls_session():
    """Starts `fimls --stdio` sessions (tests/lsp_client.py `start_session`); all are closed after the test."""
    from lsp_client import start_session

    started = []

    def start(workspace: Path, settings: dict | None = None, **options):
        client = start_session(workspace, settings, **options)
        started.append(client)
        return client

    yield start
    for client in started:
        client.close()
