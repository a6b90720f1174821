"""Latency histograms for /metrics, derived from the events stream at scrape time.

Each scrape reads the events appended since the previous scrape (at most SCAN_MAX of the
newest; when more arrived, the older ones are skipped and the histograms are a sample):

- `dagbroker_dispatch_latency_seconds`: a task's `running` event time minus its
  `dispatched_at` (the broker appended it to its class's stream → a worker marked it running).
  The two times come from the broker's and the worker's clocks: keep hosts in NTP sync.
- `dagbroker_queue_wait_seconds`: a task's `dispatched` event time minus its `ready_at`
  (ready, waiting for a free slot → dispatched); a root task's ready time is its run's start.

Tasks that complete without a worker starting them (noop tasks, tasks stopped before they
ran) have no dispatch latency.

An event whose task has moved on to a later attempt (or expired) is skipped. Every broker
sharing a Redis observes the same stream, so each one reports the cluster-wide figures since
it started: scrape one broker, or aggregate with max(), not sum().
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys

SCAN_MAX = 10_000
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)
# event state → (histogram attribute, task hash field holding the previous step's time)
_STEPS = {"running": ("dispatch", "dispatched_at"), "dispatched": ("wait", "ready_at")}


def _ms(value: str | None) -> int | None:
    try:
        return int(float(value)) if value else None
    except ValueError:
        return None


class LatencyTracker:
    """Histograms fed from `{prefix}:events`; one per application."""

    def __init__(self) -> None:
        self.cursor: str | None = None
        self.lock = asyncio.Lock()
        self.dispatch = Histogram(
            "dagbroker_dispatch_latency_seconds",
            "Time from dispatch (appended to the class stream) to start (a worker runs it)",
            buckets=DISPATCH_BUCKETS,
            registry=None,
        )
        self.wait = Histogram(
            "dagbroker_queue_wait_seconds",
            "Time from ready (all dependencies done) to dispatch (a slot was free)",
            buckets=WAIT_BUCKETS,
            registry=None,
        )

    def families(self) -> list[Any]:
        return [*self.dispatch.collect(), *self.wait.collect()]

    async def observe(self, redis: Redis, keys: Keys) -> int:
        """Fold the events since the last call into the histograms; returns how many."""
        async with self.lock:
            low = f"({self.cursor}" if self.cursor else "-"
            entries: list[tuple[str, dict[str, str]]] = await redis.xrevrange(
                keys.events(), max="+", min=low, count=SCAN_MAX
            )  # type: ignore[assignment]  # a decode_responses client
            if not entries:
                return 0
            self.cursor = entries[0][0]
            steps = [
                f for _, f in entries if f.get("kind") == "task" and f.get("state") in _STEPS
            ]
            pipe = redis.pipeline(transaction=False)
            for f in steps:
                run, field = f.get("run", ""), _STEPS[f["state"]][1]
                pipe.hmget(keys.task(run, f.get("node", "")), "attempt", field)
                pipe.hget(keys.run(run), "started_at")  # roots: ready when the run started
            res = await pipe.execute() if steps else []
            rows = zip(steps, res[0::2], res[1::2], strict=True)
            return sum(int(self._fold(f, row, released)) for f, row, released in rows)

    def _fold(self, event: dict[str, str], row: list[str | None], released: str | None) -> int:
        attempt, before = row
        if before is None and event["state"] == "dispatched":
            before = released  # a root goes ready with its run, without a ready_at
        end, start = _ms(event.get("ts")), _ms(before)
        if end is None or start is None or attempt != event.get("attempt", attempt):
            return 0
        hist: Histogram = getattr(self, _STEPS[event["state"]][0])
        hist.observe(max(0, end - start) / 1000)
        return 1
