"""The consumer: read at most `free slots` entries from the class streams, hand over batches.

With one class it blocks in XREADGROUP COUNT <free> on that stream. With several, COUNT
applies per stream, so it reads them one after another (rotating the first one) without
blocking, and when all are empty it waits with XREAD from each group's last-delivered id,
which returns as soon as any stream has an undelivered entry, and consumes nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from broker.keys import WORKER_GROUP
from worker.batching import batch_key, chunked, group_by
from worker.handle import TaskHandle
from worker.registry import ensure_groups
from worker.streams import Entry, decode_entries, flatten_reply

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from redis.asyncio import Redis

    from worker.inflight import InFlight

logger = logging.getLogger(__name__)


class Consumer:
    def __init__(
        self, redis: Redis, runner_id: str, streams: Sequence[str], block_ms: int,
        inflight: InFlight, launch: Callable[[list[TaskHandle]], None],
        drop: Callable[[list[Entry]], None],
        batch_max: int = 0,
    ) -> None:
        self.redis = redis
        self.runner_id = runner_id
        self.streams = list(streams)
        self.block_ms = block_ms
        self.inflight = inflight
        self.launch = launch  # starts one batch (must not block)
        self.drop = drop  # acknowledges malformed entries (must not block)
        self.batch_max = batch_max  # tasks per batch at most (0: no limit)
        self._turn = 0

    async def _read(self, streams: dict[Any, Any], count: int, block_ms: int | None) -> list[Entry]:
        try:
            reply = await self.redis.xreadgroup(
                WORKER_GROUP, self.runner_id, streams, count=count, block=block_ms
            )
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            logger.warning("a class stream or its group was deleted; recreating (%s)", e)
            await ensure_groups(self.redis, self.streams)
            return []
        return flatten_reply(reply)

    async def _sweep(self, free: int) -> list[Entry]:
        n = len(self.streams)
        first, self._turn = self._turn, (self._turn + 1) % n
        out: list[Entry] = []
        for i in range(n):
            if len(out) >= free:
                break
            stream = self.streams[(first + i) % n]
            out += await self._read({stream: ">"}, free - len(out), None)
        return out

    async def _wait_for_entries(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xinfo_groups(stream)
        replies = await pipe.execute(raise_on_error=False)
        since: dict[Any, Any] = {}
        for stream, groups in zip(self.streams, replies, strict=True):
            if isinstance(groups, Exception):
                await ensure_groups(self.redis, [stream])
                return
            last = next((g["last-delivered-id"] for g in groups if g["name"] == WORKER_GROUP), None)
            if last is None:
                await ensure_groups(self.redis, [stream])
                return
            since[stream] = last
        await self.redis.xread(since, count=1, block=self.block_ms)

    async def read_once(self) -> int:
        """Wait for a free slot, read up to the free slots, start their batches. → entries read."""
        await self.inflight.wait_free()
        free = self.inflight.free()
        if len(self.streams) == 1:
            entries = await self._read({self.streams[0]: ">"}, free, self.block_ms)
        else:
            entries = await self._sweep(free)
            if not entries:
                await self._wait_for_entries()
                return 0
        self.accept(entries)
        return len(entries)

    def accept(self, entries: list[Entry]) -> None:
        """Synchronous on purpose: read entries become held before any other await."""
        messages, bad = decode_entries(entries)
        if bad:
            self.drop(bad)
        handles = [TaskHandle(m) for m in messages]
        self.inflight.add(handles)
        for batch in chunked(group_by(handles, lambda h: batch_key(h.msg)), self.batch_max):
            self.launch(batch)
