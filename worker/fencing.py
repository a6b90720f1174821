"""Fencing: a worker that may have lost its tasks stops them, so two copies never run at once.

The broker re-queues a held task as a new attempt when the runner's heartbeat key expired or
the entry's lease was not renewed (broker/engine/runners.py); a late report of the old attempt
is ignored. Only the worker can stop the old copy, so it fences itself in two cases:

1. **The broker took an entry back.** Each heartbeat renews the held entries through
   renew_leases.lua, which returns those no longer pending on this runner. Each of them is
   stopped at once with Outcome.LOST. Its report changes nothing twice: complete.lua applies
   one report per (task, attempt), so whichever of the reaper's `lost` and this worker's
   report comes first is applied and the other is ignored. An entry this worker acked itself
   while the heartbeat was in flight is not lost: the check compares against the handles
   still held after the reply (by identity) and skips those already being reported.

2. **The worker is cut off** (Redis unreachable, errors, a long pause). The heartbeat key is
   SET with a TTL after its send time `t`, so it expires at `t + ttl` at the earliest, and the
   broker cannot reclaim this runner's tasks before then (its lease, longer than the TTL,
   likewise counts from a renewal after `t`). Stopping a task takes up to kill_grace_s
   (SIGTERM, then SIGKILL of its process group); the watchdog notices up to poll_s late;
   SLACK_S covers SIGKILL delivery, reaping and event-loop lag. So the worker stops every
   held task at `t + ttl - kill_grace_s - poll_s - SLACK_S`, where `t` is the send time of the
   last SUCCESSFUL heartbeat: they are gone before the broker can hand them to anyone else.
   Never earlier than `interval + SLACK_S` after `t`, or a healthy worker would fence itself
   between two heartbeats; with such a short TTL the kill may overrun it (a warning says so).
   While fenced the consumer takes nothing new; the first heartbeat that gets through
   (re-registering the runner) lifts the fence. A fenced task is reported LOST: if the broker
   did not reclaim it meanwhile, complete.lua re-queues it as a new attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from broker.wire import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from worker.config import WorkerSettings
    from worker.handle import TaskHandle
    from worker.inflight import InFlight

logger = logging.getLogger(__name__)

SLACK_S = 0.5  # SIGKILL delivery, reaping, event-loop lag
MAX_POLL_S, MIN_POLL_S = 0.25, 0.02  # how often the watchdog looks at the clock
RECLAIMED = "lease lost: the broker reclaimed this task (runner heartbeat expired or lease expired)"


def fence_after_s(ttl_s: float, interval_s: float, kill_grace_s: float, poll_s: float) -> float:
    """Seconds after the send of the last successful heartbeat at which to stop every task."""
    return max(ttl_s - kill_grace_s - poll_s - SLACK_S, interval_s + SLACK_S)


def ids_by_stream(handles: Iterable[TaskHandle]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for h in handles:
        stream, msg_id = h.key
        out.setdefault(stream, []).append(msg_id)
    return out


class Fence:
    """Tracks the last successful heartbeat; stops held tasks when the lease may be gone."""

    def __init__(
        self, settings: WorkerSettings, inflight: InFlight, on_stopped: Callable[[], None]
    ) -> None:
        s = settings
        self.inflight = inflight
        self.on_stopped = on_stopped  # tasks were stopped (those waiting for resources: report)
        self.poll_s = min(MAX_POLL_S, max(MIN_POLL_S, s.heartbeat_interval_s / 4))
        self.after_s = fence_after_s(s.heartbeat_ttl_s, s.heartbeat_interval_s, s.kill_grace_s,
                                     self.poll_s)
        needed_s = s.heartbeat_interval_s + s.kill_grace_s + self.poll_s + 2 * SLACK_S
        if s.heartbeat_ttl_s < needed_s:
            logger.warning(
                "heartbeat_ttl_s %.1fs is short for kill_grace_s %.1fs: a task cut off from "
                "Redis may still be stopping when the broker reclaims it (use a TTL of at "
                "least %.1fs)", s.heartbeat_ttl_s, s.kill_grace_s, needed_s)
        self._last_ok_at = self.now()
        self._fenced = False
        self._leased = asyncio.Event()
        self._leased.set()

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def silent_s(self) -> float:
        """Seconds since the send of the last successful heartbeat."""
        return self.now() - self._last_ok_at

    @property
    def fenced(self) -> bool:
        return self._fenced

    async def wait_leased(self) -> None:
        """Until no fence is up (returns at once while heartbeats get through)."""
        await self._leased.wait()

    def renewed(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (Fence.now) succeeded."""
        self._last_ok_at = max(self._last_ok_at, sent_at)
        if self._fenced and self.silent_s() < self.after_s:
            self._fenced = False
            self._leased.set()
            logger.warning("heartbeat renewed: runner registered again, taking tasks again")

    def check(self) -> None:
        """Fence if the last successful heartbeat is too old (cheap; called every poll_s)."""
        silent_s = self.silent_s()
        if silent_s < self.after_s:
            return
        if not self._fenced:
            self._fenced = True
            self._leased.clear()
        victims = [h for h in self.inflight.handles()
                   if h.stop_outcome is None and not h.reported]
        if victims:
            logger.warning("no heartbeat for %.1fs: stopping %d task(s) before the broker can "
                           "reclaim them", silent_s, len(victims))
            for h in victims:
                h.request_stop(Outcome.LOST, f"lease lost: no heartbeat for {silent_s:.1f} s")
            self.on_stopped()

    async def watch(self) -> None:
        """The watchdog's step (run_every poll_s), independent of a hung heartbeat."""
        self.check()

    def drop_lost(self, taken: Iterable[TaskHandle], lost: set[tuple[str, str]]) -> int:
        """Stop the handles whose entry the broker took back. → how many were stopped."""
        if not lost:
            return 0
        held = {id(h) for h in self.inflight.handles()}
        victims = [h for h in taken if h.key in lost and id(h) in held and not h.reported
                   and h.stop_outcome is None]
        for h in victims:
            m = h.msg
            logger.warning("%s/%s#%d: %s; stopping it", m.run, m.node, m.attempt, RECLAIMED)
            h.request_stop(Outcome.LOST, RECLAIMED)
        if victims:
            self.on_stopped()
        return len(victims)
