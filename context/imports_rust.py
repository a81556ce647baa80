"""Rust for the `imports` ranker. A module is a file: under a crate's `src/`, `crate::a::b` is
`a/b.rs` or `a/b/mod.rs` (`lib.rs`/`main.rs` for the crate itself), `self::`/`super::` are
relative to the current module, `mod m;` declares a child module, and a path that starts with
another workspace crate's name (`my_crate::x`, the folder `my-crate/`) goes to that crate.
`use p::{A, b::C}` is flattened; a used path is the longest prefix that is a module file plus the
item named after it. Definitions are the items of a file and the methods of its impl blocks."""

from __future__ import annotations

import posixpath

from fimls.context.syntax import Import, outline, parse, read_tree

_ITEMS = {
    "function_item", "function_signature_item", "struct_item", "enum_item", "union_item", "trait_item",
    "type_item", "const_item", "static_item", "macro_definition", "mod_item",
}
CRATE_ROOTS = ("lib.rs", "main.rs")


def _flatten(node, prefix: list[str], out: list[tuple[list[str], str | None]]) -> None:
    """(path, item) pairs of a use tree; item None for a glob (`p::*`)."""
    kind = node.type
    if kind in ("identifier", "crate", "self", "super", "metavariable"):
        out.append((prefix, node.text.decode()))
    elif kind == "scoped_identifier":
        path, name = node.child_by_field_name("path"), node.child_by_field_name("name")
        out.append((prefix + (_segments(path) if path is not None else []), name.text.decode()))
    elif kind == "use_as_clause":
        _flatten(node.child_by_field_name("path"), prefix, out)
    elif kind == "use_wildcard":
        inner = node.named_children[0] if node.named_children else None
        out.append((prefix + (_segments(inner) if inner is not None else []), None))
    elif kind == "scoped_use_list":
        path = node.child_by_field_name("path")
        for child in node.child_by_field_name("list").named_children:
            _flatten(child, prefix + (_segments(path) if path is not None else []), out)
    elif kind == "use_list":
        for child in node.named_children:
            _flatten(child, prefix, out)


def _segments(node) -> list[str]:
    return [part for part in node.text.decode().replace(" ", "").split("::") if part]


def uses(source: str, path: str | None = None) -> tuple[list[tuple[list[str], str | None]], list[str]]:
    """The file's `use` paths as (path, item) pairs, and the child modules it declares (`mod m;`)."""
    return read_tree("rust", source, path, _uses_of)


def _uses_of(tree) -> tuple[list[tuple[list[str], str | None]], list[str]]:
    used: list[tuple[list[str], str | None]] = []
    children = []
    for node in tree.root_node.named_children:
        if node.type == "use_declaration":
            _flatten(node.child_by_field_name("argument"), [], used)
        elif node.type == "mod_item" and node.child_by_field_name("body") is None:
            children.append(node.child_by_field_name("name").text.decode())
    return used, children


def crate_of(path: str) -> tuple[str, list[str]] | None:
    """(the crate's `src` folder, the module path of `path` inside it)."""
    parts = path.split("/")
    if "src" not in parts[:-1]:
        return None
    at = len(parts) - 1 - parts[:-1][::-1].index("src") - 1
    src, inner = "/".join(parts[: at + 1]), parts[at + 1 :]
    stem = inner[-1][: -len(".rs")] if inner[-1].endswith(".rs") else inner[-1]
    modules = inner[:-1] + ([] if stem in ("lib", "main", "mod") else [stem])
    return src, modules


def module_file(src: str, modules: list[str], exists) -> str | None:
    base = posixpath.join(src, *modules) if modules else src
    options = [base + ".rs", base + "/mod.rs"] if modules else [f"{src}/{root}" for root in CRATE_ROOTS]
    return next((option for option in options if exists(option)), None)


def resolve(segments: list[str], current: str, exists, crates) -> tuple[str, list[str]] | None:
    """(`src` folder, absolute module path) a use path starts from, or None for an outside crate."""
    here = crate_of(current)
    head, rest = segments[0], segments[1:]
    if head == "crate" and here:
        return here[0], rest
    if head in ("self", "super") and here:
        module = here[1]
        while segments and segments[0] == "super":
            module, segments = module[:-1], segments[1:]
        return here[0], module + [s for s in segments if s != "self"]
    other = crates().get(head)
    if other is not None:
        return other, rest
    if here and module_file(here[0], here[1] + [head], exists):  # a child module used bare (2015 paths)
        return here[0], here[1] + segments
    return None


def reached(current: str, text: str, exists, crates, used_names) -> list[tuple[str, tuple[str, ...]]]:
    """(file, names wanted from it) for each use path and child module; a whole module (a glob,
    a module imported as a name, a child module) offers `used_names`."""
    uses_found, children = uses(text, current)
    out = []
    here = crate_of(current)
    for name in children:
        if here and (found := module_file(here[0], here[1] + [name], exists)):
            out.append((found, used_names))
    for segments, item in uses_found:
        if item == "self":  # `use a::{self, B}`: the module a itself
            item = None
        start = resolve(segments + ([item] if item else []), current, exists, crates)
        if start is None:
            continue
        src, modules = start
        if item is not None and (found := module_file(src, modules, exists)) and modules:
            out.append((found, used_names))  # `use a::b` where b is a module
            continue
        within = modules[:-1] if item is not None else modules
        for end in range(len(within), -1, -1):  # the longest prefix that is a module file
            if found := module_file(src, within[:end], exists):
                out.append((found, (item,) if item is not None and end == len(within) else used_names))
                break
    return out


def definitions(source: str) -> dict[str, tuple[int, int, str]]:
    lines = source.splitlines(keepends=True)
    out: dict[str, tuple[int, int, str]] = {}
    methods = []
    for node in parse("rust", source).root_node.named_children:
        if node.type in _ITEMS:
            name = node.child_by_field_name("name")
            body = node.child_by_field_name("body")
            if name is not None:
                members = body.named_children if body is not None and node.type == "trait_item" else ()
                out.setdefault(name.text.decode(), outline(lines, node, body if members else None, members))
        elif node.type == "impl_item" and node.child_by_field_name("body") is not None:
            methods += [m for m in node.child_by_field_name("body").named_children if m.type == "function_item"]
    for method in methods:  # after the items: a method never shadows a type of the same name
        out.setdefault(method.child_by_field_name("name").text.decode(), outline(lines, method, None, ()))
    return out


def workspace_crates(files_named) -> dict[str, str]:
    """Crate name (as written in paths: `-` read as `_`) -> its `src` folder, for every
    `src/lib.rs` in the workspace."""
    crates = {}
    for root in sorted(files_named("lib.rs"), key=len):
        parts = root.split("/")
        if len(parts) >= 3 and parts[-2] == "src":
            crates.setdefault(parts[-3].replace("-", "_"), "/".join(parts[:-1]))
    return crates
