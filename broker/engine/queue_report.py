"""What each resource-class queue holds, who serves it, and why tasks may be stuck."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from broker.core import fit
from broker.keys import WORKER_GROUP

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys

SAMPLE = 200


def _resources(h: dict[str, str]) -> dict[str, float | int | None]:
    """cores / memory_mb / gpus and their free_* values from a runner hash."""
    def num(name: str, kind: type[float] | type[int]) -> float | int | None:
        try:
            return kind(h[name]) if h.get(name) else None
        except ValueError:  # not written by a dagbroker worker
            return None

    return {"cores": num("cores", float), "memory_mb": num("memory_mb", int),
            "gpus": num("gpus", int), "free_cores": num("free_cores", float),
            "free_memory_mb": num("free_memory_mb", int), "free_gpus": num("free_gpus", int)}


def _json(text: str | None, empty: Any) -> Any:
    return json.loads(text) if text else empty


def _runner_row(rid: str, h: dict[str, str], ttl: int) -> dict[str, Any]:
    """One runner hash, typed (RunnerInfo in broker/wire.py); ttl: its heartbeat's PTTL."""
    return {
        "id": rid,
        "host": h.get("host", ""),
        "pid": int(h.get("pid", 0) or 0),
        "classes": [c for c in h.get("classes", "").split(",") if c],
        "slots": int(h.get("slots", 0) or 0),
        "busy": int(h.get("busy", 0) or 0),
        # offered totals and what the running tasks leave free (None: an older worker)
        **_resources(h),
        "executors": [e for e in h.get("executors", "").split(",") if e],
        "labels": _json(h.get("labels"), {}),
        "software": _json(h.get("software"), []),
        "state": h.get("state", ""),
        "alive": ttl > 0,
        "heartbeat_ttl_ms": max(ttl, 0),
        "started_at": int(h.get("started_at", 0) or 0),
    }


async def live_runners(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """Registered runners whose heartbeat is alive, with their advertised capabilities, then
    runners registered through the REST API that no worker has taken yet (state
    `registered`, not alive: they serve nothing)."""
    live = sorted(await redis.smembers(keys.runners()))
    ids = live + sorted(set(await redis.smembers(keys.registrations())) - set(live))
    pipe = redis.pipeline(transaction=False)
    for rid in ids:
        pipe.hgetall(keys.runner(rid))
        pipe.pttl(keys.heartbeat(rid))
    res = await pipe.execute() if ids else []
    return [
        _runner_row(rid, res[2 * i], res[2 * i + 1])
        for i, rid in enumerate(ids) if res[2 * i]
    ]


async def _sample(redis: Redis, key: str) -> list[str]:
    """The first and last SAMPLE members of a sorted set (all of a small one, once each)."""
    head = await redis.zrange(key, 0, SAMPLE - 1)
    if len(head) < SAMPLE:
        return head
    tail = await redis.zrange(key, -SAMPLE, -1)
    return head + [m for m in tail if m not in set(head)]


async def _read_sample(
    redis: Redis, keys: Keys, members: list[str]
) -> tuple[int | None, dict[str, int], list[dict[str, Any]]]:
    """(oldest ready_at, executor → count, each member's decoded spec) of sampled tasks."""
    pipe = redis.pipeline(transaction=False)
    for m in members:
        run, _, node = m.partition(":")
        pipe.hmget(keys.task(run, node), "ready_at", "tpl")
        pipe.hget(keys.run(run), "started_at")
    res = await pipe.execute() if members else []
    oldest: int | None = None
    executors: dict[str, int] = {}
    specs: dict[tuple[str, str], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for i, m in enumerate(members):
        (ready_at, tpl), started = res[2 * i], res[2 * i + 1]
        t = int(ready_at or started or 0) or None
        if t is not None:
            oldest = t if oldest is None else min(oldest, t)
        run = m.partition(":")[0]
        if (run, tpl) not in specs:
            spec = await redis.hget(keys.spec(run), tpl or "")
            specs[(run, tpl)] = json.loads(spec) if spec else {}
        out.append(specs[(run, tpl)])
        ex = specs[(run, tpl)].get("executor", "shell")
        executors[ex] = executors.get(ex, 0) + 1
    return oldest, executors, out


def _parked_entries(
    specs: list[dict[str, Any]], parked: int, offers: list[fit.Offer], rclass: str
) -> list[dict[str, Any]]:
    """One entry per distinct need among sampled parked tasks, with what is missing."""
    counts: dict[str, tuple[int, dict[str, float]]] = {}
    for spec in specs:
        needs = fit.task_needs(spec)
        k = json.dumps(needs, sort_keys=True)
        counts[k] = (counts.get(k, (0, needs))[0] + 1, needs)
    count_key = "tasks" if len(specs) >= parked else "tasks_in_sample"
    return [
        {count_key: n, "needs": fit.public_needs(needs),
         "reason": fit.unfit_reason(needs, offers, rclass)}
        for n, needs in sorted(counts.values(), key=lambda v: -v[0])
    ]


async def _class_report(
    redis: Redis, keys: Keys, c: str, runners: list[dict[str, Any]], now: int
) -> dict[str, Any]:
    ready = await redis.zcard(keys.ready(c))
    parked = await redis.zcard(keys.unfit(c))
    length = await redis.xlen(keys.queue(c))
    pending = 0
    if length:
        try:
            summary = await redis.xpending(keys.queue(c), WORKER_GROUP)
            pending = int(summary.get("pending", 0))
        except Exception:  # no group yet: nothing was read
            pending = 0
    serving = [r for r in runners if c in r["classes"] and r["state"] == "active"]
    ready_sample = await _sample(redis, keys.ready(c)) if ready else []
    parked_sample = await _sample(redis, keys.unfit(c)) if parked else []
    oldest, executors, specs = await _read_sample(redis, keys, ready_sample + parked_sample)
    unfit: list[dict[str, Any]] = []
    if (ready or parked) and not serving:
        unfit.append({"tasks": ready + parked, "reason": f"no live runner serves class '{c}'"})
    elif ready or parked:
        have = {e for r in serving for e in r["executors"]}
        for ex, n in executors.items():
            if ex not in have:
                unfit.append({"tasks_in_sample": n,
                              "reason": f"no runner of class '{c}' has executor '{ex}'"})
        offers_text = await redis.hget(keys.fit(c), "offers") if parked else None
        if offers_text:
            unfit += _parked_entries(specs[len(ready_sample):], parked, json.loads(offers_text), c)
    return {
        "ready": ready,
        "parked": parked,
        "dispatched": length - pending,
        "pending": pending,
        "oldest_ready_age_s": round((now - oldest) / 1000, 3) if oldest else None,
        "runners": [r["id"] for r in serving],
        "slots": sum(r["slots"] for r in serving),
        "unfit": unfit,
    }


async def queue_report(redis: Redis, keys: Keys) -> dict[str, Any]:
    """Per class: ready (waiting for a slot), parked (ready, but bigger than every live runner
    of the class), dispatched (not yet read), pending (read by a worker), oldest age, runners
    serving it, and tasks no live runner can take with the reason."""
    classes = sorted(await redis.smembers(keys.classes()))
    runners = [r for r in await live_runners(redis, keys) if r["alive"]]
    now = int(time.time() * 1000)
    return {c: await _class_report(redis, keys, c, runners, now) for c in classes}
