"""The two loop shapes of the worker; no other module writes its own `while True: try`.

`run_every` calls a function at a fixed rate (heartbeat). `run_forever` calls a function
that blocks on Redis by itself (consumer, control reader) back to back. Both log an
exception and carry on (backing off in `run_forever`), and return once `stop` is set;
cancelling them is also safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def sleep_unless(stop: asyncio.Event, delay_s: float) -> None:
    """Sleep delay_s seconds, or less if `stop` is set meanwhile."""
    if delay_s <= 0 or stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)


async def run_every(
    interval_s: float, fn: Callable[[], Awaitable[object]], stop: asyncio.Event, name: str
) -> None:
    """Call fn every interval_s (drift-compensated) until stop is set."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not stop.is_set():
        try:
            await fn()
        except Exception:
            logger.exception("%s failed; retrying in %.1fs", name, interval_s)
        next_at += interval_s
        now = loop.time()
        if next_at < now:  # fell behind (slow Redis): don't burst to catch up
            next_at = now
        await sleep_unless(stop, next_at - now)


async def run_forever(
    fn: Callable[[], Awaitable[object]], stop: asyncio.Event, name: str,
    max_backoff_s: float = 5.0,
) -> None:
    """Call fn back to back until stop is set; after an error wait 0.1 s, doubling to max."""
    backoff_s = 0.1
    while not stop.is_set():
        try:
            await fn()
        except Exception:
            logger.exception("%s failed; retrying in %.1fs", name, backoff_s)
            await sleep_unless(stop, backoff_s)
            backoff_s = min(backoff_s * 2, max_backoff_s)
        else:
            backoff_s = 0.1


async def wait_first(*aws: Awaitable[object], timeout_s: float | None) -> None:
    """Until the first of aws completes or timeout_s passes; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
