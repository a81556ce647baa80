"""Typing as suggested: when the user types the characters the completion just shown begins
with, the rest of it is answered from here without running the model.

An entry holds where the completion was shown and the text its prompt was made from: the prefix
and suffix windows the model saw, each widened by one line (the line that did not fit decides
where the window was cut), kept as hashes. A request matches when its cursor has moved on by
some start of the completion, typed exactly there, and the text on either side is still the
entry's: where a window reached the start or the end of the document, the document must still
end there. Edits beyond the widened windows do not change what the model was shown, and do not
cost a keystroke a hash of the whole document.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True)
class _Entry:
    offset: int  # the cursor where the completion was shown
    before_chars: int  # how much text before the cursor is hashed
    before_digest: bytes
    before_is_all: bool  # the hashed text reached the document's start
    after_chars: int
    after_digest: bytes
    after_is_all: bool
    completion: str


def widened(document: str, start: int, end: int) -> tuple[int, int]:
    """`start`..`end` grown by a line each way: the line before `start` (or the rest of the line
    it cuts) and the line after `end` (likewise)."""
    start = document.rfind("\n", 0, max(0, start - 1)) + 1 if start > 0 else 0
    line_end = document.find("\n", end)
    return start, len(document) if line_end < 0 else line_end + 1


class SuggestionCache:
    def __init__(self, max_entries: int = 100):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, bytes, bytes], _Entry] = OrderedDict()

    def put(self, uri: str, document: str, offset: int, completion: str, window: tuple[int, int]) -> None:
        """Remember `completion` shown at `offset`; `window` is the span of `document` its prompt's
        prefix and suffix came from."""
        if not completion or self.max_entries <= 0:
            return
        start, end = widened(document, min(window[0], offset), max(window[1], offset))
        entry = _Entry(
            offset,
            offset - start, _digest(document[start:offset]), start == 0,
            end - offset, _digest(document[offset:end]), end == len(document),
            completion,
        )
        key = (uri, offset, entry.before_digest, entry.after_digest)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, uri: str, document: str, offset: int) -> str | None:
        """The rest of a cached completion the user has been typing, or None."""
        for key in reversed(self._entries):
            if key[0] != uri:
                continue
            entry = self._entries[key]
            typed = offset - entry.offset
            if not 0 <= typed < len(entry.completion) or entry.offset < entry.before_chars:
                continue
            if document[entry.offset : offset] != entry.completion[:typed]:
                continue
            if entry.before_is_all and entry.offset != entry.before_chars:
                continue
            if entry.after_is_all and len(document) - offset != entry.after_chars:
                continue
            if _digest(document[entry.offset - entry.before_chars : entry.offset]) != entry.before_digest:
                continue
            if _digest(document[offset : offset + entry.after_chars]) != entry.after_digest:
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
