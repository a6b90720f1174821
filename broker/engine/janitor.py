"""Housekeeping: fail interrupted expansions, expire finished runs (invariant 5)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from redis.asyncio import Redis

    from broker.engine.scripts import Scripts
    from broker.keys import Keys

logger = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled")


class Janitor:
    """Runs under a short Redis lock so that of several brokers one does each pass."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        *,
        retention_s: float,
        expand_timeout_s: float,
        owner: str,
        before_expire: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.retention_ms = int(retention_s * 1000)
        self.expand_timeout_ms = int(expand_timeout_s * 1000)
        self.owner = owner
        self.before_expire = before_expire  # e.g. write the run's provenance; False: keep it

    async def sweep(self) -> None:
        if not await self.redis.set(self.keys.lock("janitor"), self.owner, nx=True, px=5000):
            return
        await self.fail_interrupted_expansions()
        await self.expire_finished_runs()

    async def fail_interrupted_expansions(self) -> int:
        """Fail runs whose expansion made no progress for expand_timeout (its writer died)."""
        cutoff = int(time.time() * 1000) - self.expand_timeout_ms
        stale = await self.redis.zrangebyscore(self.keys.expanding(), "-inf", cutoff)
        for run in stale:
            out = await self.scripts.cancel_run(
                run,
                "expansion interrupted: the broker stopped before the run was written",
                final="failed",
            )
            await self.redis.zrem(self.keys.expanding(), run)
            logger.warning("run %s: interrupted expansion failed (%s)", run, out)
        return len(stale)

    async def expire_finished_runs(self, limit: int = 50) -> int:
        """Delete runs created before the retention window once they have finished."""
        cutoff = int(time.time() * 1000) - self.retention_ms
        runs = await self.redis.zrangebyscore(self.keys.runs(), "-inf", cutoff, start=0, num=limit)
        n = 0
        for run in runs:
            state, archived = await self.redis.hmget(self.keys.run(run), "state", "archived")
            if state is not None and (state not in FINISHED or not archived):
                continue  # still running, or not yet in SQLite's history: keep it
            if self.before_expire is not None and not await self.before_expire(run):
                continue
            await delete_run_keys(self.redis, self.keys, run)
            n += 1
        return n


async def delete_run_keys(redis: Redis, keys: Keys, run: str) -> None:
    """Remove every key of a run (task hashes in chunks)."""
    nodes = await redis.lrange(keys.tasks(run), 0, -1)
    for i in range(0, len(nodes), 1000):
        chunk = nodes[i : i + 1000]
        await redis.unlink(*(keys.task(run, n) for n in chunk), *(keys.log(run, n) for n in chunk))
    owner = await redis.hget(keys.run(run), "owner")
    await redis.unlink(keys.run(run), keys.spec(run), keys.tasks(run), keys.artifacts(run),
                       keys.messages(run))
    await redis.zrem(keys.runs(), run)
    if owner:
        await redis.zrem(keys.runs_of(owner), run)
