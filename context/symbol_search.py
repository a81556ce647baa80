"""The `symbols` ranker: definitions of the name at the cursor and of its receiver chain, from the
workspace symbol index, told apart by what the receiver is.

`self.client.send(` asks for `send`: the receiver `self.client` is typed where it can be seen —
`self` is the enclosing class, `self.client` an attribute whose assignment (`self.client =
Client(...)`) or annotation says its class, a local or a parameter its annotation or the call
that made it (a function's return annotation followed), a module name its import — and the
definitions of `send` in that class or its bases come first. Then the definitions of the name in
the files the receiver's module names, then all others, nearest the current file first (same
folder, then the longest shared path). After a `.`, the class of what precedes it comes too.
"""

from __future__ import annotations

import functools
import logging
import posixpath
import re

from fimls.context.candidates import Candidate
from fimls.context.symbol_scan import last_name
from fimls.context.symbols import Definition, SymbolIndex

log = logging.getLogger(__name__)

LOOKBACK_CHARS = 30_000  # the text before the cursor searched for a receiver's type
BASES_DEPTH = 4
REEXPORT_DEPTH = 3
SAME_NAME_SHOWN = 6  # definitions of a name found by name alone: only the nearest this many
SAME_NAME_READ = 2000  # a name defined more often than this (`__init__`) is not looked up by name alone
SELF_NAMES = frozenset({"self", "this", "cls"})
_IDENTIFIER_END = re.compile(r"[A-Za-z_$][\w$]*$")


def cursor_chain(text: str, offset: int) -> tuple[list[tuple[str, bool]], str]:
    """The names that end at the cursor, as (name, called) from the left, and what follows the
    last (`(`, `.`, or ""): `self.pool.get(` -> ([("self", False), ("pool", False), ("get",
    False)], "("); `make().run.` -> ([("make", True), ("run", False)], ".")."""
    i = offset
    trailing = ""
    if i > 0 and text[i - 1] in "(.":
        trailing = text[i - 1]
        i -= 1
    elif text.endswith("::", 0, i) or text.endswith("->", 0, i):
        trailing = "."
        i -= 2
    chain: list[tuple[str, bool]] = []
    called = False
    while i > 0:
        match = _IDENTIFIER_END.search(text, max(0, i - 200), i)
        if match is None:
            break
        chain.append((match.group(), called))
        i = match.start()
        called = False
        if text.endswith("?.", 0, i) or text.endswith("->", 0, i) or text.endswith("::", 0, i):
            i -= 2
        elif i > 0 and text[i - 1] == ".":
            i -= 1
        else:
            break
        if i > 0 and text[i - 1] in ")]":
            start = _opening(text, i - 1)
            if start is None:
                break
            called = text[i - 1] == ")"
            i = start
    chain.reverse()
    return chain, trailing


def _opening(text: str, close: int, limit: int = 400) -> int | None:
    """Where the bracket closing at `close` opens (None past `limit` characters)."""
    pairs = {")": "(", "]": "["}
    want, depth = pairs[text[close]], 0
    for i in range(close, max(-1, close - limit), -1):
        char = text[i]
        if char in ")]":
            depth += 1
        elif char in "([":
            depth -= 1
            if depth == 0:
                return i if char == want else None
    return None


class Resolver:
    """Types of the names of one cursor's chain, read from the current file's text before the
    cursor and from the symbol index."""

    def __init__(self, symbols: SymbolIndex, current: str, text: str, offset: int, imports: NoImports):
        self.symbols = symbols
        self.current = current
        self.before = text[max(0, offset - LOOKBACK_CHARS) : offset]
        self.imports = imports

    def in_modules(self, modules: list[str], name: str) -> list[Definition]:
        """The top-level definitions of `name` in `modules`, or in the modules they take it from
        (a package's `__init__` re-exporting it)."""
        for _ in range(REEXPORT_DEPTH + 1):
            if not modules:
                return []
            found = [d for d in self.symbols.named(name) if d.path in modules and d.container is None]
            if found:
                return found
            modules = [source for path in modules for source in self.imports.reexported(path, name)]
        return []

    @functools.cached_property
    def enclosing_class(self) -> str | None:
        before = self.before
        if self.current.endswith((".py", ".pyi")):
            line_start = before.rfind("\n") + 1
            indent = len(before[line_start:]) - len(before[line_start:].lstrip())
            for match in reversed(list(re.finditer(r"^([ \t]*)class[ \t]+(\w+)", before, re.M))):
                if len(match[1]) < max(indent, 1):
                    return match[2]
            return None
        if self.current.endswith(".go"):
            found = re.findall(r"^func[ \t]*\([ \t]*\w+[ \t]+\*?(\w+)", before, re.M)
            return found[-1] if found else None
        if self.current.endswith(".rs"):
            found = re.findall(r"^[ \t]*impl(?:[ \t]*<[^{\n]*?>)?[ \t]+(?:[\w:]+(?:<[^{\n]*?>)?[ \t]+for[ \t]+)?(?:\w+::)*(\w+)", before, re.M)
            return found[-1] if found else None
        found = re.findall(r"\b(?:class|struct|interface)[ \t]+(\w+)", before)
        return found[-1] if found else None

    def type_of_local(self, name: str) -> str | None:
        """The class of a local variable or parameter `name`, from its nearest annotation,
        declaration or the call that assigned it."""
        escaped = re.escape(name)
        patterns = (
            rf"(?<![\w$.\"'])(?:let\s+|const\s+|var\s+|mut\s+)?{escaped}[ \t]*[?!]?:[ \t]*&?(?:mut[ \t]+)?(?P<type>[A-Za-z_][\w.:]*(?:\[[^\]=\n]*\]|<[^>=\n]*>)?)",
            rf"(?<![\w$.]){escaped}[ \t]*(?::=|=)[ \t]*(?:await[ \t]+|new[ \t]+|&)?(?P<call>[A-Za-z_$][\w.$:]*)[ \t]*(?:<[^>\n]*>)?[({{]",
            rf"(?<![\w$.])with[ \t]+(?P<ctx>[A-Za-z_][\w.]*)\([^\n]*\bas[ \t]+{escaped}\b",
            rf"\b(?P<decl>[A-Z]\w*)(?:<[^>\n]*>)?[ \t]+{escaped}[ \t]*[=;,)]",
            rf"(?<![\w$.]){escaped}[ \t]+\*?(?P<go>(?:\w+\.)?[A-Z]\w*)\b",
        )
        best: tuple[int, str, str] | None = None
        for pattern in patterns:
            for match in re.finditer(pattern, self.before):
                if best is None or match.start() > best[0]:
                    group = next(g for g in ("type", "call", "ctx", "decl", "go") if g in match.re.groupindex and match[g])
                    best = (match.start(), group, match[group])
        if best is None:
            return None
        _, group, written = best
        if group in ("call", "ctx"):
            return self.returned_by(written)
        return last_name(written)

    def returned_by(self, callee: str) -> str | None:
        """What calling `callee` (`Client`, `make_client`, `pkg.Client.new`) gives: a class it
        names, or the return type the index knows for a function of that name."""
        name = re.split(r"\.|::", callee)[-1]
        if name == "new" and ("::" in callee or "." in callee):
            return last_name(re.split(r"\.|::", callee)[-2])
        if self.symbols.classes(name):
            return name
        for definition in self.symbols.named(name):
            if definition.kind in ("function", "method") and definition.type:
                return definition.type
        return name if name[:1].isupper() else None

    def attribute_type(self, owner_types: list[str], attribute: str) -> str | None:
        if owner_types and self.enclosing_class in owner_types:
            escaped = re.escape(attribute)
            found = None
            for match in re.finditer(
                rf"(?:self|this)\.{escaped}[ \t]*(?::[ \t]*(?P<type>[^=\n]+?))?[ \t]*=(?!=)[ \t]*(?:new[ \t]+)?"
                rf"(?:(?P<call>[A-Za-z_][\w.]*(?=[ \t]*\())|(?P<value>[A-Za-z_]\w*)[ \t]*(?:$|[;\n]))?",
                self.before,
            ):
                found = match
            if found is not None:
                if found["type"]:
                    return last_name(found["type"])
                if found["call"]:
                    return self.returned_by(found["call"])
                if found["value"]:  # `self.headers = headers`: the parameter's (or local's) type
                    local = self.type_of_local(found["value"])
                    if local:
                        return local
        for definition in self.members(owner_types, attribute):
            if definition.type and definition.kind == "attribute":
                # An attribute's type is a class, or what it was assigned from: a call to follow.
                return definition.type if self.symbols.classes(definition.type) else self.returned_by(definition.type)
            if definition.type and definition.kind == "method":  # a property
                return definition.type
        return None

    def bases(self, types: list[str]) -> list[str]:
        """`types` and their base classes, nearest first."""
        seen = list(dict.fromkeys(types))
        frontier = list(seen)
        for _ in range(BASES_DEPTH):
            following = []
            for name in frontier:
                for definition in self.symbols.classes(name):
                    for base in (definition.type or "").split(","):
                        if base and base not in seen:
                            seen.append(base)
                            following.append(base)
            frontier = following
            if not frontier:
                break
        return seen

    def members(self, types: list[str], name: str) -> list[Definition]:
        if not types:
            return []
        order = {t: i for i, t in enumerate(self.bases(types))}
        found = [d for d in self.symbols.named(name) if d.container in order]
        return sorted(found, key=lambda d: order[d.container])

    def receiver(self, chain: list[tuple[str, bool]]) -> tuple[list[str], list[str]]:
        """(classes, module files) the names of `chain` give, in turn: `self.client` -> the class of
        the attribute `client` of the enclosing class."""
        types: list[str] = []
        modules: list[str] = []
        for i, (name, called) in enumerate(chain):
            if i == 0:
                if name in SELF_NAMES:
                    enclosing = self.enclosing_class
                    types = [enclosing] if enclosing else []
                elif name == "super" and called:  # the enclosing class's bases
                    enclosing = self.enclosing_class
                    types = self.bases([enclosing])[1:] if enclosing else []
                elif (files := self.imports.modules_of(name)):
                    modules = files
                elif self.symbols.classes(name):  # a class's own members, or what constructing it gives
                    types = [name]
                elif called:
                    returned = self.returned_by(name)
                    types = [returned] if returned else []
                else:
                    local = self.type_of_local(name)
                    types = [local] if local else []
                continue
            if modules:
                dotted = ".".join(n for n, _ in chain[: i + 1])
                deeper = self.imports.modules_of(dotted)
                if deeper:
                    modules = deeper
                    continue
                in_module = self.in_modules(modules, name)
                modules = []
                if not in_module:
                    return [], []
                kind = in_module[0]
                types = [name] if kind.kind == "class" else ([kind.type] if kind.type else [])
                continue
            if not types:
                return [], []
            member = self.members(types, name)
            if called:
                returned = next((d.type for d in member if d.kind in ("method", "function") and d.type), None)
                types = [returned] if returned else []
            else:
                attribute = self.attribute_type(types, name)
                types = [attribute] if attribute else ([name] if self.symbols.classes(name) else [])
        return types, modules


class NoImports:
    """What the current file's imports say about a name, as this ranker asks it: the questions,
    answered for a file with no imports (context/imports.py's ImportView answers them)."""

    def modules_of(self, name: str) -> list[str]:
        """The workspace files `name` stands for as a module (`import pkg.mod as m` -> m)."""
        return []

    def sources_of(self, name: str) -> list[str]:
        """The workspace modules the file imports `name` from by name."""
        return []

    def reexported(self, path: str, name: str) -> list[str]:
        """The modules the module file `path` takes `name` from (a package re-exporting it)."""
        return []


def symbols_search(
    symbols: SymbolIndex, current: str, text: str, offset: int, text_of, limit: int,
    exclude=lambda path, start, end: False, imports: NoImports = NoImports(),
) -> list[Candidate]:
    """`text_of(path)` gives an indexed file's text."""
    try:
        return _search(symbols, current, text, offset, text_of, limit, exclude, imports)
    except Exception:  # a half-typed file, or one the scans misread, must never break completion
        log.exception("symbols ranker failed at offset %d of %s", offset, current)
        return []


def _search(symbols: SymbolIndex, current: str, text: str, offset: int, text_of, limit: int, exclude, imports: NoImports) -> list[Candidate]:
    chain, trailing = cursor_chain(text, offset)
    if not chain:
        return []
    resolver = Resolver(symbols, current, text, offset, imports)
    target = chain[-1][0]
    types, modules = resolver.receiver(chain[:-1])
    wanted: list[tuple[str, Definition, float]] = []  # (name, definition, score)
    for definition in resolver.members(types, target):
        wanted.append((target, definition, 4.0))
    for definition in resolver.in_modules(modules, target):
        wanted.append((target, definition, 3.5))
    if len(chain) == 1:  # a bare name: the module the file imports it from, when it does
        for definition in resolver.in_modules(imports.sources_of(target), target):
            wanted.append((target, definition, 3.5))
    # After `x.` the class of `x` is wanted, and while a member name is being typed after `x.`
    # (no definition has that name yet), the class of `x`.
    typing_member = trailing == "" and len(chain) > 1 and not symbols.named(target)
    for name in resolver.receiver(chain)[0] if trailing == "." else types if typing_member else ():
        for definition in symbols.classes(name):
            wanted.append((name, definition, 3.0))
    # Then every definition of the name, nearest the current file first, members first after a
    # receiver and top-level ones for a bare name.
    member_wanted = len(chain) > 1
    nearness = _Nearness(current)

    def by_name_score(definition: Definition) -> float:
        return 1.0 + nearness(definition.path) / 100 - 0.5 * ((definition.container is not None) != member_wanted)

    same_name = symbols.named(target)
    if len(same_name) <= SAME_NAME_READ:
        for definition in sorted(same_name, key=by_name_score, reverse=True)[:SAME_NAME_SHOWN]:
            wanted.append((target, definition, by_name_score(definition)))
    if member_wanted and not types and not modules:
        for name, _ in chain[:-1]:  # a receiver named like a class (`Client.create(`)
            for definition in symbols.classes(name)[:2]:
                wanted.append((name, definition, 0.5))
    return _shown(symbols, wanted, text_of, limit, exclude)


class _Nearness:
    """How near a path lies to the current file: the folders they share, counted from the root,
    and 10 more in the same folder; remembered per folder (a common name has thousands of
    definitions in a few hundred folders)."""

    def __init__(self, current: str):
        self.current = current
        self.here = posixpath.dirname(current).split("/")
        self.folders: dict[str, int] = {}

    def __call__(self, path: str) -> int:
        if path == self.current:
            return 0
        folder = path.rpartition("/")[0]
        found = self.folders.get(folder)
        if found is None:
            there = folder.split("/")
            shared = 0
            for a, b in zip(self.here, there):
                if a != b:
                    break
                shared += 1
            found = self.folders[folder] = shared + (10 if self.here == there else 0)
        return found


def _shown(symbols: SymbolIndex, wanted, text_of, limit: int, exclude) -> list[Candidate]:
    seen: set[tuple[str, int]] = set()
    ranked: list[Candidate] = []
    for name, definition, score in sorted(wanted, key=lambda item: -item[2]):
        key = (definition.path, definition.line)
        if key in seen:
            continue
        seen.add(key)
        source = text_of(definition.path)
        if source is None:
            continue
        shown = symbols.shown(name, definition, source)
        if shown is None or exclude(definition.path, shown[0], shown[1]):
            continue
        ranked.append(Candidate(definition.path, shown[0], shown[1], shown[2], "symbols", score))
        if len(ranked) == limit:
            break
    return ranked
