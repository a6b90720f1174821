"""Writes a provenance manifest for every finished run, fed by `dagb:events`.

The loop reads the events stream through its own consumer group (`provenance`; created at
the stream's start, so a first start also covers the runs still in the stream). For each
`kind=run` event with a final state it makes sure the run has its manifest, then acknowledges
the entries. Writing is idempotent (a run that has `refs/runs/<run>` is skipped), so a
redelivered event or two brokers racing write one manifest. An entry whose write failed stays
pending and is claimed again after `claim_idle_ms`. Runs whose events were trimmed before they
were read are caught by the janitor, which calls `ensure_manifest` before it expires a run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from broker.engine.fields import set_field_if_exists
from broker.engine.groups import ensure_group
from broker.provenance import FINISHED, collect_manifest

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys
    from broker.provenance_store import ProvenanceStore

logger = logging.getLogger(__name__)

GROUP = "provenance"
BATCH = 2000  # every event is read (and acknowledged) in batches this large


class ProvenanceLoop:
    """Consumer `consumer` of the `provenance` group on the events stream."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        store: ProvenanceStore,
        consumer: str,
        *,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.consumer = consumer
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.written = 0
        self._busy: asyncio.Future[Any] | None = None

    async def prepare(self) -> None:
        await ensure_group(self.redis, self.keys.events(), GROUP)

    async def ensure_manifest(self, run: str) -> bool:
        """True once the run has its manifest (or Redis no longer has the run); False while
        it has not finished. Also the janitor's check before it expires a run."""
        if await self.store.has(run):
            return True
        manifest = await collect_manifest(self.redis, self.keys, run)
        if manifest is None:
            return True
        if manifest["state"] not in FINISHED:
            return False
        commit = await self.store.write(manifest)
        await set_field_if_exists(self.redis, self.keys.run(run), "provenance", commit)
        self.written += 1
        logger.info("run %s: provenance %s (%d tasks)", run, commit[:12], len(manifest["tasks"]))
        return True

    async def _handle(self, entries: list[tuple[str, dict[str, str] | None]]) -> None:
        done: list[str] = []
        for eid, fields in entries:
            if fields and fields.get("kind") == "run" and fields.get("state") in FINISHED:
                try:
                    # shielded: a shutdown cancelling the read never interrupts a git write
                    self._busy = asyncio.ensure_future(self.ensure_manifest(fields["run"]))
                    await asyncio.shield(self._busy)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("run %s: writing its provenance failed; will retry",
                                     fields.get("run"))
                    continue  # stays pending; claim_abandoned retries it
            done.append(eid)
        if done:
            await self.redis.xack(self.keys.events(), GROUP, *done)

    async def close(self) -> None:
        """Let a manifest being written finish, then release the repository."""
        if self._busy is not None and not self._busy.done():
            await asyncio.wait([self._busy], timeout=30)
        self.store.close()

    async def read_once(self) -> int:
        """Read (without blocking) and handle every new event, batch after batch, until caught
        up. Returns how many were read. Called every second by the engine: waking on each event
        instead would compete with the completion path in the same process."""
        total = 0
        while True:
            resp = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.keys.events(): ">"}, count=BATCH
            )
            n = 0
            for _stream, entries in resp or []:
                await self._handle(entries)
                n += len(entries)
            total += n
            if n < BATCH:
                return total

    async def claim_abandoned(self) -> int:
        """Retry entries left pending (a failed write, or a broker that died)."""
        total = 0
        start = "0-0"
        while True:
            nxt, entries, *_ = await self.redis.xautoclaim(
                self.keys.events(), GROUP, self.consumer, min_idle_time=self.claim_idle_ms,
                start_id=start, count=BATCH,
            )
            await self._handle(entries)
            total += len(entries)
            if nxt in ("0-0", b"0-0") or not entries:
                return total
            start = nxt
