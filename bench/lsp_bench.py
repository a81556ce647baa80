"""`fimls bench lsp`: the real server over stdio, driven the way VS Code drives it while a user
types: a `didChange` and an automatic `inlineCompletion` request per keystroke, the previous
request cancelled, at a realistic pace with pauses. Run twice in one invocation: with debounce and
the typing-as-suggested cache (the defaults), and with both switched off.

Then the cost of a keystroke by file size: the same final lines typed at the end of files of about
3 lines, 30 KB, 300 KB and 3 MB (incremental `didChange` edits, as editors send them; debounce
and cache off, each request answered before the next keystroke), with the server's own split of
each answered request into building the prompt, the model, and everything else.

Then editor windows sharing the daemon (bench/windows.py): two windows typing in turn, KV reuse
with a session per document against one session, the hop to the daemon; three windows' memory."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from fimls.bench.engine_bench import DEFAULT_FILE, keystroke_states
from fimls.lsp.stats import percentile

WPM = 60
KEYSTROKE_S = 60 / (WPM * 5)  # five characters a word
LINE_PAUSE_S = 1.2  # longer than the server's notion of typing rhythm (1 s)


def typing_schedule(states: list[tuple[str, int]], seed: int = 0) -> list[float]:
    """Seconds to wait before each keystroke: jittered around 60 wpm, a pause at each new line."""
    rng = random.Random(seed)
    waits, previous_line = [], None
    for document, cursor in states:
        line = document.count("\n", 0, cursor)
        pause = previous_line is not None and line != previous_line
        waits.append(LINE_PAUSE_S if pause else rng.uniform(0.6, 1.4) * KEYSTROKE_S)
        previous_line = line
    return waits


async def _start(model: str, root: Path, options: dict[str, Any], env: dict[str, str] | None = None):
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("fimls-bench", "1")
    statuses: list[str] = []
    client.feature("fimls/status")(lambda params: statuses.append(params.state))
    await client.start_io(sys.executable, "-m", "fimls", "--stdio", env=env)
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=root.as_uri(),
            initialization_options={"model": model, "device": "cpu", **options},
        )
    )
    client.initialized(types.InitializedParams())
    while not statuses or statuses[-1] not in ("ready", "error"):
        await asyncio.sleep(0.05)
    if statuses[-1] != "ready":
        raise RuntimeError("the model did not load")
    return client


async def _stats(client, reset: bool = False) -> dict[str, Any]:
    stats = await asyncio.wrap_future(client.protocol.send_request("fimls/stats", {"reset": reset}))
    return stats._asdict() if hasattr(stats, "_asdict") else dict(stats)


async def _stop(client) -> None:
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()


async def _session(model: str, states, waits, path: Path, options: dict[str, Any]) -> dict[str, Any]:
    from lsprotocol import types

    client = await _start(model, path.parent, options, env=_ENV)
    uri = path.as_uri()
    first_document, _ = states[0]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=first_document))
    )
    latencies: list[float] = []
    answered_pauses = texts_after_pauses = pauses = 0
    previous: tuple[str, asyncio.Future, float] | None = None
    document = first_document
    for index, ((new_document, cursor), wait) in enumerate(zip(states, waits)):
        await asyncio.sleep(wait)
        if index:
            # The whole-document change keeps the replay simple; the server syncs it like any edit.
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=index + 1),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=new_document)],
                )
            )
        document = new_document
        if previous is not None and not previous[1].done():
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=previous[0]))
        line = document.count("\n", 0, cursor)
        character = len(document[document.rfind("\n", 0, cursor) + 1 : cursor].encode("utf-16-le")) // 2
        msg_id = f"k{index}"
        future = asyncio.wrap_future(
            client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                ),
                msg_id=msg_id,
            )
        )
        sent = time.perf_counter()
        future.add_done_callback(lambda f, sent=sent: f.cancelled() or f.exception() or latencies.append((time.perf_counter() - sent) * 1000))
        previous = (msg_id, future, sent)
        next_wait = waits[index + 1] if index + 1 < len(waits) else LINE_PAUSE_S
        if next_wait >= LINE_PAUSE_S:
            pauses += 1
            try:
                result = await asyncio.wait_for(asyncio.shield(future), timeout=next_wait)
            except (asyncio.TimeoutError, Exception):
                result = None
            if result is not None:
                answered_pauses += 1
                texts_after_pauses += bool(result)
    await asyncio.sleep(0.5)
    stats = await _stats(client)
    await _stop(client)
    return {
        "keystrokes": len(states),
        "requests": stats["requests"],
        "model_calls": stats["model_calls"],
        "model_calls_per_100_keystrokes": round(100 * stats["model_calls"] / len(states), 1),
        "cache_hits": stats["cache_hits"],
        "superseded": stats["superseded"],
        "cancelled": stats["cancelled"],
        "answered": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2) if latencies else None,
        "p95_ms": round(percentile(latencies, 95), 2) if latencies else None,
        "context_p50_ms": stats["context_p50_ms"],
        "context_p95_ms": stats["context_p95_ms"],
        "model_p50_ms": stats["engine_p50_ms"],
        "model_p95_ms": stats["engine_p95_ms"],
        "queue_p50_ms": stats["queue_p50_ms"],
        "queue_p95_ms": stats["queue_p95_ms"],
        "server_overhead_p50_ms": stats["server_overhead_p50_ms"],
        "server_overhead_p95_ms": stats["server_overhead_p95_ms"],
        "engine_p50_ms": stats["engine_p50_ms"],
        "pauses": pauses,
        "pauses_answered": answered_pauses,
        "pauses_with_text": texts_after_pauses,
    }


# What is typed at the end of every file of the size replay, and the real code before it.
TYPED_TAIL = "\n\ndef scaled(values, factor):\n    result = []\n    for value in values:\n        result.append(value * factor)\n    return result\n"
SIZES = (3, 30_000, 300_000, 3_000_000)  # 3 lines, then bytes


def sized_text(size: int, code: str) -> str:
    """About `size` bytes of real code (`code` repeated) ending in the same last lines, or the
    three-line file when `size` is 3."""
    if size == 3:
        return "import os\n\nx = os.sep\n"
    ending = code[-8000:]
    ending = ending[ending.find("\n") + 1 :]
    filler = (code * (size // len(code) + 1))[: max(0, size - len(ending))]
    return filler[: filler.rfind("\n") + 1] + ending


async def _size_session(model: str, path: Path, text: str, keystrokes: int) -> dict[str, Any]:
    """Open `text`, then type `TYPED_TAIL` at its end, one request per keystroke, each answered
    before the next; the first request after opening is reported apart."""
    from lsprotocol import types

    client = await _start(model, path.parent, {"debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0}, env=_ENV)
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    )
    line, character = text.count("\n"), len(text) - text.rfind("\n") - 1

    async def request() -> float:
        started = time.perf_counter()
        await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            )
        )
        return (time.perf_counter() - started) * 1000

    first_ms = await request()
    first = await _stats(client, reset=True)
    latencies = []
    for version, char in enumerate(TYPED_TAIL[:keystrokes], start=2):
        at = types.Position(line=line, character=character)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(at, at), text=char)],
            )
        )
        line, character = (line + 1, 0) if char == "\n" else (line, character + 1)
        latencies.append(await request())
    stats = await _stats(client)
    await _stop(client)
    return {
        "bytes": len(text.encode("utf-8")),
        "keystrokes": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "context_p50_ms": stats["context_p50_ms"],
        "context_p95_ms": stats["context_p95_ms"],
        "model_p50_ms": stats["engine_p50_ms"],
        "model_p95_ms": stats["engine_p95_ms"],
        "overhead_p50_ms": stats["server_overhead_p50_ms"],
        "overhead_p95_ms": stats["server_overhead_p95_ms"],
        "first_request_ms": round(first_ms, 2),
        "first_request_context_ms": first["context_p50_ms"],
    }


def run_by_size(model: str, code: str, keystrokes: int, sizes=SIZES) -> list[dict[str, Any]]:
    import tempfile

    results = []
    with tempfile.TemporaryDirectory(prefix="fimls-bench-sizes-") as folder:
        for size in sizes:
            path = Path(folder) / f"size_{size}.py"
            text = sized_text(size, code)
            path.write_text(text, encoding="utf-8")
            results.append(asyncio.run(_size_session(model, path, text, keystrokes)))
    return results


# The servers the replays start: the default backend (this machine's daemon), in a runtime
# directory of the benchmark's own, so that it neither uses nor disturbs the user's daemon.
_ENV: dict[str, str] | None = None


def run(
    model: str | None, file: Path, keystrokes: int, size_keystrokes: int = 40, sizes=SIZES, window_keystrokes: int = 40,
) -> dict[str, Any]:
    import os

    from fimls.bench import windows
    from fimls.testmodel import ensure_test_model

    global _ENV
    model = model or str(ensure_test_model())
    text = file.read_text(encoding="utf-8")
    states = keystroke_states(text, keystrokes)
    waits = typing_schedule(states)
    path = file.resolve()
    with windows.private_run_dir() as run_dir:
        _ENV = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}
        fimls_run = asyncio.run(_session(model, states, waits, path, {}))
        plain_run = asyncio.run(_session(model, states, waits, path, {"debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0}))
        by_size = run_by_size(model, text, size_keystrokes, sizes)
    shared_daemon = windows.run(model, window_keystrokes) if window_keystrokes else {}
    smallest = by_size[0]
    return {
        "bench": "lsp",
        "model": model,
        "device": "cpu",
        "file": str(file),
        "wpm": WPM,
        "line_pause_s": LINE_PAUSE_S,
        **fimls_run,
        "no_debounce_no_cache": plain_run,
        "typing_context_p95_ms": fimls_run["context_p95_ms"],
        # Per file size, the first request after opening a file excluded (each entry has it apart).
        "context_p95_ms": max(entry["context_p95_ms"] for entry in by_size),
        "by_size": by_size,
        # Keystroke p50 of each size over the three-line file's, measured in this run.
        "p50_ratio_to_smallest": {str(entry["bytes"]): round(entry["p50_ms"] / smallest["p50_ms"], 3) for entry in by_size},
        **shared_daemon,
    }


def main(args) -> int:
    import logging

    from fimls.stdio import print_out

    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message, source text included

    if args.windows_only:
        from fimls.bench import windows
        from fimls.testmodel import ensure_test_model

        model = args.model or str(ensure_test_model())
        report = {"bench": "lsp", "model": model, "device": "cpu", **windows.run(model, args.window_keystrokes)}
    else:
        sizes = tuple(int(size) for size in args.sizes.split(","))
        report = run(
            args.model, Path(args.file) if args.file else DEFAULT_FILE, args.keystrokes, args.size_keystrokes, sizes,
            args.window_keystrokes,
        )
    if not args.json:
        for key, value in report.items():
            print_out(f"{key:>32}: {value}")
    print_out(json.dumps(report))
    return 0
