"""Thousands of malformed and hostile messages through the real stdio server: each request gets a
result or a proper LSP error, the server stays up, and a normal completion works afterwards."""

import collections
import json
import random

import pytest

from lsp_client import LspClient

pytestmark = pytest.mark.slow  # starts the server

GOOD_TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return "
MESSAGES = 5000


@pytest.fixture
def server(tmp_path, test_model_dir):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "util.py").write_text("def helper(x):\n    return x * 2\n")
    client = LspClient(env={"FIMLS_MODEL": str(test_model_dir)}, cwd=str(workspace))
    client.workspace = workspace
    yield client
    client.process.kill()
    client.process.wait()


def _position(rng: random.Random):
    return rng.choice([
        {"line": rng.randint(0, 12), "character": rng.randint(0, 80)},
        {"line": -1, "character": 0},
        {"line": 0, "character": -5},
        {"line": 2**31 - 1, "character": 2**31 - 1},
        {"line": 2**40, "character": 0},
        {"line": "3", "character": None},
        {"line": 1.5, "character": 2},
        {},
        None,
        "here",
        [1, 2],
    ])


def _uri(rng: random.Random, workspace) -> object:
    return rng.choice([
        (workspace / "main.py").as_uri(),
        (workspace / "never-opened.py").as_uri(),
        (workspace / "util.py").as_uri(),  # on disk, never opened
        "file:///etc/passwd",
        "file:///../../etc/shadow",
        "untitled:Untitled-1",
        "http://example.com/x.py",
        "not a uri",
        "",
        None,
        42,
        "file:///" + "a" * 5000 + ".py",
    ])


def _hostile_text(rng: random.Random) -> str:
    return rng.choice([
        "x = 1\n" * rng.randint(0, 50),
        "y" * 1_000_000,  # a 1 MB line
        "\x00\x01\x02binary\xff\xfe" * 100,
        "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(300)).replace("\ud800", ""),
        "\ud800 lone surrogate \udfff",
        "😀" * 1000 + "\r\n" * 100 + "中" * 100,
    ])


def hostile_message(rng: random.Random, workspace, request_id: int) -> tuple[dict | bytes, bool]:
    """One message and whether it is a request (expects an answer)."""
    kind = rng.randrange(14)
    completion_params = {
        "textDocument": {"uri": _uri(rng, workspace)},
        "position": _position(rng),
        "context": rng.choice([{"triggerKind": 1}, {"triggerKind": 2}, {"triggerKind": 99}, None, "x"]),
    }
    if kind <= 3:
        if rng.random() < 0.3:
            completion_params = rng.choice([None, [], "x", {}, {"textDocument": None}])
        return {"id": request_id, "method": "textDocument/inlineCompletion", "params": completion_params}, True
    if kind == 4:
        return {"id": request_id, "method": rng.choice(["textDocument/hover", "foo/bar", "", "$/unknown", "textDocument/completion"]), "params": {}}, True
    if kind == 5:
        return {"id": request_id, "method": "fimls/stats", "params": rng.choice([None, {}, [1], "x"])}, True
    if kind == 6:
        return {"id": request_id, "method": "workspace/executeCommand", "params": rng.choice([
            {"command": "fimls.accepted", "arguments": [1]}, {"command": "rm -rf /"}, {"command": 5}, None])}, True
    if kind == 7:  # edits with hostile ranges and text
        start, end = _position(rng), _position(rng)
        return {"method": "textDocument/didChange", "params": {
            "textDocument": {"uri": _uri(rng, workspace), "version": rng.randint(-5, 10**6)},
            "contentChanges": rng.choice([
                [{"range": {"start": start, "end": end}, "text": _hostile_text(rng)}],
                [{"text": _hostile_text(rng)}],
                [{"range": None, "text": 5}],
                "not a list",
            ]),
        }}, False
    if kind == 8:
        return {"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": _uri(rng, workspace), "languageId": rng.choice(["python", "", None, "brainfuck"]),
            "version": 1, "text": _hostile_text(rng)}}}, False
    if kind == 9:
        return {"method": "textDocument/didClose", "params": {"textDocument": {"uri": _uri(rng, workspace)}}}, False
    if kind == 10:
        return {"method": "workspace/didChangeConfiguration", "params": {"settings": rng.choice([
            {"fimls": {"maxNewTokens": -3}}, {"fimls": {"ranker": "psychic"}}, {"fimls": "x"}, None, [1],
            {"fimls": {"debounceMinMs": 0, "debounceMaxMs": 0, "maxNewTokens": 8}}])}}, False
    if kind == 11:
        return {"method": "$/cancelRequest", "params": {"id": rng.choice([request_id - 1, -1, "x", None, 10**12])}}, False
    if kind == 12:  # bodies that are not valid JSON-RPC at all
        return rng.choice([b"{not json", b"[]", b"null", b'{"jsonrpc": "2.0"}', b'"just a string"', b"{}",
                           json.dumps({"jsonrpc": "1.0", "id": request_id, "method": "x"}).encode()]), False
    return {"method": rng.choice(["textDocument/didSave", "$/setTrace", "window/workDoneProgress/cancel", "x/y"]),
            "params": rng.choice([None, {}, {"token": 5}, "x"])}, False


def _is_valid_answer(response: dict) -> bool:
    if "result" in response:
        return "error" not in response
    error = response.get("error")
    return isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)


def _normal_completion(server, uri: str, text: str) -> list:
    lines = text.split("\n")
    answer = server.call("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri},
        "position": {"line": len(lines) - 1, "character": len(lines[-1])},
        "context": {"triggerKind": 1},
    }, timeout=120)
    assert "result" in answer, answer
    return answer["result"]


@pytest.mark.timeout(600)
def test_thousands_of_hostile_messages_leave_the_server_answering_and_completing(server):
    workspace = server.workspace
    before = server.call("textDocument/inlineCompletion", {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}})
    assert "error" in before and _is_valid_answer(before), before  # before initialize: an error, not silence

    answer = server.call("initialize", {
        "processId": None, "rootUri": workspace.as_uri(), "capabilities": {"workspace": {"configuration": True}},
        # Context from the saved workspace only: the fuzz's edits are edits, and the `recent` source
        # would rightly show them to the model, so "as at the start" would not hold.
        "initializationOptions": {"device": "cpu", "maxNewTokens": 8, "debounceMinMs": 0, "debounceMaxMs": 0, "ranker": "bm25"},
    })
    assert "capabilities" in answer["result"]
    server.notify("initialized", {})
    status = server.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))
    assert status["state"] == "ready", status

    main = (workspace / "main.py").as_uri()
    server.notify("textDocument/didOpen", {"textDocument": {"uri": main, "languageId": "python", "version": 1, "text": GOOD_TEXT}})
    server.notify("textDocument/didOpen", {"textDocument": {"uri": "untitled:Untitled-1", "languageId": "python", "version": 1, "text": GOOD_TEXT}})
    reference = _normal_completion(server, main, GOOD_TEXT)

    rng = random.Random(20261122)
    request_ids = []
    for _ in range(MESSAGES):
        request_id = next(server.ids)
        message, is_request = hostile_message(rng, workspace, request_id)
        if isinstance(message, bytes):
            server.send_bytes(message)
            continue
        server.send(message)
        if is_request:
            request_ids.append(request_id)
    responses = server.wait_for(request_ids, timeout=400)
    invalid = [r for r in responses.values() if not _is_valid_answer(r)]
    assert not invalid, invalid[:5]
    outcomes = collections.Counter("result" if "result" in r else r["error"]["code"] for r in responses.values())
    # Both halves were exercised: requests that got through to the handlers, and refused ones.
    assert outcomes["result"] >= 300 and outcomes[-32602] >= 300 and outcomes[-32601] >= 50, outcomes
    assert len(request_ids) >= 1000
    assert server.process.poll() is None, server.stderr()

    # Nothing outside the workspace, nor any file on disk that was never opened, was completed from.
    for response in responses.values():
        for item in (response.get("result") or []) if isinstance(response.get("result"), list) else []:
            assert "root:" not in item["insertText"]

    # The session is still good: open the document afresh (the fuzz may have closed or mangled it)
    # and complete as at the start.
    server.notify("textDocument/didClose", {"textDocument": {"uri": main}})
    server.notify("textDocument/didOpen", {"textDocument": {"uri": main, "languageId": "python", "version": 1, "text": GOOD_TEXT}})
    server.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {"device": "cpu", "maxNewTokens": 8, "debounceMinMs": 0, "debounceMaxMs": 0, "ranker": "bm25"}}})
    assert reference, "the test model completes this prompt"
    after_fuzz = _normal_completion(server, main, GOOD_TEXT)
    assert [item["insertText"] for item in after_fuzz] == [item["insertText"] for item in reference]

    assert "result" in server.call("shutdown")
    after = server.call("textDocument/inlineCompletion", {"textDocument": {"uri": main}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}})
    assert "error" in after and _is_valid_answer(after), after  # after shutdown: InvalidRequest
    server.notify("exit")
    assert server.process.wait(30) == 0
