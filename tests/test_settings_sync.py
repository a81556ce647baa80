"""Settings over the wire as editors send them, in one order (docs/clients.md): the defaults, then
the initialization options, then what `workspace/configuration` answers (scoped to the workspace
folder) or, from a client that cannot be asked, what it pushes. A value the user removes reverts
to what is below it; an answer of null or `{}` (a section the client holds nothing for) changes
nothing; reload-worthy changes in a row load once."""

import time
from dataclasses import dataclass, field

import pytest

from conftest import wait_for
from fixed_completion_server import FixedCompletionServer
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


def test_the_clients_configuration_goes_over_the_initialization_options_and_a_removed_value_reverts(tmp_path, test_model_dir):
    answers = {"fimls": {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 9, "contextTokens": 100}}
    asked = []

    def answer(params):
        asked.append(params["items"])
        return [answers.get(item.get("section")) for item in params["items"]]

    client = _start(tmp_path, str(test_model_dir), {"maxNewTokens": 30, "temperature": 0.5}, answer)
    try:
        settings = _settings(client)
        # The configuration's values over the initialization options', those over the defaults.
        assert (settings["maxNewTokens"], settings["contextTokens"], settings["temperature"]) == (9, 100, 0.5)
        assert asked[0] == [{"section": "fimls", "scopeUri": client.workspace.as_uri()}]  # folder-scoped
        # The user removes contextTokens and maxNewTokens from their settings: each reverts to what
        # is below it, the default and the initialization option.
        del answers["fimls"]["contextTokens"], answers["fimls"]["maxNewTokens"]
        client.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {"contextTokens": 5}}})  # a push is only a hint
        assert wait_for(lambda: len(asked) == 2)
        assert wait_for(lambda: _settings(client)["contextTokens"] == 1024), _settings(client)
        assert (_settings(client)["maxNewTokens"], _settings(client)["temperature"]) == (30, 0.5)
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


@dataclass
class Editor:
    """How one client delivers settings: its initialize, its initialization options, and what it
    answers to workspace/configuration (a function of the user's settings; None: it cannot be
    asked and pushes them instead)."""

    client_info: dict
    init: dict
    answer: object = None  # (user settings or None) -> the answer for section `fimls`
    pulls: bool = True
    user: list = field(default_factory=list)  # the user's fimls settings, step by step
    expected: list = field(default_factory=list)  # (maxNewTokens, contextTokens, temperature) after each step


# Each editor as it behaves from its source: VS Code's extension answers with the values the user
# set and sends no initialization options; Neovim answers `settings.fimls`, null when the user set
# only `init_options`; LSP4IJ answers its Configuration tab's `fimls` object; lsp-mode answers `{}`
# for a section nobody registered, its users set `fimls-initialization-options`; a client that
# cannot be asked pushes its section.
EDITORS = {
    "vscode": Editor(
        {"name": "Visual Studio Code", "version": "1.105.1"}, {}, lambda user: dict(user or {}),
        user=[{"maxNewTokens": 9, "contextTokens": 100}, {"contextTokens": 100}, {}],
        expected=[(9, 100, 0.0), (64, 100, 0.0), (64, 1024, 0.0)],
    ),
    "neovim init_options": Editor(
        {"name": "Neovim", "version": "0.12.4"}, {"maxNewTokens": 7, "temperature": 0.5}, lambda user: None,
        user=[None, None], expected=[(7, 1024, 0.5), (7, 1024, 0.5)],
    ),
    "neovim settings over init_options": Editor(
        {"name": "Neovim", "version": "0.11.4"}, {"maxNewTokens": 7, "temperature": 0.5}, lambda user: user,
        user=[{"maxNewTokens": 9, "contextTokens": 100}, {"contextTokens": 100}, None],
        expected=[(9, 100, 0.5), (7, 100, 0.5), (7, 1024, 0.5)],
    ),
    "lsp4ij": Editor(
        {"name": "PyCharm 2025.2.3", "version": "PyCharm 2025.2.3 (build PY-252.27397.106)"}, {}, lambda user: dict(user or {}),
        user=[{"maxNewTokens": 9, "temperature": 0.5}, {"temperature": 0.5}],
        expected=[(9, 1024, 0.5), (64, 1024, 0.5)],
    ),
    "lsp-mode": Editor(
        {"name": "emacs", "version": "GNU Emacs 30.1"}, {"maxNewTokens": 7, "contextTokens": 100}, lambda user: {},
        user=[None, None], expected=[(7, 100, 0.0), (7, 100, 0.0)],
    ),
    "a client that pushes": Editor(
        {"name": "some editor"}, {"maxNewTokens": 7, "contextTokens": 100}, pulls=False,
        user=[None, {"maxNewTokens": 9, "temperature": 0.5}, {"temperature": 0.5}],
        expected=[(7, 100, 0.0), (9, 100, 0.5), (7, 100, 0.5)],
    ),
}


@pytest.fixture(scope="module")
def fixed():
    server = FixedCompletionServer("x")
    yield server
    server.close()


@pytest.mark.parametrize("name", sorted(EDITORS))
def test_defaults_then_initialization_options_then_the_clients_configuration(tmp_path, test_model_dir, fixed, name):
    editor = EDITORS[name]
    step = {"user": editor.user[0]}
    workspace = tmp_path / "ws"
    workspace.mkdir()
    client = LspClient(cwd=str(workspace))
    client.answer_configuration = lambda params: [editor.answer(step["user"]) for _ in params["items"]]
    # The model stays the same throughout (the stand-in behind the server backend): only the
    # values under test change.
    window = {"model": str(test_model_dir), "device": "cpu", "backend": "server", "serverUrl": fixed.url}
    try:
        client.call("initialize", {
            "processId": None, "rootUri": workspace.as_uri(), "clientInfo": editor.client_info,
            "capabilities": {"workspace": {"configuration": editor.pulls}},
            "initializationOptions": {**editor.init, **window},
        })
        client.notify("initialized", {})
        client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))
        for i, (user, expected) in enumerate(zip(editor.user, editor.expected)):
            if i:
                step["user"] = user
                asked = _asked(client)
                client.notify("workspace/didChangeConfiguration", {"settings": None if editor.pulls else {"fimls": user}})
                if editor.pulls:
                    assert wait_for(lambda: _asked(client) > asked)
                time.sleep(0.3)  # the answer applied: a wipe or a stale value would show by now
            assert wait_for(lambda: _values(client) == expected, timeout=5), (i, user, _values(client), expected)
    finally:
        client.close()


def _asked(client) -> int:
    return len([r for r in client.server_requests if r["method"] == "workspace/configuration"])


def _values(client) -> tuple:
    settings = _settings(client)
    return settings["maxNewTokens"], settings["contextTokens"], settings["temperature"]
