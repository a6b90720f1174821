"""The runner's presence in Redis: runner hash, runners set, heartbeat key, consumer groups.

Field values stay flat and readable (`redis-cli HGETALL dagb:runner:{id}`); the broker sums
`slots` of live runners in state `active` per class into the dispatch capacity, and keeps
out of the streams tasks needing more `cores` / `memory_mb` / `gpus` than any live runner of
their class offers. `free_*` and `busy` describe the running tasks at the last heartbeat.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from broker import __version__
from broker.keys import WORKER_GROUP
from worker.resources import Amount, format_cores

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis.asyncio import Redis

    from broker.keys import Keys
    from worker.config import WorkerSettings

logger = logging.getLogger(__name__)

ACTIVE = "active"
DRAINING = "draining"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RunnerStatus:
    """What changes while the runner lives."""

    state: str = ACTIVE
    busy: int = 0  # tasks running (not those waiting for resources)
    started_at_ms: int = field(default_factory=now_ms)
    free: Amount | None = None  # what the running tasks leave free (None: everything)


def resource_fields(settings: WorkerSettings, free: Amount | None) -> dict[str, str]:
    """Totals offered and what is free now: `cores` as "4" or "0.5", memory in MiB, GPUs."""
    total = Amount.of(settings.cores, settings.memory_mb, settings.gpus)
    now = free if free is not None else total
    return {
        "cores": format_cores(total.millicores),
        "memory_mb": str(total.memory_mb),
        "gpus": str(total.gpus),
        "free_cores": format_cores(now.millicores),
        "free_memory_mb": str(max(0, now.memory_mb)),
        "free_gpus": str(max(0, now.gpus)),
    }


def runner_fields(
    settings: WorkerSettings, executors: Iterable[str], st: RunnerStatus
) -> dict[str, str]:
    """The runner hash (flat, readable fields; RunnerInfo in broker/wire.py is its typed form)."""
    return {
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "classes": ",".join(settings.classes),
        "slots": str(settings.slots),
        "busy": str(st.busy),
        **resource_fields(settings, st.free),
        "executors": ",".join(executors),
        "labels": json.dumps(settings.labels, sort_keys=True),
        "software": json.dumps(settings.software),
        "state": st.state,
        "started_at": str(st.started_at_ms),
        "version": __version__,
    }


async def register_runner(
    redis: Redis, keys: Keys, settings: WorkerSettings, executors: Iterable[str], st: RunnerStatus
) -> None:
    """Runner hash + runners set + heartbeat key, in one MULTI (also re-done by each beat).

    A runner registered through the REST API under this id is taken over: the worker's own
    settings overwrite the registered fields, and the id leaves the registrations set."""
    rid = settings.runner_id
    pipe = redis.pipeline(transaction=True)
    fields: dict[Any, Any] = runner_fields(settings, executors, st)
    pipe.hset(keys.runner(rid), mapping=fields)
    pipe.sadd(keys.runners(), rid)
    pipe.srem(keys.registrations(), rid)
    pipe.set(keys.heartbeat(rid), "1", px=int(settings.heartbeat_ttl_s * 1000))
    await pipe.execute()


async def set_runner_state(redis: Redis, keys: Keys, runner_id: str, state: str) -> None:
    await redis.hset(keys.runner(runner_id), "state", state)


async def unregister_runner(redis: Redis, keys: Keys, runner_id: str) -> None:
    """Forget the runner: hash, heartbeat, control stream, set membership."""
    pipe = redis.pipeline(transaction=True)
    pipe.delete(keys.runner(runner_id), keys.heartbeat(runner_id), keys.control(runner_id))
    pipe.srem(keys.runners(), runner_id)
    await pipe.execute()


async def ensure_groups(redis: Redis, streams: Iterable[str]) -> None:
    """XGROUP CREATE <stream> workers 0 MKSTREAM; an existing group (BUSYGROUP) is fine."""
    for stream in streams:
        try:
            await redis.xgroup_create(stream, WORKER_GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise


async def delete_idle_consumer(redis: Redis, streams: Iterable[str], runner_id: str) -> None:
    """Remove this runner's consumer from each group, only where it holds nothing."""
    for stream in streams:
        try:
            pending = await redis.xpending_range(
                stream, WORKER_GROUP, min="-", max="+", count=1, consumername=runner_id
            )
            if not pending:
                await redis.xgroup_delconsumer(stream, WORKER_GROUP, runner_id)
        except ResponseError as e:  # stream or group deleted meanwhile
            logger.debug("cannot remove consumer %s from %s: %s", runner_id, stream, e)
