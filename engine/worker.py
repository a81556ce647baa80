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
    def __init__(self, request_id: int):
        self.request_id = request_id
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def cancelled(self) -> bool:
        return self._cancelled.is_set()


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
            result = fn(ticket.cancelled)
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
