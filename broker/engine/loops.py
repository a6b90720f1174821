"""The one helper every periodic broker loop runs through."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class LoopBeat:
    """When a loop last finished an iteration without error (monotonic s), for health checks."""

    __slots__ = ("interval_s", "started_at", "last_ok_at", "failures")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.started_at = time.monotonic()
        self.last_ok_at: float | None = None
        self.failures = 0


# stop event → loop name → beat: each engine (one stop event) sees only its own loops.
_BEATS: weakref.WeakKeyDictionary[asyncio.Event, dict[str, LoopBeat]] = (
    weakref.WeakKeyDictionary()
)


def loop_beats(stop: asyncio.Event) -> dict[str, LoopBeat]:
    """The beats of the loops that run until `stop` (empty when none started)."""
    return dict(_BEATS.get(stop, {}))


async def run_every(
    name: str,
    interval_s: float,
    fn: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    wake: asyncio.Event | None = None,
) -> None:
    """Call `fn` every `interval_s` (or sooner when `wake` is set) until `stop` is set.

    Errors are logged with their traceback and the loop goes on, backing off up to 5 s while
    the failure persists, so one bad iteration never kills a loop silently or spins hot.
    """
    failures = 0
    beat = _BEATS.setdefault(stop, {}).setdefault(name, LoopBeat(interval_s))
    while not stop.is_set():
        started = time.monotonic()
        try:
            await fn()
            failures = 0
            beat.last_ok_at = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            logger.exception("loop %s failed (%d in a row)", name, failures)
        beat.failures = failures
        delay = interval_s if failures == 0 else min(5.0, interval_s * 2**failures)
        delay = max(0.0, delay - (time.monotonic() - started))
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if wake is not None:
            wake.clear()
