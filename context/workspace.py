"""The workspace index: the text of every source file of the workspace that may enter a prompt,
kept current by file-system events (watchdog), with open documents overriding their disk copy.

What never enters it: files ignored by `.gitignore` / `.ignore` (a real gitignore matcher),
`.git`, `node_modules`, virtual environments and build outputs, binary files, files over the size
limit, files that look like secrets, and anything outside the workspace root (symbolic links are
resolved first).

Edits it receives (open documents' changes, files the watcher saw change) are remembered as hunks
(`edits`, context/recent.py), diffed against the text it held; the first scan is no edit, files it
would not index are never remembered, and stopping the index forgets them.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pathspec
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from fimls.context.languages import language_of
from fimls.context.recent import EditLog, Hunk

log = logging.getLogger(__name__)

SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", "env", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "target", "out", ".next",
    ".gradle", ".idea", ".vscode", "site-packages", ".eggs", "bower_components", "vendor",
})


@dataclass(frozen=True)
class IndexedFile:
    path: str  # relative to the root, with forward slashes
    language: str
    text: str


class WorkspaceIndex:
    def __init__(self, root: str, *, max_file_bytes: int, exclude_globs: Iterable[str]):
        self.root = Path(root).resolve()
        self.max_file_bytes = max_file_bytes
        self.exclude_globs = tuple(exclude_globs)
        self.files: dict[str, IndexedFile] = {}
        self.open_documents: dict[str, str] = {}
        self._ignores: dict[str, pathspec.PathSpec] = {}
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str, IndexedFile | None], None]] = []
        self._observer = None
        self.edits = EditLog()

    # -- what may be indexed -------------------------------------------------------------

    def relative(self, path: str | Path) -> str | None:
        """The root-relative path of a file inside the workspace (links resolved), else None."""
        try:
            resolved = Path(path).resolve()
            return resolved.relative_to(self.root).as_posix()
        except (ValueError, OSError, RuntimeError):  # outside the root, or a symlink loop
            return None

    def _ignore_spec(self, directory: str) -> pathspec.PathSpec:
        if directory not in self._ignores:
            lines: list[str] = []
            for name in (".gitignore", ".ignore"):
                try:
                    lines += (self.root / directory / name).read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    pass
            self._ignores[directory] = pathspec.GitIgnoreSpec.from_lines(lines)
        return self._ignores[directory]

    def is_ignored(self, relative: str, is_dir: bool = False) -> bool:
        parts = relative.split("/")
        if any(part in SKIPPED_DIRS for part in (parts if is_dir else parts[:-1])):
            return True
        if not is_dir and self.is_secret(relative):
            return True
        # Each directory's ignore files apply to the paths below it, as git does.
        for depth in range(len(parts)):
            directory = "/".join(parts[:depth])
            below = "/".join(parts[depth:]) + ("/" if is_dir else "")
            if self._ignore_spec(directory).match_file(below):
                return True
        return False

    def is_secret(self, relative: str) -> bool:
        return any(fnmatch.fnmatch(relative, g) or fnmatch.fnmatch("/" + relative, g) for g in self.exclude_globs)

    def _read(self, relative: str) -> IndexedFile | None:
        language = language_of(relative)
        if language is None or self.is_ignored(relative):
            return None
        data = self._read_regular_file(self.root / relative, relative)
        if data is None or b"\0" in data[:8192]:
            return None
        return IndexedFile(relative, language, data.decode("utf-8", errors="replace"))

    def _read_regular_file(self, path: Path, relative: str) -> bytes | None:
        """The bytes of a regular file inside the root, or None. The last component is opened
        without following links, and size and type are checked on the open file, so a file
        swapped for a link, a FIFO or a huge file between the check and the read is never read."""
        if self.relative(path) != relative:  # a link (anywhere on the path) leaving the root
            return None
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            descriptor = os.open(path, flags)
        except OSError:  # gone, permission denied, a link (ELOOP)
            return None
        with os.fdopen(descriptor, "rb") as file:
            try:
                status = os.fstat(descriptor)
                if not stat.S_ISREG(status.st_mode) or status.st_size > self.max_file_bytes:
                    return None
                data = file.read(self.max_file_bytes + 1)
            except OSError:
                return None
        return data if len(data) <= self.max_file_bytes else None  # grew while being read

    # -- building and keeping it current -------------------------------------------------

    def scan(self) -> None:
        for directory, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(directory).relative_to(self.root).as_posix()
            base = "" if base == "." else base
            dirnames[:] = sorted(d for d in dirnames if not self.is_ignored(f"{base}/{d}".lstrip("/"), is_dir=True))
            for name in sorted(filenames):
                relative = f"{base}/{name}".lstrip("/")
                entry = self._read(relative)
                if entry is not None:
                    self._store(relative, entry, edited=False)

    def refresh(self, path: str | Path) -> None:
        """Re-read one file (created or modified), or drop it (deleted, now ignored, unreadable)."""
        relative = self.relative(path)
        if relative is None:
            return
        if Path(relative).name in (".gitignore", ".ignore"):
            self._ignores.clear()
        with self._lock:
            if relative in self.open_documents:
                return  # the editor's copy wins until the document is closed
        self._store(relative, self._read(relative))

    def _store(self, relative: str, entry: IndexedFile | None, edited: bool = True, before: str | None = None) -> None:
        """`before`: the file's text when the index holds none yet (an edit's previous text)."""
        with self._lock:
            if entry is None:
                previous = self.files.pop(relative, None)
                if previous is None:
                    return
            else:
                previous = self.files.get(relative)
                self.files[relative] = entry
            if edited:
                old = previous.text if previous is not None else before
                self.edits.record(relative, old, entry.text if entry is not None else None)
        for listener in self._listeners:
            listener(relative, entry)

    def open_document(self, path: str, text: str) -> None:
        if not isinstance(text, str):
            return
        relative = self.relative(path)
        if relative is None or language_of(relative) is None or self.is_ignored(relative):
            return
        with self._lock:
            self.open_documents[relative] = text
            unread = relative not in self.files
        # A document opened before the scan reached it (or outside what it read) is compared with
        # its disk copy: only what differs from that is an edit.
        before = None
        if unread:
            on_disk = self._read_regular_file(self.root / relative, relative)
            before = on_disk.decode("utf-8", errors="replace") if on_disk is not None else None
        self._store(relative, IndexedFile(relative, language_of(relative), text), before=before)

    def close_document(self, path: str) -> None:
        relative = self.relative(path)
        if relative is None:
            return
        with self._lock:
            self.open_documents.pop(relative, None)
        self._store(relative, self._read(relative))

    def subscribe(self, listener: Callable[[str, IndexedFile | None], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, IndexedFile | None], None]) -> None:
        self._listeners = [known for known in self._listeners if known is not listener]

    def locate(self, path: str | Path) -> tuple[str, str] | None:
        """(key, path shown to the model) of a file inside the root: both its relative path."""
        relative = self.relative(path)
        return None if relative is None else (relative, relative)

    def display(self, key: str) -> str:
        return key

    def watch(self) -> None:
        """Follow file events under the root with watchdog (inotify on Linux)."""
        index = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type not in ("created", "modified", "deleted", "moved"):
                    return
                try:
                    if event.is_directory:
                        if event.event_type in ("deleted", "moved"):
                            index._drop_under(event.src_path)
                        if event.event_type in ("created", "moved"):
                            index._scan_under(getattr(event, "dest_path", "") or event.src_path)
                        return
                    index.refresh(event.src_path)
                    if event.event_type == "moved":
                        index.refresh(event.dest_path)
                except Exception:  # one bad event must not stop the watcher
                    log.exception("file event %s failed", event)

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.root), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def _drop_under(self, directory: str) -> None:
        prefix = (self.relative(directory) or "") + "/"
        for relative in [r for r in self.files if r.startswith(prefix)]:
            self._store(relative, None)

    def _scan_under(self, directory: str) -> None:
        relative_dir = self.relative(directory)
        if relative_dir is None or self.is_ignored(relative_dir, is_dir=True):
            return
        for current, dirnames, filenames in os.walk(directory, followlinks=False):
            base = self.relative(current)
            if base is None:
                continue
            dirnames[:] = [d for d in dirnames if not self.is_ignored(f"{base}/{d}", is_dir=True)]
            for name in filenames:
                self.refresh(Path(current) / name)

    def recent_hunks(self) -> list[Hunk]:
        """The edits remembered, oldest first, keyed like `files`."""
        return self.edits.hunks()

    def stop(self) -> None:
        """Stop watching and forget the edits remembered (the workspace is closing)."""
        if self._observer is not None:
            self._observer.stop()
            self._observer = None
        self.edits.clear()
