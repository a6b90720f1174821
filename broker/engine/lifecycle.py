"""Runs created without queueing: `new` → (PATCH parameters) → queued; results; deletion."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from broker.engine.janitor import delete_run_keys
from broker.engine.submit import new_run_id
from broker.errors import Conflict

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys

FINISHED = ("succeeded", "failed", "cancelled")


async def create_new_run(
    redis: Redis,
    keys: Keys,
    *,
    meta: dict[str, str],
    params: dict[str, Any],
    priority: int | None,
) -> str:
    """A run record in state `new`: nothing expanded or queued until `queue` is called."""
    run = new_run_id()
    now = int(time.time() * 1000)
    fields: dict[str, str | int] = {
        **meta,
        "state": "new",
        "params": json.dumps(params, separators=(",", ":")),
        "created_at": now,
        "total": 0,
    }
    if priority is not None:
        fields["priority_override"] = priority
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.run(run), mapping=fields)
    pipe.zadd(keys.runs(), {run: now})
    if meta.get("owner"):
        pipe.zadd(keys.runs_of(meta["owner"]), {run: now})
    await pipe.execute()
    return run


async def add_messages(
    redis: Redis, keys: Keys, run: str, notices: list[tuple[str, str]]
) -> None:
    """Append (task, text) notices to the run's messages, as lib.lua `message` does."""
    if not notices:
        return
    now = int(time.time() * 1000)
    await redis.rpush(keys.messages(run), *(json.dumps({"ts": now, "task": task, "text": text})
                                            for task, text in notices))
    await redis.ltrim(keys.messages(run), -200, -1)


async def require_state(redis: Redis, keys: Keys, run: str, *states: str) -> dict[str, str]:
    h = await redis.hgetall(keys.run(run))
    if h.get("state") not in states:
        raise Conflict(
            f"run '{run}' is {h.get('state')}; this needs it to be {' or '.join(states)}",
            {"run": run, "state": h.get("state")},
        )
    return h


async def set_new_run_params(
    redis: Redis, keys: Keys, run: str, params: dict[str, Any], priority: int | None
) -> None:
    """Store (already validated) overrides on a `new` run, atomically checking its state."""
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(keys.run(run))
        state = await pipe.hget(keys.run(run), "state")
        if state != "new":
            raise Conflict(
                f"run '{run}' is {state}; parameters can change only while it is new",
                {"run": run, "state": state},
            )
        pipe.multi()
        pipe.hset(keys.run(run), "params", json.dumps(params, separators=(",", ":")))
        if priority is not None:
            pipe.hset(keys.run(run), "priority_override", priority)
        await pipe.execute()


async def delete_finished_run(redis: Redis, keys: Keys, run: str, *, force: bool) -> None:
    """Delete a finished run once its results were fetched (or with force)."""
    h = await require_state(redis, keys, run, *FINISHED)
    if not force and h.get("results_fetched") != "1" and int(h.get("total", "0") or 0) > 0:
        raise Conflict(
            f"run '{run}' has results nobody fetched: GET /api/v1/runs/{run}/results first, "
            "or delete with force=true",
            {"run": run},
        )
    await delete_run_keys(redis, keys, run)
    await redis.unlink(keys.messages(run))
