"""Keep file descriptor 1 for our own output.

gptqmodel (and some of what transformers imports) print banners and progress lines to STDOUT,
at import and while loading. Over `--stdio` that corrupts the LSP stream, and for `fimls complete`
it pollutes the answer. Redirecting `sys.stdout` is not enough: native code and libraries that
captured the stream earlier write to the file descriptor. So the real stdout is duplicated for us,
and fd 1 is pointed at stderr before any model library is imported.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

_reserved: BinaryIO | None = None


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
