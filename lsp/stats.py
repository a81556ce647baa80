"""Local acceptance telemetry and serving counters, answered by `fimls/stats`. Nothing leaves
the machine: these numbers exist only in the server's memory."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile (None for no values); benchmarks use it too."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _percentile(values, q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value, 3)


@dataclass
class Stats:
    requests: int = 0
    model_calls: int = 0
    cache_hits: int = 0
    superseded: int = 0
    cancelled: int = 0
    empty: int = 0
    errors: int = 0
    stopped_early: int = 0
    shown: int = 0
    accepted: int = 0
    partially_accepted: int = 0
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    engine_ms: deque = field(default_factory=lambda: deque(maxlen=2000))  # the model: prefill and decode
    context_ms: deque = field(default_factory=lambda: deque(maxlen=2000))  # building the prompt
    queue_ms: deque = field(default_factory=lambda: deque(maxlen=2000))  # waiting for the model worker
    overhead_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    # The share of each prompt whose KV cache was reused (the engine's or the daemon's figure).
    reuse: deque = field(default_factory=lambda: deque(maxlen=2000))
    # The daemon's answers: the time beyond the daemon's own model time (socket, HTTP, JSON).
    hop_ms: deque = field(default_factory=lambda: deque(maxlen=2000))

    def report(self) -> dict:
        return {
            "requests": self.requests,
            "model_calls": self.model_calls,
            "cache_hits": self.cache_hits,
            "cache_hit_rate": round(self.cache_hits / self.requests, 4) if self.requests else 0.0,
            "superseded": self.superseded,
            "cancelled": self.cancelled,
            "empty": self.empty,
            "errors": self.errors,
            "stopped_early": self.stopped_early,
            "shown": self.shown,
            "accepted": self.accepted,
            "partially_accepted": self.partially_accepted,
            "latency_p50_ms": _percentile(self.latency_ms, 50),
            "latency_p95_ms": _percentile(self.latency_ms, 95),
            "engine_p50_ms": _percentile(self.engine_ms, 50),
            "engine_p95_ms": _percentile(self.engine_ms, 95),
            "context_p50_ms": _percentile(self.context_ms, 50),
            "context_p95_ms": _percentile(self.context_ms, 95),
            "queue_p50_ms": _percentile(self.queue_ms, 50),
            "queue_p95_ms": _percentile(self.queue_ms, 95),
            "server_overhead_p50_ms": _percentile(self.overhead_ms, 50),
            "server_overhead_p95_ms": _percentile(self.overhead_ms, 95),
            "kv_reuse_mean": round(sum(self.reuse) / len(self.reuse), 4) if self.reuse else None,
            "daemon_hop_p50_ms": _percentile(self.hop_ms, 50),
            "daemon_hop_p95_ms": _percentile(self.hop_ms, 95),
        }
