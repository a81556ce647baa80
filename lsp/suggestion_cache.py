"""Typing as suggested: when the user types the characters the completion just shown begins
with, the rest of it is answered from here without running the model.

An entry holds a document state (hashes of the text before and after the cursor) and the
completion shown there. A request matches when the text after its cursor is the same, and the text
before it is the entry's plus some start of the completion: every other document state misses.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True)
class _Entry:
    before_length: int
    before_digest: bytes
    after_digest: bytes
    completion: str


class SuggestionCache:
    def __init__(self, max_entries: int = 100):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, bytes], _Entry] = OrderedDict()

    def put(self, uri: str, before: str, after: str, completion: str) -> None:
        if not completion or self.max_entries <= 0:
            return
        entry = _Entry(len(before), _digest(before), _digest(after), completion)
        key = (uri, entry.before_length, entry.before_digest)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, uri: str, before: str, after: str) -> str | None:
        """The rest of a cached completion the user has been typing, or None."""
        after_digest = None
        for key in reversed(self._entries):
            if key[0] != uri:
                continue
            entry = self._entries[key]
            typed = len(before) - entry.before_length
            if not 0 <= typed < len(entry.completion):
                continue
            if before[entry.before_length :] != entry.completion[:typed]:
                continue
            after_digest = after_digest or _digest(after)
            if entry.after_digest != after_digest or _digest(before[: entry.before_length]) != entry.before_digest:
                continue
            self._entries.move_to_end(key)
            return entry.completion[typed:]
        return None

    def forget(self, uri: str) -> None:
        for key in [k for k in self._entries if k[0] == uri]:
            del self._entries[key]

    def forget_all(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
