"""The workspace symbol index: every definition of every indexed file by name (symbol_scan.py),
kept current from the workspace index's change events by the context builder, and the span and
text of a definition read from its file when a completion shows it."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import NamedTuple

from fimls.context.symbol_scan import scan
from fimls.context.syntax import MAX_DEFINITION_LINES

STATEMENT_LINES = 12  # an attribute or constant shown: its statement, up to this many lines
OUTLINE_LINES = 40  # a long class's outline, header included: about 500 tokens of a 1,024 budget
LINES_CACHED = 32
HEADER_LINES = 6  # a brace language's definition opens its body within this many lines, or has none


class Definition(NamedTuple):
    path: str
    line: int  # 0-based
    kind: str  # function, class, method, constant, attribute
    container: str | None
    type: str | None  # return type, attribute type, or a class's comma-separated bases


class SymbolIndex:
    def __init__(self) -> None:
        self._by_name: dict[str, list[Definition]] = {}
        # Per file, its names and definitions side by side (a (name, definition) pair per
        # definition would cost a fifth more memory on 10,000 files).
        self._in_file: dict[str, tuple[tuple[str, ...], tuple[Definition, ...]]] = {}
        self._lines: OrderedDict[str, tuple[str, list[str]]] = OrderedDict()

    def __len__(self) -> int:
        return sum(map(len, self._by_name.values()))

    def update(self, path: str, text: str | None) -> None:
        """Index `path` afresh (`text` None: it is gone)."""
        for name in set(self._in_file.pop(path, ((), ()))[0]):
            kept = [d for d in self._by_name[name] if d.path != path]
            if kept:
                self._by_name[name] = kept
            else:
                del self._by_name[name]
        if text is None:
            return
        names, definitions = [], []
        for found in scan(path, text):
            definition = Definition(path, found.line, found.kind, found.container, found.type)
            self._by_name.setdefault(found.name, []).append(definition)
            names.append(found.name)
            definitions.append(definition)
        if names:
            self._in_file[path] = (tuple(names), tuple(definitions))

    def named(self, name: str) -> list[Definition]:
        return self._by_name.get(name, [])

    def members(self, path: str, container: str) -> list[tuple[str, Definition]]:
        names, definitions = self._in_file.get(path, ((), ()))
        return [(name, d) for name, d in zip(names, definitions) if d.container == container]

    def classes(self, name: str) -> list[Definition]:
        return [d for d in self.named(name) if d.kind == "class"]

    # -- what a definition looks like when shown --------------------------------------------

    def lines_of(self, path: str, text: str) -> list[str]:
        hit = self._lines.get(path)
        if hit is not None and hit[0] is text:
            self._lines.move_to_end(path)
            return hit[1]
        lines = text.splitlines(keepends=True)
        self._lines[path] = (text, lines)
        if len(self._lines) > LINES_CACHED:
            self._lines.popitem(last=False)
        return lines

    def shown(self, name: str, definition: Definition, text: str) -> tuple[int, int, str] | None:
        """(start line, end line, text) of `definition` of `name` as a snippet: a function or a
        short class whole (cut at MAX_DEFINITION_LINES), a long class as its header and its
        members' first lines, an attribute or constant as its statement. None when the file no
        longer has it where the index says (edited since)."""
        lines = self.lines_of(definition.path, text)
        if definition.line >= len(lines) or name not in lines[definition.line]:
            return None
        if definition.kind in ("attribute", "constant"):
            end = _statement_end(lines, definition.line)
            return definition.line, end, "".join(lines[definition.line : end])
        start = _decorated_start(lines, definition.line)
        end = _block_end(lines, definition.line, definition.path)
        if end - start <= MAX_DEFINITION_LINES or definition.kind != "class":
            return start, end, "".join(lines[start : min(end, start + MAX_DEFINITION_LINES)])
        # A long class: its header (decorators and the statement that opens it, no docstring),
        # then the first line of each of its own members, once per name (overloads repeat it),
        # instance attributes (`self.x = ...`, inside methods) left out.
        kept = list(range(start, _statement_end(lines, definition.line)))
        shown_names: set[str] = set()
        for member, found in sorted(self.members(definition.path, name), key=lambda item: item[1].line):
            if kept[-1] < found.line < end and member not in shown_names and not lines[found.line].lstrip().startswith(("self.", "this.")):
                shown_names.add(member)
                kept.append(found.line)
        return start, end, "".join(lines[i] for i in kept[:OUTLINE_LINES])


_OPENERS, _CLOSERS = "([{", ")]}"


def _statement_end(lines: list[str], line: int) -> int:
    """The line after a statement that starts at `line`: where its brackets close."""
    depth = 0
    for i in range(line, min(len(lines), line + STATEMENT_LINES)):
        for char in lines[i]:
            depth += (char in _OPENERS) - (char in _CLOSERS)
        if depth <= 0:
            return i + 1
    return min(len(lines), line + STATEMENT_LINES)


def _decorated_start(lines: list[str], line: int) -> int:
    """Decorators and annotations (`@x` lines) right above a definition belong to it."""
    while line > 0 and lines[line - 1].lstrip().startswith("@"):
        line -= 1
    return line


_INDENT = re.compile(r"[ \t]*")


def _block_end(lines: list[str], line: int, path: str) -> int:
    if path.endswith((".py", ".pyi")):
        return _indented_end(lines, line)
    return _braced_end(lines, line)


def _indented_end(lines: list[str], line: int) -> int:
    """A Python block ends before the first line, after its header, indented no deeper than it
    (lines that close the header's brackets aside)."""
    indent = len(_INDENT.match(lines[line]).group().expandtabs(8))
    header_end = _statement_end(lines, line)
    for i in range(header_end, len(lines)):
        text = lines[i]
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(_INDENT.match(text).group().expandtabs(8)) <= indent and not stripped.startswith((")", "]", "}")):
            end = i
            while end > header_end and not lines[end - 1].strip():
                end -= 1
            return end
    return len(lines)


def _braced_end(lines: list[str], line: int) -> int:
    """A brace language's definition ends where the brace it opens closes. One whose first lines
    reach a `;` or a closing brace before any opening one (a prototype, a field, an interface's
    method) is that statement, as is one with no brace at all (a Go constant)."""
    depth, opened = 0, False
    for i in range(line, len(lines)):
        for char in lines[i]:
            if char == "{":
                depth += 1
                opened = True
            elif char == "}":
                depth -= 1
                if depth <= 0:
                    return i + 1 if opened else _statement_end(lines, line)
            elif char == ";" and not opened:
                return i + 1
        if not opened and i >= line + HEADER_LINES:
            break
    return _statement_end(lines, line) if not opened else len(lines)
