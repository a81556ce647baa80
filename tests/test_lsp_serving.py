"""Serving behaviour over stdio with a real client (pytest-lsp, VS Code's capabilities): debounce
and supersession, cancellation, the typing-as-suggested cache, settings, status, telemetry."""

import asyncio
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from test_lsp_e2e import SOURCE, _inline, _open, _start, _wait_for_state

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "fimls", "--stdio"])


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "app").mkdir()
    return tmp_path


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request):
    # A debounce far longer than the bursts below, so a loaded CI machine cannot stretch them past it.
    options = {"debounceMinMs": 500, "debounceMaxMs": 1000}
    await _start(str(request.getfixturevalue("test_model_dir")), request.getfixturevalue("workspace"), options)(lsp_client)
    assert (await _wait_for_state(lsp_client, "ready", "error"))["state"] == "ready"
    yield
    await lsp_client.shutdown_session()


def _plain(value):
    """pygls hands custom results back as namedtuples; tests read them as dicts."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    return value


async def _stats(client):
    return _plain(await client.protocol.send_request_async("fimls/stats", {}))


def _automatic(client, uri, line, character, msg_id=None):
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    # pytest-lsp sends a request only once its coroutine runs: start it now, in order.
    return asyncio.ensure_future(
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
    )


def _open_greeting(client, workspace):
    """Open SOURCE; the cursor after the emoji on its line 4, in code points and UTF-16 units."""
    uri = (workspace / "app" / "greet.py").as_uri()
    _open(client, uri, SOURCE)
    line_text = SOURCE.splitlines()[4]
    cursor_chars = line_text.index("wörld") + len("wörld 🎉 ")
    return uri, line_text, cursor_chars, len(line_text[:cursor_chars].encode("utf-16-le")) // 2


def _type(client, uri, version, line, character, text):
    at = types.Position(line=line, character=character)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)],
        )
    )


async def test_only_the_last_request_of_a_typing_burst_runs_the_model(client, workspace):
    uri = (workspace / "app" / "burst.py").as_uri()
    _open(client, uri, "def total(xs):\n    return \n")
    pending = []
    for i, char in enumerate("sum(x"):
        _type(client, uri, i + 2, 1, 11 + i, char)
        pending.append(_automatic(client, uri, 1, 12 + i))
        await asyncio.sleep(0.01)  # 100 keystrokes a second: faster than the debounce
    results = await asyncio.gather(*pending)
    assert all(r == [] for r in results[:-1])  # superseded while debouncing: answered, empty
    stats = await _stats(client)
    assert stats["requests"] == 5
    assert stats["model_calls"] == 1
    assert stats["superseded"] == 4


async def test_cancel_request_costs_no_model_time(client, workspace):
    uri = (workspace / "app" / "cancel.py").as_uri()
    _open(client, uri, "import os\n\nprint(os.)\n")
    response = _automatic(client, uri, 2, 9, msg_id="cancel-me")
    await asyncio.sleep(0.05)  # inside the 500 ms debounce wait
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(Exception) as error:
        await response
    assert "cancel" in str(error.value).lower()
    stats = await _stats(client)
    assert stats["cancelled"] == 1 and stats["model_calls"] == 0
    # The server keeps serving.
    assert isinstance(await _inline(client, uri, 2, 9), list)


async def test_typing_the_suggestion_is_answered_from_cache(client, workspace):
    uri, line_text, cursor_chars, cursor_utf16 = _open_greeting(client, workspace)
    first = await _inline(client, uri, 4, cursor_utf16)
    assert first, "the test model gave no completion here; the cache cannot be exercised"
    rest = line_text[cursor_chars:]  # the item keeps the rest of the line after the completion
    assert first[0].insert_text.endswith(rest)
    suggestion = first[0].insert_text[cursor_chars : len(first[0].insert_text) - len(rest)]
    assert len(suggestion) >= 2
    calls_before = (await _stats(client))["model_calls"]
    _type(client, uri, 2, 4, cursor_utf16, suggestion[0])
    # Typing sends automatic requests: the cache answers before any debounce.
    second = await _inline(
        client, uri, 4, cursor_utf16 + len(suggestion[0].encode("utf-16-le")) // 2, types.InlineCompletionTriggerKind.Automatic
    )
    assert second[0].insert_text == line_text[:cursor_chars] + suggestion + rest
    stats = await _stats(client)
    assert stats["cache_hits"] == 1
    assert stats["model_calls"] == calls_before


def _configure(client, **settings):
    """What a client holding these settings answers to `workspace/configuration`, and its signal
    that they changed (VS Code sends no settings with it; the server asks)."""
    client.set_configuration(settings, section="fimls")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))


async def test_settings_changes_apply_invalid_ones_are_refused_and_a_model_change_reloads(client, workspace, test_model_dir):
    model = str(test_model_dir)
    _configure(client, model=model, device="cpu", maxNewTokens=-5)
    for _ in range(100):
        if client.messages:
            break
        await asyncio.sleep(0.05)
    message = client.messages[-1]
    assert message.type == types.MessageType.Error and "maxNewTokens" in message.message
    assert (await _stats(client))["settings"]["maxNewTokens"] == 12  # the previous value stays

    _configure(client, model=model, device="cpu", maxNewTokens=5)
    for _ in range(100):
        if (await _stats(client))["settings"]["maxNewTokens"] == 5:
            break
        await asyncio.sleep(0.05)
    assert (await _stats(client))["settings"]["maxNewTokens"] == 5

    missing = str(workspace / "no-model")
    _configure(client, model=missing, device="cpu", maxNewTokens=5)
    status = await _wait_for_state(client, "error")
    assert "No model directory" in status["message"]
    uri = (workspace / "app" / "x.py").as_uri()
    _open(client, uri, "x = 1\n")
    assert await _inline(client, uri, 0, 5) == []  # the server answers while it has no model

    seen = len(client.statuses)
    _configure(client, model=model, device="cpu", maxNewTokens=5)
    for _ in range(600):  # a new load: "loading", then its outcome
        states = [s["state"] for s in client.statuses[seen:]]
        if "loading" in states and states[-1] in ("ready", "error"):
            break
        await asyncio.sleep(0.05)
    assert client.statuses[-1]["state"] == "ready"  # recovered without a restart
    ends = [r for reports in client.progress_reports.values() for r in reports if r.kind == "end"]
    assert len(ends) == 3  # initial load, failed reload, reload: each reported as progress


async def test_acceptance_telemetry_is_counted_locally(client, workspace):
    uri, line_text, cursor_chars, cursor_utf16 = _open_greeting(client, workspace)
    items = await _inline(client, uri, 4, cursor_utf16)
    assert items and items[0].command.command == "fimls.accepted"
    item = client.protocol._converter.unstructure(items[0])
    client.protocol.notify("textDocument/didShowCompletion", {"item": item})
    client.protocol.notify("textDocument/didPartiallyAcceptCompletion", {"item": item, "acceptedLength": 3})
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=items[0].command.command, arguments=items[0].command.arguments)
    )
    stats = await _stats(client)
    assert (stats["shown"], stats["partially_accepted"], stats["accepted"]) == (1, 1, 1)
    assert stats["latency_p50_ms"] is not None and stats["server_overhead_p95_ms"] is not None
