"""C and C++ for the `imports` ranker: `#include` directives (also inside `#if` blocks) resolved
to workspace headers — a quoted one next to the current file first, then, like an include path
(`-Iinclude`), any workspace file whose path ends with what is included — and followed into the
headers those include. Definitions are functions (a header's prototypes included), structs,
classes, unions, enums, typedefs and macros, also inside namespaces and `extern "C"` blocks."""

from __future__ import annotations

import posixpath

from fimls.context.syntax import Import, ending_with, outline, parse, read_tree

SOURCE_EXTENSIONS = (".c", ".h", ".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".inl")
INCLUDE_DEPTH = 2  # headers included by the included headers
MOST_HEADERS = 24
_CONTAINERS = {
    "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef", "namespace_definition",
    "linkage_specification", "declaration_list", "template_declaration", "export_declaration",
}
_TYPES = {"struct_specifier", "class_specifier", "union_specifier", "enum_specifier"}


def is_source(path: str) -> bool:
    return path.lower().endswith(SOURCE_EXTENSIONS)


def grammar(path: str) -> str:
    # A .h may hold C++ too; the C++ grammar reads C headers as well.
    return "c" if path.endswith(".c") else "cpp"


def _top_level(node):
    """The declarations of a file, looking inside preprocessor blocks, namespaces, extern blocks."""
    for child in node.named_children:
        if child.type in _CONTAINERS:
            yield from _top_level(child.child_by_field_name("body") or child)
        else:
            yield child


def includes(source: str, path: str) -> list[Import]:
    """Each `#include`: `level` 1 for "quoted" (searched next to the file first), 0 for <angled>."""
    return read_tree(grammar(path), source, path, _includes_of)


def _includes_of(tree) -> list[Import]:
    found = []
    for node in _top_level(tree.root_node):
        if node.type == "preproc_include":
            target = node.child_by_field_name("path")
            if target is not None and target.type in ("string_literal", "system_lib_string"):
                found.append(Import(target.text.decode()[1:-1], int(target.type == "string_literal"), (), None))
    return found


def resolve(include: Import, current: str, exists, files_named) -> list[str]:
    if include.level:
        beside = posixpath.normpath(posixpath.join(posixpath.dirname(current), include.module))
        if not beside.startswith("..") and exists(beside):
            return [beside]
    tail = include.module.lstrip("./")
    return ending_with(files_named(posixpath.basename(tail)), tail)[:1]


def reached_headers(current: str, text: str, text_of, files_named) -> list[str]:
    """The workspace headers the file includes, then the ones those include, nearest first."""
    exists = lambda path: text_of(path) is not None  # noqa: E731
    reached: dict[str, None] = {}
    layer = [(current, text)]
    for _ in range(INCLUDE_DEPTH):
        following = []
        for path, source in layer:
            for include in includes(source, path) if source is not None else ():
                for header in resolve(include, path, exists, files_named):
                    if header != current and header not in reached and len(reached) < MOST_HEADERS:
                        reached[header] = None
                        following.append((header, text_of(header)))
        layer = following
    return list(reached)


def _declared_name(declarator) -> str | None:
    """The name a (function, pointer, array, reference) declarator declares; `C::m` gives `m`."""
    node = declarator
    while node is not None and node.child_by_field_name("declarator") is not None:
        node = node.child_by_field_name("declarator")
    while node is not None and node.type in ("qualified_identifier", "template_function"):
        node = node.child_by_field_name("name")
    if node is None or node.type not in ("identifier", "field_identifier", "type_identifier", "destructor_name", "operator_name"):
        return None
    return node.text.decode()


def definitions(source: str, path: str) -> dict[str, tuple[int, int, str]]:
    lines = source.splitlines(keepends=True)
    out: dict[str, tuple[int, int, str]] = {}

    def add(name, node, body=None, members=()):
        if name and name not in out:
            out[name] = outline(lines, node, body, members)

    for node in _top_level(parse(grammar(path), source).root_node):
        if node.type in ("preproc_def", "preproc_function_def"):
            add(node.child_by_field_name("name").text.decode(), node)
        elif node.type == "function_definition":
            add(_declared_name(node.child_by_field_name("declarator")), node)
        elif node.type in ("declaration", "field_declaration"):
            declarator = node.child_by_field_name("declarator")
            if declarator is not None and "function_declarator" in declarator.type:
                add(_declared_name(declarator), node)
            _add_type(node.child_by_field_name("type"), add)
        elif node.type == "type_definition":
            _add_type(node.child_by_field_name("type"), add)
            for declarator in node.children_by_field_name("declarator"):
                add(_declared_name(declarator), node)
        elif node.type in _TYPES:
            _add_type(node, add)
    return out


def _add_type(node, add) -> None:
    """A struct/class/union/enum with a body, long ones outlined by their members."""
    if node is None or node.type not in _TYPES:
        return
    name, body = node.child_by_field_name("name"), node.child_by_field_name("body")
    if name is not None and body is not None:
        add(name.text.decode(), node, body, body.named_children)
