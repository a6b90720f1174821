"""Read-only views of runs and tasks for the API (plain dicts, JSON-ready)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from broker.core import fit

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys

RUN_INT_FIELDS = ("priority", "created_at", "started_at", "finished_at", "total")
TASK_FIELDS = (
    "state",
    "attempt",
    "class",
    "priority",
    "runner",
    "exit_code",
    "reason",
    "dispatched_at",
    "started_at",
    "finished_at",
    "result",
    "tpl",
    "vars",
    "parents",
    "tail",
    "fails",
    "lost",
    "group",
    "member",
    "reused_from",
    "wait_for",
    "waiting_since",
)
TASK_INT_FIELDS = (
    "attempt",
    "priority",
    "exit_code",
    "dispatched_at",
    "started_at",
    "finished_at",
    "fails",
    "lost",
    "waiting_since",
)


def _int(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(float(value))  # type: ignore[arg-type]
    except ValueError:
        return None


def run_phase(state: str, counts: dict[str, int]) -> str:
    """The run's lifecycle phase as the Kepler engine names it:
    new → queued → running ⇄ waiting → finished | failed | cancelled."""
    if state in ("new", "failed", "cancelled"):
        return state
    if state == "succeeded":
        return "finished"
    if state == "expanding":
        return "queued"
    if counts.get("running", 0) or counts.get("dispatched", 0):
        return "running"
    if counts.get("waiting", 0) or counts.get("retry_wait", 0):
        return "waiting"
    started = sum(counts.get(s, 0) for s in ("succeeded", "failed", "upstream_failed", "cancelled"))
    return "queued" if not started else "waiting"


def run_view(run: str, h: dict[str, str]) -> dict[str, Any]:
    """A run hash → API shape with per-state counts."""
    counts = {k[2:]: int(v) for k, v in h.items() if k.startswith("n_") and int(v) > 0}
    out: dict[str, Any] = {
        "id": run,
        "name": h.get("workflow", ""),
        "revision": h.get("revision", ""),
        "owner": h.get("owner", ""),
        "state": h.get("state", ""),
        "phase": run_phase(h.get("state", ""), counts),
        "reason": h.get("reason", ""),
        "counts": counts,
        "params": json.loads(h["params"]) if h.get("params") else {},
    }
    for f in RUN_INT_FIELDS:
        out[f] = _int(h.get(f))
    return out


def task_view(tid: str, values: list[str | None], with_tail: bool = False) -> dict[str, Any]:
    h = dict(zip(TASK_FIELDS, values, strict=True))
    out: dict[str, Any] = {"id": tid, "node": h["tpl"] or tid}
    for f in ("state", "class", "runner", "reason"):
        out[f] = h[f] or ""
    for f in TASK_INT_FIELDS:
        out[f] = _int(h[f])
    out["result"] = json.loads(h["result"]) if h["result"] else None
    out["vars"] = json.loads(h["vars"]) if h["vars"] else None
    out["parents"] = h["parents"].split(",") if h["parents"] else []
    if with_tail:
        out["tail"] = h["tail"] or ""
    if h["group"]:  # an ensemble member's task
        out["group"], out["member"] = h["group"], _int(h["member"])
    if h["reused_from"]:  # a redo reused this task's result
        out["reused_from"] = h["reused_from"]
    if h["wait_for"]:  # an event task: the key it waits for
        out["wait_for"] = h["wait_for"]
    return out


def _redo_links(h: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if h.get("redo_of"):
        out["redo_of"] = h["redo_of"]
    if h.get("redone_by"):
        out["redone_by"] = h["redone_by"].split(",")
    return out


async def group_summaries(redis: Redis, keys: Keys, run: str, text: str) -> dict[str, Any]:
    """The run hash's `groups` (ensemble → members, tasks, offset in the task list) with a
    count of its tasks per state."""
    groups: dict[str, dict[str, int]] = json.loads(text)
    pipe = redis.pipeline(transaction=False)
    for g in groups.values():
        pipe.lrange(keys.tasks(run), g["offset"], g["offset"] + g["tasks"] - 1)
    id_lists = await pipe.execute() if groups else []
    pipe = redis.pipeline(transaction=False)
    for ids in id_lists:
        for tid in ids:
            pipe.hget(keys.task(run, tid), "state")
    states = iter(await pipe.execute() if any(id_lists) else [])
    out: dict[str, Any] = {}
    for (name, g), ids in zip(groups.items(), id_lists, strict=True):
        counts: dict[str, int] = {}
        for _ in ids:
            state = next(states) or "unknown"
            counts[state] = counts.get(state, 0) + 1
        out[name] = {"members": g["members"], "tasks": g["tasks"], "counts": counts}
    return out


async def get_run(redis: Redis, keys: Keys, run: str) -> dict[str, Any] | None:
    h = await redis.hgetall(keys.run(run))
    if not h:
        return None
    view = run_view(run, h)
    view.update(_redo_links(h))
    if h.get("groups"):
        view["groups"] = await group_summaries(redis, keys, run, h["groups"])
    return view


async def get_tasks(
    redis: Redis,
    keys: Keys,
    run: str,
    *,
    offset: int = 0,
    limit: int = 10_000,
    with_tail: bool = False,
) -> list[dict[str, Any]]:
    ids = await redis.lrange(keys.tasks(run), offset, offset + limit - 1)
    pipe = redis.pipeline(transaction=False)
    for tid in ids:
        pipe.hmget(keys.task(run, tid), *TASK_FIELDS)
    values = await pipe.execute() if ids else []
    tasks = [task_view(tid, v, with_tail) for tid, v in zip(ids, values, strict=True)]
    await add_waiting_for(redis, keys, run, tasks)
    return tasks


async def add_waiting_for(redis: Redis, keys: Keys, run: str, tasks: list[dict[str, Any]]) -> None:
    """Give each ready task parked in dagb:unfit:{class} (it needs more than any live runner
    of its class offers) a `waiting_for` text naming what is missing. One ZSCORE per ready
    task; specs and offers are read only for parked ones."""
    ready = [t for t in tasks if t["state"] == "ready"]
    pipe = redis.pipeline(transaction=False)
    for t in ready:
        pipe.zscore(keys.unfit(t["class"]), f"{run}:{t['id']}")
    scores = await pipe.execute() if ready else []
    parked = [t for t, sc in zip(ready, scores, strict=True) if sc is not None]
    if not parked:
        return
    offers: dict[str, str | None] = {}
    specs: dict[str, str | None] = {}
    for t in parked:
        if t["class"] not in offers:
            offers[t["class"]] = await redis.hget(keys.fit(t["class"]), "offers")
        if t["node"] not in specs:
            specs[t["node"]] = await redis.hget(keys.spec(run), t["node"])
    for t in parked:
        needs = fit.task_needs(json.loads(specs[t["node"]] or "{}"))
        text = offers[t["class"]]
        t["waiting_for"] = (fit.unfit_reason(needs, json.loads(text), t["class"]) if text
                            else f"a live runner of class '{t['class']}' big enough for it")


async def list_runs(
    redis: Redis, keys: Keys, limit: int = 50, owner: str | None = None
) -> list[dict[str, Any]]:
    """Newest first; `owner` restricts the list to one user's runs."""
    index = keys.runs_of(owner) if owner else keys.runs()
    runs = await redis.zrevrange(index, 0, limit - 1)
    pipe = redis.pipeline(transaction=False)
    for r in runs:
        pipe.hgetall(keys.run(r))
    hashes = await pipe.execute() if runs else []
    return [run_view(r, h) for r, h in zip(runs, hashes, strict=True) if h]


async def queue_overview(redis: Redis, keys: Keys) -> dict[str, dict[str, int]]:
    """Per class: ready (waiting for a slot), parked (ready, but bigger than every live runner
    of the class), in_flight (in the stream), capacity."""
    classes = sorted(await redis.smembers(keys.classes()))
    capacity = await redis.hgetall(keys.capacity())
    pipe = redis.pipeline(transaction=False)
    for c in classes:
        pipe.zcard(keys.ready(c))
        pipe.zcard(keys.unfit(c))
        pipe.xlen(keys.queue(c))
    res = await pipe.execute() if classes else []
    return {
        c: {"ready": res[3 * i], "parked": res[3 * i + 1], "in_flight": res[3 * i + 2],
            "capacity": int(capacity.get(c, 0))}
        for i, c in enumerate(classes)
    }


async def get_messages(
    redis: Redis, keys: Keys, run: str, limit: int = 200
) -> list[dict[str, Any]]:
    return [json.loads(m) for m in await redis.lrange(keys.messages(run), -limit, -1)]


async def get_results(redis: Redis, keys: Keys, run: str) -> dict[str, Any]:
    """task id → result of every succeeded task that returned one."""
    ids = await redis.lrange(keys.tasks(run), 0, -1)
    pipe = redis.pipeline(transaction=False)
    for tid in ids:
        pipe.hmget(keys.task(run, tid), "state", "result")
    rows = await pipe.execute() if ids else []
    return {
        tid: json.loads(result)
        for tid, (state, result) in zip(ids, rows, strict=True)
        if state == "succeeded" and result
    }
