"""One worker thread owns the model. Requests carry a key (the document); a newer request for the
same key supersedes the older one, whose generation then stops within one decode step and never
returns a result. Async-friendly: callers await, the model runs in the worker thread."""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fimls-model")
        self._latest: dict[str, _Ticket] = {}
        self._ids = itertools.count(1)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the worker thread, in turn with generations (model loading, say)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def generate(self, key: str, fn: Callable[[Callable[[], bool]], T]) -> T:
        """Run `fn(cancelled)` for `key`, superseding any earlier request for the same key.

        Raises `Superseded` if a newer request came first, and `asyncio.CancelledError` if the
        caller was cancelled; in both cases `cancelled()` turned true for the running generation.
        """
        ticket = _Ticket(next(self._ids))
        if (older := self._latest.get(key)) is not None:
            older.cancel()
        self._latest[key] = ticket

        def run() -> T:
            if ticket.cancelled():  # superseded while queued: never touches the model
                raise Superseded(key)
            result = fn(ticket)
            if ticket.cancelled():  # stopped part-way: the partial result is never returned
                raise Superseded(key)
            return result

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except asyncio.CancelledError:
            ticket.cancel()
            raise
        finally:
            if self._latest.get(key) is ticket:
                del self._latest[key]

    def shutdown(self) -> None:
        for ticket in self._latest.values():
            ticket.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
