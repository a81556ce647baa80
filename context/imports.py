"""The `imports` ranker: resolve the current file's imports to workspace files and take the
definitions of the names used near the cursor (the whole definition when short, an outline of a
long class). Parsed with tree-sitter's official grammars: Python here, JavaScript/TypeScript in
imports_js.py, Go in imports_go.py, Rust in imports_rust.py, Java in imports_java.py, C and C++
in imports_c.py; other languages fall back to the other rankers."""

from __future__ import annotations

import posixpath
from dataclasses import replace

from fimls.context import imports_c, imports_go, imports_java, imports_js, imports_rust
from fimls.context.candidates import Candidate, identifiers, lines_before
from fimls.context.syntax import MAX_DEFINITION_LINES, Import, parse, read_tree

REEXPORT_DEPTH = 3  # barrel files re-exporting barrel files
NEARBY_LINES = 40  # names used this near the cursor are the ones whose definitions are wanted


def python_imports(source: str, path: str | None = None) -> list[Import]:
    return read_tree("python", source, path, _python_imports_of)


def _python_imports_of(tree) -> list[Import]:
    found: list[Import] = []
    for node in tree.root_node.children:
        if node.type == "import_statement":
            for child in node.named_children:
                if child.type == "dotted_name":
                    found.append(Import(child.text.decode(), 0, (), None))
                elif child.type == "aliased_import":
                    name, alias = child.child_by_field_name("name"), child.child_by_field_name("alias")
                    found.append(Import(name.text.decode(), 0, (), alias.text.decode() if alias else None))
        elif node.type == "import_from_statement":
            module_node = node.child_by_field_name("module_name")
            text = module_node.text.decode() if module_node else ""
            level = len(text) - len(text.lstrip("."))
            names = []
            for child in node.children_by_field_name("name"):
                target = child.child_by_field_name("name") if child.type == "aliased_import" else child
                names.append(target.text.decode())
            found.append(Import(text.lstrip("."), level, tuple(names), None))
    return found


_definitions_cache: dict[str, tuple[str, dict]] = {}
_reexports_cache: dict[str, tuple[str, list]] = {}
DEFINITIONS_CACHED = 256


def definitions_of(path: str, source: str) -> dict[str, tuple[int, int, str]]:
    if path.endswith((".py", ".pyi")):
        return python_definitions(source)
    if imports_js.is_source(path):
        return imports_js.definitions(source, path)
    if path.endswith(".go"):
        return imports_go.definitions(source)
    if path.endswith(".rs"):
        return imports_rust.definitions(source)
    if path.endswith(".java"):
        return imports_java.definitions(source)
    if imports_c.is_source(path):
        return imports_c.definitions(source, path)
    return {}


def _parsed(cache: dict, path: str, source: str, parse_file, empty):
    """`parse_file(path, source)` for a file, parsed again only when its text is a new string; a
    half-written file that fails to parse gives `empty` (it must never break completion)."""
    hit = cache.get(path)
    if hit is not None and hit[0] is source:
        return hit[1]
    try:
        result = parse_file(path, source)
    except Exception:
        result = empty
    if len(cache) >= DEFINITIONS_CACHED:
        cache.pop(next(iter(cache)))
    cache[path] = (source, result)
    return result


def cached_definitions(path: str, source: str) -> dict[str, tuple[int, int, str]]:
    """The top-level definitions of a file: name -> (start line, end line, snippet text)."""
    return _parsed(_definitions_cache, path, source, definitions_of, {})


def python_definitions(source: str) -> dict[str, tuple[int, int, str]]:
    """Top-level functions and classes: name -> (start line, end line, snippet text)."""
    tree = parse("python", source)
    lines = source.splitlines(keepends=True)
    out = {}
    for node in tree.root_node.children:
        definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if definition is None or definition.type not in ("function_definition", "class_definition"):
            continue
        name = definition.child_by_field_name("name").text.decode()
        start, end = node.start_point[0], node.end_point[0] + 1
        body = lines[start:end]
        if len(body) > MAX_DEFINITION_LINES:
            body = _outline(definition, lines, start) if definition.type == "class_definition" else body[:MAX_DEFINITION_LINES]
        out[name] = (start, end, "".join(body))
    return out


def _outline(class_node, lines: list[str], start: int) -> list[str]:
    """A long class as its header, its first body lines and its method signatures."""
    header_end = class_node.child_by_field_name("body").start_point[0]
    outline = lines[start : header_end + 1][:8]
    for child in class_node.child_by_field_name("body").named_children:
        method = child.child_by_field_name("definition") if child.type == "decorated_definition" else child
        if method is not None and method.type == "function_definition":
            body = method.child_by_field_name("body")
            outline += lines[child.start_point[0] : body.start_point[0]] or [lines[child.start_point[0]]]
            outline.append(" " * (method.start_point[1] + 4) + "...\n")
    return outline


def module_stem(path: str) -> str | None:
    """The module name a Python file answers to: `c` for `a/b/c.py` and for `a/b/c/__init__.py`."""
    if path.endswith("/__init__.py") or path == "__init__.py":
        return path.rsplit("/", 2)[-2] if "/" in path else None
    if path.endswith((".py", ".pyi")):
        return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return None


def resolve_python_module(module: str, level: int, current: str, paths_named) -> list[str]:
    """Workspace paths a Python import may refer to, best first. `paths_named(stem)` gives the
    indexed paths of modules called `stem` (see `module_stem`)."""
    parts = [p for p in module.split(".") if p]
    if level:
        base = current.split("/")[:-1]
        base = base[: len(base) - (level - 1)] if level > 1 else base
        stem = "/".join(base + parts).lstrip("/")
        options = [f"{stem}.py", f"{stem}/__init__.py"] if parts else [f"{'/'.join(base)}/__init__.py".lstrip("/")]
        known = set(paths_named(parts[-1] if parts else (base[-1] if base else "")))
        return [o for o in options if o in known]
    if not parts:
        return []
    tail = "/".join(parts)
    endings = (f"{tail}.py", f"{tail}.pyi", f"{tail}/__init__.py")
    matches = [p for p in paths_named(parts[-1]) if p in endings or p.endswith(tuple("/" + e for e in endings))]
    return sorted(matches, key=len)


def imports_search(
    current: str, text: str, offset: int, text_of, paths_named, limit: int, exclude=lambda path, start, end: False,
    files_in=lambda folder: (), folders=lambda: (), files_named=lambda name: (),
) -> list[Candidate]:
    """`text_of(path)` gives an indexed file's text (or None); `paths_named(stem)` the Python
    modules called `stem`; `files_in(folder)` the indexed files of a folder; `folders()` them all;
    `files_named(name)` the indexed files called `name` (a file name, no folder)."""
    # Names used near the cursor, the nearest last.
    order = {name: i for i, name in enumerate(identifiers(lines_before(text, offset, NEARBY_LINES)))}
    try:
        wanted = imported_names(current, text, order, text_of, paths_named, files_in, folders, files_named)
    except Exception:  # a half-typed file must never break completion
        return []
    candidates: dict[tuple[str, str], Candidate] = {}
    for path, name in wanted:
        if path == current or (path, name) in candidates:
            continue
        found = definition(path, name, text_of, REEXPORT_DEPTH)
        if found is None or exclude(found[0], found[1], found[2]):
            continue
        where, start, end, body = found
        used_at = order.get(name, -1)
        score = 1.0 + used_at / (len(order) + 1) if used_at >= 0 else 0.5
        candidates[(where, name)] = Candidate(where, start, end, body, "imports", score)
    return _without_repeats(sorted(candidates.values(), key=lambda c: -c.score), limit)


def _without_repeats(ranked: list[Candidate], limit: int) -> list[Candidate]:
    """A method of a short class, found by its own name and inside its class: the class alone,
    placed where the better of the two was. (A long class is an outline without method bodies,
    so there both stay.)"""
    kept: list[Candidate] = []
    for candidate in ranked:
        for i, better in enumerate(kept):
            if better.path == candidate.path and candidate.text in better.text:
                break
            if better.path == candidate.path and better.text in candidate.text:
                kept[i] = replace(candidate, score=better.score)
                break
        else:
            kept.append(candidate)
            if len(kept) == limit:
                break
    return kept


def warm(current: str, text: str, text_of, paths_named, files_in, folders, files_named) -> None:
    """Parse the current file and the files its imports reach, so that the first request in a
    file just opened finds their definitions parsed."""
    order = {name: i for i, name in enumerate(dict.fromkeys(identifiers(text)))}
    try:
        reached = dict.fromkeys(path for path, _ in imported_names(current, text, order, text_of, paths_named, files_in, folders, files_named))
    except Exception:  # a half-typed file must never break completion
        return
    for path in reached:
        source = text_of(path)
        if source is not None:
            cached_definitions(path, source)


def imported_names(current, text, order, text_of, paths_named, files_in, folders, files_named) -> list[tuple[str, str]]:
    """(workspace path, name) pairs the current file can see through its imports, in import order.
    A namespace import (`import m`, `* as m`, a Go package) offers every name used near the cursor."""
    used = tuple(order)
    wanted: list[tuple[str, str]] = []
    if current.endswith((".py", ".pyi")):
        for imported in dict.fromkeys(python_imports(text, current)):  # a statement repeated resolves once
            for path in resolve_python_module(imported.module, imported.level, current, paths_named)[:1]:
                wanted += [(path, name) for name in imported.names or used]
            for name in imported.names:  # `from pkg import module`: the module itself
                sub = f"{imported.module}.{name}" if imported.module else name
                for path in resolve_python_module(sub, imported.level, current, paths_named)[:1]:
                    wanted += [(path, n) for n in used]
    elif imports_js.is_source(current):
        exists = lambda path: text_of(path) is not None  # noqa: E731
        for imported in dict.fromkeys(imports_js.imports(text, current)):
            for path in imports_js.resolve(imported.module, current, exists):
                wanted += [(path, name) for name in imported.names or used]
    elif current.endswith(".go"):
        for path in imports_go.same_package(current, files_in):
            wanted += [(path, name) for name in used]
        for imported in dict.fromkeys(imports_go.imports(text, current)):
            folder = imports_go.package_folder(imported.module, folders())
            if folder is not None and folder != posixpath.dirname(current):
                for path in imports_go.files_of_package(folder, current, files_in):
                    wanted += [(path, name) for name in used]
    elif current.endswith(".rs"):
        exists = lambda path: text_of(path) is not None  # noqa: E731
        crates = lambda: imports_rust.workspace_crates(files_named)  # noqa: E731
        # An item imported by name brings its impl blocks' methods: those used are wanted too.
        for path, names in imports_rust.reached(current, text, exists, crates, used):
            wanted += [(path, name) for name in dict.fromkeys(names + used)]
    elif current.endswith(".java"):
        for imported in dict.fromkeys(imports_java.imports(text, current)):
            for path in imports_java.resolve(imported, files_named, files_in, folders):  # the class, its members
                wanted += [(path, name) for name in dict.fromkeys(imported.names + used)]
        for path in imports_java.same_folder_files(current, files_in):  # its package: no import needed
            wanted += [(path, name) for name in used]
    elif imports_c.is_source(current):
        for path in imports_c.reached_headers(current, text, text_of, files_named):
            wanted += [(path, name) for name in used]
    return wanted


def definition(path: str, name: str, text_of, depth: int) -> tuple[str, int, int, str] | None:
    """Where `name` is defined for an importer of `path`: in it, or behind its re-exports."""
    source = text_of(path)
    if source is None:
        return None
    found = cached_definitions(path, source).get(name)
    if found is not None:
        return (path, *found)
    if depth <= 0 or not imports_js.is_source(path):
        return None
    exists = lambda candidate: text_of(candidate) is not None  # noqa: E731
    reexports = _parsed(_reexports_cache, path, source, lambda p, s: imports_js.reexports(s, p), [])
    for reexport in reexports:
        if reexport.names and name not in reexport.names:
            continue
        for target in imports_js.resolve(reexport.module, path, exists):
            found = definition(target, name, text_of, depth - 1)
            if found is not None:
                return found
    return None


def module_files(current, text, name, text_of, paths_named, files_in, folders) -> list[str]:
    """The workspace files a name of the current file stands for as a module: `m` after `import
    pkg.mod as m`, `mod` after `from pkg import mod`, `pkg.mod` after `import pkg.mod`, a
    JavaScript namespace import (`import * as ns`), a Go package's name."""
    try:
        if current.endswith((".py", ".pyi")):
            for imported in python_imports(text, current):
                if imported.names:
                    if name in imported.names:
                        sub = f"{imported.module}.{name}" if imported.module else name
                        found = resolve_python_module(sub, imported.level, current, paths_named)[:1]
                        if found:
                            return found
                elif imported.alias == name:
                    return resolve_python_module(imported.module, imported.level, current, paths_named)[:1]
                elif imported.alias is None and (imported.module == name or imported.module.startswith(name + ".")):
                    return resolve_python_module(name, 0, current, paths_named)[:1]
        elif imports_js.is_source(current):
            exists = lambda path: text_of(path) is not None  # noqa: E731
            for imported in imports_js.imports(text, current):
                if imported.alias == name:
                    return imports_js.resolve(imported.module, current, exists)
        elif current.endswith(".go"):
            for imported in imports_go.imports(text, current):
                if imported.alias == name:
                    folder = imports_go.package_folder(imported.module, folders())
                    return imports_go.files_of_package(folder, current, files_in) if folder is not None else []
    except Exception:  # a half-typed file must never break completion
        return []
    return []


def python_reexport(path: str, name: str, text_of, paths_named) -> list[str]:
    """The module a Python package's file takes `name` from (`from .decorators import command` in
    `click/__init__.py`), for a name it re-exports rather than defines."""
    source = text_of(path)
    if source is None or not path.endswith((".py", ".pyi")):
        return []
    imported = _parsed(_reexports_cache, path, source, lambda _path, text: python_imports(text), [])
    for statement in imported:
        if name in statement.names:
            return resolve_python_module(statement.module, statement.level, path, paths_named)[:1]
    return []


def name_sources(current, text, name, text_of, paths_named) -> list[str]:
    """The workspace modules the current file imports `name` from by name (`from pkg.mod import
    name`, `import { name } from "./mod"`)."""
    try:
        if current.endswith((".py", ".pyi")):
            for imported in python_imports(text, current):
                if name in imported.names:
                    return resolve_python_module(imported.module, imported.level, current, paths_named)[:1]
        elif imports_js.is_source(current):
            exists = lambda path: text_of(path) is not None  # noqa: E731
            for imported in imports_js.imports(text, current):
                if name in imported.names:
                    return imports_js.resolve(imported.module, current, exists)
    except Exception:  # a half-typed file must never break completion
        return []
    return []


class ImportView:
    """What the current file's imports say about a name, as the symbols ranker asks it."""

    def __init__(self, current: str, text: str, text_of, paths_named, files_in, folders):
        self.current, self.text, self.text_of = current, text, text_of
        self.paths_named, self.files_in, self.folders = paths_named, files_in, folders

    def modules_of(self, name: str) -> list[str]:
        return module_files(self.current, self.text, name, self.text_of, self.paths_named, self.files_in, self.folders)

    def sources_of(self, name: str) -> list[str]:
        return name_sources(self.current, self.text, name, self.text_of, self.paths_named)

    def reexported(self, path: str, name: str) -> list[str]:
        return python_reexport(path, name, self.text_of, self.paths_named)
