"""The stdio side of the shared daemon (`backend: local`): start it if none runs, make the model
resident in it, send it prompts as token ids, and follow it: when it dies, say so, start a new
one, load again and say ready, with no editor restart."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from fimls.engine.rundir import answers
from fimls.engine.server import ServerBackend, ServerError, ServerOptions
from fimls.engine.stops import StopRules

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # importing torch on a slow disk is most of it
LOAD_TIMEOUT_S = 3600.0  # the first load may download gigabytes
MOST_LOG_BYTES = 5 * 2**20
BASE_URL = "http://fimls-daemon"  # a name for logs; the connection is the socket
# This process, to the daemon: one id for every backend it opens, so that a reload (a new
# backend) takes the place of the last one's model instead of holding both.
CLIENT_ID = uuid.uuid4().hex


class DaemonUnavailable(RuntimeError):
    """The daemon could not be started or reached; the message is one sentence for the user."""


def ensure_daemon(path: Path, daemon_args: list[str], timeout_s: float = START_TIMEOUT_S) -> None:
    """A daemon answers on `path` when this returns: the running one, or one started now. Two
    windows starting at once serialize on a lock, so one starts it and the other finds it."""
    from filelock import FileLock, Timeout

    if answers(path):
        return
    try:
        with FileLock(str(path) + ".start-lock", timeout=timeout_s):
            if answers(path):
                return
            _start(path, daemon_args, timeout_s)
    except Timeout:
        raise DaemonUnavailable(f"another window has been starting the fimls daemon for {timeout_s:g}s; see {path.with_suffix('.log')}.") from None


def _start(path: Path, daemon_args: list[str], timeout_s: float) -> None:
    log_path = path.with_suffix(".log")
    try:
        if log_path.stat().st_size > MOST_LOG_BYTES:  # one earlier log is kept, never an endless one
            log_path.replace(log_path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
    with open(log_path, "ab") as log_file:
        # Its own session: the daemon outlives the window that started it, and the editor's signals.
        process = subprocess.Popen(
            [sys.executable, "-m", "fimls", "serve", "--socket", str(path), *daemon_args],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=str(path.parent), close_fds=True,
        )
    log.info("started the fimls daemon (pid %d) on %s", process.pid, path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(path):
            return
        if process.poll() is not None:
            if answers(path):
                return  # one started by hand won the socket
            raise DaemonUnavailable(
                f"the fimls daemon exited as it started ({_last_line(log_path)}); its log is {log_path}."
            )
        time.sleep(0.05)
    raise DaemonUnavailable(f"the fimls daemon did not answer within {timeout_s:g}s; its log is {log_path}.")


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][-200:] if lines else "no log"


class DaemonBackend(ServerBackend):
    """The engine interface over the daemon's socket. `watch` tells the editor's process when the
    daemon is lost and when it is ready again."""

    def __init__(self, tokenizer, *, spec, socket: Path, daemon_args: list[str], max_cached_tokens: int, layout: str,
                 speculative_tokens: int, timeout_s: float, stall_s: float):
        import httpx

        options = ServerOptions(url=BASE_URL, timeout_s=timeout_s, stall_s=stall_s)
        super().__init__(
            tokenizer, options, name=spec.model, window=1, layout=layout, transport=httpx.HTTPTransport(uds=str(socket)),
        )
        self.spec = spec
        self.socket = socket
        self.daemon_args = daemon_args
        self.load_max_cached_tokens = max_cached_tokens
        self.speculative_tokens = speculative_tokens
        self.client_id = CLIENT_ID
        self.accepts_token_ids = True
        self.hangs_up_on_rules = False  # the daemon runs the rules itself, after every token
        self.description = ""
        self.problem = None
        self._closed = False
        self._attached = threading.Event()
        self._on_state: Callable[[str, str], None] = lambda state, message: None
        # The attach stream waits for as long as the daemon lives: no read timeout.
        self._attach_client = httpx.Client(
            base_url=BASE_URL, transport=httpx.HTTPTransport(uds=str(socket)), trust_env=False,
            timeout=httpx.Timeout(None, connect=3.0),
        )
        self._watcher: threading.Thread | None = None
        self._connection: _UnixConnection | None = None  # kept alive between completions

    # -- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        """Attach to the daemon (started if need be) and make the model resident there."""
        ensure_daemon(self.socket, self.daemon_args)
        self._watcher = threading.Thread(target=self._watch, name="fimls-daemon-watch", daemon=True)
        self._watcher.start()
        if not self._attached.wait(START_TIMEOUT_S):
            raise DaemonUnavailable(f"the fimls daemon on {self.socket} does not take clients; its log is {self.socket.with_suffix('.log')}.")
        self._load()

    def watch(self, on_state: Callable[[str, str], None]) -> None:
        """`on_state(state, message)` from another thread: `error` when the daemon is lost,
        `ready` once a new one holds the model."""
        self._on_state = on_state

    def describe(self) -> str:
        return self.description or f"{self.name} in the fimls daemon"

    def close(self) -> None:
        self._closed = True
        self._attach_client.close()
        if self._connection is not None:
            self._connection.close()
        super().close()

    def _load(self) -> None:
        from fimls.engine.loading import ModelUnavailable

        body = {"client": self.client_id, "max_cached_tokens": self.load_max_cached_tokens, **asdict(self.spec)}
        try:
            response = self.client.post("/fimls/load", json=body, timeout=LOAD_TIMEOUT_S)
        except Exception as error:
            raise DaemonUnavailable(self._failure(error)) from None
        if response.status_code in (409, 422):
            raise ModelUnavailable(_message(response))
        self._check_status(response)
        answer = response.json()
        self.model = answer["id"]
        self._window = int(answer["window"])
        self.description = answer.get("description", "")

    def _watch(self) -> None:
        from fimls.engine.loading import ModelUnavailable

        attached_before, pause = False, 0.1
        while not self._closed:
            problem = None
            try:
                with self._attach_client.stream("GET", "/fimls/attach", params={"client": self.client_id}) as response:
                    self._check_status(response)
                    lines = response.iter_lines()
                    for line in lines:
                        if line.startswith("data:"):
                            break
                    self._attached.set()
                    if attached_before:  # a new daemon: make the model resident there again
                        self._load()
                        self.problem = None
                        self._on_state("ready", self.describe())
                    attached_before, pause = True, 0.1
                    for _ in lines:  # held for as long as the daemon lives
                        pass
            except (ServerError, DaemonUnavailable, ModelUnavailable) as error:
                problem = str(error)
            except Exception as error:  # the connection broke: the daemon is gone
                log.info("fimls daemon connection lost: %s", error)
            if self._closed:
                return
            self._attached.clear()
            self._tell_problem(problem or "the fimls daemon stopped; fimls is starting a new one.")
            time.sleep(pause)
            pause = min(pause * 2, 10.0)
            try:
                ensure_daemon(self.socket, self.daemon_args)
            except DaemonUnavailable as error:
                self._tell_problem(str(error))

    def _tell_problem(self, message: str) -> None:
        if self.problem != message:
            self.problem = message
            log.error("%s", message)
            self._on_state("error", message)

    # -- the protocol ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"the fimls daemon ({self.socket})"

    @contextmanager
    def _post_stream(self, payload: dict):
        """The completion request over the standard library's HTTP client on a kept-alive socket:
        a third of httpx's cost per request, which is most of what the hop to the daemon costs.
        A kept-alive connection that the daemon closed (it restarted) is retried once on a new one."""
        body = json.dumps(payload).encode()
        for attempt in (0, 1):
            reused = self._connection is not None
            connection = self._connection or _UnixConnection(self.socket, self.options.stall_s)
            self._connection = connection
            try:
                connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
                raw = connection.getresponse()
                break
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                self._connection = None
                if not (reused and attempt == 0):
                    raise _as_httpx(error) from None
        response = _DaemonResponse(raw, connection.sock)
        try:
            yield response
        finally:
            if not raw.isclosed():  # not read to its end: this connection cannot carry another request
                connection.close()
                if self._connection is connection:
                    self._connection = None

    def _failure(self, error) -> str:
        import httpx

        if isinstance(error, httpx.ConnectError):
            return f"the fimls daemon is not running ({error}); fimls is starting a new one."
        return super()._failure(error)

    def _extensions(self, session: str, rules: StopRules | None, candidates: int, temperature: float) -> dict:
        return {
            "fimls_session": f"{self.client_id}:{session}",
            "fimls_rules": None if rules is None else {**asdict(rules), "stop_strings": list(rules.stop_strings)},
            "n": candidates,
            "fimls_speculative_tokens": self.speculative_tokens,
        }


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("fimls-daemon", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _DaemonResponse:
    """What the server backend reads of a response, over `http.client`, failures as httpx's."""

    def __init__(self, raw: http.client.HTTPResponse, sock: socket.socket | None):
        self.raw = raw
        self.sock = sock
        self.status_code = raw.status
        self.headers = {name.lower(): value for name, value in raw.getheaders()}

    def read(self) -> bytes:
        try:
            return self.raw.read()
        except (OSError, http.client.HTTPException) as error:
            raise _as_httpx(error) from None

    def iter_lines(self):
        while True:
            try:
                line = self.raw.readline()
            except (OSError, http.client.HTTPException, ValueError) as error:
                raise _as_httpx(error) from None
            if not line:
                return
            yield line.decode("utf-8", "replace").rstrip("\r\n")

    def hang_up(self) -> None:
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _as_httpx(error: BaseException):
    import httpx

    reason = str(error) or type(error).__name__
    if isinstance(error, (FileNotFoundError, ConnectionRefusedError)):
        return httpx.ConnectError(reason)
    if isinstance(error, TimeoutError):
        return httpx.ReadTimeout(reason)
    return httpx.RemoteProtocolError(reason)


def _message(response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:200]


def daemon_args(settings) -> list[str]:
    return [
        "--max-resident-models", str(settings.max_resident_models),
        "--idle-exit-s", f"{settings.daemon_idle_exit_s:g}",
    ]


def open_daemon_backend(settings, spec) -> DaemonBackend:
    """The model resident in this user's daemon (started if none runs), and the tokenizer here."""
    from fimls.engine.loading import ModelUnavailable, load_tokenizer_and_window
    from fimls.engine.rundir import RunDirUnsafe, socket_path

    tokenizer, _window = load_tokenizer_and_window(settings.model, offline=settings.offline, trust_remote_code=settings.trust_remote_code)
    try:
        path = socket_path()
    except RunDirUnsafe as error:
        raise ModelUnavailable(str(error)) from None
    backend = DaemonBackend(
        tokenizer, spec=spec, socket=path, daemon_args=daemon_args(settings),
        max_cached_tokens=settings.max_cached_tokens, layout=settings.prompt_layout,
        speculative_tokens=settings.speculative_tokens, timeout_s=max(settings.server_timeout_s, 600.0),
        stall_s=max(settings.server_stall_s, 120.0),
    )
    try:
        backend.start()
    except DaemonUnavailable as error:
        backend.close()
        raise ModelUnavailable(str(error)) from None
    except BaseException:
        backend.close()
        raise
    return backend
