"""Multi-root workspaces: every folder indexed and watched, context from any folder headed by its
path inside its own folder, and folders added and removed while the server runs."""

import time

import psutil

import pytest

from conftest import wait_for
from lsp_client import LspClient
from fimls.context.builder import ContextBuilder
from fimls.context.folders import FolderSet, folder_labels
from fimls.context.workspace import WorkspaceIndex

pytestmark = pytest.mark.slow  # starts the server


def _index(root) -> WorkspaceIndex:
    return WorkspaceIndex(root, max_file_bytes=1_000_000, exclude_globs=())


def test_context_comes_from_any_folder_headed_by_its_path_in_that_folder(tmp_path, engine):
    api, lib = tmp_path / "api", tmp_path / "lib"
    (api / "app").mkdir(parents=True)
    lib.mkdir()
    (api / "app" / "main.py").write_text("from helpers import scale_values\n\n\ndef run(items):\n    return scale_values(items, 2)\n")
    (lib / "helpers.py").write_text('def scale_values(values, factor):\n    """Each value times factor."""\n    return [v * factor for v in values]\n')
    (lib / "main.py").write_text("print('another main')\n")  # the same name in both folders
    folders = FolderSet([_index(api), _index(lib)])
    folders.scan()
    builder = ContextBuilder(folders)
    builder.index_all()
    assert sorted(folders.files) == ["api/app/main.py", "lib/helpers.py", "lib/main.py"]
    key, shown = folders.locate(api / "app" / "main.py")
    assert (key, shown) == ("api/app/main.py", "app/main.py")
    text = (api / "app" / "main.py").read_text()
    snippets = builder.snippets("imports", key, text, len(text), (0, 5), 500, engine.count_tokens)
    assert [s.path for s in snippets] == ["lib/helpers.py"]
    assert snippets[0].text.startswith("#helpers.py\ndef scale_values(")  # the path inside its folder


def test_folder_labels_are_short_and_unique():
    from pathlib import Path

    assert folder_labels([Path("/w/api")]) == [""]
    assert folder_labels([Path("/w/api"), Path("/w/lib")]) == ["api", "lib"]
    assert folder_labels([Path("/a/src"), Path("/b/src")]) == ["a-src", "b-src"]


def _threads(client) -> int:
    return psutil.Process(client.process.pid).num_threads()


def _workspace(client) -> dict:
    return {entry["uri"]: entry["files"] for entry in client.call("fimls/stats")["result"]["workspace"]}


def test_folders_added_and_removed_while_the_server_runs(tmp_path, test_model_dir):
    folders = {name: tmp_path / name for name in ("one", "two", "three")}
    for name, folder in folders.items():
        folder.mkdir()
        for i in range({"one": 2, "two": 3, "three": 4}[name]):
            (folder / f"{name}_{i}.py").write_text(f"VALUE_{i} = {i}\n")
    uri = {name: folder.as_uri() for name, folder in folders.items()}
    client = LspClient(cwd=str(tmp_path))
    try:
        answer = client.call("initialize", {
            "processId": None, "rootUri": uri["one"], "capabilities": {"workspace": {"workspaceFolders": True}},
            "workspaceFolders": [{"uri": uri["one"], "name": "one"}, {"uri": uri["two"], "name": "two"}],
            "initializationOptions": {"model": str(test_model_dir), "device": "cpu"},
        })
        folders_capability = answer["result"]["capabilities"]["workspace"]["workspaceFolders"]
        assert folders_capability["supported"] and folders_capability["changeNotifications"]
        client.notify("initialized", {})
        client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"), timeout=300)
        assert wait_for(lambda: _workspace(client) == {uri["one"]: 2, uri["two"]: 3}, timeout=30), _workspace(client)
        # Each folder is watched: a file written into the second one is indexed.
        (folders["two"] / "late.py").write_text("LATE = 1\n")
        assert wait_for(lambda: _workspace(client).get(uri["two"]) == 4, timeout=30), _workspace(client)

        client.notify("workspace/didChangeWorkspaceFolders", {"event": {"added": [{"uri": uri["three"], "name": "three"}], "removed": []}})
        assert wait_for(lambda: _workspace(client) == {uri["one"]: 2, uri["two"]: 4, uri["three"]: 4}, timeout=30), _workspace(client)
        time.sleep(0.5)
        threads_with_three = _threads(client)

        client.notify("workspace/didChangeWorkspaceFolders", {"event": {"added": [], "removed": [{"uri": uri["two"], "name": "two"}]}})
        assert wait_for(lambda: _workspace(client) == {uri["one"]: 2, uri["three"]: 4}, timeout=30), _workspace(client)
        # Forgotten: its watcher's threads are gone, and a file written there now changes nothing.
        assert wait_for(lambda: _threads(client) < threads_with_three, timeout=10), (_threads(client), threads_with_three)
        (folders["two"] / "after.py").write_text("AFTER = 1\n")
        (folders["three"] / "new.py").write_text("NEW = 1\n")
        assert wait_for(lambda: _workspace(client) == {uri["one"]: 2, uri["three"]: 5}, timeout=30), _workspace(client)
    finally:
        client.close()


def test_each_folder_of_a_multi_root_workspace_serves_its_documents_with_its_own_settings(tmp_path, test_model_dir):
    from fixed_completion_server import FixedCompletionServer

    fixed = FixedCompletionServer("total")
    folders = {name: tmp_path / name for name in ("api", "lib", "extra")}
    for folder in folders.values():
        folder.mkdir()
    uri = {name: folder.as_uri() for name, folder in folders.items()}
    window = {"model": str(test_model_dir), "device": "cpu", "backend": "server", "serverUrl": fixed.url}
    # Each folder's own answer; `lib` also names another model and cache size, which one window
    # shares: the root's stay.
    answers = {
        uri["api"]: {**window, "enabledLanguages": ["python"]},
        uri["lib"]: {"enabledLanguages": ["go"], "model": "someone/else", "cacheSize": 3},
        uri["extra"]: {"enabledLanguages": ["rust"]},
    }
    asked = []

    def answer(params):
        asked.append(params["items"])
        return [answers.get(item.get("scopeUri")) for item in params["items"]]

    client = LspClient(cwd=str(tmp_path))
    client.answer_configuration = answer
    try:
        client.call("initialize", {
            "processId": None, "rootUri": uri["api"],
            "capabilities": {"workspace": {"workspaceFolders": True, "configuration": True}},
            "workspaceFolders": [{"uri": uri["api"], "name": "api"}, {"uri": uri["lib"], "name": "lib"}],
            "initializationOptions": {**window, "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0},
        })
        client.notify("initialized", {})
        assert client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))["state"] == "ready"
        assert asked[0] == [{"section": "fimls", "scopeUri": uri["api"]}, {"section": "fimls", "scopeUri": uri["lib"]}]

        def served(folder: str, language: str, suffix: str) -> bool:
            document = (folders[folder] / f"main{suffix}").as_uri()
            client.notify("textDocument/didOpen", {"textDocument": {"uri": document, "languageId": language, "version": 1, "text": "x = \n"}})
            answer = client.call("textDocument/inlineCompletion", {
                "textDocument": {"uri": document}, "position": {"line": 0, "character": 4}, "context": {"triggerKind": 2},
            })
            return bool(answer["result"])

        assert served("api", "python", ".py") and not served("api", "go", ".go")
        assert served("lib", "go", ".go") and not served("lib", "python", ".py")
        settings = client.call("fimls/stats")["result"]["settings"]
        assert (settings["model"], settings["cacheSize"], settings["enabledLanguages"]) == (str(test_model_dir), 0, ["python"])

        # A folder added later is asked for its settings too.
        client.notify("workspace/didChangeWorkspaceFolders", {"event": {"added": [{"uri": uri["extra"], "name": "extra"}], "removed": []}})
        assert wait_for(lambda: not served("extra", "python", ".py") and served("extra", "rust", ".rs"), timeout=30)
        assert {"section": "fimls", "scopeUri": uri["extra"]} in asked[-1]
    finally:
        client.close()
        fixed.close()
