"""The stdio side of the shared daemon (`backend: local`): start it if none runs, make the model
resident in it (over its HTTP), send it each completion as a frame (`frames`: the prompt's new
tail as token ids), and follow it: when it dies, say so, start a new one, load again and say
ready, with no editor restart."""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import httpx
from filelock import FileLock, Timeout

from fimls.contract import (
    BackendError,
    Completion,
    CompletionRequest,
    Generation,
    ModelSpec,
    ModelUnavailable,
    StateListener,
    Tuning,
)
from fimls.engine.backends.rendering import PromptRenderer, check_fits
from fimls.engine.daemon import frames
from fimls.engine.daemon.rundir import RunDirUnsafe, answers, socket_path
from fimls.engine.model.checkpoint import load_tokenizer_and_window
from fimls.engine.model.tokenizer import CodeTokenizer

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


class DaemonError(BackendError):
    """The daemon failed a completion, or could not be reached; the message is one sentence."""


class DaemonBackend:
    """`backend: local`: the `Backend` interface over the daemon's socket."""

    def __init__(self, tokenizer: CodeTokenizer, *, spec: ModelSpec, socket: Path, daemon_args: list[str], tuning: Tuning,
                 timeout_s: float, stall_s: float):
        self.renderer = PromptRenderer(tokenizer, spec.model, tuning.layout)
        self.spec = spec
        self.socket = socket
        self.daemon_args = daemon_args
        self.tuning = tuning
        self.stall_s = min(stall_s, timeout_s)
        self.client_id = CLIENT_ID
        self.model = spec.id
        self.description = ""
        self.problem: str | None = None
        self._window = 0
        self._closed = False
        self._lock = threading.Lock()
        self._attached = threading.Event()
        self._on_state: StateListener = lambda state, message: None
        self._http = httpx.Client(
            base_url=BASE_URL, transport=httpx.HTTPTransport(uds=str(socket)), trust_env=False,
            timeout=httpx.Timeout(timeout_s, connect=3.0, read=self.stall_s),
        )
        # The attach stream waits for as long as the daemon lives: no read timeout.
        self._attach_client = httpx.Client(
            base_url=BASE_URL, transport=httpx.HTTPTransport(uds=str(socket)), trust_env=False,
            timeout=httpx.Timeout(None, connect=3.0),
        )
        self._watcher: threading.Thread | None = None
        self._frames: socket.socket | None = None  # kept alive between completions
        self._sent = frames.Prompts()  # each document's last prompt on it, as the daemon remembers it
        self._header: tuple[dict | None, bytes] = (None, b"")  # the last request's header, encoded

    # -- the Backend interface ------------------------------------------------------------------

    @property
    def window(self) -> int:
        return self._window

    def count_tokens(self, text: str) -> int:
        return self.renderer.count_tokens(text)

    def tune(self, tuning: Tuning) -> None:
        """The layout is applied here; the draft length and the cache budget travel with the next
        request's header."""
        self.tuning = tuning
        self.renderer.layout = tuning.layout

    def watch(self, on_state: StateListener) -> None:
        """`on_state(state, message)` from another thread: `error` when the daemon is lost,
        `ready` once a new one holds the model."""
        self._on_state = on_state

    def describe(self) -> str:
        return self.description or f"{self.spec.model} in the fimls daemon"

    def close(self) -> None:
        self._closed = True
        self._attach_client.close()
        self._http.close()
        if self._frames is not None:
            self._frames.close()

    def complete(self, request: CompletionRequest) -> Completion:
        """One completion from the daemon, over `frames`; the answer is the daemon's engine's, token
        ids and all (nothing is tokenized again here)."""
        rendering = time.perf_counter()
        prompt = self.renderer.render(request.parts)
        render_s = time.perf_counter() - rendering
        check_fits(prompt, request.max_new_tokens, self.window)
        rules = request.rules
        header = {
            "model": self.model, "max_tokens": request.max_new_tokens, "temperature": request.temperature,
            "top_p": request.top_p, "seed": 0, "n": request.candidates,
            "fimls_session": f"{self.client_id}:{request.session}",
            "fimls_rules": None if rules is None else {
                "single_line": rules.single_line, "cursor_block_indent": rules.cursor_block_indent,
                "stop_strings": list(rules.stop_strings),
            },
            "fimls_speculative_tokens": self.tuning.speculative_tokens,
            "fimls_max_cached_tokens": self.tuning.max_cached_tokens,
        }
        with self._lock:
            started = time.perf_counter()
            answer = self._exchange(header, prompt, request.cancelled)
            total_s = time.perf_counter() - started
        if answer is None:
            return Completion("", Generation([], "cancelled", len(prompt), 0, total_s, total_s), render_s)
        if "error" in answer:
            raise DaemonError(self._refusal(int(answer.get("status") or 500), answer["error"]))
        # The hop: the time here beyond the daemon's own model time; the first candidate carries it.
        transport_s = total_s - float(answer["model_s"])
        generation = _generation(answer["generation"])
        generation.total_s += transport_s
        alternatives = tuple(Completion(a["text"], _generation(a["generation"])) for a in answer["alternatives"])
        return Completion(answer["text"], generation, render_s, alternatives, transport_s)

    # -- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        """Attach to the daemon (started if need be) and make the model resident there."""
        ensure_daemon(self.socket, self.daemon_args)
        self._watcher = threading.Thread(target=self._watch, name="fimls-daemon-watch", daemon=True)
        self._watcher.start()
        if not self._attached.wait(START_TIMEOUT_S):
            raise DaemonUnavailable(f"the fimls daemon on {self.socket} does not take clients; its log is {self.socket.with_suffix('.log')}.")
        self._load()

    def _load(self) -> None:
        body = {"client": self.client_id, "max_cached_tokens": self.tuning.max_cached_tokens, **asdict(self.spec)}
        try:
            response = self._http.post("/fimls/load", json=body, timeout=LOAD_TIMEOUT_S)
        except httpx.HTTPError as error:
            raise DaemonUnavailable(self._unreachable(error)) from None
        if response.status_code in (409, 422):
            raise ModelUnavailable(_message(response))
        if response.status_code >= 400:
            raise DaemonUnavailable(self._refusal(response.status_code, _message(response)))
        answer = response.json()
        self.model = answer["id"]
        self._window = int(answer["window"])
        self.description = answer.get("description", "")

    def _watch(self) -> None:
        attached_before, pause = False, 0.1
        while not self._closed:
            problem = None
            try:
                with self._attach_client.stream("GET", "/fimls/attach", params={"client": self.client_id}) as response:
                    if response.status_code >= 400:
                        raise DaemonUnavailable(self._refusal(response.status_code, response.read().decode("utf-8", "replace")))
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
            except (DaemonUnavailable, ModelUnavailable) as error:
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

    # -- the frames exchange --------------------------------------------------------------------

    def _where(self) -> str:
        return f"the fimls daemon ({self.socket})"

    def _exchange(self, header: dict, prompt: list[int], cancelled: Callable[[], bool]) -> dict | None:
        """The daemon's answer to one request; None when cancelled first. Only the prompt's ids
        after those it shares with the document's last one on this connection are sent. A
        kept-alive connection that the daemon closed (it restarted) is retried once on a new one."""
        if cancelled():
            return None
        document = header["fimls_session"]
        for attempt in (0, 1):
            reused = self._frames is not None
            connection = self._frames
            try:
                if connection is None:
                    connection = self._frames = self._connect()
                    self._sent = frames.Prompts()  # the daemon's memory of this connection starts empty too
                last = self._sent.get(document)
                keep = frames.shared_prefix(last, prompt) if last else 0
                if header != self._header[0]:  # a keystroke's is the last one's: encoded once
                    self._header = (header, frames.encode_header(header))
                answering = [True]

                def hang_up(connection=connection) -> None:  # a superseded request: the daemon stops it at once
                    if answering[0]:
                        _shut(connection)

                on_cancel = getattr(cancelled, "on_cancel", None)
                if on_cancel is not None:
                    on_cancel(hang_up)
                try:
                    connection.sendall(frames.pack(self._header[1], prompt[keep:], keep))
                    answer, _ids = frames.receive(connection)
                finally:
                    answering[0] = False
                if "error" in answer:
                    self._sent.forget(document)
                else:
                    self._sent.put(document, prompt)
                return answer
            except (OSError, frames.BadFrame) as error:
                if isinstance(error, BlockingIOError):  # SO_RCVTIMEO ran out
                    error = TimeoutError(f"no answer within {self.stall_s:g}s")
                if connection is not None:
                    connection.close()
                self._frames = None
                if cancelled():
                    return None
                if reused and attempt == 0 and not isinstance(error, (TimeoutError, frames.BadFrame)):
                    continue
                raise DaemonError(self._broken(error)) from None
        return None  # not reached: the second attempt returns or raises

    def _connect(self) -> socket.socket:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The stall limit in the kernel (SO_RCVTIMEO) rather than Python's socket timeout, which
        # polls before every read: a blocking socket reads an answer in one call.
        seconds = int(self.stall_s)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, int((self.stall_s - seconds) * 1e6)))
        try:
            connection.connect(str(self.socket))
            connection.sendall(frames.MAGIC)
        except OSError:
            connection.close()
            raise
        return connection

    # -- one sentence per failure ---------------------------------------------------------------

    def _broken(self, error: BaseException) -> str:
        """What a failed exchange tells the user."""
        if isinstance(error, frames.BadFrame):
            return f"{self._where()} sent a malformed answer ({error})"
        if isinstance(error, (FileNotFoundError, ConnectionRefusedError)):
            return f"the fimls daemon is not running ({error}); fimls is starting a new one."
        if isinstance(error, TimeoutError):
            return f"{self._where()} stopped sending for {self.stall_s:g}s in the middle of a completion."
        return f"{self._where()} closed the connection in the middle of a completion ({error or type(error).__name__})."

    def _unreachable(self, error: BaseException) -> str:
        if isinstance(error, httpx.ConnectError):
            return f"the fimls daemon is not running ({error}); fimls is starting a new one."
        if isinstance(error, httpx.TimeoutException):
            return f"{self._where()} did not answer in time ({type(error).__name__})."
        return f"{self._where()} closed the connection ({type(error).__name__}: {error})."

    def _refusal(self, status: int, error: object) -> str:
        """An error answer as one sentence: the daemon's own message, with what to do."""
        detail = error.get("message") if isinstance(error, dict) else error
        detail = " ".join(str(detail or "").split())[:300]
        if status == 503 or status >= 500:
            return f"{self._where()} failed the completion ({detail}); fimls will try again."
        return f"{self._where()} refused the completion ({status} {detail})."


def _generation(fields: dict) -> Generation:
    return Generation(**{**fields, "first_choices": [tuple(choice) for choice in fields.get("first_choices", ())]})


def _shut(connection: socket.socket) -> None:
    """Shutting the socket down wakes the read that waits for the answer, in another thread."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _message(response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:200]


def open_daemon_backend(spec: ModelSpec, tuning: Tuning, *, daemon_args: list[str], timeout_s: float, stall_s: float) -> DaemonBackend:
    """The model resident in this user's daemon (started if none runs, with `daemon_args`), and
    the tokenizer here."""
    tokenizer, _window = load_tokenizer_and_window(spec.model, offline=spec.offline, trust_remote_code=spec.trust_remote_code)
    try:
        path = socket_path()
    except RunDirUnsafe as error:
        raise ModelUnavailable(str(error)) from None
    backend = DaemonBackend(
        tokenizer, spec=spec, socket=path, daemon_args=daemon_args, tuning=tuning, timeout_s=timeout_s, stall_s=stall_s,
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
