"""Java for the `imports` ranker. `import a.b.C` names the workspace file whose path ends with
`a/b/C.java` (any source root: `src/main/java/`, `src/test/java/`...), `import a.b.*` names every
`.java` file of the folder ending with `a/b`, the current file's folder (its package) is imported
implicitly, and `import
static a.b.C.m` binds `m` from `C`. Definitions are the types (long ones outlined by their
members) and their methods, constructors and fields."""

from __future__ import annotations

import posixpath

from fimls.context.syntax import Import, ending_with, outline, parse, read_tree

_TYPES = {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration", "annotation_type_declaration"}
_MEMBERS = {"method_declaration", "constructor_declaration", "field_declaration", "constant_declaration"}


def imports(source: str, path: str | None = None) -> list[Import]:
    return read_tree("java", source, path, _imports_of)


def _imports_of(tree) -> list[Import]:
    found = []
    for node in tree.root_node.named_children:
        if node.type == "import_declaration":
            name = next((c for c in node.named_children if c.type in ("scoped_identifier", "identifier")), None)
            if name is None:
                continue
            dotted = name.text.decode()
            if any(c.type == "asterisk" for c in node.named_children):
                found.append(Import(dotted, 0, (), "*"))
            elif any(c.type == "static" for c in node.children):  # a member of a class
                owner, _, member = dotted.rpartition(".")
                found.append(Import(owner, 0, (member,), None))
            else:
                found.append(Import(dotted, 0, (dotted.rpartition(".")[2],), None))
    return found


def resolve(imported: Import, files_named, files_in, folders) -> list[str]:
    """The workspace files an import reaches: one class file, or a package's files."""
    parts = imported.module.split(".")
    if imported.alias == "*":
        package = ending_with(folders(), "/".join(parts))[:1]
        return sorted(p for folder in package for p in files_in(folder) if p.endswith(".java"))
    # `a.b.C` or, for a nested class, `a.b.C.Inner`: the longest prefix that is a file.
    for end in range(len(parts), 0, -1):
        matches = ending_with(files_named(parts[end - 1] + ".java"), "/".join(parts[:end]) + ".java")
        if matches:
            return matches[:1]
    return []


def definitions(source: str) -> dict[str, tuple[int, int, str]]:
    lines = source.splitlines(keepends=True)
    out: dict[str, tuple[int, int, str]] = {}
    members_of = []
    for node in parse("java", source).root_node.named_children:
        if node.type in _TYPES:
            _add_type(node, lines, out, members_of)
    for node in members_of:  # after every type: a method never shadows a class of the same name
        if node.type in ("field_declaration", "constant_declaration"):
            names = [d.child_by_field_name("name") for d in node.children_by_field_name("declarator")]
        else:
            names = [node.child_by_field_name("name")]
        for name in names:
            if name is not None:
                out.setdefault(name.text.decode(), outline(lines, node, None, ()))
    return out


def _add_type(node, lines, out, members_of) -> None:
    body = node.child_by_field_name("body")
    members = [m for m in body.named_children if m.type in _MEMBERS or m.type in _TYPES] if body is not None else []
    name = node.child_by_field_name("name")
    if name is not None:
        out.setdefault(name.text.decode(), outline(lines, node, body, members))
    for member in members:
        if member.type in _TYPES:
            _add_type(member, lines, out, members_of)
        else:
            members_of.append(member)


def same_folder_files(current: str, files_in) -> list[str]:
    return sorted(p for p in files_in(posixpath.dirname(current)) if p.endswith(".java") and p != current)
