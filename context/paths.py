"""How a file's path is shown to the model: relative to the workspace root when inside it."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(file_path: str, root: str | None) -> str:
    path = Path(file_path)
    if root:
        try:
            return path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return path.name or os.fspath(path)
