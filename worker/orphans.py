"""At exit: hand back any entry still pending on this consumer that the worker never took on.

That happens when the consumer is cancelled while an XREADGROUP reply is in flight: the
entries were delivered to this consumer but never reached the worker. Reporting them
handed_back (and acknowledging them) requeues them now instead of after the reaper's lease.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from broker.keys import WORKER_GROUP
from broker.wire import Completion, Outcome
from worker.reporter import ack_entries, report_completions
from worker.streams import decode_entries

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis.asyncio import Redis

    from broker.keys import Keys

logger = logging.getLogger(__name__)


async def _pending_ids(redis: Redis, stream: str, runner_id: str) -> list[Any]:
    pending = await redis.xpending_range(
        stream, WORKER_GROUP, min="-", max="+", count=1000, consumername=runner_id
    )
    return [str(p["message_id"]) for p in pending]


async def hand_back_pending(
    redis: Redis, keys: Keys, streams: Iterable[str], runner_id: str, now_ms: int
) -> int:
    """Report every entry pending on this consumer handed_back. → how many."""
    total = 0
    for stream in streams:
        ids = await _pending_ids(redis, stream, runner_id)
        if not ids:
            continue
        claimed = cast(
            "list[tuple[str, dict[str, str] | None]]",
            await redis.xclaim(stream, WORKER_GROUP, runner_id, min_idle_time=0, message_ids=ids),
        )
        entries = [(stream, eid, fields) for eid, fields in claimed if fields]
        messages, _ = decode_entries(entries)
        items = [
            ((m.stream, m.msg_id), Completion(
                run=m.run, node=m.node, attempt=m.attempt, outcome=Outcome.HANDED_BACK,
                runner=runner_id, reason="runner stopped before starting it",
                started_at_ms=now_ms, finished_at_ms=now_ms,
            ))
            for m in messages
        ]
        await report_completions(redis, keys, items)
        reported = {m.msg_id for m in messages}
        await ack_entries(redis, [(stream, i) for i in ids if i not in reported])
        total += len(ids)
    if total:
        logger.info("handed back %d entries read but never taken on", total)
    return total
