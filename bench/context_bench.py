"""`fimls bench context --repo DIR`: index a workspace, then time building the context the way an
editing session asks for it: a sampled file is opened (the server then prepares its context in the
background, as on didOpen) and completions are requested on several of its lines, every build a
real one (the sticky reuse bypassed). The first request in each file, and first requests in files
never prepared, are reported apart."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from fimls.lsp.stats import percentile


REQUESTS_PER_FILE = 10


def run(repo: Path, samples: int, ranker: str, budget: int, seed: int = 0) -> dict[str, Any]:
    import psutil
    from fimls.completion import workspace_context
    from fimls.settings import Settings
    from fimls.testmodel import token_counter

    count_tokens = token_counter()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    builder = workspace_context(str(repo), Settings())
    builder.build()
    index = builder.index
    index_s = time.perf_counter() - started
    rss_mb = process.memory_info().rss / 2**20
    rng = random.Random(seed)
    paths = sorted(index.files)
    timings, first_in_file, unprepared = [], [], []

    def build(path: str, text: str) -> float:
        offset = rng.randrange(len(text) + 1)
        line = text.count("\n", 0, offset)
        builder._sticky = None  # time a real build, not a sticky answer
        started = time.perf_counter()
        builder.snippets(ranker, path, text, offset, (max(0, line - 40), line + 10), budget, count_tokens)
        return (time.perf_counter() - started) * 1000

    for _ in range(max(1, samples // REQUESTS_PER_FILE)):
        path = rng.choice(paths)  # a file the server never saw opened: nothing prepared
        unprepared.append(build(path, index.files[path].text))
        path = rng.choice(paths)
        text = index.files[path].text
        builder.prepare(path, text)
        for request in range(REQUESTS_PER_FILE):
            timings.append(build(path, text))
            if request == 0:
                first_in_file.append(timings[-1])
    rss_after = process.memory_info().rss
    symbols_s, symbols_mb = _symbol_share(index, process)  # last: the memory it frees may stay with the process
    return {
        "bench": "context",
        "repo": str(repo),
        "files": len(index.files),
        "chunks": len(builder.bm25),
        "index_s": round(index_s, 2),
        "rss_mb": round(rss_mb, 1),
        "rss_index_mb": round((rss_after - rss_before) / 2**20, 1),
        "symbols": len(builder.symbols),
        "symbols_index_s": round(symbols_s, 2),
        "symbols_rss_mb": round(symbols_mb, 1),
        "ranker": ranker,
        "budget_tokens": budget,
        "samples": samples,
        "requests_per_file": REQUESTS_PER_FILE,
        "build_p50_ms": round(percentile(timings, 50), 2),
        "build_p95_ms": round(percentile(timings, 95), 2),
        "first_in_file_p95_ms": round(percentile(first_in_file, 95), 2),
        "unprepared_p50_ms": round(percentile(unprepared, 50), 2),
        "unprepared_p95_ms": round(percentile(unprepared, 95), 2),
    }


def _symbol_share(index, process) -> tuple[float, float]:
    """(seconds, MB) the symbol index takes of the indexing above: a second one built over the
    same files, timed, its resident memory measured, then dropped."""
    import gc

    from fimls.context.symbols import SymbolIndex

    gc.collect()
    before = process.memory_info().rss
    started = time.perf_counter()
    second = SymbolIndex()
    for path, entry in index.files.items():
        second.update(path, entry.text)
    seconds = time.perf_counter() - started
    grown = (process.memory_info().rss - before) / 2**20
    del second
    gc.collect()
    return seconds, grown


def main(args) -> int:
    from fimls.stdio import print_out

    report = run(Path(args.repo), args.samples, args.ranker, args.budget)
    if not args.json:
        for key, value in report.items():
            print_out(f"{key:>16}: {value}")
    print_out(json.dumps(report))
    return 0
