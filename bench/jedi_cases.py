"""Python retrieval cases whose gold answers come from jedi's goto-definition, an analyser that
shares nothing with fimls' own import resolution (`fimls eval-context make-cases --resolver
jedi`; jedi is an eval extra, never a runtime dependency).

Each case is a use of a name defined in another file of the repository, the cursor right after
the name and its `(` or `.`. Its kind says how the name got there:

* `imported`: the name itself is imported by name in this file (`from pkg.mod import name`,
  `from pkg import mod`), so following the file's imports finds it;
* `inferred`: the name is an attribute (`self.client.prepare_request(`, `module.func(`, a method
  of a class defined elsewhere), reached only through what a receiver is.

The gold is where jedi says the name is defined (file, definition line). What a user has open
is not chosen by the answer: the open files are drawn at random from the repository's other
files, never the gold file.
"""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path
from typing import Any

OPEN_FILES = 3
SITES_PER_FILE = 8  # uses tried per file (jedi takes ~10-100 ms a use); a case kept per site that resolves


def _sites(module) -> list[tuple[Any, str]]:
    """(name leaf, "attribute" | "bare") for every use followed by `(` or `.`, outside imports."""
    sites = []

    def walk(node) -> None:
        for child in getattr(node, "children", ()):
            if child.type in ("import_from", "import_name"):
                continue
            if child.type == "name":
                following = child.get_next_leaf()
                if following is not None and following.value in ("(", ".") and not child.is_definition():
                    before = child.get_previous_leaf()
                    sites.append((child, "attribute" if before is not None and before.value == "." else "bare"))
            else:
                walk(child)

    walk(module)
    return sites


def _imported_here(script, module, leaf) -> bool:
    """The bare name is bound by an import statement of this very file."""
    for name in script.goto(leaf.line, leaf.column, follow_imports=False):
        if name.module_path is None or name.line is None or Path(name.module_path) != Path(script.path):
            continue
        bound = module.get_name_of_position((name.line, name.column))
        if bound is not None and bound.search_ancestor("import_from", "import_name") is not None:
            return True
    return False


def make_jedi_cases(repo: Path, files: list[str], text_of, max_cases: int, seed: int = 0) -> list[dict[str, Any]]:
    """`files`: the repository's Python files (paths relative to `repo`, as fimls' index has them);
    `text_of(path)`: their text."""
    import jedi

    repo = repo.resolve()
    # The repository before anything installed: a package under test that is also installed in
    # this environment (httpx is one of fimls' own dependencies) must resolve to its own files.
    stdlib = sysconfig.get_paths()["stdlib"]
    project = jedi.Project(str(repo), sys_path=[str(repo), str(repo / "src"), stdlib], smart_sys_path=False)
    rng = random.Random(seed)
    known = set(files)
    cases: list[dict[str, Any]] = []
    order = list(files)
    rng.shuffle(order)
    for path in order:
        if len(cases) >= max_cases:
            break
        text = text_of(path)
        try:
            script = jedi.Script(text, path=str(repo / path), project=project)
            module = script._module_node
            sites = _sites(module)
        except Exception:
            continue
        rng.shuffle(sites)
        line_starts = [0]
        for line in text.split("\n"):
            line_starts.append(line_starts[-1] + len(line) + 1)
        kept = 0
        for leaf, position in sites:
            if kept >= SITES_PER_FILE:
                break
            try:
                found = script.goto(leaf.line, leaf.column, follow_imports=True)
            except Exception:
                continue
            targets = []
            for name in found:
                if name.module_path is None or name.line is None or name.type not in ("function", "class", "statement", "instance"):
                    continue
                try:
                    relative = str(Path(name.module_path).resolve().relative_to(repo))
                except ValueError:
                    continue  # the standard library or an installed package
                if relative in known and relative != path:
                    targets.append((relative, name.line - 1))
            if len(targets) != 1:
                continue  # undefined, local, or ambiguous: no single gold
            if position == "attribute":
                kind = "inferred"
            elif _imported_here(script, module, leaf):
                kind = "imported"
            else:
                continue  # a bare name from elsewhere but not imported here (a star import, a builtin shadow)
            gold_path, gold_line = targets[0]
            # parso counts lines at "\n" and columns in characters; past the name and its `(` or `.`.
            offset = line_starts[leaf.line - 1] + leaf.column + len(leaf.value) + 1
            others = [p for p in files if p not in (gold_path, path)]
            cases.append({
                "file": path, "offset": offset, "name": leaf.value, "kind": kind, "resolver": "jedi",
                "gold_path": gold_path, "gold_start": gold_line, "gold_end": gold_line + 1,
                "open_files": sorted(rng.sample(others, min(OPEN_FILES, len(others)))),
            })
            kept += 1
    return sorted(cases[:max_cases], key=lambda c: (c["file"], c["offset"]))
