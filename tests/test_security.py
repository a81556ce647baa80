"""Safe by default: no network without an explicit download (and none at all when offline), no
model code run unless trusted, no source code in the logs unless debug logging is on."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import stop_daemon, wait_for
from lsp_client import LspClient, start_session
from fimls.settings import Settings

pytestmark = pytest.mark.slow  # starts the server

HERE = Path(__file__).resolve().parent
MARKER = "SOURCE_MARKER_4711"
TEXT = f"def {MARKER}(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    "


def _env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "FIMLS_MODEL")}
    env["FIMLS_TEST_AUDIT"] = str(tmp_path / "audit.log")
    env["HF_HOME"] = str(tmp_path / "hf-home")  # an empty Hub cache: nothing can be found locally
    return env


def _audit_lines(tmp_path) -> list[str]:
    path = tmp_path / "audit.log"
    return path.read_text().splitlines() if path.exists() else []


def _server(tmp_path, options: dict, *args: str, env: dict | None = None) -> LspClient:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    client = start_session(workspace, {"device": "cpu", "maxNewTokens": 8, **options}, base=False, wait=False,
                           server_args=args, base_env=env or _env(tmp_path), command=[sys.executable, str(HERE / "audited_fimls.py")])
    client.uri = (workspace / "main.py").as_uri()
    return client


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["inprocess", "local"])
def test_a_session_on_a_local_model_makes_no_network_call_and_logs_no_source(tmp_path, test_model_dir, backend):
    """With `local`, the daemon that loads the model is audited too (started first, so the window
    finds it)."""
    log_file = tmp_path / "fimls.log"
    run_dir = Path(tempfile.mkdtemp(prefix="fimls-s-"))
    env = {**_env(tmp_path), "XDG_RUNTIME_DIR": str(run_dir)}
    if backend == "local":
        (run_dir / "fimls").mkdir(mode=0o700)
        socket = run_dir / "fimls" / "daemon.sock"
        with open(run_dir / "fimls" / "daemon.log", "ab") as daemon_log:
            subprocess.Popen([sys.executable, str(HERE / "audited_fimls.py"), "serve", "--socket", str(socket)], env=env,
                             stdout=daemon_log, stderr=daemon_log, start_new_session=True)
        assert wait_for(socket.exists, timeout=60)
    client = _server(tmp_path, {"model": str(test_model_dir), "backend": backend}, "--log-file", str(log_file), env=env)
    try:
        status = client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))
        assert status["state"] == "ready", status
        client.notify("textDocument/didOpen", {"textDocument": {"uri": client.uri, "languageId": "python", "version": 1, "text": TEXT}})
        lines = TEXT.split("\n")
        answer = client.call("textDocument/inlineCompletion", {"textDocument": {"uri": client.uri},
                             "position": {"line": len(lines) - 1, "character": 4}, "context": {"triggerKind": 1}}, timeout=120)
        assert "result" in answer
    finally:
        assert client.close() == 0
    stop_daemon(run_dir)
    assert _audit_lines(tmp_path) == []
    log = log_file.read_text()
    assert "ready" in log  # the log was written...
    assert MARKER not in log  # ...without the document's text
    if backend == "local":
        assert "fimls daemon" in log  # the model was the daemon's
        assert MARKER not in (run_dir / "fimls" / "daemon.log").read_text()


@pytest.mark.timeout(300)
def test_offline_forbids_even_a_model_download(tmp_path):
    client = _server(tmp_path, {"model": "TheBloke/deepseek-coder-1.3b-base-GPTQ", "offline": True})
    try:
        status = client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))
    finally:
        client.close()
    assert status["state"] == "error" and "offline" in status["message"], status
    assert _audit_lines(tmp_path) == []


@pytest.mark.timeout(300)
def test_a_model_folders_own_code_never_runs_unless_trusted(tmp_path):
    model = tmp_path / "remote-code-model"
    model.mkdir()
    ran = tmp_path / "code-ran"
    (model / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
    }))
    for name in ("configuration_evil.py", "modeling_evil.py"):
        (model / name).write_text(f"open({str(ran)!r}, 'w').write('ran')\n")
    assert Settings().trust_remote_code is False
    env = _env(tmp_path)
    done = subprocess.run([sys.executable, str(HERE / "audited_fimls.py"), "check", "--model", str(model), "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode != 0
    assert not ran.exists(), "the model folder's code was imported"
    assert _audit_lines(tmp_path) == []
