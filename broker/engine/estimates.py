"""Gathers what the ETA simulation needs (broker/core/eta.py) from Redis and SQLite.

Expected duration of a task, first that applies: the median (and p80) of the same workflow
node's past successful attempts; else of the same command signature anywhere; else the node's
`walltime` hint; else unknown.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from broker.core.eta import TaskInput, duration_stats, simulate
from broker.engine import queries
from broker.history.archive import command_signature

if TYPE_CHECKING:
    import aiosqlite
    from redis.asyncio import Redis

    from broker.keys import Keys

HISTORY_LIMIT = 5000


async def _durations(db: aiosqlite.Connection, sql: str, args: tuple[Any, ...]
                     ) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    async with db.execute(sql, args) as cur:
        async for key, ms in cur:
            out[key].append(ms / 1000)
    return out


async def expected_durations(
    db: aiosqlite.Connection, workflow: str, specs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per node template: {"median_s", "p80_s", "source"} (source: history|command|walltime|
    unknown)."""
    by_node = await _durations(
        db, "SELECT node, duration_ms FROM attempts WHERE workflow = ? AND state = 'succeeded'"
        " AND duration_ms IS NOT NULL ORDER BY finished_at DESC LIMIT ?", (workflow, HISTORY_LIMIT))
    sigs = {tpl: command_signature(spec) for tpl, spec in specs.items()}
    missing = [s for tpl, s in sigs.items() if not by_node.get(tpl)]
    by_sig: dict[str, list[float]] = {}
    if missing:
        marks = ",".join("?" * len(missing))
        by_sig = await _durations(
            db, f"SELECT signature, duration_ms FROM attempts WHERE signature IN ({marks})"
            " AND state = 'succeeded' AND duration_ms IS NOT NULL ORDER BY finished_at DESC"
            " LIMIT ?", (*missing, HISTORY_LIMIT))
    out: dict[str, dict[str, Any]] = {}
    for tpl, spec in specs.items():
        for source, values in (("history", by_node.get(tpl)), ("command", by_sig.get(sigs[tpl]))):
            stats = duration_stats(values or [])
            if stats:
                out[tpl] = {"median_s": stats[0], "p80_s": stats[1], "source": source,
                            "samples": len(values or [])}
                break
        else:
            wall = spec.get("walltime_s")
            out[tpl] = ({"median_s": wall, "p80_s": wall, "source": "walltime"} if wall
                        else {"median_s": None, "p80_s": None, "source": "unknown"})
    return out


async def _ahead_s(redis: Redis, keys: Keys, run: str, classes: set[str],
                   typical: dict[str, float]) -> dict[str, float]:
    """Seconds of other runs' work queued before this run's best ready task, per class."""
    out: dict[str, float] = {}
    for c in classes:
        members = await redis.zrange(keys.ready(c), 0, 999)
        before = 0
        for m in members:
            if m.startswith(f"{run}:"):
                break
            before += 1
        out[c] = before * typical.get(c, 0.0)
    return out


async def run_eta(redis: Redis, keys: Keys, db: aiosqlite.Connection, run: str) -> dict[str, Any]:
    """The estimate for one run: per task expected duration/start/finish, and the run's ETA."""
    h = await redis.hgetall(keys.run(run))
    tasks = await queries.get_tasks(redis, keys, run)
    specs = {tpl: json.loads(text) for tpl, text in (await redis.hgetall(keys.spec(run))).items()}
    expected = await expected_durations(db, h.get("workflow", ""), specs)
    capacity = {c: int(n) for c, n in (await redis.hgetall(keys.capacity())).items()}
    classes = {t["class"] for t in tasks}
    typical: dict[str, list[float]] = defaultdict(list)
    for t in tasks:
        med = expected[t["node"]]["median_s"] if t["node"] in expected else None
        if med is not None:
            typical[t["class"]].append(med)
    typical_s = {c: sum(v) / len(v) for c, v in typical.items() if v}
    inputs = [
        TaskInput(id=t["id"], state=t["state"], rclass=t["class"], parents=t["parents"],
                  priority=t["priority"] or 0,
                  duration_s=expected.get(t["node"], {}).get("median_s"),
                  started_at_ms=t["started_at"], finished_at_ms=t["finished_at"],
                  parked=bool(t.get("waiting_for")))
        for t in tasks
    ]
    now = int(time.time() * 1000)
    est = simulate(inputs, capacity, now, await _ahead_s(redis, keys, run, classes, typical_s))
    per_task = []
    for t, e in zip(tasks, est.tasks, strict=True):
        exp = expected.get(t["node"], {"source": "unknown"})
        per_task.append({"id": t["id"], "state": t["state"], "expected_start": e.start_ms,
                         "expected_finish": e.finish_ms, "median_s": exp.get("median_s"),
                         "p80_s": exp.get("p80_s"), "source": exp["source"]})
    return {"run": run, "now": now, "eta": est.eta_ms, "unknown_durations": est.unknown,
            "unserved_classes": est.unserved_classes, "parked": est.parked, "tasks": per_task}
