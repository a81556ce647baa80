"""The folders of a multi-root workspace seen as one index.

Each folder keeps its own `WorkspaceIndex` (scanned and watched on its own, so adding or removing a
folder touches only that folder). This view merges them for the context builder: a file's key is
its path in its folder, under the folder's label when there are several (`api/app/main.py`), so two
folders' `main.py` never collide and imports resolve across folders; what the model sees as a
file's path stays the path inside its own folder.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

from fimls.context.recent import Hunk
from fimls.context.workspace import IndexedFile, WorkspaceIndex


def folder_labels(roots: list[Path]) -> list[str]:
    """A short unique label per folder: its name, or its name and parents' where names repeat;
    "" for a workspace of one folder (its keys are its plain relative paths)."""
    if len(roots) == 1:
        return [""]
    depth = 1
    while True:
        labels = ["/".join(root.parts[-depth:]).replace("/", "-") for root in roots]
        if len(set(labels)) == len(labels) or depth > max(len(r.parts) for r in roots):
            return labels if len(set(labels)) == len(labels) else [f"{label}-{i}" for i, label in enumerate(labels)]
        depth += 1


class FolderSet:
    def __init__(self, indexes: list[WorkspaceIndex]):
        self.indexes = list(indexes)
        self.labels = folder_labels([index.root for index in self.indexes])
        self.files: dict[str, IndexedFile] = {}
        self._listeners: list[Callable[[str, IndexedFile | None], None]] = []
        self._forwarders = []
        self._lock = threading.Lock()
        for label, index in zip(self.labels, self.indexes):
            forward = self._forwarder(label)
            self._forwarders.append((index, forward))
            index.subscribe(forward)
            for relative, entry in list(index.files.items()):
                self.files[self.key(label, relative)] = self._relabeled(label, entry)

    @staticmethod
    def key(label: str, relative: str) -> str:
        return f"{label}/{relative}" if label else relative

    def _relabeled(self, label: str, entry: IndexedFile) -> IndexedFile:
        return entry if not label else IndexedFile(self.key(label, entry.path), entry.language, entry.text)

    def _forwarder(self, label: str):
        def forward(relative: str, entry: IndexedFile | None) -> None:
            key = self.key(label, relative)
            labeled = None if entry is None else self._relabeled(label, entry)
            with self._lock:
                if labeled is None:
                    self.files.pop(key, None)
                else:
                    self.files[key] = labeled
            for listener in self._listeners:
                listener(key, labeled)

        return forward

    # -- what the context builder reads ----------------------------------------------------

    def subscribe(self, listener: Callable[[str, IndexedFile | None], None]) -> None:
        self._listeners.append(listener)

    @property
    def open_documents(self) -> dict[str, str]:
        return {
            self.key(label, relative): text
            for label, index in zip(self.labels, self.indexes)
            for relative, text in list(index.open_documents.items())
        }

    def recent_hunks(self) -> list[Hunk]:
        """The edits every folder remembers, oldest first, keyed like `files`."""
        hunks = [
            replace(hunk, path=self.key(label, hunk.path)) if label else hunk
            for label, index in zip(self.labels, self.indexes)
            for hunk in index.recent_hunks()
        ]
        return sorted(hunks, key=lambda hunk: hunk.serial)

    def locate(self, path: str | Path) -> tuple[str, str] | None:
        """(key, path inside its folder) of a file in one of the folders (the innermost, when
        folders nest), else None."""
        found = None
        for label, index in zip(self.labels, self.indexes):
            relative = index.relative(path)
            if relative is not None and (found is None or len(relative) < len(found[1])):
                found = (self.key(label, relative), relative)
        return found

    def relative(self, path: str | Path) -> str | None:
        located = self.locate(path)
        return located[0] if located else None

    def display(self, key: str) -> str:
        """The path inside its folder of the file keyed `key`: what the model is shown."""
        for label in self.labels:
            if label and key.startswith(label + "/"):
                return key[len(label) + 1 :]
        return key

    def index_of(self, path: str | Path) -> WorkspaceIndex | None:
        best = None
        for index in self.indexes:
            relative = index.relative(path)
            if relative is not None and (best is None or len(relative) < len(best[1])):
                best = (index, relative)
        return best[0] if best else None

    def summary(self) -> list[dict]:
        """One entry per folder: its URI and how many files it has indexed."""
        return [{"uri": index.root.as_uri(), "files": len(index.files)} for index in self.indexes]

    # -- keeping it current ------------------------------------------------------------------

    def scan(self) -> None:
        for index in self.indexes:
            index.scan()

    def watch(self) -> None:
        for index in self.indexes:
            index.watch()

    def open_document(self, path: str, text: str) -> None:
        index = self.index_of(path)
        if index is not None:
            index.open_document(path, text)

    def close_document(self, path: str) -> None:
        index = self.index_of(path)
        if index is not None:
            index.close_document(path)

    def detach(self) -> None:
        """Stop forwarding the folders' events here (a newer set took this one's place). The
        folders go on in the newer set, with the edits they remember; a folder that leaves the
        workspace is stopped, which forgets its edits."""
        for index, forward in self._forwarders:
            index.unsubscribe(forward)
        self._forwarders = []

    def stop(self) -> None:
        self.detach()
        for index in self.indexes:
            index.stop()
