"""Engine faults through the real stdio server: a missing, corrupt or unsupported model, a GPU out of
memory and a failing kernel. The server says what is wrong (status and message), answers
completions with nothing meanwhile, and recovers without a restart once the cause is gone. Each
with the model in the stdio process (`inprocess`) and in the shared daemon (`local`), the faulty
accelerator then under the daemon."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import stop_daemon, wait_for
from lsp_client import LspClient
from model_inputs import CODE, choose

pytestmark = pytest.mark.slow  # starts the server

HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["inprocess", "local"])
def server(tmp_path, test_model_dir, engine, request):
    backend = request.param
    workspace = tmp_path / "ws"
    workspace.mkdir()
    case = choose(engine, workspace, "main.py", CODE, maxNewTokens=8)  # an input the local model completes
    fault = tmp_path / "fault"
    run_dir = Path(tempfile.mkdtemp(prefix="fimls-faults-"))  # a daemon of its own, faulty
    env = {"FIMLS_TEST_FAULT": str(fault), "XDG_RUNTIME_DIR": str(run_dir)}
    faulty = [sys.executable, str(HERE / "faulty_gpu_server.py")]
    if backend == "local":
        (run_dir / "fimls").mkdir(mode=0o700)
        socket = run_dir / "fimls" / "daemon.sock"
        subprocess.Popen([*faulty, "serve", "--socket", str(socket)], env={**os.environ, **env}, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(socket.exists, timeout=60)
    client = LspClient(env=env, cwd=str(workspace), command=faulty)
    client.fault = fault
    client.uri, client.case = (workspace / "main.py").as_uri(), case
    client.call("initialize", {
        "processId": None, "rootUri": workspace.as_uri(), "capabilities": {"window": {"showMessage": {}}},
        "initializationOptions": {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 8,
                                  "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0, "backend": backend},
    })
    client.notify("initialized", {})
    assert _next_status(client, 0)["state"] == "ready"
    client.notify("textDocument/didOpen", {"textDocument": {"uri": client.uri, "languageId": "python", "version": 1, "text": case.text}})
    yield client
    client.process.kill()
    client.process.wait()
    stop_daemon(run_dir)


def _statuses(client, after: int = 0):
    return [n["params"] for n in client.notifications[after:] if n["method"] == "fimls/status"]


def _next_status(client, after: int, states=("ready", "error")):
    """The first status in `states` among the notifications from index `after` on."""
    return client.wait_for_notification("fimls/status", lambda p: p["state"] in states, timeout=300, after=after)


def _complete(client) -> list:
    answer = client.call("textDocument/inlineCompletion", {
        "textDocument": {"uri": client.uri}, "position": {"line": client.case.line, "character": client.case.character},
        "context": {"triggerKind": 1},
    }, timeout=120)
    assert "result" in answer, answer
    return [item["insertText"] for item in answer["result"]]


def _messages(client):
    return [n["params"]["message"] for n in client.notifications if n["method"] == "window/showMessage"]


def _configure(client, **settings):
    client.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {"device": "cpu", "maxNewTokens": 8,
                  "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0, **settings}}})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault, reported", [("oom", "out of GPU memory"), ("kernel", "simulated kernel failure")])
def test_a_failing_generation_is_reported_answered_empty_and_recovered_from(server, fault, reported):
    good = _complete(server)
    assert good, "the test model completes this prompt"
    seen = len(server.notifications)
    server.fault.write_text(fault)
    assert _complete(server) == []
    status = _next_status(server, seen)
    assert status["state"] == "error" and reported in status["message"], status
    assert any(reported in message for message in _messages(server))
    assert _complete(server) == []  # still failing: still an answer, no second alarm
    assert sum(1 for s in _statuses(server, seen) if s["state"] == "error") == 1
    stats = server.call("fimls/stats")["result"]
    assert stats["errors"] == 2 and stats["state"] == "error"

    server.fault.unlink()  # the cause is gone
    seen = len(server.notifications)
    assert _complete(server) == good
    assert _next_status(server, seen)["state"] == "ready"
    assert server.process.poll() is None


@pytest.mark.timeout(600)
def test_missing_corrupt_and_unsupported_models_are_reported_and_a_good_model_recovers(server, tmp_path, test_model_dir):
    good = _complete(server)
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(test_model_dir, corrupt)
    weights = next(corrupt.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    unsupported = tmp_path / "unsupported-model"
    unsupported.mkdir()
    (unsupported / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    for model, reported in [
        (str(tmp_path / "nowhere"), "nowhere"),
        (str(corrupt), "could not load"),
        (str(unsupported), ""),
    ]:
        seen = len(server.notifications)
        _configure(server, model=model)
        status = _next_status(server, seen)
        assert status["state"] == "error" and reported in status["message"], (model, status)
        assert status["message"], status
        assert _complete(server) == []
        assert server.process.poll() is None

    seen = len(server.notifications)
    _configure(server, model=str(test_model_dir))
    assert _next_status(server, seen)["state"] == "ready"
    assert _complete(server) == good
