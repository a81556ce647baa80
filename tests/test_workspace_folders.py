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
