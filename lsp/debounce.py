"""An adaptive debounce learnt from the user's typing rhythm.

While a user types, each keystroke's request is superseded by the next one, and running the model
for it is wasted work. The delay is a little longer than the user's usual gap between keystrokes
(an exponentially weighted mean, pauses excluded), within the configured bounds: a fast typist
waits less, and a completion still appears soon after every pause.
"""

from __future__ import annotations

PAUSE_S = 1.0  # a gap longer than this is a pause, not part of the typing rhythm
MARGIN = 1.5
WEIGHT = 0.2


class TypingRhythm:
    def __init__(self, min_ms: int, max_ms: int):
        self.min_s, self.max_s = min_ms / 1000, max_ms / 1000
        self._last: dict[str, float] = {}
        self._gap: dict[str, float] = {}

    def keystroke(self, uri: str, now: float) -> None:
        last = self._last.get(uri)
        self._last[uri] = now
        if last is None or not 0 < now - last <= PAUSE_S:
            return
        gap = now - last
        self._gap[uri] = gap if uri not in self._gap else (1 - WEIGHT) * self._gap[uri] + WEIGHT * gap

    def delay(self, uri: str) -> float:
        """Seconds to wait before running the model for an automatic request."""
        gap = self._gap.get(uri)
        if gap is None:
            return self.min_s
        return min(self.max_s, max(self.min_s, MARGIN * gap))

    def forget(self, uri: str) -> None:
        self._last.pop(uri, None)
        self._gap.pop(uri, None)
