"""JavaScript and TypeScript for the `imports` ranker: ES module imports (and `require`), top-level
definitions, re-exports of barrel files, and relative specifiers resolved to workspace files the
way TypeScript's bundler resolution does (`./x.js` may be `./x.ts`, a folder means its index)."""

from __future__ import annotations

import posixpath
import re

from fimls.context.syntax import Import, parse, read_tree, snippet

SOURCE_EXTENSIONS = (".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs", ".d.ts")
_DEFINITIONS = {
    "function_declaration", "generator_function_declaration", "class_declaration", "abstract_class_declaration",
    "interface_declaration", "type_alias_declaration", "enum_declaration",
}


def grammar(path: str) -> str:
    return "tsx" if path.endswith((".tsx", ".jsx")) else "typescript" if path.endswith((".ts", ".mts", ".cts")) else "javascript"


def _string(node) -> str:
    return node.text.decode()[1:-1] if node is not None else ""


def imports(source: str, path: str) -> list[Import]:
    return read_tree(grammar(path), source, path, _imports_of)


def _imports_of(tree) -> list[Import]:
    found: list[Import] = []
    for node in tree.root_node.children:
        if node.type == "import_statement":
            clause = next((c for c in node.named_children if c.type == "import_clause"), None)
            names, alias = [], None
            for part in clause.named_children if clause is not None else ():
                if part.type == "identifier":  # the default export, under a local name
                    names.append(part.text.decode())
                elif part.type == "namespace_import":
                    alias = part.named_children[-1].text.decode()
                elif part.type == "named_imports":
                    for spec in part.named_children:
                        if spec.type == "import_specifier":
                            names.append(spec.child_by_field_name("name").text.decode())
            found.append(Import(_string(node.child_by_field_name("source")), 0, tuple(names), alias))
        elif node.type in ("lexical_declaration", "variable_declaration"):
            # const { a, b } = require("./x") / const x = require("./x")
            for declarator in node.named_children:
                value = declarator.child_by_field_name("value")
                if value is None or value.type != "call_expression" or value.child_by_field_name("function").text != b"require":
                    continue
                arguments = value.child_by_field_name("arguments").named_children
                if not arguments or arguments[0].type != "string":
                    continue
                target = declarator.child_by_field_name("name")
                names = tuple(re.findall(r"[A-Za-z_$][\w$]*", target.text.decode())) if target.type == "object_pattern" else ()
                found.append(Import(_string(arguments[0]), 0, names, None if names else target.text.decode()))
    return found


def reexports(source: str, path: str) -> list[Import]:
    """`export * from "./x"` (no names: everything) and `export { a, b } from "./x"`."""
    found = []
    for node in parse(grammar(path), source).root_node.children:
        if node.type == "export_statement" and node.child_by_field_name("source") is not None:
            clause = next((c for c in node.named_children if c.type == "export_clause"), None)
            names = tuple(
                spec.child_by_field_name("name").text.decode()
                for spec in (clause.named_children if clause is not None else ())
                if spec.type == "export_specifier"
            )
            found.append(Import(_string(node.child_by_field_name("source")), 0, names, None))
    return found


def definitions(source: str, path: str) -> dict[str, tuple[int, int, str]]:
    """Top-level (and exported) functions, classes, interfaces, types, enums and constants."""
    lines = source.splitlines(keepends=True)
    out: dict[str, tuple[int, int, str]] = {}
    for node in parse(grammar(path), source).root_node.children:
        outer = node
        if node.type == "export_statement":
            node = node.child_by_field_name("declaration") or node
        if node.type in _DEFINITIONS:
            name = node.child_by_field_name("name")
            if name is not None:
                out[name.text.decode()] = snippet(lines, outer)
        elif node.type in ("lexical_declaration", "variable_declaration"):
            for declarator in node.named_children:
                name = declarator.child_by_field_name("name")
                if name is not None and name.type == "identifier":
                    out[name.text.decode()] = snippet(lines, outer)
    return out


def resolve(specifier: str, current: str, exists) -> list[str]:
    """Workspace paths a relative specifier names (bare package names are not the workspace's)."""
    if not specifier.startswith("."):
        return []
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(current), specifier))
    if joined.startswith(".."):
        return []
    stem = re.sub(r"\.(js|jsx|mjs|cjs)$", "", joined)
    options = [joined] + [stem + ext for ext in SOURCE_EXTENSIONS] + [f"{joined}/index{ext}" for ext in SOURCE_EXTENSIONS]
    return [option for option in dict.fromkeys(options) if exists(option)][:1]


def is_source(path: str) -> bool:
    return path.endswith(SOURCE_EXTENSIONS)
