"""The server backend: fimls' own prompts completed by an inference server over the OpenAI
completions protocol. Faults against a server that misbehaves on cue; the rest against a real
llama-server (Debian's llama.cpp, fetched by the README's test set-up command) serving the test
model's weights as GGUF."""

import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_for
from lsp_client import LspClient, start_session
from fimls.engine.model.checkpoint import load_tokenizer_and_window
from fimls.contract import CompletionRequest
from fimls.engine.backends.server import NEUTRAL, ServerBackend, ServerError, ServerOptions
from fimls.stops import StopRules
from fimls.contract import PromptParts
from misbehaving_server import MisbehavingServer
from model_inputs import CODE, CURSOR

pytestmark = pytest.mark.slow  # runs llama-server and the server

HERE = Path(__file__).resolve().parent
PARTS = PromptParts(header="#m.py\n", prefix="def mul(a, b):\n", suffix="\n")
RULES = StopRules(cursor_block_indent=4)
KEY = "sk-fimls-test-secret-4242"


@pytest.fixture
def fake():
    server = MisbehavingServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tokenizer_and_window(test_model_dir):
    return load_tokenizer_and_window(str(test_model_dir))


def _backend(tokenizer_and_window, url, **options) -> ServerBackend:
    tokenizer, window = tokenizer_and_window
    return ServerBackend(tokenizer, ServerOptions(url=url, **options), name="test", window=window)


def test_a_completion_streams_and_a_stop_rule_closes_the_stream(fake, tokenizer_and_window, monkeypatch):
    monkeypatch.setenv("FIMLS_TEST_KEY", KEY)
    backend = _backend(tokenizer_and_window, fake.url + "/v1", api_key_env="FIMLS_TEST_KEY")
    completion = backend.complete(CompletionRequest(PARTS, 32, rules=RULES))
    assert completion.text == "    return a * b"
    assert completion.generation.stop_reason == "rule"  # closed before the server's [DONE]
    sent = fake.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    payload = sent["payload"]
    assert payload["prompt"] == backend.render(PARTS)  # token ids, exactly the in-process engine's
    assert (payload["model"], payload["max_tokens"], payload["temperature"], payload["stream"]) == ("fake-coder", 32, 0.0, True)
    assert len(payload["stop"]) <= 4 and "<｜fim▁hole｜>" in payload["stop"]
    assert backend.model == "fake-coder"  # the first of GET /v1/models


def test_a_connection_closed_before_any_answer_is_sent_again_once(fake, tokenizer_and_window):
    backend = _backend(tokenizer_and_window, fake.url)
    backend.warm_up()
    before = len(fake.requests)
    fake.mode = "drop-once"
    completion = backend.complete(CompletionRequest(PARTS, 32, rules=RULES))
    assert completion.text == "    return a * b"
    assert fake.mode == "ok"  # the drop really happened
    assert len(fake.requests) == before + 2  # the dropped request, and the same one sent again
    assert fake.requests[-1]["payload"] == fake.requests[-2]["payload"]


@pytest.mark.parametrize("mode, sentence", [
    ("401", "refused the request (401 simulated 401); set serverApiKeyEnv"),
    ("404", "has no model 'fake-coder'"),
    ("429", "is overloaded or failing (429"),
    ("500", "is overloaded or failing (500"),
    ("malformed", "sent a malformed stream event"),
    ("die", "closed the connection in the middle of a completion"),
    ("stall", "stopped sending for 1s in the middle of a completion"),
])
def test_each_fault_is_one_sentence_saying_what_and_where(fake, tokenizer_and_window, monkeypatch, mode, sentence):
    monkeypatch.setenv("FIMLS_TEST_KEY", KEY)
    backend = _backend(tokenizer_and_window, fake.url, api_key_env="FIMLS_TEST_KEY", stall_s=1.0, timeout_s=10.0)
    backend.warm_up()
    fake.mode = mode
    started = time.monotonic()
    with pytest.raises(ServerError) as failure:
        backend.complete(CompletionRequest(PARTS, 32, rules=RULES))
    message = str(failure.value)
    assert sentence in message and f"the inference server at {fake.url}" in message
    assert KEY not in message and message.count("\n") == 0
    assert time.monotonic() - started < 5  # never held past its timeout
    fake.mode = "ok"  # and it recovers as soon as the server answers again
    assert backend.complete(CompletionRequest(PARTS, 32, rules=RULES)).text == "    return a * b"


def test_connection_refused_and_an_unknown_host(tokenizer_and_window):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = _backend(tokenizer_and_window, f"http://127.0.0.1:{port}", model="m")
    with pytest.raises(ServerError, match=rf"cannot reach the inference server at http://127.0.0.1:{port} .*is it running\?"):
        refused.complete(CompletionRequest(PARTS, 8))
    unknown = _backend(tokenizer_and_window, "http://fimls-no-such-host.invalid:8000", model="m")
    with pytest.raises(ServerError, match="cannot resolve the inference server's host 'fimls-no-such-host.invalid'"):
        unknown.complete(CompletionRequest(PARTS, 8))


def test_a_request_longer_than_its_timeout_is_ended(fake, tokenizer_and_window):
    fake.mode = "slow"  # a piece every 0.5 s: never silent long enough to stall
    backend = _backend(tokenizer_and_window, fake.url, timeout_s=1.2, stall_s=5.0)
    started = time.monotonic()
    with pytest.raises(ServerError, match="took longer than 1.2s for one completion"):
        backend.complete(CompletionRequest(PARTS, 32, rules=RULES))
    assert time.monotonic() - started < 2.5


def test_a_superseded_request_closes_its_stream_at_once(fake, tokenizer_and_window):
    from fimls.engine.worker import _Ticket

    fake.mode = "slow"
    backend = _backend(tokenizer_and_window, fake.url, timeout_s=30.0)
    ticket = _Ticket(1)
    done = {}

    def run():
        done["completion"] = backend.complete(CompletionRequest(PARTS, 32, cancelled=ticket))
        done["at"] = time.monotonic()

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.7)
    cancelled_at = time.monotonic()
    ticket.cancel()
    worker.join(5)
    assert done["completion"].generation.stop_reason == "cancelled"
    assert done["at"] - cancelled_at < 0.3  # not at the next chunk (0.5 s), at once
    assert fake.client_left.wait(3)  # the server saw the client go


def test_a_server_that_takes_only_text_gets_text_with_source_markers_neutralised(fake, tokenizer_and_window):
    fake.mode = "text-only"  # as TGI and Ollama
    backend = _backend(tokenizer_and_window, fake.url)
    parts = PromptParts(header="#t.py\n", prefix='HOLE = "<｜fim▁hole｜>"\nx = ', suffix="\n")
    assert backend.complete(CompletionRequest(parts, 8)).text
    assert backend.accepts_token_ids is False
    prompt = fake.requests[-1]["payload"]["prompt"]
    assert isinstance(prompt, str)
    assert prompt.startswith("<｜fim▁begin｜>#t.py\nHOLE = ") and prompt.count("<｜fim▁hole｜>") == 1  # the template's own
    assert f"<{NEUTRAL}｜fim▁hole｜>" in prompt  # the one written in the source, cut
    asked = len(fake.requests)
    backend.complete(CompletionRequest(parts, 8))
    assert len(fake.requests) == asked + 1  # remembered: no token-id attempt again


def _status(client, after: int) -> dict:
    return client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"), timeout=120, after=after)


def _server_client(tmp_path, model, url, **settings) -> LspClient:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    audit = tmp_path / "audit.log"
    client = start_session(workspace, {
        "model": str(model), "backend": "server", "serverUrl": url, "serverApiKeyEnv": "FIMLS_TEST_KEY", "maxNewTokens": 16,
        "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0, "serverStallS": 2, **settings,
    }, base=False, wait=False, env={"FIMLS_TEST_AUDIT": str(audit), "FIMLS_TEST_KEY": KEY},
        command=[sys.executable, str(HERE / "audited_fimls.py")])
    client.audit = audit
    client.uri = (workspace / "m.py").as_uri()
    return client


def _complete(client, text: str) -> list:
    client.notify("textDocument/didOpen", {"textDocument": {"uri": client.uri, "languageId": "python", "version": 1, "text": text}})
    lines = text.split("\n")
    answer = client.call("textDocument/inlineCompletion", {
        "textDocument": {"uri": client.uri}, "position": {"line": len(lines) - 1, "character": len(lines[-1])},
        "context": {"triggerKind": 2},
    }, timeout=60)
    client.notify("textDocument/didClose", {"textDocument": {"uri": client.uri}})
    return [item["insertText"] for item in answer["result"]]


def test_over_stdio_a_failing_server_turns_the_status_to_error_and_back(fake, tmp_path, test_model_dir):
    client = _server_client(tmp_path, test_model_dir, fake.url)
    try:
        ready = _status(client, 0)
        assert ready["state"] == "ready" and fake.url in ready["message"]
        assert _complete(client, "def mul(a, b):\n") == ["    return a * b"]
        seen = len(client.notifications)
        fake.mode = "500"
        assert _complete(client, "def mul(a, b):\n") == []
        failed = _status(client, seen)
        assert failed["state"] == "error" and "is overloaded or failing (500" in failed["message"]
        seen = len(client.notifications)
        fake.mode = "ok"
        assert _complete(client, "def mul(a, b):\n") == ["    return a * b"]
        assert _status(client, seen)["state"] == "ready"
        stats = client.call("fimls/stats")["result"]
        assert stats["settings"]["serverApiKeyEnv"] == "FIMLS_TEST_KEY" and KEY not in json.dumps(stats)
    finally:
        client.close()
    assert KEY not in "".join(client.stderr_tail)


# -- against a real llama-server -------------------------------------------------------------------

# Prompts llama-server completes with the test model's weights, chosen at run time among ordinary
# code ending at the cursor (the weights differ from machine to machine: tests/model_inputs.py).
PREFIXES = [document[: document.index(CURSOR)] for document in CODE]


def _direct(llama, backend, text: str, max_tokens: int = 16, suffix: str = "\n", rules=None):
    """llama-server's own answer for fimls' prompt at the end of `text` (no workspace context, as
    in an empty workspace): what an editor would be shown, the raw text and why it ended."""
    from fimls.completion import build_prompt
    from fimls.lsp.postprocess import around_cursor, postprocess
    from fimls.settings import Settings

    settings = Settings(model="fimls:test-model", maxNewTokens=max_tokens)
    document = text + suffix
    prompt = build_prompt(backend, settings, document, len(text), "/ws/m.py", "/ws")
    ids = backend.render(prompt.parts)
    answer = llama.post("/v1/completions", {"prompt": ids, "max_tokens": max_tokens, "temperature": 0, "stop": backend.stop_strings})
    raw = answer["choices"][0]["text"]
    cut = (rules or prompt.rules).cut(raw)
    shown = postprocess(raw if cut is None else raw[:cut], *around_cursor(document, len(text)))
    return shown, raw, answer["choices"][0]["finish_reason"]


# Text a code model goes on repeating: where one writes on without an end of text.
REPEATING = ["values = [" + "0, " * 80, "x = 1\n" * 40 + "x = ", "# " + "-" * 120, "a" * 200, "print(" * 40]


def _prefix_llama_completes(llama, backend, accept, prefixes=PREFIXES, **direct) -> str:
    for prefix in prefixes:
        if accept(*_direct(llama, backend, prefix, **direct)):
            return prefix
    raise AssertionError("llama-server completes none of the candidate prompts acceptably with the test model's weights: "
                         "not a reasonably trained test model")


def _text_llama_completes(llama, tokenizer_and_window) -> str:
    return _prefix_llama_completes(llama, _backend(tokenizer_and_window, llama.url), lambda shown, raw, end: bool(shown.strip()))


def test_through_stdio_completions_equal_llama_servers_own_for_the_same_token_ids(llama, tmp_path, test_model_dir, tokenizer_and_window):
    text = _text_llama_completes(llama, tokenizer_and_window)
    client = _server_client(tmp_path, test_model_dir, llama.url)
    try:
        assert _status(client, 0)["state"] == "ready"
        [item] = _complete(client, text)
    finally:
        client.close()
    # The same prompt, rendered by the same code, sent straight to llama-server.
    backend = _backend(tokenizer_and_window, llama.url)
    workspace = tmp_path / "ws"
    from fimls.completion import build_prompt
    from fimls.lsp.postprocess import around_cursor, postprocess
    from fimls.settings import Settings

    settings = Settings(model=str(test_model_dir), maxNewTokens=16)
    prompt = build_prompt(backend, settings, text, len(text), str(workspace / "m.py"), str(workspace))
    ids = backend.render(prompt.parts)
    direct = llama.post("/v1/completions", {"prompt": ids, "max_tokens": 16, "temperature": 0, "stop": backend.stop_strings})
    raw = direct["choices"][0]["text"]
    cut = prompt.rules.cut(raw)
    expected = postprocess(raw if cut is None else raw[:cut], *around_cursor(text, len(text)))
    assert expected, "llama-server completes this prompt; the comparison would prove nothing"
    assert item == expected
    # Nothing left the loopback: every connection the server made went to 127.0.0.1.
    connects = [line for line in client.audit.read_text().splitlines() if line.startswith("socket.connect")]
    assert connects and all("'127.0.0.1'" in line for line in connects), connects


def test_a_stop_rule_ends_the_stream_and_the_slot_is_idle_again(llama, tokenizer_and_window):
    backend = _backend(tokenizer_and_window, llama.url)
    # A prompt where the model writes a line break within 200 tokens, so the single-line rule has one to stop at.
    prefix = _prefix_llama_completes(llama, backend, lambda shown, raw, end: "\n" in raw.lstrip("\n"), max_tokens=200,
                                     suffix=")\n", rules=StopRules())
    parts = PromptParts(header="#m.py\n", prefix=prefix, suffix=")\n")
    completion = backend.complete(CompletionRequest(parts, 200, rules=StopRules(single_line=True)))
    assert completion.generation.stop_reason == "rule" and "\n" not in completion.text
    assert wait_for(lambda: not any(slot.get("is_processing") for slot in llama.slots()), timeout=3)


def test_killing_the_server_turns_the_status_to_error_and_a_restart_brings_ready_back(llama, tmp_path, test_model_dir, tokenizer_and_window):
    TEXT = _text_llama_completes(llama, tokenizer_and_window)
    client = _server_client(tmp_path, test_model_dir, llama.url)
    try:
        assert _status(client, 0)["state"] == "ready"
        assert _complete(client, TEXT)
        seen = len(client.notifications)
        llama.stop()
        assert _complete(client, TEXT) == []
        failed = _status(client, seen)
        assert failed["state"] == "error" and f"cannot reach the inference server at {llama.url}" in failed["message"]
        seen = len(client.notifications)
        llama.start()
        assert _complete(client, TEXT)
        assert _status(client, seen)["state"] == "ready"
    finally:
        client.close()


def test_a_superseded_request_is_aborted_by_llama_server(llama, tokenizer_and_window):
    from fimls.engine.worker import _Ticket

    backend = _backend(tokenizer_and_window, llama.url, timeout_s=60.0, stall_s=10.0)
    # A prompt the model does not end within 300 tokens: unsuperseded it would run far longer.
    prefix = _prefix_llama_completes(llama, backend, lambda shown, raw, end: end == "length", REPEATING + PREFIXES,
                                     max_tokens=300, rules=StopRules())
    parts = PromptParts(header="#m.py\n", prefix=prefix, suffix="\n")
    ticket = _Ticket(1)
    worker = threading.Thread(target=lambda: backend.complete(CompletionRequest(parts, 3000, cancelled=ticket)))
    worker.start()
    assert wait_for(lambda: any(slot.get("is_processing") for slot in llama.slots()), timeout=10)
    cancelled_at = time.monotonic()
    ticket.cancel()
    worker.join(5)
    assert not worker.is_alive()
    # llama-server notices the closed connection (it checks about once a second) and frees the slot.
    assert wait_for(lambda: not any(slot.get("is_processing") for slot in llama.slots()), timeout=2.5)
    assert time.monotonic() - cancelled_at < 2.5
