"""Runner liveness: capacity per class from live runners, and reclaim of dead runners' tasks.

A runner is alive while its heartbeat key exists. Each scan sums the slots of live, active
runners per class into `dagb:capacity` (what dispatch may put in flight), and records per
class what those runners offer (cores, memory, GPUs: `dagb:fit:{class}`, see
broker/core/fit.py), so that dispatch parks a task no live runner could take; refit.lua puts
parked tasks back when a bigger runner appears. A runner whose
heartbeat expired has its pending stream entries claimed and reported `lost` (retried as a
new attempt, or failed after max_lost losses); entries idle longer than the lease (a live
worker renews the lease of what it runs) are reclaimed the same way.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from broker.core import fit
from broker.keys import WORKER_GROUP
from broker.wire import Outcome

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.engine.scripts import Scripts
    from broker.keys import Keys

logger = logging.getLogger(__name__)


def refit_args(offers: dict[str, list[fit.Offer]], classes: set[str]) -> list[str]:
    """refit.lua arguments: per class, its front of offers and largest amounts ('' = no limit).

    A class no live runner serves, or served by one that does not advertise a size, has no
    limit (dispatch then behaves as without resource fit)."""
    args: list[str] = []
    for c in sorted(classes | set(offers)):
        front = fit.front(offers.get(c, [{}]))
        if not front or front == [{}]:
            args += [c, "", "", "", ""]
            continue
        big = fit.largest(front)
        args += [c, json.dumps(front, sort_keys=True, separators=(",", ":"))]
        args += [f"{big[d]:g}" if d in big else "" for d in fit.DIMENSIONS]
    return args


def lost_completion(fields: dict[str, str], runner: str, reason: str) -> list[str]:
    """complete.lua arguments reporting a dispatched entry as lost."""
    now = str(int(time.time() * 1000))
    return [
        fields["run"],
        fields["node"],
        fields["attempt"],
        Outcome.LOST.value,
        runner,
        "",
        reason,
        "",
        "",
        "0",
        now,
    ]


class RunnerWatch:
    """Computes capacity and reclaims the work of dead runners and expired leases."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        broker_id: str,
        *,
        max_lost: int,
        lease_ms: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.reaper = f"reaper-{broker_id}"
        self.max_lost = max_lost
        self.lease_ms = lease_ms
        self.capacity: dict[str, int] = {}

    async def scan(self) -> dict[str, int]:
        """One pass: liveness, capacity and fit, reclaim. Returns the capacity per class."""
        ids = sorted(await self.redis.smembers(self.keys.runners()))
        pipe = self.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.exists(self.keys.heartbeat(rid))
            pipe.hmget(self.keys.runner(rid), "classes", "slots", "state", *fit.DIMENSIONS)
        res = await pipe.execute()
        classes = set(await self.redis.smembers(self.keys.classes()))
        capacity = {c: 0 for c in classes}
        offers: dict[str, list[fit.Offer]] = {}
        dead = []
        for i, rid in enumerate(ids):
            alive, (cls_text, slots, state, *size) = res[2 * i], res[2 * i + 1]
            if not alive:
                dead.append(rid)
                continue
            if state != "active":
                continue
            offer = fit.runner_offer(dict(zip(fit.DIMENSIONS, size, strict=True)))
            for c in (cls_text or "").split(","):
                if c:
                    capacity[c] = capacity.get(c, 0) + int(slots or 0)
                    offers.setdefault(c, []).append(offer)
        # Order matters, as dispatch (any broker, any moment) reads capacity and fit apart:
        # capacity that shrank is written before the fit changes and capacity that grew after,
        # so no dispatch ever sees new room with old (or no) fit information and sends a task
        # that no live runner can take.
        shrunk = {c: n for c, n in capacity.items() if n < self.capacity.get(c, 0)}
        if shrunk:
            await self.redis.hset(self.keys.capacity(), mapping=shrunk)
        await self.scripts.refit(refit_args(offers, classes))
        if capacity:
            await self.redis.hset(self.keys.capacity(), mapping=capacity)
        grown = [c for c, n in capacity.items() if n > self.capacity.get(c, 0)]
        self.capacity = capacity
        if grown:
            await self.scripts.dispatch(grown)
        for rid in dead:  # after refit: what they lose is requeued against the live offers
            await self.reclaim_runner(rid, classes)
        await self.reclaim_expired_leases(classes)
        return capacity

    async def _report_lost(
        self, stream: str, entries: list[tuple[str, dict[str, str]]], runner: str, reason: str
    ) -> None:
        live = [(eid, f) for eid, f in entries if f and "run" in f]
        ids = [eid for eid, _ in entries]
        if not ids:
            return
        comps = [lost_completion(f, runner, reason) for _, f in live]
        applied, ignored, _ = await self.scripts.complete(
            comps, max_lost=self.max_lost, ack_stream=stream, ack_group=WORKER_GROUP, ack_ids=ids
        )
        logger.warning(
            "reclaimed %d task(s) from %s on %s (%s): %d requeued/failed, %d already settled",
            len(ids),
            runner,
            stream,
            reason,
            applied,
            ignored,
        )

    async def reclaim_runner(self, rid: str, classes: set[str]) -> None:
        """A runner's heartbeat expired: report its pending entries lost and forget it."""
        for c in classes:
            stream = self.keys.queue(c)
            if not await self.redis.exists(stream):
                continue
            while True:
                pending = await self.redis.xpending_range(
                    stream, WORKER_GROUP, min="-", max="+", count=500, consumername=rid
                )
                if not pending:
                    break
                ids = [p["message_id"] for p in pending]
                claimed = await self.redis.xclaim(stream, WORKER_GROUP, self.reaper, 0, ids)
                await self._report_lost(stream, claimed, rid, f"runner {rid} stopped heartbeating")
                if len(claimed) < len(ids):  # entries deleted meanwhile: drop them from the PEL
                    await self.redis.xack(stream, WORKER_GROUP, *ids)
            try:
                await self.redis.xgroup_delconsumer(stream, WORKER_GROUP, rid)
            except Exception:  # the group may not exist on a never-used class
                logger.debug("no consumer %s on %s", rid, stream)
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(self.keys.runners(), rid)
        pipe.delete(self.keys.runner(rid))
        await pipe.execute()
        logger.warning("runner %s is gone (heartbeat expired); its tasks were reclaimed", rid)

    async def reclaim_expired_leases(self, classes: set[str]) -> None:
        """Entries nobody renewed for lease_ms: the worker hung or lost them."""
        for c in classes:
            stream = self.keys.queue(c)
            start = "0-0"
            while True:
                try:
                    nxt, entries, *_ = await self.redis.xautoclaim(
                        stream,
                        WORKER_GROUP,
                        self.reaper,
                        min_idle_time=self.lease_ms,
                        start_id=start,
                        count=200,
                    )
                except Exception as e:
                    if "NOGROUP" in str(e):
                        break
                    raise
                if entries:
                    await self._report_lost(stream, entries, "?", "lease expired")
                if nxt == "0-0" or not entries:
                    break
                start = nxt
