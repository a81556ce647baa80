"""The real server over stdio, driven by pytest-lsp with VS Code's recorded capabilities."""

import asyncio
import sys
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from conftest import run_fimls

# Line 2 holds characters outside the BMP (2 UTF-16 units each) and accented letters (1 unit).
SOURCE = (
    "import os\n"
    "\n"
    "\n"
    "def greet(name):\n"
    '    salutation = "héllo 😀 wörld 🎉 "\n'
    "    for part in name.split():\n"
    "        \n"
    "    return salutation + name\n"
)


def _start(model: str, workspace, options: dict | None = None) -> callable:
    async def start(lsp_client: LanguageClient):
        statuses: list[dict] = []
        lsp_client.feature("fimls/status")(lambda params: statuses.append(dict(state=params.state, message=params.message)))
        lsp_client.statuses = statuses
        await lsp_client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=workspace.as_uri(),
                initialization_options={"model": model, "device": "cpu", "maxNewTokens": 12, **(options or {})},
            )
        )

    return start


async def _wait_for_state(client, *states, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.statuses and client.statuses[-1]["state"] in states:
            return client.statuses[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no status in {states} after {timeout}s: {client.statuses}")


def _open(client, uri, text):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    )


def _inline(client, uri, line, character, trigger=types.InlineCompletionTriggerKind.Invoked):
    return client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(trigger_kind=trigger),
        )
    )


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "app").mkdir()
    return tmp_path


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "fimls", "--stdio"]))
async def client(lsp_client: LanguageClient, request):
    model = str(request.getfixturevalue("test_model_dir"))
    await _start(model, request.getfixturevalue("workspace"))(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "fimls", "--stdio"]))
async def broken_client(lsp_client: LanguageClient, request):
    workspace = request.getfixturevalue("workspace")
    await _start(str(workspace / "missing-model"), workspace)(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def test_inline_completion_matches_fimls_complete_with_utf16_range(client: LanguageClient, workspace):
    path = workspace / "app" / "greet.py"
    uri = path.as_uri()
    # Open an older version, then reach SOURCE through incremental edits, so sync is exercised.
    before = SOURCE.replace("wörld 🎉 ", "")
    _open(client, uri, before)
    early = await _inline(client, uri, 0, 0)
    if not any(s["state"] == "ready" for s in client.statuses):
        assert early == []  # asked while the model loads: an empty answer, not an error
    insert_at = types.Position(line=4, character=len('    salutation = "héllo 😀 '.encode("utf-16-le")) // 2)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(insert_at, insert_at), text="wörld 🎉 ")
            ],
        )
    )
    path.write_text(SOURCE, encoding="utf-8")

    ready = await _wait_for_state(client, "ready", "error")
    assert ready["state"] == "ready", ready
    (token, reports), = client.progress_reports.items()
    assert [r.kind for r in reports] == ["begin", "end"]
    assert "ready" in reports[-1].message

    line_text = SOURCE.splitlines()[4]
    cursor_chars = line_text.index("wörld") + len("wörld 🎉 ")  # code points
    cursor_utf16 = len(line_text[:cursor_chars].encode("utf-16-le")) // 2
    assert cursor_utf16 == cursor_chars + 2  # the two emoji: the units differ from code points
    result = await _inline(client, uri, 4, cursor_utf16)

    cli = run_fimls(
        "complete", f"app/greet.py:5:{cursor_chars + 1}", "--model", ready["message"].split(" ready")[0],
        "--device", "cpu", "--max-new-tokens", "12", cwd=workspace,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    expected = cli.stdout.removesuffix("\n")
    assert expected, "the model returned an empty completion; the comparison would prove nothing"

    assert 1 <= len(result) <= 3  # invoked: the candidates, the greedy one first
    item = result[0]
    # The whole line: what is before the cursor, the completion, and the rest of the line.
    assert item.insert_text == line_text[:cursor_chars] + expected + line_text[cursor_chars:]
    line_utf16 = len(line_text.encode("utf-16-le")) // 2
    assert item.range == types.Range(types.Position(4, 0), types.Position(4, line_utf16))


async def test_a_model_that_cannot_load_reports_an_error_and_completions_stay_empty(broken_client: LanguageClient, workspace):
    status = await _wait_for_state(broken_client, "ready", "error")
    assert status["state"] == "error"
    assert "No model directory at" in status["message"]
    uri = (workspace / "app" / "x.py").as_uri()
    _open(broken_client, uri, "def f():\n    return 1\n")
    assert await _inline(broken_client, uri, 1, 4) == []
    assert any(m.type == types.MessageType.Error and "No model directory" in m.message for m in broken_client.messages)
