"""The archiver: reads `dagb:events` through its own consumer group and keeps SQLite's run
history (runs + task attempts, with durations for estimates) up to date.

At-least-once: every write is an idempotent upsert keyed by (run) or (run, task, attempt).
When a run finishes, the authoritative task hashes are copied in full and the run hash is
marked `archived`; the janitor expires only archived runs. If the capped events stream was
trimmed before the archiver read some intermediate events, only per-attempt detail of
earlier attempts is lost; the final state of every task is always archived.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from broker.engine import queries
from broker.engine.fields import set_field_if_exists
from broker.engine.groups import ensure_group

if TYPE_CHECKING:
    import aiosqlite
    from redis.asyncio import Redis

    from broker.keys import Keys

logger = logging.getLogger(__name__)

GROUP = "archiver"
BATCH = 500
IDLE_S = 0.5  # pause once caught up: batches instead of a wake-up per event
FINAL_RUN = ("succeeded", "failed", "cancelled")
ATTEMPT_END = ("succeeded", "failed", "retry_wait", "lost", "cancelled", "upstream_failed")


def command_signature(spec: dict[str, Any]) -> str:
    """The same work under another workflow or node name: executor + what it runs."""
    basis = json.dumps([spec.get(k) for k in ("executor", "command", "script", "callable")],
                       sort_keys=True)
    return hashlib.sha1(basis.encode()).hexdigest()[:16]


class Archiver:
    def __init__(self, redis: Redis, keys: Keys, db: aiosqlite.Connection, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.db = db
        self.consumer = consumer

    async def setup(self) -> None:
        await ensure_group(self.redis, self.keys.events(), GROUP)

    async def step(self) -> int:
        """Read (without blocking) and apply one batch of events, pending ones of this consumer
        first. The caller pauses when a batch comes back short (caught up)."""
        for start in ("0", ">"):
            resp = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.keys.events(): start}, count=BATCH,
            )
            entries = resp[0][1] if resp else []
            entries = [(i, f) for i, f in entries if f]
            if entries:
                await self.apply(entries)
                await self.redis.xack(self.keys.events(), GROUP, *(i for i, _ in entries))
                return len(entries)
        return 0

    async def apply(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        finished: list[str] = []
        await self._audit_transitions(entries)
        for _id, ev in entries:
            if ev.get("kind") == "task" and ev.get("attempt"):
                await self._attempt_event(ev)
            elif ev.get("kind") == "run" and ev.get("state") in FINAL_RUN:
                finished.append(ev["run"])
        await self.db.commit()
        for run in finished:
            await self.archive_run(run)

    async def _audit_transitions(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Every run and task transition in the audit trail: who (the runner, else the
        broker), what, when. Keyed by the event id, so a replayed batch adds nothing."""
        rows = []
        for eid, ev in entries:
            kind = ev.get("kind")
            if kind not in ("run", "task"):
                continue
            target = ev["run"] if kind == "run" else f"{ev['run']}:{ev.get('node', '')}"
            details = {k: v for k, v in ev.items() if k in ("attempt", "reason")}
            rows.append((int(ev.get("ts", "0") or 0), ev.get("runner") or "broker",
                         f"{kind} {ev.get('state', '')}", target, None, f"event:{eid}",
                         json.dumps(details) if details else None))
        if rows:
            await self.db.executemany(
                "INSERT OR IGNORE INTO audit (ts, actor, action, target, status, remote, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    async def _attempt_event(self, ev: dict[str, str]) -> None:
        ts = int(ev.get("ts", "0") or 0)
        state = ev.get("state", "")
        started = ts if state == "running" else None
        ended = ts if state in ATTEMPT_END else None
        await self.db.execute(
            "INSERT INTO attempts (run, task, node, attempt, state, runner, started_at,"
            " finished_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(run, task, attempt) DO UPDATE SET state = excluded.state,"
            " runner = COALESCE(excluded.runner, runner),"
            " started_at = COALESCE(started_at, excluded.started_at),"
            " finished_at = COALESCE(excluded.finished_at, finished_at),"
            " reason = COALESCE(excluded.reason, reason)",
            (ev["run"], ev["node"], ev["node"].split("[")[0], int(ev["attempt"]), state,
             ev.get("runner"), started, ended, ev.get("reason")),
        )

    async def archive_run(self, run: str) -> bool:
        """Copy a finished run and the final attempt of each task; mark the run archived."""
        h = await self.redis.hgetall(self.keys.run(run))
        if not h or h.get("state") not in FINAL_RUN:
            return False
        view = queries.run_view(run, h)
        tasks = await queries.get_tasks(self.redis, self.keys, run)
        now = int(time.time() * 1000)
        await self.db.execute(
            "INSERT OR REPLACE INTO runs (id, workflow, revision, owner, state, priority, params,"
            " created_at, started_at, finished_at, total, counts, reason, archived_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run, view["name"], view["revision"], view["owner"], view["state"], view["priority"],
             json.dumps(view["params"]), view["created_at"], view["started_at"],
             view["finished_at"], view["total"], json.dumps(view["counts"]), view["reason"], now),
        )
        specs = await self.redis.hgetall(self.keys.spec(run))
        sigs = {tpl: command_signature(json.loads(text)) for tpl, text in specs.items()}
        rows = [(*self._final_attempt(run, view["name"], t), sigs.get(t["node"]))
                for t in tasks if t["attempt"]]
        await self.db.executemany(
            "INSERT INTO attempts (run, task, node, workflow, attempt, state, runner, started_at,"
            " finished_at, duration_ms, exit_code, reason, signature)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(run, task, attempt) DO UPDATE SET node = excluded.node,"
            " signature = excluded.signature,"
            " workflow = excluded.workflow, state = excluded.state, runner = excluded.runner,"
            " started_at = excluded.started_at, finished_at = excluded.finished_at,"
            " duration_ms = excluded.duration_ms, exit_code = excluded.exit_code,"
            " reason = excluded.reason",
            rows,
        )
        await self.db.execute("UPDATE attempts SET workflow = ? WHERE run = ? AND workflow IS NULL",
                              (view["name"], run))
        await self.db.commit()
        await self._mark_archived(run, now)
        logger.info("run %s archived (%s, %d tasks)", run, view["state"], len(tasks))
        return True

    async def _mark_archived(self, run: str, now: int) -> None:
        """Flag the run hash, unless it was deleted meanwhile (never resurrect a deleted run)."""
        await set_field_if_exists(self.redis, self.keys.run(run), "archived", now)

    @staticmethod
    def _final_attempt(run: str, workflow: str, t: dict[str, Any]) -> tuple[Any, ...]:
        started, finished = t["started_at"], t["finished_at"]
        duration = finished - started if started and finished else None
        return (run, t["id"], t["node"], workflow, t["attempt"], t["state"], t["runner"] or None,
                started, finished, duration, t["exit_code"], t["reason"] or None)
