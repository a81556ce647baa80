"""Go for the `imports` ranker. A Go package is a folder: the other files of the current folder are
imported implicitly, and `import "host/owner/repo/sub"` names the workspace folder whose path ends
with the longest tail of the import path (this works with a go.mod at the root and in GOPATH-style
trees alike). Definitions are the top-level functions, methods, types, constants and variables."""

from __future__ import annotations

import posixpath

from fimls.context.syntax import Import, ending_with, parse, read_tree, snippet


def imports(source: str, path: str | None = None) -> list[Import]:
    return read_tree("go", source, path, _imports_of)


def _imports_of(tree) -> list[Import]:
    found = []
    for node in tree.root_node.children:
        if node.type != "import_declaration":
            continue
        specs = [c for c in node.named_children if c.type == "import_spec"]
        for group in (c for c in node.named_children if c.type == "import_spec_list"):
            specs += [c for c in group.named_children if c.type == "import_spec"]
        for spec in specs:
            path = spec.child_by_field_name("path").text.decode().strip('"`')
            name = spec.child_by_field_name("name")
            alias = name.text.decode() if name is not None else path.rsplit("/", 1)[-1]
            found.append(Import(path, 0, (), alias))
    return found


def definitions(source: str) -> dict[str, tuple[int, int, str]]:
    lines = source.splitlines(keepends=True)
    out: dict[str, tuple[int, int, str]] = {}
    for node in parse("go", source).root_node.children:
        if node.type in ("function_declaration", "method_declaration"):
            out.setdefault(node.child_by_field_name("name").text.decode(), snippet(lines, node))
        elif node.type in ("type_declaration", "const_declaration", "var_declaration"):
            for spec in node.named_children:
                specs = spec.named_children if spec.type.endswith("_spec_list") else [spec]
                for item in specs:
                    for name in item.children_by_field_name("name"):
                        out.setdefault(name.text.decode(), snippet(lines, node))
    return out


def package_folder(import_path: str, folders) -> str | None:
    """The workspace folder an import path names: the one matching its longest tail."""
    parts = import_path.split("/")
    for start in range(len(parts)):
        matches = ending_with(folders, "/".join(parts[start:]))
        if matches:
            return matches[0]
    return None


def files_of_package(folder: str, current: str, files_in) -> list[str]:
    tests = current.endswith("_test.go")
    return sorted(
        p for p in files_in(folder)
        if p.endswith(".go") and p != current and (tests or not p.endswith("_test.go"))
    )


def same_package(current: str, files_in) -> list[str]:
    return files_of_package(posixpath.dirname(current), current, files_in)
