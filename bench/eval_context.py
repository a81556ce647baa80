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
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

from fimls.lsp.stats import percentile

OTHER_OPEN_FILES = 2


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


def main(args) -> int:
    from fimls.stdio import print_out

    if args.eval_command == "make-cases":
        cases = make_cases(Path(args.repo), args.max, args.seed, args.resolver)
        with open(args.out, "w", encoding="utf-8") as out:
            for case in cases:
                out.write(json.dumps(case) + "\n")
        print_out(json.dumps({"cases": len(cases), "out": args.out}))
        return 0
    cases = [json.loads(line) for line in Path(args.cases).read_text(encoding="utf-8").splitlines() if line.strip()]
    report = run(Path(args.repo), cases, [int(b) for b in args.budget.split(",")], args.ranker.split(","))
    if not args.json:
        for row in report["results"]:
            print_out(" ".join(f"{k}={v}" for k, v in row.items()))
    print_out(json.dumps(report))
    return 0
