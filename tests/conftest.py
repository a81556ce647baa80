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


def stop_daemon(run_dir: Path = RUN_DIR, timeout: float = 10.0) -> None:
    """Stop the daemon of the runtime directory `run_dir` (if one runs) and wait until it is gone."""
    from fimls.engine.rundir import stop_daemon as stop

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
    from fimls.engine.engine import Engine
    from fimls.engine.loading import load_model

    return Engine(load_model(str(test_model_dir), device="cpu"))


def run_fimls(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
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
