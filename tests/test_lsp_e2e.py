"""The real server over stdio, driven by the tests' raw JSON-RPC client (tests/lsp_client.py)
with VS Code's recorded capabilities (pytest-lsp's)."""

import os
import time

import pytest
from lsprotocol import types
from lsprotocol.converters import get_converter
from pytest_lsp import client_capabilities

from conftest import run_fimls
from lsp_client import LspClient
from model_inputs import choose

pytestmark = pytest.mark.slow  # starts the server

# The cursor's line holds characters outside the BMP (2 UTF-16 units each) and accented letters
# (1 unit) before the cursor. Its shape is chosen at run time among these, as the first one the
# local test model completes (tests/model_inputs.py).
GREETING = '"héllo 😀 wörld 🎉 '
CURSOR_LINES = [
    f'    salutation = {GREETING}|"',
    f'    salutation = {GREETING}" + |',
    f'    print({GREETING}", |',
    f'    salutation = {GREETING}".|',
    f'    parts = [{GREETING}", |',
    f'    salutation = {GREETING}" if name else |',
]
TEMPLATE = (
    "import os\n"
    "\n"
    "\n"
    "def greet(name):\n"
    "{line}\n"
    "    for part in name.split():\n"
    "        \n"
    "    return salutation + name\n"
)
CURSOR_LINE = 4

# What VS Code declares in `initialize`, as JSON.
VSCODE_CAPABILITIES = get_converter().unstructure(client_capabilities("visual-studio-code"))
INVOKED = types.InlineCompletionTriggerKind.Invoked.value
AUTOMATIC = types.InlineCompletionTriggerKind.Automatic.value


def _start(model: str, workspace, options: dict | None = None) -> LspClient:
    """The server, initialized as VS Code initializes it. `client.configuration` holds what the
    client answers to `workspace/configuration` (by section; nothing at first)."""
    client = LspClient()
    client.configuration = {}

    def configured(item: dict):
        value = client.configuration
        for segment in filter(None, (item.get("section") or "").split(".")):
            value = value.get(segment) if isinstance(value, dict) else None
        return value

    client.answer_configuration = lambda params: [configured(item) for item in params.get("items", [])]
    try:
        answer = client.call("initialize", {
            "processId": os.getpid(),
            "rootUri": workspace.as_uri(),
            "capabilities": VSCODE_CAPABILITIES,
            "initializationOptions": {"model": model, "device": "cpu", "maxNewTokens": 12, **(options or {})},
        })
        assert "result" in answer, answer
        client.notify("initialized", {})
    except BaseException:
        client.close()
        raise
    return client


def _stop(client: LspClient) -> None:
    """`shutdown` answered, then `exit`, as an editor ends a session."""
    try:
        answer = client.call("shutdown", timeout=60)
        assert "result" in answer, answer
        client.notify("exit")
        client.process.wait(60)
    finally:
        client.close()


def _statuses(client: LspClient) -> list[dict]:
    """The `fimls/status` notifications so far: {"state", "message"}."""
    return [n["params"] for n in list(client.notifications) if n.get("method") == "fimls/status"]


def _messages(client: LspClient) -> list[dict]:
    """The `window/showMessage` notifications so far: {"type", "message"}."""
    return [n["params"] for n in list(client.notifications) if n.get("method") == "window/showMessage"]


def _wait_for_state(client: LspClient, *states, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = _statuses(client)
        if statuses and statuses[-1]["state"] in states:
            return statuses[-1]
        if client.process.poll() is not None:
            raise AssertionError(f"the server exited ({client.process.returncode}): {client.stderr()}")
        time.sleep(0.05)
    raise AssertionError(f"no status in {states} after {timeout}s: {_statuses(client)}")


def _open(client: LspClient, uri, text):
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})


def _inline_params(uri, line, character, trigger):
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": trigger}}


def _inline(client: LspClient, uri, line, character, trigger=INVOKED) -> list[dict]:
    """The items of an inline completion request, once answered (an error fails the test)."""
    answer = client.call("textDocument/inlineCompletion", _inline_params(uri, line, character, trigger), timeout=300)
    assert "result" in answer, answer
    return answer["result"]


def _position(line: int, character: int) -> dict:
    return {"line": line, "character": character}


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "app").mkdir()
    return tmp_path


@pytest.fixture
def greeting(workspace, engine):
    # Two characters at least: the cache test types the first of them.
    return choose(engine, workspace, "app/greet.py", [TEMPLATE.format(line=line) for line in CURSOR_LINES],
                  lambda shown, completion: len(shown.strip()) >= 2, maxNewTokens=12)


@pytest.fixture
def client(workspace, test_model_dir):
    client = _start(str(test_model_dir), workspace)
    yield client
    _stop(client)


@pytest.fixture
def broken_client(workspace):
    client = _start(str(workspace / "missing-model"), workspace)
    yield client
    _stop(client)


def test_inline_completion_matches_fimls_complete_with_utf16_range(client: LspClient, workspace, greeting):
    path = workspace / "app" / "greet.py"
    uri = path.as_uri()
    source = greeting.text
    line_text = greeting.line_text
    # Open an older version, then reach the source through incremental edits, so sync is exercised.
    before = source.replace("wörld 🎉 ", "", 1)
    _open(client, uri, before)
    early = _inline(client, uri, 0, 0)
    if not any(s["state"] == "ready" for s in _statuses(client)):
        assert early == []  # asked while the model loads: an empty answer, not an error
    insert_at = _position(CURSOR_LINE, len(line_text[: line_text.index("wörld")].encode("utf-16-le")) // 2)
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": 2},
        "contentChanges": [{"range": {"start": insert_at, "end": insert_at}, "text": "wörld 🎉 "}],
    })

    ready = _wait_for_state(client, "ready", "error")
    assert ready["state"] == "ready", ready
    (token, reports), = client.progress_reports().items()
    assert [r["kind"] for r in reports] == ["begin", "end"]
    assert "ready" in reports[-1]["message"]

    assert greeting.line == CURSOR_LINE
    cursor_chars = greeting.character  # code points
    cursor_utf16 = len(line_text[:cursor_chars].encode("utf-16-le")) // 2
    assert cursor_utf16 == cursor_chars + 2  # the two emoji: the units differ from code points
    result = _inline(client, uri, CURSOR_LINE, cursor_utf16)

    cli = run_fimls(
        "complete", f"app/greet.py:{CURSOR_LINE + 1}:{cursor_chars + 1}", "--model", ready["message"].split(" ready")[0],
        "--device", "cpu", "--max-new-tokens", "12", cwd=workspace,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    expected = cli.stdout.removesuffix("\n")
    assert expected, "the model returned an empty completion; the comparison would prove nothing"

    assert 1 <= len(result) <= 3  # invoked: the candidates, the greedy one first
    item = result[0]
    # No clientInfo: an insertion at the cursor, in UTF-16 units (docs/clients.md).
    assert item["insertText"] == expected
    assert item["range"] == {"start": _position(CURSOR_LINE, cursor_utf16), "end": _position(CURSOR_LINE, cursor_utf16)}


def test_a_model_that_cannot_load_reports_an_error_and_completions_stay_empty(broken_client: LspClient, workspace):
    status = _wait_for_state(broken_client, "ready", "error")
    assert status["state"] == "error"
    assert "No model directory at" in status["message"]
    uri = (workspace / "app" / "x.py").as_uri()
    _open(broken_client, uri, "def f():\n    return 1\n")
    assert _inline(broken_client, uri, 1, 4) == []
    assert any(m["type"] == types.MessageType.Error and "No model directory" in m["message"] for m in _messages(broken_client))
