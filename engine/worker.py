"""One worker thread owns the model. Requests carry a key (the document); a newer request for the
same key supersedes the older one, whose generation then stops within one decode step and never
returns a result. Async-friendly: callers await, the model runs in the worker thread.

The thread can also watch sockets itself (`watch`): a request that arrives on one is read and
run by the model's thread with no other thread in between, which is what a request from another
process costs least (the shared daemon's frames)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import selectors
import socket
import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Superseded(Exception):
    """A newer request for the same document took this one's place."""


class _Ticket:
    """A request's cancel check: call it to ask; `on_cancel` runs a callback the moment it is
    cancelled (a server backend closes its stream, instead of waiting for the next chunk)."""

    def __init__(self, request_id: int):
        self.request_id = request_id
        self._cancelled = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # closing something already closed, say: never the caller's problem
                pass

    def __call__(self) -> bool:
        return self._cancelled.is_set()

    def cancelled(self) -> bool:
        return self()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._cancelled.is_set():
                self._callbacks.append(callback)
                return
        callback()


class ModelWorker:
    def __init__(self) -> None:
        self._latest: dict[str, _Ticket] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # `submit` is called from an event loop and from other threads
        self._jobs: collections.deque[tuple[Future, Callable[[], object]]] = collections.deque()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="fimls-model", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the worker thread, in turn with generations (model loading, say)."""
        return await asyncio.wrap_future(self._queue(fn))

    def submit(self, key: str, fn: Callable[[Callable[[], bool]], T]) -> tuple[Future, _Ticket]:
        """Queue `fn(cancelled)` for `key`, superseding any earlier request for the same key. The
        future raises `Superseded` if a newer request came first or the ticket was cancelled."""
        ticket = self._take_turn(key)
        future = self._queue(lambda: self._run(key, ticket, fn))
        future.add_done_callback(lambda _: self._forget(key, ticket))
        return future, ticket

    async def generate(self, key: str, fn: Callable[[Callable[[], bool]], T]) -> T:
        """`submit`, awaited. Raises `Superseded` if a newer request came first, and
        `asyncio.CancelledError` if the caller was cancelled; in both cases `cancelled()` turned
        true for the running generation."""
        future, ticket = self.submit(key, fn)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            ticket.cancel()
            raise

    def run_here(self, key: str, fn: Callable[[Callable[[], bool]], T], also_cancelled: Callable[[], bool]) -> T:
        """`fn(cancelled)` for `key` now, in the worker thread (a watched socket's request):
        superseding as `submit` does; `also_cancelled()` can stop it too (its client hung up)."""
        ticket = self._take_turn(key)
        try:
            return self._run(key, ticket, fn, lambda: ticket() or also_cancelled())
        finally:
            self._forget(key, ticket)

    def watch(self, connection: socket.socket, readable: Callable[[], bool]) -> None:
        """Call `readable()` in the worker thread once now and then whenever `connection` has
        something to read, between jobs, until it returns False (it must not block: nothing may
        be there)."""
        def register() -> None:
            self._selector.register(connection, selectors.EVENT_READ, readable)
            if not self._readable(readable):
                self._selector.unregister(connection)

        self._queue(register)

    def shutdown(self) -> None:
        with self._lock:
            tickets = list(self._latest.values())
            jobs, self._jobs = list(self._jobs), collections.deque()
        for ticket in tickets:
            ticket.cancel()
        for future, _job in jobs:
            future.cancel()
        self._stopping = True
        self._wake()

    # -- the thread -----------------------------------------------------------------------------

    def _take_turn(self, key: str) -> _Ticket:
        ticket = _Ticket(next(self._ids))
        with self._lock:
            older = self._latest.get(key)
            self._latest[key] = ticket
        if older is not None:
            older.cancel()
        return ticket

    def _forget(self, key: str, ticket: _Ticket) -> None:
        with self._lock:
            if self._latest.get(key) is ticket:
                del self._latest[key]

    @staticmethod
    def _run(key: str, ticket: _Ticket, fn, cancelled=None):
        cancelled = cancelled or ticket
        if cancelled():  # superseded while queued: never touches the model
            raise Superseded(key)
        result = fn(cancelled)
        if cancelled():  # stopped part-way: the partial result is never returned
            raise Superseded(key)
        return result

    def _queue(self, job: Callable[[], T]) -> Future:
        future: Future = Future()
        with self._lock:
            self._jobs.append((future, job))
        self._wake()
        return future

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    def _serve(self) -> None:
        while not self._stopping:
            for key, _events in self._selector.select():
                if key.data is None:
                    try:
                        while os.read(self._wake_read, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif not self._readable(key.data):
                    self._selector.unregister(key.fileobj)
            while not self._stopping:
                with self._lock:
                    if not self._jobs:
                        break
                    future, job = self._jobs.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = job()
                except BaseException as error:
                    future.set_exception(error)
                else:
                    future.set_result(result)
                del future, job

    @staticmethod
    def _readable(readable: Callable[[], bool]) -> bool:
        try:
            return bool(readable())
        except Exception:  # a watched connection's own failure ends its watch, never the thread
            log.exception("a watched connection failed")
            return False
