"""Serving behaviour over stdio with the tests' raw JSON-RPC client (tests/lsp_client.py) and VS
Code's capabilities: debounce and supersession, cancellation, the typing-as-suggested cache,
settings, status, telemetry."""

import time

import pytest
from lsprotocol import types

from conftest import wait_for
from test_lsp_e2e import (  # noqa: F401 (greeting: a fixture)
    AUTOMATIC, CURSOR_LINE, _inline, _inline_params, _messages, _open, _start, _statuses, _stop, _wait_for_state, greeting,
)

pytestmark = pytest.mark.slow  # starts the server


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "app").mkdir()
    return tmp_path


@pytest.fixture
def client(workspace, test_model_dir):
    # A debounce far longer than the bursts below, so a loaded CI machine cannot stretch them past it.
    options = {"debounceMinMs": 500, "debounceMaxMs": 1000}
    client = _start(str(test_model_dir), workspace, options)
    try:
        assert _wait_for_state(client, "ready", "error")["state"] == "ready"
        yield client
    finally:
        _stop(client)


def _stats(client):
    answer = client.call("fimls/stats", {})
    assert "result" in answer, answer
    return answer["result"]


def _automatic(client, uri, line, character, request_id=None):
    """An automatic request (typing), sent now; its id, to wait for."""
    return client.request("textDocument/inlineCompletion", _inline_params(uri, line, character, AUTOMATIC), request_id)


def _open_greeting(client, workspace, greeting):
    """Open the greeting (an input the local model completes); the cursor after the emoji on its
    line, in code points and UTF-16 units."""
    uri = (workspace / "app" / "greet.py").as_uri()
    _open(client, uri, greeting.text)
    line_text, cursor_chars = greeting.line_text, greeting.character
    return uri, line_text, cursor_chars, len(line_text[:cursor_chars].encode("utf-16-le")) // 2


def _type(client, uri, version, line, character, text):
    at = {"line": line, "character": character}
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": at, "end": at}, "text": text}],
    })


def test_only_the_last_request_of_a_typing_burst_runs_the_model(client, workspace):
    uri = (workspace / "app" / "burst.py").as_uri()
    _open(client, uri, "def total(xs):\n    return \n")
    pending = []
    for i, char in enumerate("sum(x"):
        _type(client, uri, i + 2, 1, 11 + i, char)
        pending.append(_automatic(client, uri, 1, 12 + i))
        time.sleep(0.01)  # 100 keystrokes a second: faster than the debounce
    answers = client.wait_for(pending, timeout=300)
    assert all("result" in answers[request] for request in pending), answers
    results = [answers[request]["result"] for request in pending]
    assert all(r == [] for r in results[:-1])  # superseded while debouncing: answered, empty
    stats = _stats(client)
    assert stats["requests"] == 5
    assert stats["model_calls"] == 1
    assert stats["superseded"] == 4


def test_cancel_request_costs_no_model_time(client, workspace):
    uri = (workspace / "app" / "cancel.py").as_uri()
    _open(client, uri, "import os\n\nprint(os.)\n")
    response = _automatic(client, uri, 2, 9, request_id="cancel-me")
    time.sleep(0.05)  # inside the 500 ms debounce wait
    client.notify("$/cancelRequest", {"id": "cancel-me"})
    answer = client.wait_for([response], timeout=60)[response]
    assert "error" in answer, answer  # answered with an error, not a result
    assert "cancel" in answer["error"]["message"].lower()
    stats = _stats(client)
    assert stats["cancelled"] == 1 and stats["model_calls"] == 0
    # The server keeps serving.
    assert isinstance(_inline(client, uri, 2, 9), list)


def test_typing_the_suggestion_is_answered_from_cache(client, workspace, greeting):
    uri, line_text, cursor_chars, cursor_utf16 = _open_greeting(client, workspace, greeting)
    first = _inline(client, uri, CURSOR_LINE, cursor_utf16)
    assert first, "the test model gave no completion here; the cache cannot be exercised"
    suggestion = first[0]["insertText"]  # an insertion at the cursor: the completion alone
    assert len(suggestion) >= 2
    calls_before = _stats(client)["model_calls"]
    _type(client, uri, 2, CURSOR_LINE, cursor_utf16, suggestion[0])
    # Typing sends automatic requests: the cache answers before any debounce.
    second = _inline(client, uri, CURSOR_LINE, cursor_utf16 + len(suggestion[0].encode("utf-16-le")) // 2, AUTOMATIC)
    assert second[0]["insertText"] == suggestion[1:]
    stats = _stats(client)
    assert stats["cache_hits"] == 1
    assert stats["model_calls"] == calls_before


def _configure(client, **settings):
    """What a client holding these settings answers to `workspace/configuration`, and its signal
    that they changed (VS Code sends no settings with it; the server asks)."""
    client.configuration["fimls"] = settings
    client.notify("workspace/didChangeConfiguration", {"settings": None})


def test_settings_changes_apply_invalid_ones_are_refused_and_a_model_change_reloads(client, workspace, test_model_dir):
    model = str(test_model_dir)
    _configure(client, model=model, device="cpu", maxNewTokens=-5)
    wait_for(lambda: _messages(client), timeout=5)
    message = _messages(client)[-1]
    assert message["type"] == types.MessageType.Error and "maxNewTokens" in message["message"]
    assert _stats(client)["settings"]["maxNewTokens"] == 12  # the previous value stays

    _configure(client, model=model, device="cpu", maxNewTokens=5)
    wait_for(lambda: _stats(client)["settings"]["maxNewTokens"] == 5, timeout=10)
    assert _stats(client)["settings"]["maxNewTokens"] == 5

    missing = str(workspace / "no-model")
    _configure(client, model=missing, device="cpu", maxNewTokens=5)
    status = _wait_for_state(client, "error")
    assert "No model directory" in status["message"]
    uri = (workspace / "app" / "x.py").as_uri()
    _open(client, uri, "x = 1\n")
    assert _inline(client, uri, 0, 5) == []  # the server answers while it has no model

    seen = len(_statuses(client))
    _configure(client, model=model, device="cpu", maxNewTokens=5)

    def reloaded():  # a new load: "loading", then its outcome
        states = [s["state"] for s in _statuses(client)[seen:]]
        return "loading" in states and states[-1] in ("ready", "error")

    wait_for(reloaded, timeout=300)
    assert _statuses(client)[-1]["state"] == "ready", _statuses(client)  # recovered without a restart
    ends = [r for reports in client.progress_reports().values() for r in reports if r["kind"] == "end"]
    assert len(ends) == 3  # initial load, failed reload, reload: each reported as progress


def test_acceptance_telemetry_is_counted_locally(client, workspace, greeting):
    uri, line_text, cursor_chars, cursor_utf16 = _open_greeting(client, workspace, greeting)
    items = _inline(client, uri, CURSOR_LINE, cursor_utf16)
    assert items and items[0]["command"]["command"] == "fimls.accepted"
    item = items[0]  # the item as the server sent it
    client.notify("textDocument/didShowCompletion", {"item": item})
    client.notify("textDocument/didPartiallyAcceptCompletion", {"item": item, "acceptedLength": 3})
    executed = client.call(
        "workspace/executeCommand", {"command": item["command"]["command"], "arguments": item["command"]["arguments"]}
    )
    assert "result" in executed, executed
    stats = _stats(client)
    assert (stats["shown"], stats["partially_accepted"], stats["accepted"]) == (1, 1, 1)
    assert stats["latency_p50_ms"] is not None and stats["server_overhead_p95_ms"] is not None
