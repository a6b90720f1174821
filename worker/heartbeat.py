"""One heartbeat: refresh the TTL key and the runner hash, renew the lease of held entries.

Renewing is `XCLAIM <stream> workers <runner> 0 <ids> JUSTID`: it resets each entry's idle
time, so the broker's reaper (which reclaims entries idle longer than its lease) never takes
a task that is still running here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.keys import WORKER_GROUP
from worker.registry import runner_fields

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from redis.asyncio import Redis

    from broker.keys import Keys
    from worker.config import WorkerSettings
    from worker.registry import RunnerStatus

CLAIM_CHUNK = 500


async def send_heartbeat(
    redis: Redis, keys: Keys, settings: WorkerSettings, executors: Iterable[str],
    status: RunnerStatus, held: Mapping[str, list[str]],
) -> None:
    """Re-registers fully each time, so a runner the reaper forgot (long pause) comes back."""
    rid = settings.runner_id
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.heartbeat(rid), "1", px=int(settings.heartbeat_ttl_s * 1000))
    fields: dict[Any, Any] = runner_fields(settings, executors, status)
    pipe.hset(keys.runner(rid), mapping=fields)
    pipe.sadd(keys.runners(), rid)
    for stream, ids in held.items():
        for i in range(0, len(ids), CLAIM_CHUNK):
            chunk: list[Any] = ids[i : i + CLAIM_CHUNK]
            pipe.xclaim(stream, WORKER_GROUP, rid, min_idle_time=0, message_ids=chunk, justid=True)
    await pipe.execute()
