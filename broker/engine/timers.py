"""Timers (docs/events-and-timers.md): stored in SQLite, fired once per due time.

A timer fires after a delay, at a time, or on a cron schedule (UTC), and then either starts
a workflow or pushes an event key, as its owner. Every broker runs `TimerService`; the one
holding the Redis lock `dagb:lock:timers` looks for due timers. The lock only saves work:
a fire is *claimed* by one conditional UPDATE that moves `next_fire_at` past the due time,
so of two brokers sharing the database (even both believing they lead) exactly one fires it.
The claim also fixes the run id (or push id) of the fire; a broker that dies between claim
and action leaves `firing_at` set, and the leader finishes that fire later with the same id
(a run that already exists, or a push id already seen, is not started twice).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from broker.engine.events import Events, Launcher, push
from broker.engine.loops import run_every
from broker.engine.submit import new_run_id
from broker.errors import BadRequest, BrokerError, Conflict, NotFound
from broker.spec import EventKey, Name

if TYPE_CHECKING:
    import aiosqlite

    from broker.engine.engine import Engine

logger = logging.getLogger(__name__)

DB_FILE = "dagbroker.db"  # as broker.api.app history_ctx
STUCK_MS = 60_000  # a claimed fire not finished after this is finished by the leader

Kind = Literal["after", "at", "cron"]


class ExecuteAction(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    params: dict[str, Any] = {}


class PushAction(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: EventKey
    payload: Any = None


class Action(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Exactly one of `execute` (start a workflow's latest revision) or `push` (an event)."""

    execute: ExecuteAction | None = None
    push: PushAction | None = None

    def __post_init__(self) -> None:
        if (self.execute is None) == (self.push is None):
            raise ValueError("give exactly one of 'execute' and 'push'")


class Timer(msgspec.Struct, kw_only=True):
    id: str
    owner: str
    name: str
    action: Action
    kind: Kind
    cron: str | None
    state: str  # active | done | cancelled
    next_fire_at: int | None
    created_at: int
    fired: int = 0
    last_fired_at: int | None = None
    last_run: str | None = None
    last_error: str | None = None
    firing_at: int | None = None
    firing_ref: str | None = None
    firing_since: int | None = None


COLUMNS = tuple(f.name for f in msgspec.structs.fields(Timer))
_action_decoder = msgspec.json.Decoder(Action)


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_at(text: str) -> int:
    """An ISO-8601 time (no zone means UTC) → ms."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise BadRequest(f"'at': not an ISO-8601 time: {text!r}", {"field": "at"}) from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def check_cron(expr: str) -> None:
    from croniter import croniter  # only cron timers need it

    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise BadRequest(
            f"'cron': not a 5-field cron expression: {expr!r}",
            {"field": "cron", "example": "*/5 * * * *"},
        )


def next_cron(expr: str, after_ms: int) -> int:
    """The first time (ms) strictly after `after_ms` matching `expr`, in UTC."""
    from croniter import croniter

    base = datetime.fromtimestamp(after_ms / 1000, UTC)
    nxt: datetime = croniter(expr, base).get_next(datetime)
    return int(nxt.timestamp() * 1000)


def timer_view(t: Timer) -> dict[str, Any]:
    """API shape: times in ms (`*_ms`) and ISO-8601 UTC."""
    out = msgspec.to_builtins(t)
    for f in ("firing_at", "firing_ref", "firing_since"):
        out.pop(f, None)
    for f in ("next_fire_at", "created_at", "last_fired_at"):
        ms = out.pop(f)
        out[f] = iso_ms(ms)
        out[f + "_ms"] = ms
    return out


class TimerStore:
    """The `timers` table."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def _rows(self, where: str, args: tuple[Any, ...]) -> list[Timer]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM timers WHERE {where}"
        async with self.db.execute(sql, args) as cur:
            rows = await cur.fetchall()
        out = []
        for r in rows:
            d = dict(zip(COLUMNS, r, strict=True))
            d["action"] = _action_decoder.decode(d["action"])
            out.append(Timer(**d))
        return out

    async def _update(self, sql: str, args: tuple[Any, ...]) -> int:
        async with self.db.execute(sql, args) as cur:
            n = cur.rowcount
        await self.db.commit()
        return n

    async def create(
        self, owner: str, name: str, action: Action, kind: Kind, cron: str | None, first: int
    ) -> Timer:
        t = Timer(id="tm" + secrets.token_hex(6), owner=owner, name=name, action=action,
                  kind=kind, cron=cron, state="active", next_fire_at=first, created_at=now_ms())
        await self.db.execute(
            "INSERT INTO timers (id, owner, name, action, kind, cron, state, next_fire_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (t.id, owner, name, msgspec.json.encode(action).decode(), kind, cron, t.state,
             first, t.created_at),
        )
        await self.db.commit()
        return t

    async def get(self, timer_id: str) -> Timer | None:
        rows = await self._rows("id = ?", (timer_id,))
        return rows[0] if rows else None

    async def select(self, owner: str | None, include_finished: bool) -> list[Timer]:
        where, args = ("1 = 1", ()) if owner is None else ("owner = ?", (owner,))
        if not include_finished:
            where += " AND state = 'active'"
        return await self._rows(where + " ORDER BY created_at", args)

    async def cancel(self, timer_id: str, owner: str | None) -> Timer:
        """Cancel a timer of `owner` (None: anyone's); NotFound / Conflict otherwise."""
        t = await self.get(timer_id)
        if t is None or (owner is not None and t.owner != owner):
            raise NotFound(f"no timer '{timer_id}'", {"id": timer_id})
        n = await self._update(
            "UPDATE timers SET state = 'cancelled', next_fire_at = NULL"
            " WHERE id = ? AND state = 'active'",
            (timer_id,),
        )
        if n == 0:
            raise Conflict(f"timer '{timer_id}' is {t.state}", {"id": timer_id, "state": t.state})
        return msgspec.structs.replace(t, state="cancelled", next_fire_at=None)

    async def due(self, now: int, limit: int = 100) -> list[Timer]:
        return await self._rows(
            "state = 'active' AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?", (now, limit)
        )

    async def stuck(self, before: int) -> list[Timer]:
        return await self._rows("firing_at IS NOT NULL AND firing_since < ?", (before,))

    async def claim(self, t: Timer, nxt: int | None, ref: str, now: int) -> bool:
        """Take the fire due at t.next_fire_at; False if another broker (or a cancel) won."""
        n = await self._update(
            "UPDATE timers SET next_fire_at = ?, state = ?, fired = fired + 1, firing_at = ?,"
            " firing_ref = ?, firing_since = ?"
            " WHERE id = ? AND state = 'active' AND next_fire_at = ?",
            (nxt, "active" if nxt is not None else "done", t.next_fire_at, ref, now, t.id,
             t.next_fire_at),
        )
        return n == 1

    async def finish(self, timer_id: str, due: int, ref: str, error: str | None) -> None:
        await self._update(
            "UPDATE timers SET last_fired_at = ?, last_run = ?, last_error = ?,"
            " firing_at = NULL, firing_ref = NULL, firing_since = NULL"
            " WHERE id = ? AND firing_at = ?",
            (due, ref, error, timer_id, due),
        )


class TimerService:
    """The loop every broker runs; only the lock holder looks for due timers."""

    def __init__(self, engine: Engine, interval_s: float = 0.5, lock_ms: int = 5000) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.lock_ms = lock_ms
        self.wake = asyncio.Event()  # set when a timer is created on this broker
        self.store: TimerStore | None = None
        self.launcher: Launcher | None = None
        self.events = Events(engine.redis, engine.keys, engine.scripts)

    async def run(self) -> None:
        """Own SQLite connection and revision store (the app's are not built yet when the
        engine starts); stops with the engine."""
        from broker.history.db import open_db
        from broker.policy import load_policy
        from broker.revisions import RevisionStore

        s = self.engine.settings
        try:
            async with open_db(s.data_path / DB_FILE) as db:
                revisions = RevisionStore(s.data_path / "workflows.git")
                try:
                    self.store = TimerStore(db)
                    self.launcher = Launcher(self.engine, revisions, load_policy(s.policy_file))
                    await run_every(
                        "timers", self.interval_s, self.tick, self.engine.stop_event, self.wake
                    )
                finally:
                    revisions.close()
        except Exception:
            logger.exception("the timer loop stopped: no timer fires on this broker")
            raise

    async def lead(self) -> bool:
        """Take or renew the timers lock."""
        redis, key, me = self.engine.redis, self.engine.keys.lock("timers"), self.engine.broker_id
        if await redis.set(key, me, nx=True, px=self.lock_ms):
            return True
        if await redis.get(key) == me:
            await redis.pexpire(key, self.lock_ms)
            return True
        return False

    async def tick(self) -> None:
        if self.store is None or not await self.lead():
            return
        now = now_ms()
        for t in await self.store.stuck(now - STUCK_MS):
            await self.finish_fire(t, t.firing_at or 0, t.firing_ref or "")
        for t in await self.store.due(now):
            await self.fire(t, now)

    async def fire(self, t: Timer, now: int) -> bool:
        """Claim the fire due at t.next_fire_at, then act. False: not ours to fire."""
        assert self.store is not None and t.next_fire_at is not None
        due = t.next_fire_at
        nxt = next_cron(t.cron, max(now, due)) if t.kind == "cron" and t.cron else None
        ref = new_run_id() if t.action.execute else f"timer-{t.id}-{due}"
        if not await self.store.claim(t, nxt, ref, now):
            return False
        await self.finish_fire(t, due, ref)
        return True

    async def finish_fire(self, t: Timer, due: int, ref: str) -> None:
        """Act with the id fixed at the claim (again, if a broker died mid-fire), then record."""
        assert self.store is not None
        error: str | None = None
        try:
            await self.act(t, ref)
        except BrokerError as e:
            error = e.message
        except Exception as e:  # recorded on the timer and logged; the loop goes on
            logger.exception("timer %s: fire failed", t.id)
            error = f"internal error: {e}"
        if error:
            logger.warning("timer %s (%s) fire at %s failed: %s", t.id, t.owner, due, error)
        await self.store.finish(t.id, due, ref, error)

    async def act(self, t: Timer, ref: str) -> None:
        assert self.launcher is not None
        trigger = f"timer:{t.id}"
        if t.action.execute is not None:
            if await self.engine.redis.exists(self.engine.keys.run(ref)):
                return  # this fire's run was started before a broker died
            ex = t.action.execute
            await self.launcher.launch(t.owner, ex.name, ex.params, trigger=trigger, run_id=ref)
        elif t.action.push is not None:
            p = t.action.push
            out = await push(self.events, self.launcher, t.owner, p.key, p.payload, push_id=ref)
            if out.errors:
                raise BadRequest("; ".join(f"{e['workflow']}: {e['error']}" for e in out.errors))
