"""Editor windows sharing this machine's daemon, for `fimls bench lsp`:

- two windows (two `fimls --stdio` processes) typing two documents in turn, a keystroke each, each
  request answered before the next keystroke: the share of each prompt served from the KV cache
  with a session per document against one session for everything (the daemon started with
  `--kv-sessions shared`, which is what one cache per model gives), the hop to the daemon (the
  time of each answer beyond the daemon's own model time, as the stdio side measures it), and the
  same replay with the model in each window's own process (`inprocess`), keystroke p50 beside it;
- the hop itself: the same keystroke prompts sent, in turn, to the model in this process and to
  the model in the daemon, from one process; each call's time beyond its model time, and the
  difference of their p50s (what the socket, HTTP, JSON and the daemon's own thread hand-off add
  over in-process);
- three windows open on one model: processes' resident memory and models loaded, through the
  daemon against in each window's process.

Every run has a runtime directory (and so a daemon) of its own, never the user's."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fimls.bench.engine_bench import keystroke_states
from fimls.engine.daemon.rundir import stop_daemon
from fimls.lsp.stats import percentile

QUIET = {"debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0}


@contextmanager
def private_run_dir(kv_sessions: str | None = None):
    """A runtime directory of the run's own; with `kv_sessions`, a daemon started there in that
    mode before any window (windows then find it). Whatever daemon runs there is stopped after."""
    directory = Path(tempfile.mkdtemp(prefix="fimls-bench-"))
    socket = directory / "fimls" / "daemon.sock"
    try:
        if kv_sessions is not None:
            (directory / "fimls").mkdir(mode=0o700)
            subprocess.Popen(
                [sys.executable, "-m", "fimls", "serve", "--socket", str(socket), "--kv-sessions", kv_sessions],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            deadline = time.monotonic() + 60
            while not socket.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        yield directory
    finally:
        stop_daemon(socket.parent)
        shutil.rmtree(directory, ignore_errors=True)


def daemon_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / "fimls" / "daemon.pid").read_text())
    except (OSError, ValueError):
        return None


def daemon_stats(run_dir: Path) -> dict[str, Any]:
    import httpx

    transport = httpx.HTTPTransport(uds=str(run_dir / "fimls" / "daemon.sock"))
    with httpx.Client(transport=transport, base_url="http://fimls-daemon", timeout=10) as client:
        return client.get("/fimls/stats").json()


async def _request(client, uri: str, document: str, cursor: int) -> float:
    from lsprotocol import types

    line = document.count("\n", 0, cursor)
    character = len(document[document.rfind("\n", 0, cursor) + 1 : cursor].encode("utf-16-le")) // 2
    started = time.perf_counter()
    await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    ))
    return (time.perf_counter() - started) * 1000


async def _alternate(model: str, folder: Path, run_dir: Path, backend: str, keystrokes: int) -> dict[str, Any]:
    """Two windows, each with its document, typed in turn; first requests (cold) left out."""
    from lsprotocol import types

    from fimls.bench.lsp_bench import _start, _stats, _stop

    code = (Path(__file__).parent / "data" / "replay_sample.py").read_text(encoding="utf-8")
    documents = []
    for name, start in (("first.py", 0.3), ("second.py", 0.7)):
        path = folder / name
        path.write_text(code, encoding="utf-8")
        documents.append((path.as_uri(), keystroke_states(code, keystrokes, start_fraction=start)))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}
    windows = [await _start(model, folder, {**QUIET, "backend": backend}, env=env) for _ in documents]
    for window, (uri, states) in zip(windows, documents):
        window.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=states[0][0])
        ))
        await _request(window, uri, *states[0])
        await _stats(window, reset=True)
    latencies = []
    for step in range(1, keystrokes):
        for window, (uri, states) in zip(windows, documents):
            document, cursor = states[step]
            window.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=step + 1),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=document)],
            ))
            latencies.append(await _request(window, uri, document, cursor))
    reports = [await _stats(window) for window in windows]
    for window in windows:
        await _stop(window)
    hops = [report["daemon_hop_p50_ms"] for report in reports if report["daemon_hop_p50_ms"] is not None]
    return {
        "keystrokes": len(latencies),
        "reuse_ratio": round(sum(report["kv_reuse_mean"] for report in reports) / len(reports), 4),
        "p50_ms": round(percentile(latencies, 50), 2),
        "model_p50_ms": round(sum(report["engine_p50_ms"] for report in reports) / len(reports), 2),
        # Each window's p50 of the hop, averaged: both windows made as many requests.
        "daemon_hop_p50_ms": round(sum(hops) / len(hops), 3) if hops else None,
    }


async def _open_windows(model: str, folder: Path, run_dir: Path, backend: str, count: int) -> dict[str, Any]:
    import psutil

    from fimls.bench.lsp_bench import _start, _stop

    env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}
    windows = [await _start(model, folder, {**QUIET, "backend": backend}, env=env) for _ in range(count)]
    await asyncio.sleep(1.0)
    pids = [window._server.pid for window in windows]
    if backend == "local":
        pids.append(daemon_pid(run_dir))
    resident = sum(psutil.Process(pid).memory_info().rss for pid in pids if pid)
    result = {
        "windows": count, "processes": len(pids), "rss_mb": round(resident / 2**20, 1),
        "gpu_mb": _gpu_memory_mb(pids),
        "models_loaded": daemon_stats(run_dir)["models_loaded"] if backend == "local" else count,
    }
    for window in windows:
        await _stop(window)
    return result


def _gpu_memory_mb(pids: list[int | None]) -> float | None:
    """GPU memory held by these processes, where nvidia-smi can say (a machine with a GPU)."""
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    used = 0.0
    for row in listed.stdout.splitlines():
        pid, _, memory = row.partition(",")
        if pid.strip().isdigit() and int(pid) in pids:
            used += float(memory)
    return used


HOP_CALLS = 300  # about 10 s with the test model


def hop_beside_inprocess(model: str, run_dir: Path, keystrokes: int) -> dict[str, Any]:
    """p50 of each call's time beyond its model time, through the daemon and in this process, the
    calls alternating (which goes first alternates too) so that both see the same machine."""
    from fimls.backends import open_backend
    from fimls.completion import build_prompt
    from fimls.contract import CompletionRequest
    from fimls.settings import Settings

    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(run_dir)
    try:
        backends = {name: open_backend(Settings(model=model, device="cpu", backend=name)) for name in ("local", "inprocess")}
    finally:
        if previous is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous
    settings = Settings(model=model, device="cpu")
    code = (Path(__file__).parent / "data" / "replay_sample.py").read_text(encoding="utf-8")
    beyond: dict[str, list[float]] = {name: [] for name in backends}
    # More calls than the replay's keystrokes: the hop is a fraction of a millisecond on a noisy machine.
    for step, (document, cursor) in enumerate(keystroke_states(code, max(keystrokes, HOP_CALLS), start_fraction=0.3)):
        prompt = build_prompt(backends["inprocess"], settings, document, cursor, "replay.py", Path("."), None)
        order = list(backends.items()) if step % 2 else list(reversed(backends.items()))
        for name, backend in order:
            started = time.perf_counter()
            completion = backend.complete(CompletionRequest(prompt.parts, settings.max_new_tokens, rules=prompt.rules, session="replay"))
            wall = time.perf_counter() - started
            # The daemon's own model time: its answer's time less what the stdio side measured beyond it.
            model_s = completion.model_s - (completion.transport_s or 0.0)
            if step >= 3:  # the first calls warm both up
                beyond[name].append((wall - model_s) * 1000)
    stats = backends["local"].client.get("/fimls/stats").json()
    backends["local"].close()
    local, inprocess = percentile(beyond["local"], 50), percentile(beyond["inprocess"], 50)
    return {
        "calls": len(beyond["local"]), "beyond_model_p50_ms": {"local": round(local, 3), "inprocess": round(inprocess, 3)},
        "added_p50_ms": round(local - inprocess, 3),
        # The same difference at the quartiles: how much the p50's figure depends on the draw.
        "added_at_p25_p75_ms": [round(percentile(beyond["local"], q) - percentile(beyond["inprocess"], q), 3) for q in (25, 75)],
        # The prompt ids that crossed the socket, of those prompted: a frame sends only a keystroke's tail.
        "prompt_ids_sent_share": round(stats["prompt_ids_received"] / max(1, stats["prompt_tokens"]), 4),
    }


def run(model: str, keystrokes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fimls-bench-windows-") as folder:
        folder = Path(folder)
        with private_run_dir("document") as run_dir:
            by_document = asyncio.run(_alternate(model, folder, run_dir, "local", keystrokes))
        with private_run_dir("shared") as run_dir:
            shared = asyncio.run(_alternate(model, folder, run_dir, "local", keystrokes))
        with private_run_dir() as run_dir:
            inprocess = asyncio.run(_alternate(model, folder, run_dir, "inprocess", keystrokes))
        with private_run_dir() as run_dir:
            hop = hop_beside_inprocess(model, run_dir, keystrokes)
        with private_run_dir() as run_dir:
            three_local = asyncio.run(_open_windows(model, folder, run_dir, "local", 3))
        with private_run_dir() as run_dir:
            three_inprocess = asyncio.run(_open_windows(model, folder, run_dir, "inprocess", 3))
    return {
        "two_window_reuse_ratio": by_document["reuse_ratio"],
        "single_session_reuse_ratio": shared["reuse_ratio"],
        # What the hop adds over the model in the editor's own process (same prompts, one process).
        "daemon_hop_p50_ms": hop["added_p50_ms"],
        "daemon_hop": hop,
        # Each answer's time beyond the daemon's model time, in the two-window replay itself.
        "daemon_transport_p50_ms": by_document["daemon_hop_p50_ms"],
        "models_loaded": three_local["models_loaded"],
        "two_windows": {"document_sessions": by_document, "single_session": shared, "inprocess": inprocess},
        # Keystroke p50 through the daemon over the model in each window's process, same replay.
        "local_over_inprocess_p50_ms": round(by_document["p50_ms"] - inprocess["p50_ms"], 2),
        "three_windows": {"local": three_local, "inprocess": three_inprocess},
    }
