"""`fimls bench soak`: the real server over stdio for N seconds of what a long editing day throws
at it: bursts of keystrokes, each with an automatic completion request that the next keystroke
supersedes or the client cancels, newlines, file events on disk, settings changes and documents
closed and reopened. It reports errors, memory and threads at the start (after warm-up) and at
the end, and how many model calls the requests cost.

The server is driven with pygls' own client, as `fimls bench lsp` drives it."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psutil

from fimls.bench.engine_bench import DEFAULT_FILE
from fimls.bench.lsp_bench import _stats
from fimls.bench.windows import daemon_pid, private_run_dir
from fimls.lsp.stats import percentile

REQUEST_CANCELLED = -32800
SETTINGS_CYCLE = ({"ranker": "fused"}, {"ranker": "bm25", "maxNewTokens": 24}, {"ranker": "imports", "contextTokens": 512})


def _server_figures(process: psutil.Process) -> tuple[float, int]:
    return process.memory_info().rss / 2**20, process.num_threads()


def _end_of(text: str):
    """The position after the last character of `text` (UTF-16 columns, as LSP counts them)."""
    from lsprotocol import types

    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1].encode("utf-16-le")) // 2)


class Editor:
    """Documents as the client holds them, edited at a cursor that moves on as it types."""

    def __init__(self, client, workspace: Path, rng: random.Random):
        self.client, self.rng = client, rng
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        source = DEFAULT_FILE.read_text(encoding="utf-8")
        for number in range(3):
            path = workspace / f"doc{number}.py"
            path.write_text(source)
            self.open(path.as_uri(), source[: len(source) // 2])

    def open(self, uri: str, text: str) -> None:
        from lsprotocol import types

        self.texts[uri], self.versions[uri] = text, 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
        )

    def close_and_reopen(self, uri: str) -> None:
        from lsprotocol import types

        self.client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
        self.open(uri, self.texts[uri])

    def type(self, uri: str, characters: str):
        """Append at the end (the cursor) and return the position after it."""
        from lsprotocol import types

        at = _end_of(self.texts[uri])
        self.texts[uri] += characters
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=characters)],
        ))
        return _end_of(self.texts[uri])

    def replace(self, uri: str, text: str) -> None:
        from lsprotocol import types

        self.texts[uri] = text
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        ))


class _Server:
    """The server pygls' client started: its process, the tail of its stderr (drained, so that a
    long run's log lines never fill the pipe and stall the server), and the requests sent to it
    with the time each was sent and its answer received."""

    def __init__(self, client):
        self.client = client
        self.process = client._server  # the asyncio subprocess `start_io` started
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._drain = asyncio.create_task(self._drain_stderr())
        self.ids = itertools.count(1)
        self.futures: dict[int, Future] = {}
        self.sent: dict[int, float] = {}
        self.received_at: dict[int, float] = {}

    async def _drain_stderr(self) -> None:
        while line := await self.process.stderr.readline():
            self.stderr_tail.append(line.decode("utf-8", "replace"))

    def stderr(self) -> str:
        return "".join(list(self.stderr_tail)[-40:])

    def alive(self) -> bool:
        return self.process.returncode is None

    def request(self, method: str, params: Any) -> int:
        msg_id = next(self.ids)
        future = self.client.protocol.send_request(method, params, msg_id=msg_id)
        self.sent[msg_id] = time.monotonic()
        # Called on the event loop's thread as the answer is read: the time of receipt.
        future.add_done_callback(lambda _, msg_id=msg_id: self.received_at.setdefault(msg_id, time.monotonic()))
        self.futures[msg_id] = future
        return msg_id

    async def wait_for(self, ids, timeout: float) -> None:
        """Until every request in `ids` is answered; raises if any is missing after `timeout` s
        or the server exited first."""
        from pygls.exceptions import JsonRpcException

        deadline = time.monotonic() + timeout
        pending = [self.futures[i] for i in ids]
        while True:
            pending = [f for f in pending if not f.done()]
            if not pending:
                break
            if not self.alive():
                await asyncio.sleep(0.2)  # the answers it wrote before exiting may still be in the pipe
                pending = [f for f in pending if not f.done()]
                if pending:
                    raise RuntimeError(f"server exited with {self.process.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} requests unanswered after {timeout}s")
            await asyncio.sleep(0.02)
        for msg_id in ids:
            error = self.futures[msg_id].exception()
            if error is not None and not isinstance(error, JsonRpcException):  # pygls' "server exited"
                raise RuntimeError(f"{error}: {self.stderr()}")

    async def close(self, timeout: float = 30) -> int:
        """shutdown and exit, as an editor ends a session; the server's exit code."""
        if self.alive():
            try:
                await asyncio.wait_for(self.client.shutdown_async(None), timeout)
                self.client.exit(None)
            except Exception:  # gone, or not answering: it is waited for (or killed) below
                pass
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self.client.stop()
        await self._drain
        return self.process.returncode


async def _start(model: str, workspace: Path, run_dir: Path) -> _Server:
    """`fimls --stdio` in `workspace` with the soak's own runtime directory, initialized and its
    model loaded (the `_start` of `fimls bench lsp`, with the server's working directory and
    stderr kept and a bound on the wait)."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("fimls-soak", "1")
    statuses: list[Any] = []
    client.feature("fimls/status")(lambda params: statuses.append(params))
    await client.start_io(
        sys.executable, "-m", "fimls", "--stdio", cwd=str(workspace), env={**os.environ, "XDG_RUNTIME_DIR": str(run_dir)},
    )
    server = _Server(client)
    try:
        await asyncio.wait_for(client.initialize_async(types.InitializeParams(
            process_id=None, root_uri=workspace.as_uri(), capabilities=types.ClientCapabilities(),
            initialization_options={"model": model, "device": "cpu", "maxNewTokens": 16},
        )), 60)
        client.initialized(types.InitializedParams())
        deadline = time.monotonic() + 300
        while not statuses or statuses[-1].state not in ("ready", "error"):
            if not server.alive():
                raise RuntimeError(f"server exited with {server.process.returncode}: {server.stderr()}")
            if time.monotonic() > deadline:
                raise TimeoutError("no fimls/status ready after 300s")
            await asyncio.sleep(0.05)
        if statuses[-1].state != "ready":
            raise RuntimeError(f"the model did not load: {statuses[-1].message}")
    except BaseException:
        await server.close()
        raise
    return server


def run(model: str | None, seconds: float, seed: int = 0) -> dict[str, Any]:
    from fimls.testmodel import ensure_test_model

    model = model or str(ensure_test_model())
    with private_run_dir() as run_dir:  # a daemon of the soak's own, never the user's
        return asyncio.run(_soak(model, seconds, random.Random(seed), run_dir))


async def _soak(model: str, seconds: float, rng: random.Random, run_dir: Path) -> dict[str, Any]:
    from lsprotocol import types
    from pygls.exceptions import JsonRpcException

    workspace = Path(tempfile.mkdtemp(prefix="fimls-soak-"))
    server = None
    try:
        server = await _start(model, workspace, run_dir)
        client = server.client
        process = psutil.Process(server.process.pid)
        daemon = psutil.Process(daemon_pid(run_dir)) if daemon_pid(run_dir) else None
        daemon_baseline = None
        editor = Editor(client, workspace, rng)
        warm_up_s = min(30.0, max(5.0, seconds * 0.1))
        started = time.monotonic()
        deadline = started + warm_up_s + seconds
        baseline: tuple[float, int] | None = None
        sent = server.sent
        bursts = file_events = settings_changes = reopened = 0
        while time.monotonic() < deadline:
            if baseline is None and time.monotonic() - started >= warm_up_s:
                # The start figures come after warm-up: the first requests load tokenizer caches,
                # tree-sitter grammars and allocator arenas that stay for the server's life.
                await server.wait_for(list(sent), timeout=120)
                baseline = _server_figures(process)
                daemon_baseline = _server_figures(daemon) if daemon else None
                measured_from = len(sent)
            uri = rng.choice(list(editor.texts))
            bursts += 1
            previous = None
            for _ in range(rng.randint(2, 8)):
                position = editor.type(uri, rng.choice(["x", "_", "(", " ", "1", "\n    ", "\n"]))
                if previous is not None and rng.random() < 0.5:
                    client.cancel_request(types.CancelParams(id=previous))  # as VS Code does on the next keystroke
                previous = server.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri), position=position,
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind(2 if rng.random() < 0.1 else 1)),
                ))
                await asyncio.sleep(rng.uniform(0.0, 0.04))
            roll = rng.random()
            if roll < 0.15:
                path = workspace / f"disk{rng.randrange(20)}.py"
                if path.exists() and rng.random() < 0.5:
                    path.unlink()
                else:
                    path.write_text(f"def helper_{rng.randrange(10**6)}(value):\n    return value\n" * rng.randint(1, 40))
                file_events += 1
            elif roll < 0.2:
                client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"fimls": {
                    "model": model, "device": "cpu", "maxNewTokens": 16, **SETTINGS_CYCLE[settings_changes % len(SETTINGS_CYCLE)]}}))
                settings_changes += 1
            elif roll < 0.23:
                editor.close_and_reopen(uri)
                reopened += 1
            if len(editor.texts[uri]) > 20_000:  # keep documents a realistic size
                editor.replace(uri, editor.texts[uri][:8_000])
            await asyncio.sleep(rng.uniform(0.05, 0.4))  # the pause between bursts
        await server.wait_for(list(sent), timeout=120)
        await asyncio.sleep(1.0)  # let cancelled generations and file events settle before the end figures
        end = _server_figures(process)
        daemon_end = _server_figures(daemon) if daemon else None
        stats = await asyncio.wait_for(_stats(client), 60)
        failures = {i: f.exception() for i, f in server.futures.items()}
        cancelled = sum(1 for e in failures.values() if isinstance(e, JsonRpcException) and e.code == REQUEST_CANCELLED)
        errors = [e for e in failures.values() if e is not None and getattr(e, "code", None) != REQUEST_CANCELLED]
        latencies = [(server.received_at[i] - sent[i]) * 1000 for i in sent if failures[i] is None]
        answered_with_text = sum(1 for i, f in server.futures.items() if failures[i] is None and f.result())
        if baseline is None:
            baseline, daemon_baseline = end, daemon_end
            measured_from = 0
        alive = server.alive()
    finally:
        code = await server.close() if server is not None else None
        shutil.rmtree(workspace, ignore_errors=True)
    return {
        "seconds": seconds,
        "warm_up_s": warm_up_s,
        "requests": len(sent),
        "requests_after_warm_up": len(sent) - measured_from,
        "cancelled": cancelled,
        "superseded": stats["superseded"],
        "errors": len(errors) + stats["errors"] + (0 if alive else 1),
        "model_calls": stats["model_calls"],
        "bursts": bursts,
        "model_calls_per_burst": round(stats["model_calls"] / bursts, 2) if bursts else 0.0,
        # Generations a newer keystroke stopped part-way; their text was never returned.
        "model_calls_stopped_early": stats["stopped_early"],
        "model_calls_completed": stats["model_calls"] - stats["stopped_early"],
        "answered_with_text": answered_with_text,
        "file_events": file_events,
        "settings_changes": settings_changes,
        "documents_reopened": reopened,
        "rss_start_mb": round(baseline[0], 1),
        "rss_end_mb": round(end[0], 1),
        "rss_growth_mb": round(end[0] - baseline[0], 1),
        # The shared daemon that holds the model (the default backend): its memory over the soak.
        "daemon_rss_start_mb": round(daemon_baseline[0], 1) if daemon_baseline else None,
        "daemon_rss_growth_mb": round(daemon_end[0] - daemon_baseline[0], 1) if daemon_baseline else None,
        "threads_start": baseline[1],
        "threads_end": end[1],
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 95), 1) if latencies else None,
        "server_exit_code": code,
        "error_samples": [_error_sample(e) for e in errors[:3]],
    }


def _error_sample(error: BaseException) -> dict[str, Any]:
    """An error answer as it came on the wire: code, message and data where it had any."""
    sample = {"code": getattr(error, "code", None), "message": getattr(error, "message", str(error))}
    if getattr(error, "data", None) is not None:
        sample["data"] = error.data
    return sample


def main(args) -> int:
    import logging

    from fimls.stdio import print_out

    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message, source text included
    report = run(args.model, args.seconds, args.seed)
    if not args.json:
        for key, value in report.items():
            print_out(f"{key:>24}: {value}")
    print_out(json.dumps(report))
    return 0
