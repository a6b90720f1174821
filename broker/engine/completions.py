"""The broker side of `dagb:done`: read completions through the `brokers` group, apply them.

Several brokers may share one Redis: the consumer group splits the completions between
them, and entries left pending by a broker that died are taken over with XAUTOCLAIM.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from broker.keys import BROKER_GROUP
from broker.wire import COMPLETION_FIELDS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.engine.scripts import Scripts
    from broker.keys import Keys

logger = logging.getLogger(__name__)

BATCH = 500


def completion_args(fields: dict[str, str]) -> list[str]:
    """A done-stream entry as complete.lua's 11 positional fields."""
    return [fields.get(f, "") for f in COMPLETION_FIELDS]


class CompletionConsumer:
    """Reads `dagb:done` as consumer `broker_id` and applies each batch in one script call."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        broker_id: str,
        *,
        max_lost: int,
        block_ms: int,
        claim_idle_ms: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.broker_id = broker_id
        self.max_lost = max_lost
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.applied = 0
        self.ignored = 0

    async def apply(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        if not entries:
            return
        ids = [eid for eid, _ in entries]
        comps = [completion_args(f) for _, f in entries]
        applied, ignored, _ = await self.scripts.complete(
            comps,
            max_lost=self.max_lost,
            ack_stream=self.keys.done(),
            ack_group=BROKER_GROUP,
            ack_ids=ids,
        )
        self.applied += applied
        self.ignored += ignored
        if ignored:
            logger.info("ignored %d duplicate or stale completions", ignored)

    async def read_once(self) -> int:
        """Block up to block_ms for new completions; apply them. Returns how many were read."""
        resp = await self.redis.xreadgroup(
            BROKER_GROUP,
            self.broker_id,
            {self.keys.done(): ">"},
            count=BATCH,
            block=self.block_ms,
        )
        n = 0
        for _stream, entries in resp or []:
            await self.apply(entries)
            n += len(entries)
        return n

    async def claim_abandoned(self) -> int:
        """Take over completions another (dead) broker read but never applied."""
        total = 0
        start = "0-0"
        while True:
            nxt, entries, *_ = await self.redis.xautoclaim(
                self.keys.done(),
                BROKER_GROUP,
                self.broker_id,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=BATCH,
            )
            live = [(eid, f) for eid, f in entries if f]
            await self.apply(live)
            total += len(live)
            if nxt in ("0-0", b"0-0") or not entries:
                return total
            start = nxt
