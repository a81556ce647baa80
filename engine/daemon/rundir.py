"""Where this user's fimls daemon lives: a directory only the user can enter (the XDG runtime
directory, else one in the temporary directory checked to be the user's own), holding the Unix
socket (mode 0600), the locks that keep two starts from racing, its log and its pid."""

from __future__ import annotations

import os
import signal
import socket
import stat
import tempfile
import time
from pathlib import Path


class RunDirUnsafe(RuntimeError):
    """The directory for the daemon's socket is not private to this user; the message says why."""


def run_dir() -> Path:
    """The user's private directory for the daemon, made if missing."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        directory = Path(runtime) / "fimls"
    else:
        directory = Path(tempfile.gettempdir()) / f"fimls-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
    except OSError as error:
        raise RunDirUnsafe(f"cannot make the fimls daemon's directory {directory}: {error.strerror}") from None
    # In a shared /tmp another user may have made the directory first, or a link to their own.
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise RunDirUnsafe(f"{directory} is not a directory; remove it so that fimls can make its own.")
    if info.st_uid != os.getuid():
        raise RunDirUnsafe(f"{directory} belongs to another user; remove it, or set XDG_RUNTIME_DIR.")
    if info.st_mode & 0o077:
        os.chmod(directory, 0o700)
    return directory


def socket_path() -> Path:
    return run_dir() / "daemon.sock"


def answers(path: Path, timeout: float = 1.0) -> bool:
    """Whether a process accepts connections on the Unix socket at `path` (a socket file left by a
    daemon that crashed refuses them)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def stop_daemon(directory: Path, timeout: float = 10.0) -> None:
    """Stop the daemon whose pid file is in `directory` (the `fimls` folder of a runtime
    directory), if one runs, and wait until it is gone: SIGTERM, then SIGKILL after `timeout`."""
    try:
        pid = int((directory / "daemon.pid").read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it exited between the last look and now
