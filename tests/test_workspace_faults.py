"""The workspace index under hostile file systems: races, links, loops, huge, unreadable and
undecodable files, a directory replaced by a file, and 50,000 files. It ends consistent with a
fresh scan, bounded in memory, and it never opens anything outside the workspace root."""

import os
import shutil
import sys
import threading
import time

import psutil
import pytest

from conftest import wait_for
from fimls.context.workspace import WorkspaceIndex
from fimls.settings import SECRET_GLOBS

_opened: list[str] = []
_recording = threading.Event()


def _audit(event: str, args: tuple) -> None:
    """Where each open would read, resolved at the moment of the open. An open that refuses to
    follow a final link (O_NOFOLLOW) of a path that is a link then reads nothing."""
    if event != "open" or not _recording.is_set() or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.fsdecode(args[0])
    flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
    if flags & getattr(os, "O_NOFOLLOW", 0) and os.path.islink(path):
        return
    _opened.append(os.path.realpath(path))


sys.addaudithook(_audit)  # audit hooks cannot be removed; `_recording` switches this one on and off


def _index(root, max_file_bytes=1_000_000):
    return WorkspaceIndex(str(root), max_file_bytes=max_file_bytes, exclude_globs=SECRET_GLOBS)


def _snapshot(index):
    return {path: (entry.language, entry.text) for path, entry in index.files.items()}


def _equals_a_fresh_scan(index, root) -> bool:
    fresh = _index(root)
    fresh.scan()
    return _snapshot(index) == _snapshot(fresh)


def _settles_to_a_fresh_scan(index, root, timeout=20.0):
    """True once the watched index equals a new scan of the same tree (and stays so briefly)."""

    def settled() -> bool:
        if not _equals_a_fresh_scan(index, root):
            return False
        time.sleep(0.5)  # late events must not undo it
        return _equals_a_fresh_scan(index, root)

    return wait_for(settled, timeout, interval=0.2)


@pytest.fixture
def hostile_tree(tmp_path):
    root = tmp_path / "ws"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("OUTSIDE_MARKER = 1\n")
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (root / "pkg" / "sub" / "deep.py").write_text("X = 2\n")
    (root / "bad_utf8.py").write_bytes(b"name = '\xff\xfe\xc0 broken'\n")
    with open(root / "huge.py", "wb") as huge:  # 200 MB, sparse: costs no disk, only a read would hurt
        huge.truncate(200 * 1024 * 1024)
    os.symlink(root / "loop_b.py", root / "loop_a.py")
    os.symlink(root / "loop_a.py", root / "loop_b.py")
    os.symlink(root, root / "pkg" / "sub" / "to_root")  # a directory loop
    os.symlink(outside, root / "outside_dir")
    os.symlink(outside / "secret.py", root / "outside_link.py")
    os.mkfifo(root / "pipe.py")  # reading a FIFO would block the indexer forever
    unreadable = root / "unreadable.py"
    unreadable.write_text("Y = 3\n")
    unreadable.chmod(0)
    return root, outside


@pytest.mark.timeout(120)
def test_faults_leave_the_index_equal_to_a_fresh_scan_and_nothing_outside_is_opened(hostile_tree):
    root, outside = hostile_tree
    _opened.clear()
    chars_before = psutil.Process().io_counters().read_chars
    _recording.set()
    try:
        index = _index(root)
        index.scan()
        assert "pkg/mod.py" in index.files and "bad_utf8.py" in index.files
        assert "\ufffd" in index.files["bad_utf8.py"].text  # undecodable bytes replaced, not fatal
        for skipped in ("huge.py", "loop_a.py", "loop_b.py", "outside_link.py", "pipe.py"):
            assert skipped not in index.files, skipped
        index.watch()
        try:
            for round_ in range(30):
                # Created and deleted before the event is handled: the read finds nothing.
                flicker = root / f"flicker{round_}.py"
                flicker.write_text("Z = 1\n")
                flicker.unlink()
                (root / "pkg" / "mod.py").write_text(f"def f():\n    return {round_}\n")
                renamed = root / "pkg" / f"renamed{round_}.py"
                (root / "pkg" / f"new{round_}.py").write_text("W = 1\n")
                os.replace(root / "pkg" / f"new{round_}.py", renamed)
                if round_ % 3 == 0:
                    renamed.unlink()
            # A directory replaced by a file of the same name, and a directory moved away.
            shutil.rmtree(root / "pkg" / "sub")
            (root / "pkg" / "sub").write_text("not a directory\n")
            os.rename(root / "pkg", root / "pkg2")
            # A file swapped for a link that leaves the root.
            (root / "swap.py").write_text("S = 1\n")
            (root / "swap.py").unlink()
            os.symlink(outside / "secret.py", root / "swap.py")
            assert _settles_to_a_fresh_scan(index, root)
        finally:
            index.stop()
    finally:
        _recording.clear()
    assert "pkg2/mod.py" in index.files and "pkg/mod.py" not in index.files
    assert not any("OUTSIDE_MARKER" in entry.text for entry in index.files.values())
    assert _opened, "the audit hook saw the index's reads"
    # Python's own imports open library files; what matters is the test's folder outside the root.
    outside_reads = [path for path in _opened if path.startswith(str(outside))]
    assert any(path.startswith(str(root) + os.sep) for path in _opened)
    assert not outside_reads, outside_reads
    # The 200 MB file was opened only to look at its size: the whole run read far less than it.
    assert psutil.Process().io_counters().read_chars - chars_before < 50 * 2**20


@pytest.mark.timeout(300)
def test_a_50000_file_tree_is_indexed_with_bounded_memory(tmp_path):
    root = tmp_path / "big"
    body = "def function_{n}(value):\n    return value + {n}\n"
    for directory in range(250):
        folder = root / f"pkg{directory:03d}"
        folder.mkdir(parents=True)
        for number in range(200):
            (folder / f"m{number:03d}.py").write_text(body.format(n=directory * 1000 + number))
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.perf_counter()
    index = _index(root)
    index.scan()
    seconds = time.perf_counter() - started
    grown_mb = (process.memory_info().rss - before) / 2**20
    assert len(index.files) == 50_000
    text_mb = sum(len(entry.text) for entry in index.files.values()) / 2**20
    print(f"50k files: scan {seconds:.1f}s, rss +{grown_mb:.0f} MB for {text_mb:.1f} MB of text")
    assert grown_mb < 150, grown_mb
