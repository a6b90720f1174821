"""The engine: owns the broker's background loops and the state-changing entry points."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from broker.engine import queries
from broker.engine.completions import CompletionConsumer
from broker.engine.groups import ensure_group
from broker.engine.janitor import Janitor
from broker.engine.loops import run_every
from broker.engine.provenance_loop import ProvenanceLoop
from broker.engine.runners import RunnerWatch
from broker.engine.scripts import Scripts
from broker.engine.submit import new_run_id, write_run
from broker.engine.timers import TimerService
from broker.errors import Conflict, NotFound
from broker.keys import BROKER_GROUP, Keys
from broker.provenance_store import ProvenanceStore

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.config import Settings
    from broker.core.expand import Plan

logger = logging.getLogger(__name__)


def new_broker_id() -> str:
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


class Engine:
    """Start/stop the loops; submit, cancel and inspect runs."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.broker_id = settings.broker_id or new_broker_id()
        self.scripts = Scripts(redis, settings.prefix, settings.events_maxlen)
        self.stop_event = asyncio.Event()
        self.wake = asyncio.Event()
        self.completions = CompletionConsumer(
            redis,
            self.keys,
            self.scripts,
            self.broker_id,
            max_lost=settings.max_lost,
            block_ms=settings.done_block_ms,
            claim_idle_ms=settings.broker_claim_idle_ms,
        )
        self.runners = RunnerWatch(
            redis,
            self.keys,
            self.scripts,
            self.broker_id,
            max_lost=settings.max_lost,
            lease_ms=settings.lease_ms,
        )
        self.provenance = ProvenanceLoop(
            redis,
            self.keys,
            ProvenanceStore(settings.data_path / "workflows.git"),
            self.broker_id,
            block_ms=settings.done_block_ms,
        )
        self.janitor = Janitor(
            redis,
            self.keys,
            self.scripts,
            retention_s=settings.retention_s,
            expand_timeout_s=settings.expand_timeout_s,
            owner=self.broker_id,
            before_expire=self.provenance.ensure_manifest,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._submissions: set[asyncio.Task[Any]] = set()
        self.timers = TimerService(self)  # after the attributes it uses

    # -- lifecycle ------------------------------------------------------
    async def start(self) -> None:
        await ensure_group(self.redis, self.keys.done(), BROKER_GROUP)
        await self.provenance.prepare()
        s = self.settings
        self._tasks = [
            asyncio.create_task(
                run_every("provenance", 1.0, self.provenance.read_once, self.stop_event),
                name="provenance",
            ),
            asyncio.create_task(
                run_every("provenance-claim", 15.0, self.provenance.claim_abandoned,
                          self.stop_event),
                name="provenance-claim",
            ),
            asyncio.create_task(self._consume_completions(), name="completions"),
            asyncio.create_task(
                run_every("dispatch", s.tick_s, self.tick, self.stop_event, self.wake),
                name="dispatch",
            ),
            asyncio.create_task(
                run_every("runners", s.runner_scan_s, self.runners.scan, self.stop_event),
                name="runners",
            ),
            asyncio.create_task(
                run_every(
                    "claim",
                    max(1.0, s.broker_claim_idle_ms / 2000),
                    self.completions.claim_abandoned,
                    self.stop_event,
                ),
                name="claim",
            ),
            asyncio.create_task(
                run_every("janitor", 5.0, self.janitor.sweep, self.stop_event), name="janitor"
            ),
            asyncio.create_task(
                run_every("presence", 2.0, self._presence, self.stop_event), name="presence"
            ),
            asyncio.create_task(self.timers.run(), name="timers"),
        ]
        logger.info("engine %s started (prefix %s)", self.broker_id, self.keys.prefix)

    async def stop(self) -> None:
        """Stop the loops. The blocking completion read is cancelled: an entry it had read but
        not applied stays pending in the group and is claimed again (complete.lua is idempotent)."""
        self.stop_event.set()
        if self._submissions:
            await asyncio.wait(self._submissions, timeout=30)
        for t in self._tasks:
            if t.get_name() in ("completions", "provenance"):
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.provenance.close()
        await self.redis.hdel(self.keys.brokers(), self.broker_id)
        logger.info("engine %s stopped", self.broker_id)

    async def _consume_completions(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            try:
                await self.completions.read_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                logger.exception("completion reader failed (%d in a row)", failures)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    async def _presence(self) -> None:
        await self.redis.hset(self.keys.brokers(), self.broker_id, int(time.time() * 1000))

    async def tick(self) -> None:
        """Promote due retries, then top up every class's stream."""
        while True:
            promoted, _ = await self.scripts.promote(1000)
            if promoted < 1000:
                break
        classes = await self.redis.smembers(self.keys.classes())
        await self.scripts.dispatch(sorted(classes))

    # -- runs -----------------------------------------------------------
    async def submit(self, plan: Plan, meta: dict[str, str], run_id: str | None = None) -> str:
        """Write a run and release it. Shielded: a dropped HTTP request never half-writes."""
        run_id = run_id or new_run_id()
        task = asyncio.create_task(
            write_run(
                self.redis,
                self.keys,
                self.scripts,
                plan,
                run_id=run_id,
                meta=meta,
                chunk=self.settings.expand_chunk,
            )
        )
        self._submissions.add(task)
        task.add_done_callback(self._submissions.discard)
        await asyncio.shield(task)
        return run_id

    async def cancel(self, run: str, reason: str = "cancelled by user") -> dict[str, Any]:
        out = await self.scripts.cancel_run(run, reason)
        if out == -1:
            raise NotFound(f"no run '{run}'", {"run": run})
        if out == -2:
            state = await self.redis.hget(self.keys.run(run), "state")
            raise Conflict(f"run '{run}' already finished ({state})", {"run": run, "state": state})
        assert isinstance(out, list)
        for runner, node in out:
            if runner:
                await self.redis.xadd(
                    self.keys.control(runner),
                    {"op": "cancel", "run": run, "node": node},
                    maxlen=1000,
                    approximate=True,
                )
        return {"run": run, "state": "cancelled", "running_cancelled": len(out)}

    async def run_status(self, run: str, with_tasks: bool = True) -> dict[str, Any]:
        view = await queries.get_run(self.redis, self.keys, run)
        if view is None:
            raise NotFound(f"no run '{run}'", {"run": run})
        out: dict[str, Any] = {"run": view}
        out["messages"] = await queries.get_messages(self.redis, self.keys, run, limit=50)
        if with_tasks:
            out["tasks"] = await queries.get_tasks(self.redis, self.keys, run)
        return out
