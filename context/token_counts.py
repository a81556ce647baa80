"""Token counts of snippet texts, remembered: the same definitions, windows and chunks come back
request after request, and tokenizing them is most of the cost of packing. Counts asked for
together are tokenized in one batch (the tokenizer spreads a batch over the cores)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

from fimls.context.prompt import TokenCounter

BatchTokenCounter = Callable[[list[str]], list[int]]
COUNTS_KEPT = 8192


class RememberedCounts:
    def __init__(self, count_tokens: TokenCounter, count_many: BatchTokenCounter | None = None):
        self.count_tokens = count_tokens
        self.count_many = count_many
        self._counts: OrderedDict[tuple[int, int], int] = OrderedDict()  # (length, hash) of a text -> count
        self._lock = threading.Lock()

    def serves(self, count_tokens: TokenCounter, count_many: BatchTokenCounter | None) -> bool:
        # Bound methods are new objects at each access, so equality, not identity.
        return self.count_tokens == count_tokens and self.count_many == count_many

    def __call__(self, text: str) -> int:
        key = (len(text), hash(text))
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
                return found
        found = self.count_tokens(text)
        self._remember({key: found})
        return found

    def prefetch(self, texts: list[str]) -> None:
        """Count the texts not yet known in one batch."""
        if self.count_many is None:
            return
        with self._lock:
            unknown = {(len(t), hash(t)): t for t in texts if (len(t), hash(t)) not in self._counts}
        if len(unknown) > 1:
            self._remember(dict(zip(unknown, self.count_many(list(unknown.values())))))

    def _remember(self, counts: dict[tuple[int, int], int]) -> None:
        with self._lock:
            self._counts.update(counts)
            while len(self._counts) > COUNTS_KEPT:
                self._counts.popitem(last=False)
