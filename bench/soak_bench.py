"""`fimls bench soak`: the real server over stdio for N seconds of what a long editing day throws
at it: bursts of keystrokes, each with an automatic completion request that the next keystroke
supersedes or the client cancels, newlines, file events on disk, settings changes and documents
closed and reopened. It reports errors, memory and threads at the start (after warm-up) and at
the end, and how many model calls the requests cost."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from fimls.bench.engine_bench import DEFAULT_FILE
from fimls.bench.windows import daemon_pid, private_run_dir
from fimls.bench.wire import WireClient
from fimls.lsp.stats import percentile

REQUEST_CANCELLED = -32800
SETTINGS_CYCLE = ({"ranker": "fused"}, {"ranker": "bm25", "maxNewTokens": 24}, {"ranker": "imports", "contextTokens": 512})


def _server_figures(process: psutil.Process) -> tuple[float, int]:
    return process.memory_info().rss / 2**20, process.num_threads()


class Editor:
    """Documents as the client holds them, edited at a cursor that moves on as it types."""

    def __init__(self, client: WireClient, workspace: Path, rng: random.Random):
        self.client, self.rng = client, rng
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        source = DEFAULT_FILE.read_text(encoding="utf-8")
        for number in range(3):
            path = workspace / f"doc{number}.py"
            path.write_text(source)
            self.open(path.as_uri(), source[: len(source) // 2])

    def open(self, uri: str, text: str) -> None:
        self.texts[uri], self.versions[uri] = text, 1
        self.client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})

    def close_and_reopen(self, uri: str) -> None:
        self.client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        self.open(uri, self.texts[uri])

    def type(self, uri: str, characters: str) -> dict:
        """Append at the end (the cursor) and return the position after it."""
        text = self.texts[uri]
        lines = text.split("\n")
        at = {"line": len(lines) - 1, "character": len(lines[-1].encode("utf-16-le")) // 2}
        self.texts[uri] = text + characters
        self.versions[uri] += 1
        self.client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": self.versions[uri]},
            "contentChanges": [{"range": {"start": at, "end": at}, "text": characters}],
        })
        lines = self.texts[uri].split("\n")
        return {"line": len(lines) - 1, "character": len(lines[-1].encode("utf-16-le")) // 2}


def run(model: str | None, seconds: float, seed: int = 0) -> dict[str, Any]:
    from fimls.testmodel import ensure_test_model

    model = model or str(ensure_test_model())
    with private_run_dir() as run_dir:  # a daemon of the soak's own, never the user's
        return _soak(model, seconds, random.Random(seed), run_dir)


def _soak(model: str, seconds: float, rng: random.Random, run_dir: Path) -> dict[str, Any]:
    workspace = Path(tempfile.mkdtemp(prefix="fimls-soak-"))
    client = WireClient(cwd=str(workspace), env={"XDG_RUNTIME_DIR": str(run_dir)})
    try:
        client.call("initialize", {
            "processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
            "initializationOptions": {"model": model, "device": "cpu", "maxNewTokens": 16},
        })
        client.notify("initialized", {})
        status = client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))
        if status["state"] != "ready":
            raise RuntimeError(f"the model did not load: {status['message']}")
        server = psutil.Process(client.process.pid)
        daemon = psutil.Process(daemon_pid(run_dir)) if daemon_pid(run_dir) else None
        daemon_baseline = None
        editor = Editor(client, workspace, rng)
        warm_up_s = min(30.0, max(5.0, seconds * 0.1))
        started = time.monotonic()
        deadline = started + warm_up_s + seconds
        baseline: tuple[float, int] | None = None
        sent: dict[int, float] = {}
        bursts = file_events = settings_changes = reopened = 0
        while time.monotonic() < deadline:
            if baseline is None and time.monotonic() - started >= warm_up_s:
                # The start figures come after warm-up: the first requests load tokenizer caches,
                # tree-sitter grammars and allocator arenas that stay for the server's life.
                client.wait_for(list(sent), timeout=120)
                baseline = _server_figures(server)
                daemon_baseline = _server_figures(daemon) if daemon else None
                measured_from = len(sent)
            uri = rng.choice(list(editor.texts))
            bursts += 1
            previous = None
            for _ in range(rng.randint(2, 8)):
                position = editor.type(uri, rng.choice(["x", "_", "(", " ", "1", "\n    ", "\n"]))
                if previous is not None and rng.random() < 0.5:
                    client.notify("$/cancelRequest", {"id": previous})  # as VS Code does on the next keystroke
                previous = client.request("textDocument/inlineCompletion", {
                    "textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2 if rng.random() < 0.1 else 1},
                })
                sent[previous] = time.monotonic()
                time.sleep(rng.uniform(0.0, 0.04))
            roll = rng.random()
            if roll < 0.15:
                path = workspace / f"disk{rng.randrange(20)}.py"
                if path.exists() and rng.random() < 0.5:
                    path.unlink()
                else:
                    path.write_text(f"def helper_{rng.randrange(10**6)}(value):\n    return value\n" * rng.randint(1, 40))
                file_events += 1
            elif roll < 0.2:
                client.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {
                    "model": model, "device": "cpu", "maxNewTokens": 16, **SETTINGS_CYCLE[settings_changes % len(SETTINGS_CYCLE)]}}})
                settings_changes += 1
            elif roll < 0.23:
                editor.close_and_reopen(uri)
                reopened += 1
            if len(editor.texts[uri]) > 20_000:  # keep documents a realistic size
                editor.texts[uri] = editor.texts[uri][:8_000]
                editor.versions[uri] += 1
                client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": editor.versions[uri]},
                                                          "contentChanges": [{"text": editor.texts[uri]}]})
            time.sleep(rng.uniform(0.05, 0.4))  # the pause between bursts
        responses = client.wait_for(list(sent), timeout=120)
        time.sleep(1.0)  # let cancelled generations and file events settle before the end figures
        end = _server_figures(server)
        daemon_end = _server_figures(daemon) if daemon else None
        stats = client.call("fimls/stats")["result"]
        cancelled = sum(1 for r in responses.values() if r.get("error", {}).get("code") == REQUEST_CANCELLED)
        errors = [r for r in responses.values() if "error" in r and r["error"].get("code") != REQUEST_CANCELLED]
        latencies = [(client.received_at[i] - sent[i]) * 1000 for i in sent if "result" in responses[i]]
        if baseline is None:
            baseline, daemon_baseline = end, daemon_end
            measured_from = 0
        alive = client.process.poll() is None
    finally:
        code = client.close()
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
        "answered_with_text": sum(1 for r in responses.values() if r.get("result")),
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
        "error_samples": [e["error"] for e in errors[:3]],
    }


def main(args) -> int:
    from fimls.stdio import print_out

    report = run(args.model, args.seconds, args.seed)
    if not args.json:
        for key, value in report.items():
            print_out(f"{key:>24}: {value}")
    print_out(json.dumps(report))
    return 0
