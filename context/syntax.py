"""tree-sitter parsers from the official per-language grammar packages (offline wheels), and the
shapes the import resolvers of every language share."""

from __future__ import annotations

import functools
from dataclasses import dataclass

MAX_DEFINITION_LINES = 60


@dataclass(frozen=True)
class Import:
    module: str  # what the import names: a dotted Python module, a JS specifier, a Go import path
    level: int  # Python's relative-import dots; 0 elsewhere
    names: tuple[str, ...]  # names it binds from the module (empty: the module as a namespace)
    alias: str | None  # the namespace's local name (`import m as alias`, `* as alias`, Go's package name)


@functools.lru_cache(maxsize=None)
def parser(grammar: str):
    from tree_sitter import Language, Parser

    if grammar == "python":
        import tree_sitter_python as module

        language = module.language()
    elif grammar == "go":
        import tree_sitter_go as module

        language = module.language()
    elif grammar == "javascript":
        import tree_sitter_javascript as module

        language = module.language()
    elif grammar in ("typescript", "tsx"):
        import tree_sitter_typescript as module

        language = module.language_tsx() if grammar == "tsx" else module.language_typescript()
    else:
        raise ValueError(f"no grammar for {grammar}")
    return Parser(Language(language))


def parse(grammar: str, source: str):
    return parser(grammar).parse(source.encode("utf-8", "surrogatepass"))


def snippet(lines: list[str], node) -> tuple[int, int, str]:
    """(start line, end line, text) of a definition, its text cut to MAX_DEFINITION_LINES."""
    start, end = node.start_point[0], node.end_point[0] + 1
    return start, end, "".join(lines[start : min(end, start + MAX_DEFINITION_LINES)])
