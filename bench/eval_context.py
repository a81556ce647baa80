"""`fimls eval-context`: a model-free retrieval benchmark anyone can rerun on any repository.

`make-cases` (the default `--resolver fimls`) finds, in every Python, JavaScript/TypeScript and Go file, uses of names imported
from another file of the same repository (for Go: defined in another file of the same package, or
in an imported package of the repository; for JS/TS namespace imports: used as `ns.name`); the
gold answer is that name's definition (file and line span), behind re-exports where there are any. The cursor is placed
right after the name (and its `(` or `.`), where a model needs the definition to go on.
`run` builds the context for every case with each ranker and budget and reports `recall` (share
of cases whose gold definition line is inside the packed context), `mrr` (of the gold among the
ranker's candidates), `noise` (share of packed tokens from files other than the gold file),
`build_p95_ms`, and `recall_ambiguous` over the `ambiguous_cases`: those whose name the workspace
defines more than once (per the symbol index), where finding the name is not enough.

Those gold answers come from the same import resolution the `imports` ranker uses, so `imports`
and `fused` cannot miss them: their figures are an upper bound. `make-cases --resolver jedi` takes
Python gold answers from jedi instead, including names reached through attributes and types
(`inferred` cases), and `run` then reports recall per kind; `--resolver typescript` and `--resolver
gopls` do the same for TypeScript/JavaScript and Go with those languages' own analysers
(bench/analyser_cases.py).

`make-cases --from-git REPO --checkouts DIR` makes recent-edit cases from a repository's history
(bench/git_cases.py): each replays a commit's other hunks as unsaved edits and asks for the hunk
that introduced the name the cursor's line is about to use. `run` on those cases (no `--repo`:
each case names its own checkout) replays the edits through the index's `open_document`, as the
server does on didChange, and scores a gold span as found when all its lines are inside one packed
snippet. The ranker `fused-without-recent` is `fused` with the `recent` source left out.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

OTHER_OPEN_FILES = 2
WITHOUT = "-without-"  # `fused-without-recent`: fused with a source left out


def _index(repo: Path):
    from fimls.completion import workspace_context
    from fimls.settings import Settings

    builder = workspace_context(str(repo), Settings())
    builder.build()
    return builder.index, builder


def make_cases(repo: Path, max_cases: int, seed: int = 0, resolver: str = "fimls") -> list[dict[str, Any]]:
    """`resolver` "fimls": every language, gold answers from fimls' own import resolution (so the
    `imports` ranker cannot miss them: an upper bound); "jedi": Python, gold answers from jedi's
    goto-definition, split into `imported` and `inferred` cases (bench/jedi_cases.py)."""
    from fimls.context.imports import cached_definitions

    index, builder = _index(repo)
    if resolver == "jedi":
        from fimls.bench.jedi_cases import make_jedi_cases

        python = sorted(p for p in index.files if p.endswith(".py"))
        return make_jedi_cases(repo, python, lambda p: index.files[p].text, max_cases, seed)
    if resolver == "typescript":
        from fimls.bench.analyser_cases import typescript_cases

        sources = sorted(p for p in index.files if _language_of_case(p) == "javascript")
        return typescript_cases(repo, sources, max_cases, seed)
    if resolver == "gopls":
        from fimls.bench.analyser_cases import gopls_cases

        return gopls_cases(repo, sorted(p for p in index.files if p.endswith(".go")), max_cases, seed)
    paths = sorted(p for p in index.files if _language_of_case(p) is not None)
    rng = random.Random(seed)
    cases = []
    for path in paths:
        text = index.files[path].text
        try:
            own = cached_definitions(path, text)
            golds = _python_golds(path, text, index, builder) if path.endswith(".py") else _other_golds(path, text, index, builder)
        except Exception:
            continue
        neighbours = {gold_path for gold_path, _name, _start, _end in golds}
        file_cases = []
        for gold_path, name, start, end in golds:
            if name in own:
                continue  # defined here too
            uses = [m for m in re.finditer(rf"(?<![\w$]){re.escape(name)}(?![\w$])[(.]?", text) if not _in_import(text, m.start())]
            if not uses:
                continue
            use = rng.choice(uses)
            file_cases.append({"file": path, "offset": use.end(), "name": name, "gold_path": gold_path,
                               "gold_start": start, "gold_end": end})
        others = [p for p in paths if p != path and p not in neighbours]
        extra = rng.sample(others, min(OTHER_OPEN_FILES, len(others)))
        for case in file_cases:
            case["open_files"] = sorted(neighbours) + extra
        cases += file_cases
    rng.shuffle(cases)
    return sorted(cases[:max_cases], key=lambda c: (c["file"], c["offset"]))


def _language_of_case(path: str) -> str | None:
    from fimls.context import imports_c, imports_js

    if path.endswith(".py"):
        return "python"
    if imports_js.is_source(path) and not path.endswith(".d.ts"):
        return "javascript"
    if path.endswith((".go", ".rs", ".java")):
        return path.rsplit(".", 1)[1]
    if imports_c.is_source(path):
        return "c"
    return None


def _python_golds(path, text, index, builder) -> list[tuple[str, str, int, int]]:
    """Names a Python file imports by name (`from m import name`) and where each is defined."""
    from fimls.context.imports import cached_definitions, python_imports, resolve_python_module

    golds = []
    for imported in python_imports(text):
        for target in resolve_python_module(imported.module, imported.level, path, builder.paths_named)[:1]:
            definitions = cached_definitions(target, index.files[target].text)
            golds += [(target, name, *definitions[name][:2]) for name in imported.names if name in definitions]
    return golds


def _other_golds(path, text, index, builder) -> list[tuple[str, str, int, int]]:
    """Other languages: every name the file reaches through its imports (or package) and uses."""
    from fimls.context.candidates import identifiers
    from fimls.context.imports import REEXPORT_DEPTH, definition, imported_names

    text_of = lambda p: index.files[p].text if p in index.files else None  # noqa: E731
    order = {name: i for i, name in enumerate(identifiers(text))}
    pairs = imported_names(path, text, order, text_of, builder.paths_named, builder.files_in, builder.folders, builder.files_named)
    golds = {}
    for target, name in dict.fromkeys(pairs):
        if name in golds:
            continue
        found = definition(target, name, text_of, REEXPORT_DEPTH)
        if found is not None and found[0] != path:
            golds[name] = (found[0], name, found[1], found[2])
    return list(golds.values())


def _in_import(text: str, offset: int) -> bool:
    line = text[text.rfind("\n", 0, offset) + 1 : text.find("\n", offset) if "\n" in text[offset:] else len(text)]
    return line.lstrip().startswith(("import ", "from ", "export ", "package ", '"', "use ", "pub use ", "mod ", "#include"))


def run(repo: Path, cases: list[dict[str, Any]], budgets: list[int], rankers: list[str]) -> dict[str, Any]:
    from fimls.context.window import window_lines, window_parts
    from fimls.lsp.stats import percentile
    from fimls.settings import Settings
    from fimls.testmodel import token_counter

    count_tokens = token_counter()
    settings = Settings()
    index, builder = _index(repo)
    results = []
    windows = {}
    for case in cases:
        text = index.files[case["file"]].text
        offset = case["offset"]
        parts = window_parts(text, offset, case["file"], count_tokens, prefix_tokens=settings.prefix_tokens, suffix_tokens=settings.suffix_tokens)
        windows[id(case)] = window_lines(text.count("\n", 0, offset), parts)
    for ranker in rankers:
        for budget in budgets:
            found = reciprocal = noise_tokens = total_tokens = 0.0
            timings = []
            found_by_kind: dict[str, list[int]] = {}  # kind -> [found, cases]
            ambiguous = [0, 0]  # [found, cases] among cases whose name the workspace defines more than once
            for case in cases:
                text = index.files[case["file"]].text
                window, gold_line = windows[id(case)], case["gold_start"]
                started = time.perf_counter()
                if ranker == "none":
                    candidates, snippets = [], ()
                else:
                    candidates = builder.candidates(ranker, case["file"], text, case["offset"], window, case["open_files"])
                    from fimls.context.builder import pack

                    snippets = pack(candidates, budget, count_tokens)
                timings.append((time.perf_counter() - started) * 1000)
                hit = lambda path, start, end: path == case["gold_path"] and start <= gold_line < end  # noqa: E731
                packed = any(hit(s.path, s.start_line, s.end_line) for s in snippets)
                found += packed
                if "kind" in case:
                    tally = found_by_kind.setdefault(case["kind"], [0, 0])
                    tally[0] += packed
                    tally[1] += 1
                if len(builder.symbols.named(case["name"])) > 1:
                    ambiguous[0] += packed
                    ambiguous[1] += 1
                rank = next((i for i, c in enumerate(candidates, 1) if hit(c.path, c.start_line, c.end_line)), None)
                reciprocal += 1 / rank if rank else 0
                for snippet in snippets:
                    tokens = count_tokens(snippet.text)
                    total_tokens += tokens
                    noise_tokens += tokens if snippet.path != case["gold_path"] else 0
            results.append({
                "ranker": ranker, "budget": budget, "cases": len(cases),
                "recall": round(found / len(cases), 4) if cases else None,
                "mrr": round(reciprocal / len(cases), 4) if cases else None,
                "noise": round(noise_tokens / total_tokens, 4) if total_tokens else None,
                "build_p95_ms": round(percentile(timings, 95), 2) if timings else None,
                "ambiguous_cases": ambiguous[1],
                "recall_ambiguous": round(ambiguous[0] / ambiguous[1], 4) if ambiguous[1] else None,
                **({"recall_by_kind": {kind: round(hit / total, 4) for kind, (hit, total) in sorted(found_by_kind.items())},
                    "cases_by_kind": {kind: total for kind, (_, total) in sorted(found_by_kind.items())}}
                   if found_by_kind else {}),
            })
    return {"bench": "eval-context", "repo": str(repo), "files": len(index.files), "results": results}


def offset_of(text: str, line: int, character: int) -> int:
    """The offset of an LSP position (0-based line, UTF-16 code units) in `text`."""
    start = 0
    for _ in range(line):
        start = text.index("\n", start) + 1
    end = text.find("\n", start)
    units = 0
    for i, char in enumerate(text[start : end if end >= 0 else len(text)]):
        if units >= character:
            return start + i
        units += 2 if ord(char) > 0xFFFF else 1
    return end if end >= 0 else len(text)


def _edit_workspace(root: str, settings):
    """The workspace as the server builds it (lsp/server.py's use_folders): a folder set over the
    root's index, and a context builder subscribed to it."""
    from fimls.context.builder import ContextBuilder
    from fimls.context.folders import FolderSet
    from fimls.context.workspace import WorkspaceIndex

    folders = FolderSet([WorkspaceIndex(root, max_file_bytes=settings.max_file_bytes, exclude_globs=settings.exclude_globs)])
    builder = ContextBuilder(folders)
    folders.scan()
    builder.index_all()
    return folders, builder


def run_edit_cases(cases: list[dict[str, Any]], budgets: list[int], rankers: list[str], repo: Path | None = None) -> dict[str, Any]:
    """Recent-edit cases (bench/git_cases.py): each case's edits are replayed as open documents
    of its `root` (or of `repo`), the context built for its cursor, and the edits undone."""
    from fimls.context.builder import pack
    from fimls.context.window import window_lines, window_parts
    from fimls.lsp.stats import percentile
    from fimls.settings import Settings
    from fimls.testmodel import token_counter

    count_tokens = token_counter()
    settings = Settings()
    tallies = {(r, b): {"found": 0, "reciprocal": 0.0, "noise": 0, "tokens": 0, "timings": [], "kinds": {}} for r in rankers for b in budgets}
    roots: dict[str, list[dict]] = {}
    for case in cases:
        roots.setdefault(str(repo) if repo is not None else case["root"], []).append(case)
    files = 0
    for root, group in roots.items():
        folders, builder = _edit_workspace(root, settings)
        files += len(folders.files)
        for case in group:
            for edit in case["edits"]:
                folders.open_document(str(Path(root) / edit["path"]), edit["text"])
            path = case["path"]
            text = folders.open_documents[path]
            offset = offset_of(text, case["line"], case["character"])
            parts = window_parts(text, offset, path, count_tokens, prefix_tokens=settings.prefix_tokens, suffix_tokens=settings.suffix_tokens)
            window = window_lines(case["line"], parts)
            golds = case["gold"]
            # Re-indexing the edited files falls to the first request after the edits, whichever
            # ranker makes it: done untimed, so that each ranker's time is its own.
            builder.candidates("none", path, text, offset, window, line=case["line"])

            def covers(p: str, start: int, end: int) -> bool:  # end exclusive
                return any(p == g["path"] and start <= g["start_line"] and g["end_line"] < end for g in golds)

            for ranker in rankers:
                name, _, left_out = ranker.partition(WITHOUT)
                started = time.perf_counter()
                candidates = [] if name == "none" else builder.candidates(
                    name, path, text, offset, window, line=case["line"], without=frozenset(left_out.split("+")) - {""})
                ranked = (time.perf_counter() - started) * 1000
                rank = next((i for i, c in enumerate(candidates, 1) if covers(c.path, c.start_line, c.end_line)), None)
                for budget in budgets:
                    started = time.perf_counter()
                    snippets = pack(candidates, budget, count_tokens, folders.display)
                    tally = tallies[(ranker, budget)]
                    tally["timings"].append(ranked + (time.perf_counter() - started) * 1000)
                    packed = any(covers(s.path, s.start_line, s.end_line) for s in snippets)
                    tally["found"] += packed
                    tally["reciprocal"] += 1 / rank if rank else 0
                    kind = tally["kinds"].setdefault(case.get("kind", "all"), [0, 0])
                    kind[0] += packed
                    kind[1] += 1
                    for snippet in snippets:
                        tokens = count_tokens(snippet.text)
                        tally["tokens"] += tokens
                        tally["noise"] += tokens if not any(snippet.path == g["path"] for g in golds) else 0
            for edited in dict.fromkeys(edit["path"] for edit in case["edits"]):
                folders.close_document(str(Path(root) / edited))
            builder.forget_edits()
        folders.stop()
    results = []
    for (ranker, budget), tally in tallies.items():
        results.append({
            "ranker": ranker, "budget": budget, "cases": len(cases),
            "recall": round(tally["found"] / len(cases), 4) if cases else None,
            "mrr": round(tally["reciprocal"] / len(cases), 4) if cases else None,
            "noise": round(tally["noise"] / tally["tokens"], 4) if tally["tokens"] else None,
            "build_p95_ms": round(percentile(tally["timings"], 95), 2) if tally["timings"] else None,
            "recall_by_kind": {k: round(hit / total, 4) for k, (hit, total) in sorted(tally["kinds"].items())},
            "cases_by_kind": {k: total for k, (_, total) in sorted(tally["kinds"].items())},
        })
    return {"bench": "eval-context", "repo": str(repo) if repo else None, "roots": len(roots), "files": files, "results": results}


def add_arguments(evaluation) -> None:
    """`fimls eval-context`'s commands and options, on the CLI's `eval-context` parser."""
    eval_commands = evaluation.add_subparsers(dest="eval_command", required=True)
    make = eval_commands.add_parser("make-cases", help="cases: uses of names defined in another file of the same repository")
    source = make.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo")
    source.add_argument("--from-git", metavar="REPO", help="recent-edit cases from the history of the git repository REPO")
    make.add_argument("--checkouts", help="with --from-git: the folder the commits' parents are checked out in")
    make.add_argument("--out", required=True)
    make.add_argument("--max", type=int, default=300)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--resolver", choices=["fimls", "jedi", "typescript", "gopls"], default="fimls",
                      help="who gives the gold answers: fimls' import resolution (every language; an upper bound "
                      "for `imports`), or an analyser of the language: jedi (Python), the TypeScript language "
                      "service (TS/JS; $TYPESCRIPT names the typescript package), gopls (Go)")
    run_parser = eval_commands.add_parser("run", help="recall, mrr, noise and build time per ranker and budget")
    run_parser.add_argument("--repo", help="the workspace (without it, each case's own `root`)")
    run_parser.add_argument("--cases", required=True)
    run_parser.add_argument("--budget", default="512,1024,2048")
    run_parser.add_argument("--ranker", default="none,jaccard,bm25,imports,symbols,fused",
                            help="comma-separated; `fused-without-recent` is fused with the recent source left out")
    run_parser.add_argument("--json", action="store_true", help="print only the JSON object")


def main(args) -> int:
    from fimls.stdio import print_out

    if args.eval_command == "make-cases":
        if getattr(args, "from_git", None):
            from fimls.bench.git_cases import make_git_cases

            if not args.checkouts:
                raise SystemExit("--from-git needs --checkouts DIR: where the commits' parents are checked out")
            cases = make_git_cases(Path(args.from_git), Path(args.checkouts), args.max, args.seed)
        else:
            cases = make_cases(Path(args.repo), args.max, args.seed, args.resolver)
        with open(args.out, "w", encoding="utf-8") as out:
            for case in cases:
                out.write(json.dumps(case) + "\n")
        print_out(json.dumps({"cases": len(cases), "out": args.out}))
        return 0
    cases = [json.loads(line) for line in Path(args.cases).read_text(encoding="utf-8").splitlines() if line.strip()]
    budgets, rankers = [int(b) for b in args.budget.split(",")], args.ranker.split(",")
    if cases and "edits" in cases[0]:
        report = run_edit_cases(cases, budgets, rankers, Path(args.repo) if args.repo else None)
    elif not args.repo:
        raise SystemExit("--repo is needed for these cases (only recent-edit cases name their own root)")
    else:
        report = run(Path(args.repo), cases, budgets, rankers)
    if not args.json:
        for row in report["results"]:
            print_out(" ".join(f"{k}={v}" for k, v in row.items()))
    print_out(json.dumps(report))
    return 0


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fimls.bench.eval_context")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
