"""Token counts of snippet texts, remembered: the same definitions, windows and chunks come back
request after request, and tokenizing them is most of the cost of packing."""

from __future__ import annotations

import threading
from collections import OrderedDict

from fimls.contract import TokenCounter

COUNTS_KEPT = 8192


class RememberedCounts:
    def __init__(self, count_tokens: TokenCounter):
        self.count_tokens = count_tokens
        self._counts: OrderedDict[tuple[int, int], int] = OrderedDict()  # (length, hash) of a text -> count
        self._lock = threading.Lock()

    def serves(self, count_tokens: TokenCounter) -> bool:
        # Bound methods are new objects at each access, so equality, not identity.
        return self.count_tokens == count_tokens

    def __call__(self, text: str) -> int:
        key = (len(text), hash(text))
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
                return found
        found = self.count_tokens(text)
        with self._lock:
            self._counts[key] = found
            if len(self._counts) > COUNTS_KEPT:
                self._counts.popitem(last=False)
        return found
