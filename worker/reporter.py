"""Writing outcomes: completions and acknowledgements, in that order, in one MULTI.

`report_completions` XADDs each Completion to `done`, then XACK + XDEL its source entry,
all inside one transaction: an entry is never acknowledged without its completion. A retry
after an ambiguous failure may write a completion twice; complete.lua ignores the duplicate
(it is idempotent on (task, attempt)).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.keys import WORKER_GROUP

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

    from broker.keys import Keys
    from broker.wire import Completion

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0)  # ~12 s, then give up


def _add_acks(pipe: Pipeline, entries: Iterable[tuple[str, str]]) -> None:
    by_stream: dict[str, list[str]] = {}
    for stream, msg_id in entries:
        by_stream.setdefault(stream, []).append(msg_id)
    for stream, ids in by_stream.items():
        pipe.xack(stream, WORKER_GROUP, *ids)
        pipe.xdel(stream, *ids)


async def _execute_with_retry(
    redis: Redis, fill: Callable[[Pipeline], None], what: str
) -> bool:
    """Build a fresh MULTI each try (redis-py empties a pipeline when it executes)."""
    for delay_s in (*RETRY_DELAYS_S, None):
        pipe = redis.pipeline(transaction=True)
        fill(pipe)
        try:
            await pipe.execute()
            return True
        except (RedisConnectionError, RedisTimeoutError) as e:
            if delay_s is None:
                logger.error("giving up on %s: %s (entries stay pending for the reaper)", what, e)
                return False
            logger.warning("%s failed (%s); retrying in %.1fs", what, e, delay_s)
            await asyncio.sleep(delay_s)
    return False


async def report_completions(
    redis: Redis, keys: Keys, items: Sequence[tuple[tuple[str, str], Completion]]
) -> bool:
    """items: ((stream, entry id), completion). → False if Redis stayed unreachable."""
    if not items:
        return True
    done = keys.done()
    fields = [completion.to_fields() for _, completion in items]

    def fill(pipe: Pipeline) -> None:
        for f in fields:
            pipe.xadd(done, f)  # type: ignore[arg-type]
        _add_acks(pipe, (entry for entry, _ in items))

    return await _execute_with_retry(redis, fill, f"reporting {len(items)} completion(s)")


async def ack_entries(redis: Redis, entries: Sequence[tuple[str, str]]) -> bool:
    """XACK + XDEL without a completion (stale or undecodable entries)."""
    if not entries:
        return True

    def fill(pipe: Pipeline) -> None:
        _add_acks(pipe, entries)

    return await _execute_with_retry(redis, fill, f"acknowledging {len(entries)} entries")
