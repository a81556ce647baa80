"""The one LSP client of the tests: raw JSON-RPC to the real server over stdio. It sends any
bytes, well-formed or not (the fuzz test needs what a typed client refuses to send: wrong types,
negative positions, broken JSON), keeps every answer and notification with its arrival time, and
answers the server's requests as a client without opinions.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable


class ServerExited(RuntimeError):
    pass


class LspClient:
    def __init__(
        self, *args: str, env: dict[str, str] | None = None, cwd: str | None = None, command: list[str] | None = None,
        base_env: dict[str, str] | None = None,
    ):
        """`env` is added to `base_env` (default: this process's environment)."""
        try:
            from conftest import require_slow
        except ImportError:  # the GPU kit carries this file without the suite's conftest
            pass
        else:
            require_slow("starts a language server")
        command = (command or [sys.executable, "-m", "fimls"]) + ["--stdio", *args]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**(os.environ if base_env is None else base_env), **(env or {})}, cwd=cwd,
        )
        self.ids = itertools.count(1)
        self.responses: dict[Any, dict] = {}
        self.received_at: dict[Any, float] = {}  # time.monotonic() of each response
        self.notifications: list[dict] = []
        self.server_requests: list[dict] = []
        self.stderr_tail: list[str] = []
        # What `workspace/configuration` answers: a function of the request's params; by default
        # null for every item, as a client with no settings for the section does.
        self.answer_configuration: Callable[[dict], list] | None = None
        self._changed = threading.Condition()
        self._write_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    # -- sending -------------------------------------------------------------------------------
    def send_bytes(self, body: bytes) -> None:
        with self._write_lock:
            self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.process.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_bytes(json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8", "surrogatepass"))

    def request(self, method: str, params: Any = None, request_id: Any = None) -> Any:
        request_id = next(self.ids) if request_id is None else request_id
        message = {"id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return request_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"method": method, **({"params": params} if params is not None else {})})

    # -- receiving -----------------------------------------------------------------------------
    def wait_for(self, ids, timeout: float) -> dict[Any, dict]:
        """The responses to `ids`; raises if any is missing after `timeout` seconds."""
        wanted = set(ids)
        return self._wait_until(
            lambda: {key: self.responses[key] for key in wanted} if wanted <= self.responses.keys() else None,
            timeout,
            lambda: f"{len(wanted - self.responses.keys())} requests unanswered after {timeout}s",
        )

    def call(self, method: str, params: Any = None, timeout: float = 60) -> dict:
        request_id = self.request(method, params)
        return self.wait_for([request_id], timeout)[request_id]

    def wait_for_notification(
        self, method: str, predicate=lambda params: True, timeout: float = 300, after: int = 0
    ) -> dict:
        """The params of the first `method` notification from index `after` on that `predicate` accepts."""
        seen = after

        def found():
            nonlocal seen
            for message in self.notifications[seen:]:
                if message.get("method") == method and predicate(message.get("params")):
                    return message["params"]
            seen = len(self.notifications)
            return None

        return self._wait_until(found, timeout, lambda: f"no {method} after {timeout}s")

    def _wait_until(self, found, timeout: float, missing):
        """`found()`'s first result that is not None, waiting for messages up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (result := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(missing())
                if self.process.poll() is not None:
                    raise ServerExited(f"server exited with {self.process.returncode}: {self.stderr()}")
                self._changed.wait(min(left, 0.2))
            return result

    def progress_reports(self) -> dict[Any, list[dict]]:
        """The `$/progress` values received so far, in order, by token; a token the server created
        with `window/workDoneProgress/create` is there from then on, with no values yet."""
        with self._changed:
            requests, notifications = list(self.server_requests), list(self.notifications)
        reports: dict[Any, list[dict]] = {}
        for message in requests:
            if message["method"] == "window/workDoneProgress/create":
                reports.setdefault(message.get("params", {}).get("token"), [])
        for message in notifications:
            if message["method"] == "$/progress":
                params = message.get("params") or {}
                reports.setdefault(params.get("token"), []).append(params.get("value"))
        return reports

    def stderr(self) -> str:
        return "".join(self.stderr_tail[-40:])

    def close(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            try:
                self.call("shutdown", timeout=timeout)
                self.notify("exit")
            except (OSError, TimeoutError, ServerExited):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                header = stream.readline()
                if not header:
                    with self._changed:
                        self._changed.notify_all()
                    return
                if header in (b"\r\n", b"\n"):
                    break
                name, _, value = header.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            message = json.loads(stream.read(length))
            with self._changed:
                if "method" in message and "id" in message:
                    self.server_requests.append(message)
                    # Answered from another thread: this one must keep reading, or a server blocked
                    # on a full stdout pipe and this thread blocked on its stdin wait for each other.
                    threading.Thread(target=self._answer_server_request, args=(message,), daemon=True).start()
                elif "method" in message:
                    self.notifications.append(message)
                else:
                    self.responses[message.get("id")] = message
                    self.received_at[message.get("id")] = time.monotonic()
                self._changed.notify_all()

    def _answer_server_request(self, message: dict) -> None:
        # Progress tokens and configuration pulls: answer as a client that has no opinions.
        result: Any = None
        if message["method"] == "workspace/configuration":
            params = message.get("params", {})
            answer = self.answer_configuration
            result = answer(params) if answer is not None else [None for _ in params.get("items", [])]
        self.send({"id": message["id"], "result": result})

    def _drain_stderr(self) -> None:
        for line in iter(self.process.stderr.readline, b""):
            self.stderr_tail.append(line.decode("utf-8", "replace"))
            del self.stderr_tail[:-200]


# The settings most tests serve with: every request answered, none held back or cached.
PROMPT_SETTINGS = {"device": "cpu", "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0}


def start_session(
    workspace: Path, settings: dict[str, Any] | None = None, *, capabilities: dict | None = None,
    answer_configuration: Callable[[dict], list] | None = None, wait: bool = True, base: bool = True,
    server_args: tuple[str, ...] = (), **client_args: Any,
) -> LspClient:
    """A `fimls --stdio` initialized for `workspace` with `settings` as initializationOptions
    (over PROMPT_SETTINGS unless `base` is false), and, with `wait`, its first load finished
    (`client.first_status`)."""
    client = LspClient(*server_args, cwd=str(workspace), **client_args)
    client.answer_configuration = answer_configuration
    client.workspace = workspace
    answer = client.call("initialize", {
        "processId": None, "rootUri": workspace.as_uri(), "capabilities": capabilities or {},
        "initializationOptions": {**(PROMPT_SETTINGS if base else {}), **(settings or {})},
    })
    client.initialize_result = answer.get("result")
    client.notify("initialized", {})
    if wait:
        client.first_status = client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))
    return client
