"""tree-sitter parsers from the official per-language grammar packages (offline wheels), and the
shapes the import resolvers of every language share."""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, TypeVar

from tree_sitter import Language, Parser

from fimls.context.common_ends import common_prefix, common_suffix
from fimls.context.languages import language_of

T = TypeVar("T")

MAX_DEFINITION_LINES = 60


@dataclass(frozen=True)
class Import:
    module: str  # what the import names: a dotted Python module, a JS specifier, a Go import path
    level: int  # Python's relative-import dots; 0 elsewhere
    names: tuple[str, ...]  # names it binds from the module (empty: the module as a namespace)
    alias: str | None  # the namespace's local name (`import m as alias`, `* as alias`, Go's package name)


# grammar -> (official grammar package, its function giving the language)
GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}


@functools.lru_cache(maxsize=None)
def parser(grammar: str):
    if grammar not in GRAMMARS:
        raise ValueError(f"no grammar for {grammar}")
    package, function = GRAMMARS[grammar]
    return Parser(Language(getattr(importlib.import_module(package), function)()))


def ending_with(paths, tail: str) -> list[str]:
    """The paths that are `tail` or end with `/tail` (an import path's tail: a package folder, a
    class file, an included header), the shortest first."""
    return sorted((p for p in paths if p == tail or p.endswith("/" + tail)), key=len)


_locks: dict[str, threading.Lock] = {}  # a tree-sitter Parser must not parse two texts at once
_live: OrderedDict[tuple[str, str], tuple[bytes, object]] = OrderedDict()  # (grammar, path) -> text, tree
LIVE_TREES = 8


def parse(grammar: str, source: str, path: str | None = None):
    """The syntax tree of `source`. With `path`, the file's previous tree is edited and reparsed
    incrementally (tree-sitter reuses what the edit did not touch): a keystroke in a large file
    costs a fraction of a millisecond instead of a full parse."""
    data = source.encode("utf-8", "surrogatepass")
    with _locks.setdefault(grammar, threading.Lock()):
        return _parse_locked(grammar, data, path)


def _parse_locked(grammar: str, data: bytes, path: str | None):
    previous = _live.pop((grammar, path), None) if path is not None else None
    if previous is not None and previous[0] == data:
        tree = previous[1]
    elif previous is not None:
        old_tree = previous[1]
        old_tree.edit(**_edit(previous[0], data))
        tree = parser(grammar).parse(data, old_tree)
    else:
        tree = parser(grammar).parse(data)
    if path is not None:
        _live[(grammar, path)] = (data, tree)
        if len(_live) > LIVE_TREES:
            _live.popitem(last=False)
    return tree


# What begins a statement the import resolvers read, per grammar: `import`, `require`, `use`,
# `mod m;`, `extern crate`, `#include`.
_IMPORT_WORDS = {
    "python": rb"\bimport\b",
    "javascript": rb"\bimport\b|\brequire\b",
    "go": rb"\bimport\b",
    "rust": rb"\buse\b|\bmod\s+\w+\s*;|\bextern\s+crate\b",
    "java": rb"\bimport\b",
    "c": rb"#\s*include",
}
_IMPORT_WORDS.update(typescript=_IMPORT_WORDS["javascript"], tsx=_IMPORT_WORDS["javascript"], cpp=_IMPORT_WORDS["c"])
IMPORT_WORDS = {grammar: re.compile(pattern) for grammar, pattern in _IMPORT_WORDS.items()}
_readings: OrderedDict[tuple[str, str, Callable], tuple[object, object]] = OrderedDict()


def read_tree(grammar: str, source: str, path: str | None, reader: Callable[[object], T]) -> T:
    """`reader(tree)`: remembered per file being typed in (`path`), parsed afresh otherwise."""
    if path is None:
        return reader(parse(grammar, source))
    return read_imports(grammar, source, path, reader)


def read_imports(grammar: str, source: str, path: str, reader: Callable[[object], T]) -> T:
    """`reader(tree)` for the file being typed in, where `reader` reads its import statements.

    Those change only when an edit touches one, so an edit that does not (nearly every keystroke)
    keeps the last tree, and the last answer, instead of reparsing: tree-sitter's incremental
    reparse of a Python file costs most of a full parse (about 320 of 500 ms at 3 MB, holding the
    GIL). An edit touches an import when its lines, before or after, hold an import word, or when
    it lies inside a statement whose first line does (a name added to `from m import (...)`).
    """
    data = source.encode("utf-8", "surrogatepass")
    with _locks.setdefault(grammar, threading.Lock()):
        previous = _live.get((grammar, path))
        if previous is not None and (previous[0] == data or not _touches_imports(grammar, previous[0], data, previous[1])):
            tree = previous[1]
            _live.move_to_end((grammar, path))
        else:
            tree = _parse_locked(grammar, data, path)
        key = (grammar, path, reader)
        reading = _readings.get(key)
        if reading is not None and reading[0] is tree:
            return reading[1]
    result = reader(tree)
    with _locks[grammar]:
        _readings[key] = (tree, result)
        while len(_readings) > 4 * LIVE_TREES:
            _readings.popitem(last=False)
    return result


def _touches_imports(grammar: str, old: bytes, new: bytes, old_tree) -> bool:
    words = IMPORT_WORDS[grammar]
    start, old_end, new_end = _changed_span(old, new)
    if words.search(_whole_lines(old, start, old_end)) or words.search(_whole_lines(new, start, new_end)):
        return True
    # Statements inside the span start on its lines; those it cuts into hold one of its ends.
    for edge in (start, old_end):
        node = old_tree.root_node.descendant_for_byte_range(edge, edge)
        while node is not None and node.parent is not None:
            if words.search(_whole_lines(old, node.start_byte, node.start_byte)):
                return True
            node = node.parent
    return False


def _whole_lines(data: bytes, start: int, end: int) -> bytes:
    line_end = data.find(b"\n", end)
    return data[data.rfind(b"\n", 0, start) + 1 : len(data) if line_end < 0 else line_end]


def _changed_span(old: bytes, new: bytes) -> tuple[int, int, int]:
    """(start, end in `old`, end in `new`) of what lies between the common prefix and suffix."""
    start = common_prefix(old, new)
    end = common_suffix(old, new, min(len(old), len(new)) - start)
    return start, len(old) - end, len(new) - end


def _edit(old: bytes, new: bytes) -> dict:
    """The one edit that turns `old` into `new`: what lies between their common prefix and suffix."""
    start, old_end, new_end = _changed_span(old, new)
    return dict(
        start_byte=start, old_end_byte=old_end, new_end_byte=new_end,
        start_point=_point(old, start), old_end_point=_point(old, old_end), new_end_point=_point(new, new_end),
    )


def _point(data: bytes, offset: int) -> tuple[int, int]:
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


def outline(lines: list[str], node, body, members) -> tuple[int, int, str]:
    """A definition that fits MAX_DEFINITION_LINES whole; a longer one (a class, a trait) as its
    header and the first line of each member in `members` (nodes inside `body`)."""
    start, end = node.start_point[0], node.end_point[0] + 1
    if end - start <= MAX_DEFINITION_LINES or body is None:
        return snippet(lines, node)
    kept = list(range(start, body.start_point[0] + 1))
    kept += [m.start_point[0] for m in members if m.start_point[0] > kept[-1]]
    kept = sorted(set(kept))[:MAX_DEFINITION_LINES]
    return start, end, "".join(lines[i] for i in kept)


def snippet(lines: list[str], node) -> tuple[int, int, str]:
    """(start line, end line, text) of a definition, its text cut to MAX_DEFINITION_LINES."""
    start, end = node.start_point[0], node.end_point[0] + 1
    return start, end, "".join(lines[start : min(end, start + MAX_DEFINITION_LINES)])


# Where the cursor is, for `disabledIn`: node types that are comments, strings, or the inside of a
# string (content nodes never hold the quotes), across the grammars fimls has.
COMMENT_NODES = frozenset({"comment", "line_comment", "block_comment", "doc_comment"})
STRING_NODES = frozenset({
    "string", "string_literal", "raw_string_literal", "template_string", "interpreted_string_literal",
    "char_literal", "character_literal", "rune_literal", "text_block", "concatenated_string",
})
STRING_INSIDE_NODES = frozenset({"string_content", "string_fragment", "interpreted_string_literal_content"})
_GRAMMAR_OF_LANGUAGE = {"python": "python", "javascript": "javascript", "go": "go", "rust": "rust", "java": "java", "c": "c", "cpp": "cpp"}
CURSOR_WINDOW_CHARS = 8000  # the text before the cursor a decision reads (a docstring longer than this is missed)


def grammar_for(path: str) -> str | None:
    if path.endswith(".tsx"):
        return "tsx"
    language = language_of(path)
    return "typescript" if language == "typescript" else _GRAMMAR_OF_LANGUAGE.get(language or "")


def cursor_in(path: str, document: str, offset: int) -> str | None:
    """"comment" or "string" when the cursor at `offset` of `document` (the file at `path`) is
    inside one, else None (and None for languages without a grammar). Decided by tree-sitter on
    the text around the cursor; where the parse is in error there (a string or comment being typed,
    not yet closed), by the cursor's line read lexically."""
    grammar = grammar_for(path)
    if grammar is None:
        return None
    start = document.rfind("\n", 0, max(0, offset - CURSOR_WINDOW_CHARS)) + 1
    line_end = document.find("\n", offset)
    before = document[start:offset].encode("utf-8", "surrogatepass")
    after = document[offset : len(document) if line_end < 0 else line_end].encode("utf-8", "surrogatepass")
    with _locks.setdefault(grammar, threading.Lock()):
        tree = parser(grammar).parse(before + after)
    at = len(before)
    node = tree.root_node.descendant_for_byte_range(max(0, at - 1), at)
    in_error = False
    while node is not None and node.parent is not None:
        if node.type in COMMENT_NODES and node.start_byte < at:
            text = node.text
            if at < node.end_byte or not text.rstrip().endswith((b"*/", b"-->", b"-}", b"*)")):
                return "comment"
        if node.type in STRING_INSIDE_NODES or (node.type in STRING_NODES and node.start_byte < at < node.end_byte):
            return "string"
        in_error = in_error or node.type == "ERROR" or node.has_error
        node = node.parent
    return _lexically_in(grammar, before.decode("utf-8", "surrogatepass")) if in_error or tree.root_node.has_error else None


def _lexically_in(grammar: str, before: str) -> str | None:
    """The cursor's line before it, read for an open quote or a line comment; and an unclosed block
    comment above it (C-like languages)."""
    line = before[before.rfind("\n") + 1 :]
    line_comment = "#" if grammar == "python" else "//"
    quote, i = None, 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\":
                i += 1
            elif line.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif line.startswith(line_comment, i):
            return "comment"
        elif char in "\"'`":
            quote = line[i : i + 3] if grammar == "python" and line[i : i + 3] in ('"""', "'''") else char
            i += len(quote) - 1
        i += 1
    if quote:
        return "string"
    if grammar != "python" and before.rfind("/*") > before.rfind("*/"):
        return "comment"
    if grammar == "python" and (before.count('"""') % 2 or before.count("'''") % 2):
        return "string"  # an unclosed docstring above
    return None
