"""Keep file descriptor 1 for our own output, and, for the commands a person watches, the terminal
for fimls' own lines.

gptqmodel (and some of what transformers imports) print banners and progress lines to STDOUT,
at import and while loading. Over `--stdio` that corrupts the LSP stream, and for `fimls complete`
it pollutes the answer. Redirecting `sys.stdout` is not enough: native code and libraries that
captured the stream earlier write to the file descriptor. So the real stdout is duplicated for us,
and fd 1 is pointed at stderr before any model library is imported.

`fimls check` and `fimls make-test-model` go one step further (`divert_libraries`): fd 1 and fd 2
both go to a log file, so gptqmodel's banner and quantization tables, torch's and transformers'
warnings and other libraries' tqdm bars land there, and fimls writes its own lines (`Progress`,
`print_err`) to a duplicate of the real stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TextIO

_reserved: BinaryIO | None = None
_terminal: TextIO | None = None
_details: Path | None = None


def reserve_stdout() -> BinaryIO:
    """Return a binary stream on the original stdout; from now on fd 1 writes to stderr."""
    global _reserved
    if _reserved is None:
        sys.stdout.flush()
        _reserved = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    return _reserved


def print_out(text: str) -> None:
    """Print one line of our own output to the reserved stdout."""
    out = reserve_stdout()
    out.write((text + "\n").encode("utf-8"))
    out.flush()


def divert_libraries(log_path: Path, *, append: bool = False) -> Path:
    """From now on, for the rest of the process, fd 1 and fd 2 write to `log_path` (emptied first
    unless `append`); fimls' own lines go to the real stderr through `terminal()`. Returns the log
    in use (the first one, if called again).

    For the rest of the process, not a block: libraries also write from their threads and at exit."""
    global _terminal, _details
    reserve_stdout()
    if _terminal is None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC), 0o600)
        sys.stderr.flush()
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        _terminal = os.fdopen(os.dup(2), "w", encoding=encoding, errors="backslashreplace", buffering=1)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        _details = log_path
    return _details


def terminal() -> TextIO:
    """Where fimls' own messages for a person go: the real stderr."""
    return _terminal if _terminal is not None else sys.stderr


def details_log() -> Path | None:
    """The log that `divert_libraries` sends the libraries' output to, if it was called."""
    return _details


def print_err(text: str) -> None:
    """Print one line of fimls' own to the person running it."""
    stream = terminal()
    stream.write(text + "\n")
    stream.flush()


class Progress:
    """fimls' own progress lines, one per step, each `LABEL: TITLE`. On a terminal the line is
    redrawn in place, with a bar for a counted step and the time so far; elsewhere (a pipe, CI) it
    is written once, with the step's quarters as they pass and the seconds it took at the end."""

    TICK_S = 0.2
    BAR = 24

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label = label
        self.stream = stream or terminal()
        try:
            self.live = self.stream.isatty()
        except (AttributeError, ValueError):
            self.live = False

    @contextlib.contextmanager
    def step(self, title: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A step of `total` units (`None`: not counted); yields the function that counts them."""
        step = _Step(self, title, total)
        try:
            yield step.advance
        except KeyboardInterrupt:
            step.end("interrupted")
            raise
        except BaseException:
            step.end("failed")
            raise
        step.end(f"{time.monotonic() - step.started:.1f} s")


class _Step:
    def __init__(self, progress: Progress, title: str, total: int | None):
        self.progress, self.title, self.total = progress, title, total
        self.done = 0
        self.quarters = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None
        self.shown = ""
        if progress.live:
            self._draw()
            self.ticker = threading.Thread(target=self._tick, name="fimls-progress", daemon=True)
            self.ticker.start()
        else:
            self._write(f"{progress.label}: {title} ...")

    def advance(self, count: int = 1) -> None:
        with self.lock:
            self.done += count
            if self.progress.live or not self.total:
                return
            while self.quarters < min(4, self.done * 4 // self.total):
                self.quarters += 1
                self._write(f" {self.quarters * 25}%")

    def end(self, result: str) -> None:
        if self.ticker is not None:
            self.stopped.set()
            self.ticker.join()
            self._write(f"\r{self.progress.label}: {self.title} ... {result}\x1b[K\n")
        else:
            self._write(f" {result}\n")

    def _tick(self) -> None:
        while not self.stopped.wait(Progress.TICK_S):
            self._draw()

    def _draw(self) -> None:
        seconds = int(time.monotonic() - self.started)
        elapsed = f"{seconds // 60}:{seconds % 60:02d}"
        with self.lock:
            if self.total:
                filled = min(Progress.BAR, Progress.BAR * self.done // self.total)
                state = f"[{'#' * filled}{'-' * (Progress.BAR - filled)}] {self.done}/{self.total} {elapsed}"
            else:
                state = f"... {elapsed}"
        line = f"{self.progress.label}: {self.title} {state}"
        try:
            width = os.get_terminal_size(self.progress.stream.fileno()).columns or 80  # 0: a pty nobody sized
        except (AttributeError, ValueError, OSError):
            width = 80
        line = line[: max(20, width - 1)]  # a line that wraps cannot be redrawn in place
        if line != self.shown:
            self.shown = line
            self._write(f"\r{line}\x1b[K")

    def _write(self, text: str) -> None:
        stream = self.progress.stream
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not fail the work it reports on
