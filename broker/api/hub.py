"""The live channel's fan-out: one reader of `dagb:events` per broker process, one bounded queue
per websocket client.

The reader does a plain XREAD (no consumer group: every broker sees every event) starting at
`$`, turns each entry into a small delta and offers it to every subscriber allowed to see the
run (its owner, or an admin). Offering never waits: a subscriber whose queue is full is dropped
(its queue is emptied and closed with `None`), so one slow browser stalls no one. Its socket
closes and the browser reconnects and resyncs from REST.

Runners have no events in the stream: the reader also samples the runner set every
`runner_poll_s` and sends a `runner` delta when a runner appears, goes or changes state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from broker.api.appkeys import ENGINE

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.api.auth import User
    from broker.keys import Keys

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # deltas buffered per client before it counts as too slow
OWNER_CACHE = 10_000  # run → owner lookups remembered
READ_COUNT = 500  # entries per XREAD
COALESCE_S = 0.15  # pause after catching up (UI deltas at most ~7 times a second)
BLOCK_MS = 1000
RUNNER_POLL_S = 2.0

Delta = dict[str, Any]


class Subscriber:
    """One websocket client: who it is and its bounded queue (None = dropped, stop)."""

    def __init__(self, user: User, size: int) -> None:
        self.user = user
        self.queue: asyncio.Queue[Delta | None] = asyncio.Queue(maxsize=size)
        self.dropped = False
        self.gone = asyncio.Event()  # set when dropped: the socket closes even mid-send
        self.sent = 0

    def may_see(self, owner: str | None) -> bool:
        return self.user.admin or (owner is not None and owner == self.user.id)

    def offer(self, delta: Delta) -> bool:
        """Queue a delta without waiting; False (and dropped) when the queue is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(delta)
            return True
        except asyncio.QueueFull:
            self.drop()
            return False

    def drop(self) -> None:
        """Empty the queue and end it with None: the socket's sender closes the socket."""
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        self.gone.set()


def to_delta(fields: dict[str, str]) -> Delta | None:
    """A `dagb:events` entry → `{type, run, node, state, attempt, ts}` (absent fields left out)."""
    kind = fields.get("kind")
    if kind not in ("task", "run") or not fields.get("run"):
        return None
    out: Delta = {"type": kind, "run": fields["run"], "state": fields.get("state", "")}
    if kind == "task":
        out["node"] = fields.get("node", "")
    if fields.get("attempt"):
        out["attempt"] = int(fields["attempt"])
    out["ts"] = int(fields.get("ts") or 0)
    for extra in ("runner", "reason"):
        if fields.get(extra):
            out[extra] = fields[extra]
    return out


class OwnerCache:
    """run → owner, looked up in Redis once per run (owners never change), bounded LRU."""

    def __init__(self, redis: Redis, keys: Keys, size: int = OWNER_CACHE) -> None:
        self.redis = redis
        self.keys = keys
        self.size = size
        self._owners: OrderedDict[str, str | None] = OrderedDict()

    async def owners(self, runs: set[str]) -> dict[str, str | None]:
        missing = [r for r in runs if r not in self._owners]
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for r in missing:
                pipe.hget(self.keys.run(r), "owner")
            for r, owner in zip(missing, await pipe.execute(), strict=True):
                self._remember(r, owner)
        out = {}
        for r in runs:
            self._owners.move_to_end(r)
            out[r] = self._owners[r]
        return out

    def _remember(self, run: str, owner: str | None) -> None:
        self._owners[run] = owner
        while len(self._owners) > self.size:
            self._owners.popitem(last=False)


class Hub:
    """Subscribers, and the loop that reads the events stream and fans it out."""

    def __init__(self, redis: Redis, keys: Keys, *, queue_size: int = QUEUE_SIZE,
                 block_ms: int = BLOCK_MS, runner_poll_s: float = RUNNER_POLL_S) -> None:
        self.redis = redis
        self.keys = keys
        self.queue_size = queue_size
        self.block_ms = block_ms
        self.runner_poll_s = runner_poll_s
        self.owners = OwnerCache(redis, keys)
        self.subscribers: set[Subscriber] = set()
        self.ready = asyncio.Event()  # set once the reader holds its start position
        self._runners: dict[str, str] = {}
        self._runners_at = 0.0

    def subscribe(self, user: User) -> Subscriber:
        sub = Subscriber(user, self.queue_size)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def publish(self, deltas: list[Delta]) -> None:
        """Offer each delta to every subscriber that may see its run (never waits)."""
        if not deltas or not self.subscribers:
            return
        need_owner = any(not s.user.admin for s in self.subscribers)
        owners = await self.owners.owners({d["run"] for d in deltas}) if need_owner else {}
        for sub in list(self.subscribers):
            for d in deltas:
                if (sub.user.admin or sub.may_see(owners.get(d["run"]))) and not sub.offer(d):
                    logger.info("live channel: dropped a slow client of %s", sub.user.id)
                    break

    def broadcast(self, delta: Delta) -> None:
        """A delta every client may see (runners are visible to every user)."""
        for sub in list(self.subscribers):
            sub.offer(delta)

    async def read_once(self, last_id: str) -> str:
        """One XREAD from `last_id`; publish what came; return the new position. After a short
        read (caught up) it pauses COALESCE_S, so deltas go out a few times a second in batches
        rather than one wake-up per event."""
        # A read never brings more than half a queue: a client that keeps up never overflows.
        count = max(1, min(READ_COUNT, self.queue_size // 2))
        resp = await self.redis.xread({self.keys.events(): last_id}, count=count,
                                      block=self.block_ms)
        entries = resp[0][1] if resp else []
        if entries:
            last_id = entries[-1][0]
            deltas = [d for _, f in entries if f and (d := to_delta(f)) is not None]
            await self.publish(deltas)
        if len(entries) < count:
            await asyncio.sleep(COALESCE_S)
        return last_id

    async def start_position(self) -> str:
        """The id of the stream's last entry now (`$` resolved, so no event falls in between)."""
        last = await self.redis.xrevrange(self.keys.events(), count=1)
        return str(last[0][0]) if last else "0-0"

    async def poll_runners(self) -> None:
        """Broadcast a `runner` delta for each runner that appeared, went or changed."""
        now = time.monotonic()
        if now - self._runners_at < self.runner_poll_s:
            return
        self._runners_at = now
        ids = sorted(await self.redis.smembers(self.keys.runners()))
        pipe = self.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hmget(self.keys.runner(rid), "state", "busy")
        rows = await pipe.execute() if ids else []
        seen = {rid: f"{s or ''}/{b or 0}" for rid, (s, b) in zip(ids, rows, strict=True)}
        for rid in set(self._runners) | set(seen):
            if self._runners.get(rid) != seen.get(rid):
                state = seen[rid].split("/")[0] if rid in seen else "gone"
                self.broadcast({"type": "runner", "runner": rid, "state": state,
                                "ts": int(time.time() * 1000)})
        self._runners = seen

    async def run(self, stop: asyncio.Event) -> None:
        """The reader loop: survives Redis errors (backs off, resumes where it was)."""
        last_id: str | None = None
        failures = 0
        while not stop.is_set():
            try:
                if last_id is None:
                    last_id = await self.start_position()
                    self.ready.set()
                last_id = await self.read_once(last_id)
                await self.poll_runners()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                logger.exception("live channel reader failed (%d in a row)", failures)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))


HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the hub and its reader task (after the engine, which owns Redis keys)."""
    engine = app[ENGINE]
    hub = Hub(engine.redis, engine.keys)
    app[HUB] = hub
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop), name="live-hub")
    yield
    stop.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def encode(deltas: list[Delta]) -> str:
    """One websocket frame: a single delta as an object, several as an array."""
    return msgspec.json.encode(deltas[0] if len(deltas) == 1 else deltas).decode()
