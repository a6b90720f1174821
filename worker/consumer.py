"""The consumer: read entries from the class streams, start what fits, hand over batches.

It reads only while a slot is free and no read task waits locally, at most
`InFlight.read_count()` entries (min(free slots, max(1, whole free cores)): see there why).
Read tasks start in read order while their cores, memory and GPUs fit what is free; the rest
wait (strict FIFO) and start from `launch_ready` as running batches end. Tasks started
together are still grouped into batches by batch key. A task needing more than this runner
has in total is never started: it is handed back at once, naming the missing capability.

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
        settle: Callable[[list[TaskHandle]], None],
        batch_max: int = 0,
    ) -> None:
        self.redis = redis
        self.runner_id = runner_id
        self.streams = list(streams)
        self.block_ms = block_ms
        self.inflight = inflight
        self.launch = launch  # starts one batch (must not block)
        self.drop = drop  # acknowledges malformed entries (must not block)
        self.settle = settle  # reports stopped, never-started tasks (must not block)
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

    async def _sweep(self, count: int) -> list[Entry]:
        n = len(self.streams)
        first, self._turn = self._turn, (self._turn + 1) % n
        out: list[Entry] = []
        for i in range(n):
            if len(out) >= count:
                break
            stream = self.streams[(first + i) % n]
            out += await self._read({stream: ">"}, count - len(out), None)
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
        """Wait until a slot is free and nothing waits, read up to `read_count()` entries,
        start what fits. → entries read."""
        await self.inflight.wait_readable()
        count = self.inflight.read_count()
        if len(self.streams) == 1:
            entries = await self._read({self.streams[0]: ">"}, count, self.block_ms)
        else:
            entries = await self._sweep(count)
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
        never = self.inflight.hold([TaskHandle(m) for m in messages], self.runner_id)
        if never:
            logger.warning("handing back %d task(s) too big for this runner: %s", len(never),
                           "; ".join(f"{h.msg.run}/{h.msg.node}: {h.stop_reason}"
                                     for h in never[:5]))
            self.settle(never)
        self.launch_ready()

    def launch_ready(self) -> int:
        """Start the waiting tasks that fit now (from the head, in order), grouped into
        batches by batch key. Waiting tasks stopped meanwhile (fencing) are reported, not
        started. → tasks started."""
        stopped = self.inflight.withdraw_stopped()
        if stopped:
            self.settle(stopped)
        started = self.inflight.admit()
        for batch in chunked(group_by(started, lambda h: batch_key(h.msg)), self.batch_max):
            self.launch(batch)
        return len(started)
