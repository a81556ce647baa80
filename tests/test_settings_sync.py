"""Settings over the wire as editors send them: `workspace/configuration` is the whole truth where
the client answers it (a removed value reverts to its default), scoped to the workspace folder;
initialization options serve clients without it; reload-worthy changes in a row load once."""

import pytest

from conftest import wait_for
from lsp_client import LspClient, start_session

pytestmark = pytest.mark.slow  # starts the server

TEXT = "def add(a, b):\n    return a + b\n"


def _statuses(client, state: str) -> list[dict]:
    return [n["params"] for n in client.notifications if n["method"] == "fimls/status" and n["params"]["state"] == state]


def _settings(client) -> dict:
    return client.call("fimls/stats")["result"]["settings"]


def _start(tmp_path, model: str, init_options: dict, answer, capabilities=None) -> LspClient:
    """A session whose initialization options are exactly `init_options`."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return start_session(workspace, init_options, base=False, answer_configuration=answer,
                         capabilities=capabilities if capabilities is not None else {"workspace": {"configuration": True}})


def test_the_clients_configuration_is_the_whole_truth_and_a_removed_value_reverts(tmp_path, test_model_dir):
    answers = {"fimls": {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 9, "contextTokens": 100}}
    asked = []

    def answer(params):
        asked.append(params["items"])
        return [answers.get(item.get("section")) for item in params["items"]]

    client = _start(tmp_path, str(test_model_dir), {"maxNewTokens": 30, "temperature": 0.5}, answer)
    try:
        settings = _settings(client)
        # The initialization options do not mix in: the configuration holds everything.
        assert (settings["maxNewTokens"], settings["contextTokens"], settings["temperature"]) == (9, 100, 0.0)
        assert asked[0] == [{"section": "fimls", "scopeUri": client.workspace.as_uri()}]  # folder-scoped
        # The user removes contextTokens from their settings: it reverts to its default.
        del answers["fimls"]["contextTokens"]
        client.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {"contextTokens": 5}}})  # a push is only a hint
        assert wait_for(lambda: len(asked) == 2)
        assert wait_for(lambda: _settings(client)["contextTokens"] == 1024), _settings(client)
        assert _settings(client)["maxNewTokens"] == 9
    finally:
        client.close()


def test_a_client_without_fimls_settings_keeps_its_initialization_options(tmp_path, test_model_dir):
    # Neovim answers null for a section its `settings` do not hold; its users set `init_options`.
    client = _start(tmp_path, str(test_model_dir), {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 7}, None)
    try:
        assert _settings(client)["maxNewTokens"] == 7
    finally:
        client.close()


def test_an_empty_answer_for_an_unregistered_section_keeps_the_initialization_options(tmp_path, test_model_dir):
    # lsp-mode answers {} for a section nobody registered (lsp-mode.el, lsp-configuration-section);
    # its users (fimls.el) set fimls-initialization-options.
    init = {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 7}
    client = _start(tmp_path, str(test_model_dir), init, lambda params: [{} for _ in params["items"]])
    try:
        assert _settings(client)["maxNewTokens"] == 7
        client.notify("workspace/didChangeConfiguration", {"settings": {}})
        assert wait_for(lambda: len([r for r in client.server_requests if r["method"] == "workspace/configuration"]) == 2)
        # The answer is applied after it arrives: a wipe would show within this time.
        assert not wait_for(lambda: _settings(client)["maxNewTokens"] != 7, timeout=1.0)
    finally:
        client.close()


def test_a_client_that_cannot_be_asked_pushes_changes_over_its_initialization_options(tmp_path, test_model_dir):
    init = {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 7, "contextTokens": 100}
    client = _start(tmp_path, str(test_model_dir), init, None, capabilities={})
    try:
        assert (_settings(client)["maxNewTokens"], _settings(client)["contextTokens"]) == (7, 100)
        client.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {"maxNewTokens": 8}}})
        assert wait_for(lambda: _settings(client)["maxNewTokens"] == 8)
        assert _settings(client)["contextTokens"] == 100
    finally:
        client.close()


def test_reload_worthy_changes_in_a_row_load_the_model_once(tmp_path, test_model_dir):
    answers = {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 8}
    client = _start(tmp_path, str(test_model_dir), {}, lambda params: [dict(answers) for _ in params["items"]])
    try:
        assert len(_statuses(client, "loading")) == 1 and _statuses(client, "ready")
        seen = len(client.notifications)
        # Two reload-worthy changes back to back (an editor writing two settings), and a third
        # with nothing new in it (LSP4IJ pushes its configuration again after start).
        answers["gptqBackend"] = "gptq_torch"
        client.notify("workspace/didChangeConfiguration", {"settings": None})
        answers["dtype"] = "bfloat16"
        client.notify("workspace/didChangeConfiguration", {"settings": None})
        client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"), timeout=300, after=seen)
        client.notify("workspace/didChangeConfiguration", {"settings": None})
        import time

        time.sleep(1.0)  # longer than the settle time: a needless reload would have begun
        settings = _settings(client)
        assert (settings["gptqBackend"], settings["dtype"]) == ("gptq_torch", "bfloat16")
        loads = [n for n in client.notifications[seen:] if n["method"] == "fimls/status" and n["params"]["state"] == "loading"]
        assert len(loads) == 1, client.notifications[seen:]
        assert client.call("fimls/stats")["result"]["state"] == "ready"
    finally:
        client.close()
