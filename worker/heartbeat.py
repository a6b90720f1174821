"""One heartbeat: refresh the TTL key and the runner hash, renew the lease of held entries.

Renewing runs `renew_leases.lua`: for each held entry still pending on this runner it resets
the idle time (XCLAIM … 0 JUSTID), so the broker's reaper (which reclaims entries idle longer
than its lease) never takes a task that is still running here. An entry that is no longer
pending on this runner is returned as lost: the reaper took it (heartbeat key expired, or
lease expired) and the task was re-queued; the caller stops its copy (worker/fencing.py).
The script never claims an entry back from the reaper, as a plain XCLAIM would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.registry import runner_fields

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from redis.asyncio import Redis

    from broker.engine.scripts import Scripts
    from broker.keys import Keys
    from worker.config import WorkerSettings
    from worker.registry import RunnerStatus


async def send_heartbeat(
    redis: Redis, keys: Keys, settings: WorkerSettings, executors: Iterable[str],
    status: RunnerStatus, held: Mapping[str, list[str]], scripts: Scripts,
) -> set[tuple[str, str]]:
    """Re-registers fully each time, so a runner the reaper forgot (long pause) comes back.

    → the (stream, entry id) of held entries this runner lost.
    """
    rid = settings.runner_id
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.heartbeat(rid), "1", px=int(settings.heartbeat_ttl_s * 1000))
    fields: dict[Any, Any] = runner_fields(settings, executors, status)
    pipe.hset(keys.runner(rid), mapping=fields)
    pipe.sadd(keys.runners(), rid)
    await pipe.execute()
    if not held:
        return set()
    return await scripts.renew_leases(rid, held)
