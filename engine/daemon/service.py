"""`fimls serve`: the one process per user that owns the models and the GPU. Every `fimls --stdio`
(one per editor window) keeps its own workspace, context, debounce and cache, and sends this
process its prompts as token ids over a Unix socket that only the user can open.

Completions travel as length-prefixed frames (`frames`): a connection that opens with
`frames.MAGIC` sends a JSON header (`model`, `max_tokens`, `temperature`, `top_p`, `n` for
candidates from one prefill, `fimls_session` for the document, whose KV cache is kept apart from
other documents' within `maxCachedTokens`, `fimls_rules` for fimls' stop rules, run here after
every token so the answer is the in-process engine's token for token, `fimls_speculative_tokens`,
`fimls_max_cached_tokens`) and the prompt's ids after those it shares with the document's last
prompt on the connection; one answer per request. A small HTTP side on the same socket manages
the rest:

- `POST /fimls/load` makes a model resident (at most `max_resident_models`; one a window no longer
  uses goes first) and names the client using it;
- `GET /fimls/attach` is held open by each client for as long as it lives: the daemon counts its
  clients by it (it exits after `idle_exit_s` with none), and a client learns at once that the
  daemon is gone when it ends;
- `GET /health` and `GET /fimls/stats`.

A newer request for the same document supersedes the older one, and a client that hangs up frees
its request at once: its generation stops at the next decode step.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import select
import signal
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy
from aiohttp import web
from filelock import FileLock

from fimls import __version__
from fimls.contract import Generation, ModelSpec, ModelUnavailable
from fimls.engine.daemon import frames
from fimls.engine.daemon.rundir import answers
from fimls.engine.worker import ModelWorker, Superseded
from fimls.stops import StopRules

log = logging.getLogger(__name__)

MOST_NEW_TOKENS = 2048
COUNTS = (
    "requests", "completed", "superseded", "disconnected", "errors", "prompt_tokens", "reused_tokens", "generated_tokens",
    "prompt_ids_received",  # what crossed the socket: a frame carries only the ids after those it keeps
)
MOST_CANDIDATES = 8
# The most an answer's write may wait on a client that reads nothing: it holds the model's thread.
SEND_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DaemonOptions:
    socket: Path
    max_resident_models: int = 1
    idle_exit_s: float = 600.0  # 0: never
    # `document`: a KV session per client document; `shared`: one for everything (what a single
    # in-process engine had before sessions by document; for measuring the difference).
    kv_sessions: str = "document"


@dataclass
class Resident:
    spec: Any  # ModelSpec
    engine: Any  # Engine
    users: set[str] = field(default_factory=set)  # clients whose windows use this model
    vocab_size: int = 0  # the model's, read once (a config attribute costs more than it looks)
    # Each client's `maxCachedTokens`: the model keeps the largest any window in use asks for, and
    # a window that changes its own applies from its next request.
    cache_wanted: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vocab_size = int(self.engine.loaded.model.config.vocab_size)

    def want_cache(self, client: str, tokens: int) -> None:
        if self.cache_wanted.get(client) == tokens:
            return
        self.cache_wanted[client] = tokens
        in_use = [wanted for user, wanted in self.cache_wanted.items() if user in self.users] or [tokens]
        self.engine.max_cached_tokens = max(in_use)


class BadRequest(ValueError):
    status = 400


class NotLoaded(LookupError):
    status = 404


class Daemon:
    def __init__(self, options: DaemonOptions):
        self.options = options
        self.worker = ModelWorker()
        self.residents: dict[str, Resident] = {}
        self.clients: Counter[str] = Counter()  # client id -> attach streams it holds open
        self.counts: Counter[str] = Counter()
        self.models_loaded = 0
        self.in_flight = 0
        self.generating = 0  # completions running or queued for the model
        self.started = time.monotonic()
        self.last_seen = time.monotonic()
        self.stopping = asyncio.Event()
        self._load_lock = asyncio.Lock()
        self._counting = threading.Lock()  # see `_tally`

    # -- the application ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._same_user_only], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_post("/fimls/load", self.load)
        app.router.add_get("/fimls/attach", self.attach)
        app.router.add_get("/fimls/stats", self.stats)
        return app

    @web.middleware
    async def _same_user_only(self, request: web.Request, handler):
        """The socket is 0600 in a 0700 directory; the kernel's word on who connected, as well."""
        peer = request.transport.get_extra_info("socket") if request.transport is not None else None
        uid = _peer_uid(peer)
        if uid is not None and uid != os.getuid():
            return _error(403, "the fimls daemon serves only the user who started it.")
        self.last_seen = time.monotonic()
        self._tally(in_flight=1)
        try:
            return await handler(request)
        finally:
            self._tally(in_flight=-1)
            self.last_seen = time.monotonic()

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({
            "status": "ok", "pid": os.getpid(), "version": __version__, "models": sorted(self.residents),
            "clients": len(self.clients),
        })

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "models_loaded": self.models_loaded,
            "max_resident_models": self.options.max_resident_models,
            "kv_sessions": self.options.kv_sessions,
            "clients": len(self.clients),
            "generating": self.generating,
            "resident": [
                {
                    "id": model_id, "users": len(resident.users), "window": resident.engine.window,
                    "device": str(resident.engine.loaded.device), "sessions": len(resident.engine.sessions),
                    "cached_tokens": resident.engine.sessions.cached_tokens,
                    "max_cached_tokens": resident.engine.max_cached_tokens,
                    "sessions_dropped": resident.engine.sessions.dropped,
                }
                for model_id, resident in self.residents.items()
            ],
            **{name: self.counts[name] for name in COUNTS},
        })

    # -- clients and models ---------------------------------------------------------------------

    async def attach(self, request: web.Request) -> web.StreamResponse:
        client = request.query.get("client", "")
        if not client:
            return _error(400, "attach needs ?client=<id>.")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        self.clients[client] += 1
        try:
            await response.write(b'data: {"attached": true}\n\n')
            await self.stopping.wait()
        finally:
            self.clients[client] -= 1
            if self.clients[client] <= 0:
                del self.clients[client]
                for resident in self.residents.values():
                    resident.users.discard(client)
            self.last_seen = time.monotonic()
        return response

    async def load(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            client = str(body.pop("client"))
            max_cached_tokens = int(body.pop("max_cached_tokens", 8192))
            known = {f.name for f in fields(ModelSpec)}
            spec = ModelSpec(**{key: value for key, value in body.items() if key in known})
        except (ValueError, KeyError, TypeError) as error:
            return _error(400, f"a load request needs client, model and load options ({error}).")
        async with self._load_lock:
            for resident in self.residents.values():
                resident.users.discard(client)  # a window that switches models lets go of its last one
            resident = self.residents.get(spec.id)
            if resident is None:
                for unused in [r for r in self.residents.values() if not r.users]:
                    if len(self.residents) < self.options.max_resident_models:
                        break
                    await self._evict(unused)
                if len(self.residents) >= self.options.max_resident_models:
                    held = ", ".join(sorted(self.residents))
                    return _error(409, (
                        f"the fimls daemon already holds {held} for another window and maxResidentModels is "
                        f"{self.options.max_resident_models}; use the same model in every window, raise "
                        f"maxResidentModels if the GPU holds more, or set backend to inprocess in this one."
                    ), "model_limit")
                try:
                    resident = Resident(spec, await self.worker.call(lambda: _open(spec, max_cached_tokens)))
                except Exception as error:
                    log.error("could not load %s: %s", spec.id, error, exc_info=not _is_user_error(error))
                    message = str(error) if _is_user_error(error) else f"could not load {spec.model}: {error}"
                    return _error(422, message, "model_unavailable")
                self.residents[spec.id] = resident
                self.models_loaded += 1
            resident.users.add(client)
            resident.want_cache(client, max_cached_tokens)
            engine = resident.engine
        return web.json_response({
            "id": spec.id, "window": engine.window, "description": f"{engine.describe()} (fimls daemon {os.getpid()})",
        })

    async def _evict(self, resident: Resident) -> None:
        del self.residents[resident.spec.id]
        log.info("unloading %s: no window uses it and another model needs the room", resident.spec.id)

        def release():
            engine = resident.engine
            resident.engine = None
            engine.sessions.reset()
            device = engine.loaded.device
            del engine
            gc.collect()
            if device.type == "cuda":
                import torch  # loaded with the first model already (see `_open`)

                torch.cuda.empty_cache()

        await self.worker.call(release)

    # -- completions ----------------------------------------------------------------------------

    def frame_answer(self, header: dict, keep: int, tail, peer: _FrameConnection) -> tuple[dict | None, Any]:
        """The answer to a completion asked for in a frame (`frames`), or its error (None when its
        client hung up first), and the completion to count once the answer is sent. Run in the
        model's thread, where the request was read. The prompt is the document's last one on
        this connection, its first `keep` ids kept, then `tail`."""
        received = time.perf_counter()
        document = str(header.get("fimls_session") or "")
        prompts = peer.prompts
        try:
            resident = self._resident_for(header)
            engine = resident.engine
            last = prompts.get(document)
            if keep > len(last):
                raise BadRequest(f"a frame keeps {keep} ids of a last prompt of {len(last)} for this document on this connection.")
            if not _ids_within(tail, resident.vocab_size):
                raise BadRequest(f"a frame's prompt has a token id outside the model's vocabulary of {resident.vocab_size}.")
            prompt = last[:keep] + tail.tolist() if keep else tail.tolist()
            if not prompt:
                raise BadRequest("the fimls daemon takes prompts as a non-empty list of token ids.")
            if peer.parsed is not None and peer.parsed[0] is header:  # a keystroke's header is the last one's
                call = {**peer.parsed[1], "prompt": prompt}
            else:
                call = _parse_completion(header, prompt)
                peer.parsed = (header, {name: value for name, value in call.items() if name != "prompt"})
            prompts.put(document, prompt)
        except (BadRequest, NotLoaded) as error:
            prompts.forget(document)
            self._tally(requests=1, errors=1, prompt_ids_received=len(tail))
            return _frame_error(error.status, str(error)), None
        self._tally(requests=1, prompt_ids_received=len(tail), generating=1)
        max_cached_tokens = call.pop("max_cached_tokens")
        if max_cached_tokens is not None:
            resident.want_cache(document.partition(":")[0], max_cached_tokens)
        del call["session"]
        session = document if self.options.kv_sessions == "document" else ""
        try:
            completion = self.worker.run_here(
                document, lambda cancelled: engine.complete_ids(cancelled=cancelled, session=session, **call), peer.hung_up,
            )
        except Superseded as error:
            if peer.hung_up():
                self._tally(disconnected=1, generating=-1)  # it stopped at the step after its client went
                return None, None
            self._tally(generating=-1)
            return _frame_error(*self._failure(error)), None
        except Exception as error:
            self._tally(generating=-1)
            return _frame_error(*self._failure(error)), None
        return {
            "generation": _generation_fields(completion.generation), "text": completion.text,
            "model_s": completion.model_s, "daemon_s": time.perf_counter() - received,
            "alternatives": [{"text": a.text, "generation": _generation_fields(a.generation)} for a in completion.alternatives],
        }, completion

    def frame_answered(self, completion) -> None:
        """A frame's completion counted, after its answer went (off the keystroke's path)."""
        self.last_seen = time.monotonic()
        if completion is not None:
            self._count(completion, generating=-1)

    def _resident_for(self, body: dict) -> Resident:
        resident = self.residents.get(str(body.get("model", "")))
        if resident is None:
            raise NotLoaded(f"the model '{body.get('model', '')}' is not loaded in the fimls daemon; POST /fimls/load first.")
        return resident

    def _tally(self, **changes: int) -> None:
        """Figures change in the event loop's thread and in the model's (frames): under one lock."""
        with self._counting:
            for name, amount in changes.items():
                if name in ("in_flight", "generating"):
                    setattr(self, name, getattr(self, name) + amount)
                else:
                    self.counts[name] += amount

    def _count(self, completion, **also: int) -> None:
        generation = completion.generation
        self._tally(
            completed=1, prompt_tokens=generation.prompt_tokens, reused_tokens=generation.reused_tokens,
            generated_tokens=len(generation.token_ids), **also,
        )

    def _failure(self, error: BaseException) -> tuple[int, str, str]:
        """A failed completion as an HTTP status, one sentence and an OpenAI error type."""
        self._tally(**{"superseded" if isinstance(error, Superseded) else "errors": 1})
        if isinstance(error, Superseded):
            return 409, "superseded by a newer request for the same document.", "superseded"
        if isinstance(error, ValueError):
            return 400, str(error), "invalid_request_error"
        if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
            return 503, f"out of GPU memory in the fimls daemon; its KV caches were dropped ({str(error).splitlines()[0] if str(error) else 'OutOfMemoryError'}).", "server_error"
        log.error("completion failed", exc_info=error)
        return 500, f"completion failed in the fimls daemon: {type(error).__name__}: {error}", "server_error"

    # -- lifetime -------------------------------------------------------------------------------

    async def exit_when_idle(self) -> None:
        if self.options.idle_exit_s <= 0:
            return
        while not self.stopping.is_set():
            await asyncio.sleep(min(1.0, self.options.idle_exit_s / 4))
            idle = time.monotonic() - self.last_seen
            if not self.clients and not self.in_flight and not self.generating and idle >= self.options.idle_exit_s:
                log.info("no client for %.0f s: exiting", idle)
                self.stopping.set()


def _open(spec, max_cached_tokens: int):
    # torch and the model code are imported with the first model, not at start: the daemon
    # answers on its socket at once, and a window waiting for it to start waits less.
    from fimls.engine.model.engine import open_engine

    return open_engine(spec, max_cached_tokens=max_cached_tokens)


def _is_user_error(error: Exception) -> bool:
    return isinstance(error, ModelUnavailable)


def _ids_within(ids, vocab_size: int) -> bool:
    """Whether a frame's 32-bit ids are inside the vocabulary: a whole prompt's in numpy (a
    fiftieth of Python's min and max over 1,500 ids), a keystroke's few in Python."""
    if len(ids) < 64:
        return all(0 <= token < vocab_size for token in ids)

    ids = numpy.frombuffer(ids, dtype=numpy.int32)
    return int(ids.min()) >= 0 and int(ids.max()) < vocab_size


def _parse_completion(body: dict, prompt: list[int]) -> dict:
    """The engine call a request asks for, its prompt checked already; `BadRequest` says what is
    wrong with the rest."""
    try:
        max_tokens = int(body.get("max_tokens", 16))
        temperature = float(body.get("temperature", 0.0) or 0.0)
        top_p = float(body.get("top_p", 1.0) if body.get("top_p") is not None else 1.0)
        candidates = int(body.get("n", 1) or 1)
        speculative = body.get("fimls_speculative_tokens")
        speculative = None if speculative is None else int(speculative)
        max_cached_tokens = body.get("fimls_max_cached_tokens")
        max_cached_tokens = None if max_cached_tokens is None else int(max_cached_tokens)
        rules = body.get("fimls_rules")
        rules = None if rules is None else StopRules(
            single_line=bool(rules.get("single_line", False)),
            cursor_block_indent=None if rules.get("cursor_block_indent") is None else int(rules["cursor_block_indent"]),
            stop_strings=tuple(str(s) for s in rules.get("stop_strings", ())),
        )
    except (TypeError, ValueError, AttributeError) as error:
        raise BadRequest(f"a request field has the wrong type ({error}).") from None
    if not 1 <= max_tokens <= MOST_NEW_TOKENS:
        raise BadRequest(f"max_tokens must be 1 to {MOST_NEW_TOKENS}.")
    if not 1 <= candidates <= MOST_CANDIDATES:
        raise BadRequest(f"n must be 1 to {MOST_CANDIDATES}.")
    if not (0.0 <= temperature <= 2.0 and 0.0 < top_p <= 1.0):
        raise BadRequest("temperature must be 0 to 2 and top_p above 0 up to 1.")
    if speculative is not None and not 0 <= speculative <= 32:
        raise BadRequest("fimls_speculative_tokens must be 0 to 32.")
    if max_cached_tokens is not None and max_cached_tokens < 0:
        raise BadRequest("fimls_max_cached_tokens must be at least 0.")
    return {
        "prompt": prompt, "max_new_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
        "candidates": candidates, "rules": rules, "speculative_tokens": speculative, "max_cached_tokens": max_cached_tokens,
        "session": str(body.get("fimls_session") or ""),
    }


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


def _frame_error(status: int, message: str, kind: str = "invalid_request_error") -> dict:
    return {"status": status, "error": {"message": message, "type": kind}}


def _generation_fields(generation) -> dict:
    return {name: getattr(generation, name) for name in _GENERATION_FIELDS}


_GENERATION_FIELDS = tuple(f.name for f in fields(Generation))


class _FrameConnection:
    """A client speaking `frames`, watched by the model's thread itself: a request is read, run
    and answered there, and the generation polls the socket at each step to stop the moment the
    client hangs up."""

    def __init__(self, daemon: Daemon, connection: socket.socket, already: bytes):
        self.daemon = daemon
        self.connection = connection
        self.already = already  # what came in with the magic
        self.reader = frames.Reader()
        self.prompts = frames.Prompts()
        self.parsed: tuple[dict, dict] | None = None  # the last header, and the engine call it asked for
        self.peeked, self.gone = 0.0, False

    def readable(self) -> bool:
        """Take what has arrived and answer each whole request in it; False once it is closed."""
        try:
            data = self.connection.recv(1 << 20)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        if data == b"":
            self.connection.close()
            return False
        data, self.already = self.already + (data or b""), b""
        try:
            for header, keep, tail in self.reader.feed(data):
                answer, completion = self.daemon.frame_answer(header, keep, tail, self)
                try:
                    if answer is not None:
                        _send_within(self.connection, frames.pack(answer), SEND_TIMEOUT_S)
                finally:
                    self.daemon.frame_answered(completion)
        except frames.BadFrame as error:
            self.daemon._tally(errors=1)
            self._send_last(_frame_error(400, str(error)))
            return False
        except OSError:
            self.connection.close()
            return False
        return True

    def hung_up(self) -> bool:
        """Whether the client has closed its end: a peek, so a request already sent stays unread;
        at most one a millisecond (it is asked at every decode step)."""
        now = time.perf_counter()
        if now - self.peeked < 0.001 and not self.gone:
            return False
        self.peeked = now
        try:
            self.gone = self.connection.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            self.gone = False
        except OSError:
            self.gone = True
        return self.gone

    def _send_last(self, answer: dict) -> None:
        try:
            _send_within(self.connection, frames.pack(answer), SEND_TIMEOUT_S)
        except OSError:
            pass
        self.connection.close()


def _send_within(connection: socket.socket, data: bytes, timeout_s: float) -> None:
    """All of `data` on a non-blocking socket, or `TimeoutError` once `timeout_s` has passed."""
    view, deadline = memoryview(data), time.monotonic() + timeout_s
    while view:
        try:
            view = view[connection.send(view):]
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [connection], [], left)[1]:
                raise TimeoutError("the client read nothing of its answer") from None


class _Sniffer(asyncio.Protocol):
    """Each connection's first bytes say which it speaks: `frames` (the stdio side's own path) or
    HTTP (everything else, aiohttp's handler from the first byte on)."""

    def __init__(self, daemon: Daemon, http_handler):
        self.daemon = daemon
        self.http_handler = http_handler
        self.transport = None
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.startswith(frames.MAGIC):
            self._serve_frames(self.buffer[len(frames.MAGIC):])
        elif not frames.MAGIC.startswith(self.buffer):  # (a beginning of the magic waits for the rest)
            http = self.http_handler()
            self.transport.set_protocol(http)
            http.connection_made(self.transport)
            http.data_received(self.buffer)

    def _serve_frames(self, already: bytes) -> None:
        if _peer_uid(self.transport.get_extra_info("socket")) not in (None, os.getuid()):
            self.transport.write(frames.pack(_frame_error(403, "the fimls daemon serves only the user who started it.")))
            self.transport.close()
            return
        # The connection leaves the event loop for a thread of its own: a duplicate of its
        # descriptor, blocking; the transport closes the original.
        raw = self.transport.get_extra_info("socket")
        connection = socket.socket(fileno=os.dup(raw.fileno()))
        connection.setblocking(False)  # the model's thread must never wait on it
        self.transport.pause_reading()
        self.transport.abort()
        served = _FrameConnection(self.daemon, connection, already)
        self.daemon.worker.watch(connection, served.readable)

    def connection_lost(self, exc) -> None:
        pass


class _SniffingSite(web.SockSite):
    def __init__(self, runner: web.AppRunner, sock: socket.socket, daemon: Daemon):
        super().__init__(runner, sock)
        self.daemon = daemon

    async def start(self) -> None:
        await web.BaseSite.start(self)
        http_handler = self._runner.server
        self._server = await asyncio.get_running_loop().create_unix_server(
            lambda: _Sniffer(self.daemon, http_handler), sock=self._sock, backlog=self._backlog,
        )


def _peer_uid(sock: socket.socket | None) -> int | None:
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except OSError:
        return None
    return uid


class AlreadyRunning(RuntimeError):
    pass


def bind(path: Path) -> socket.socket:
    """The listening socket at `path`, mode 0600. A socket file no process answers on (a daemon
    that crashed) is replaced; one that answers means a daemon runs already (`AlreadyRunning`).
    The check and the bind happen under a lock, so two daemons started at once cannot both bind."""
    with FileLock(str(path) + ".bind-lock", timeout=30):
        if answers(path):
            raise AlreadyRunning(f"a fimls daemon already answers on {path}")
        try:
            path.unlink()
            log.info("replaced the stale socket %s", path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # no moment at which another user could connect
        try:
            listener.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        listener.listen(128)
    return listener


async def _serve(options: DaemonOptions, listener: socket.socket) -> None:
    daemon = Daemon(options)
    runner = web.AppRunner(daemon.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = _SniffingSite(runner, listener, daemon)
    await site.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stopping.set)
    log.info("fimls daemon %d serving on %s", os.getpid(), options.socket)
    idle = asyncio.ensure_future(daemon.exit_when_idle())
    try:
        await daemon.stopping.wait()
    finally:
        idle.cancel()
        await runner.cleanup()
        daemon.worker.shutdown()


def serve(options: DaemonOptions) -> int:
    """Run the daemon until it is idle for `idle_exit_s` or told to stop; 0 when another daemon
    already serves the socket (a second start is no error)."""
    options.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        listener = bind(options.socket)
    except AlreadyRunning as running:
        log.info("%s", running)
        return 0
    identity = os.stat(options.socket).st_ino
    options.socket.with_suffix(".pid").write_text(f"{os.getpid()}\n")
    try:
        asyncio.run(_serve(options, listener))
    finally:
        try:
            if os.stat(options.socket).st_ino == identity:  # never remove a successor's socket
                options.socket.unlink()
        except FileNotFoundError:
            pass
    return 0
