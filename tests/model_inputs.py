"""Inputs the local test model completes, chosen at run time.

The test model is trained on this machine's CPU at build time, and training is not bit-identical
across CPUs: what it writes at one cursor on one machine it may not write on the next. A test
that needs text from the model therefore never names the cursor itself. It offers candidates
(documents with a cursor) and takes the first one at which the model, through the same path as
`fimls complete` (the workspace's context, the engine, post-processing), shows a completion that
the test can use; only if none of them does is that an error, and then it is the model's.

The candidates are ordinary Python a user could be typing: the end of a `return`, an argument
list, an attribute, a new line in a body, a comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from fimls.engine.backends.inprocess import InProcessBackend

CURSOR = "|"

# Ordinary code at a cursor that a code model should continue. Each holds one cursor mark.
CODE = [
    "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return self.|\n",
    "def add(a, b):\n    return |\n",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return |\n',
    "import os\n\n\ndef read(path):\n    with open(path) as handle:\n        |\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        |\n",
    "def main():\n    args = parse_args()\n    |\n\n\nif __name__ == '__main__':\n    main()\n",
    "import sys\n\n\ndef run(argv):\n    if len(argv) < 2:\n        |\n",
    "def total(items):\n    result = 0\n    for item in items:\n        |\n    return result\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.|\n",
    "def parse(text):\n    lines = text.split(|\n",
    "import os\n\npath = os.path.join(|\n",
    "def area(width, height):\n    return width * |\n",
    "def greet(name):\n    print(|\n",
    "def load(path):\n    with open(path, |\n",
    "class Config:\n    def get(self, key, default=None):\n        return self.|\n",
    "def keys(mapping):\n    return [key for key in |\n",
    "def is_empty(value):\n    if value is None:\n        return True\n    return |\n",
    "import re\n\n\ndef words(text):\n    return re.|\n",
    "def first(items):\n    for item in items:\n        if item:\n            |\n",
    "def __repr__(self):\n    return '%s(%r)' % (|\n",
    "def close(self):\n    if self.file is not None:\n        self.file.|\n",
    "def write(self, data):\n    self.buffer.append(|\n",
    "def size(self):\n    return len(|\n",
    "try:\n    import json\nexcept ImportError:\n    |\n",
    "def copy(self):\n    result = self.__class__()\n    result.|\n",
    "def lines(path):\n    result = []\n    for line in open(path):\n        result.append(|\n",
    "def name(self):\n    return self._|\n",
    "def check(value):\n    if not isinstance(value, |\n",
]

# A cursor in a comment, after code the model should have seen comments in.
COMMENT = [
    "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    # multiply the |\n",
    "def add(a, b):\n    # Return the |\n    return a + b\n",
    "# |\ndef main():\n    pass\n",
    "def read(path):\n    # open the file and |\n",
    "class Cache:\n    # |\n    def get(self, key):\n        return self.data[key]\n",
    "def parse(text):\n    # split the text into |\n",
    "import os\n\n# The |\n",
    "def run(argv):\n    # TODO: |\n",
    "def close(self):\n    # |\n    self.file.close()\n",
    "def size(self):\n    # the number of |\n",
]


@dataclass(frozen=True)
class Case:
    text: str
    offset: int
    shown: str  # what `fimls complete` prints there: the completion an editor shows

    @property
    def line(self) -> int:  # 0-based
        return self.text.count("\n", 0, self.offset)

    @property
    def character(self) -> int:  # 0-based, in code points
        return self.offset - (self.text.rfind("\n", 0, self.offset) + 1)

    @property
    def line_text(self) -> str:
        return self.text.splitlines()[self.line]


def marked(document: str) -> tuple[str, int]:
    """The document without its cursor mark, and the mark's offset."""
    offset = document.index(CURSOR)
    return document[:offset] + document[offset + 1 :], offset


def _settings(**settings):
    from fimls.settings import Settings

    return Settings(model="fimls:test-model", device="cpu", **settings)  # the model does not shape the prompt


def shown_completion(engine, root: Path, relative: str, text: str, offset: int, **settings):
    """What `fimls complete relative:LINE:COL` run in `root` prints for the file written there,
    and the engine's completion behind it: the CLI's own function, in this process."""
    from fimls.completion import complete_in_workspace

    return complete_in_workspace(InProcessBackend(engine), _settings(**settings), text, offset, str(root / relative), str(root))


def shown_candidates(engine, root: Path, relative: str, text: str, offset: int, count: int, **settings) -> list[str]:
    """What an invoked request shows at the cursor: the greedy completion and the alternatives
    from the same prefill, each post-processed, the empty ones and repeats left out."""
    from fimls.completion import complete_in_workspace
    from fimls.lsp.postprocess import around_cursor, postprocess

    _, prompted = complete_in_workspace(InProcessBackend(engine), _settings(**settings), text, offset, str(root / relative), str(root), count)
    shown = []
    for candidate in (prompted.completion, *prompted.completion.alternatives):
        visible = postprocess(candidate.text, *around_cursor(text, offset))
        if visible.strip() and visible not in shown:
            shown.append(visible)
    return shown


def choose(
    engine, root: Path, relative: str, candidates: Iterable[str] = CODE,
    accept: Callable[[str, object], bool] | None = None,
    **settings,
) -> Case:
    """The first candidate the model completes acceptably at `root/relative`, written there.

    `settings` are the Settings fields (e.g. maxNewTokens) the test's server will run with; `accept(shown, completion)` says what the test needs.
    """
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.read_text(encoding="utf-8") if path.exists() else None
    accept = accept or non_empty
    tried = []
    for document in candidates:
        text, offset = marked(document)
        path.write_text(text, encoding="utf-8")
        shown, completion = shown_completion(engine, root, relative, text, offset, **settings)
        if accept(shown, completion):
            return Case(text, offset, shown)
        tried.append(f"{document[max(0, document.index(CURSOR) - 30):document.index(CURSOR)]!r} -> {shown!r}")
    if previous is None:
        path.unlink()
    else:
        path.write_text(previous, encoding="utf-8")
    raise AssertionError(
        f"the test model completes none of {len(tried)} candidate inputs acceptably, so it is not a reasonably "
        "trained test model (rebuild it: fimls make-test-model). Tried:\n  " + "\n  ".join(tried)
    )


def non_empty(shown: str, completion) -> bool:
    return bool(shown.strip())
