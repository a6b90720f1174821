"""Loads the Lua scripts once (lib.lua prepended) and wraps each in a typed coroutine.

Used by the broker and, for `start` and `renew_leases`, by workers: depends only on redis-py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from broker.keys import WORKER_GROUP

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

SCRIPT_NAMES = (
    "complete", "dispatch", "start", "promote", "release_run", "cancel_run", "redo_link",
    "clear_queue", "deliver_event", "renew_leases", "refit",
)
RENEW_CHUNK = 500  # entry ids per renew_leases call (Lua's unpack has a stack limit)


def now_ms() -> int:
    return int(time.time() * 1000)


def load_sources() -> dict[str, str]:
    """name → full Lua source (lib.lua + the script)."""
    lua = resources.files("broker.engine") / "lua"
    lib = (lua / "lib.lua").read_text()
    return {name: lib + "\n" + (lua / f"{name}.lua").read_text() for name in SCRIPT_NAMES}


_SOURCES: dict[str, str] | None = None


class Scripts:
    """One explicit wrapper per script; EVALSHA with automatic reload (register_script)."""

    def __init__(self, redis: Redis, prefix: str, events_maxlen: int = 100_000) -> None:
        global _SOURCES
        if _SOURCES is None:
            _SOURCES = load_sources()
        self.prefix = prefix
        self.events_maxlen = events_maxlen
        self._s: dict[str, AsyncScript] = {
            name: redis.register_script(src) for name, src in _SOURCES.items()
        }

    def _head(self, now: int | None = None) -> list[str | int]:
        return [self.prefix, now if now is not None else now_ms(), self.events_maxlen]

    async def complete(
        self,
        completions: Sequence[Sequence[str]],
        *,
        max_lost: int,
        ack_stream: str = "",
        ack_group: str = "",
        ack_ids: Sequence[str] = (),
        now: int | None = None,
    ) -> tuple[int, int, int]:
        """Apply completions (COMPLETION_FIELDS order) → (applied, ignored, dispatched)."""
        args: list[str | int] = [*self._head(now), max_lost, ack_stream, ack_group, len(ack_ids)]
        args += list(ack_ids)
        for c in completions:
            args += list(c)
        applied, ignored, dispatched = await self._s["complete"](args=args)
        return int(applied), int(ignored), int(dispatched)

    async def dispatch(self, classes: Iterable[str], now: int | None = None) -> int:
        classes = list(classes)
        if not classes:
            return 0
        return int(await self._s["dispatch"](args=[*self._head(now), *classes]))

    async def start(
        self, runner: str, items: Sequence[tuple[str, str, int]], now: int | None = None
    ) -> list[bool]:
        """Mark (run, node, attempt) items running; False = stale, skip it."""
        args: list[str | int] = [*self._head(now), runner]
        for run, node, attempt in items:
            args += [run, node, attempt]
        return [bool(x) for x in await self._s["start"](args=args)]

    async def renew_leases(
        self, runner: str, held: Mapping[str, Sequence[str]]
    ) -> set[tuple[str, str]]:
        """Renew the entries still pending on `runner` (stream → ids) → the (stream, id) lost."""
        chunks: list[list[str | int]] = []
        for stream, ids in held.items():
            for i in range(0, len(ids), RENEW_CHUNK):
                part = ids[i : i + RENEW_CHUNK]
                chunks.append([stream, len(part), *part])
        lost: set[tuple[str, str]] = set()
        for chunk in chunks:
            out = await self._s["renew_leases"](args=[*self._head(), WORKER_GROUP, runner, *chunk])
            lost.update((str(out[i]), str(out[i + 1])) for i in range(0, len(out), 2))
        return lost

    async def refit(self, args: Sequence[str], now: int | None = None) -> tuple[int, int]:
        """Record each class's runner offers (runners.refit_args); parked tasks go back to the
        ready set of a class whose offers grew → (tasks moved back, dispatched)."""
        if not args:
            return 0, 0
        moved, dispatched = await self._s["refit"](args=[*self._head(now), *args])
        return int(moved), int(dispatched)

    async def promote(self, limit: int = 1000, now: int | None = None) -> tuple[int, int]:
        promoted, dispatched = await self._s["promote"](args=[*self._head(now), limit])
        return int(promoted), int(dispatched)

    async def release_run(self, run: str, classes: Iterable[str], now: int | None = None) -> int:
        return int(await self._s["release_run"](args=[*self._head(now), run, *classes]))

    async def cancel_run(
        self, run: str, reason: str, final: str = "cancelled", now: int | None = None
    ) -> int | list[tuple[str, str]]:
        """-1 unknown run, -2 already finished, else [(runner, node)] of running tasks."""
        out = await self._s["cancel_run"](args=[*self._head(now), run, reason, final])
        if isinstance(out, int):
            return out
        return [(out[i], out[i + 1]) for i in range(0, len(out), 2)]

    async def redo_link(self, old_run: str, new_run: str, now: int | None = None) -> int:
        """Append new_run to old_run's `redone_by` (once) → runs listed; -1 if old_run is gone."""
        return int(await self._s["redo_link"](args=[*self._head(now), old_run, new_run]))

    async def clear_queue(self, rclass: str, reason: str, now: int | None = None) -> int:
        """Cancel every ready task of a class. Returns how many."""
        return int(await self._s["clear_queue"](args=[*self._head(now), rclass, reason]))

    async def deliver_event(
        self,
        owner: str,
        key: str,
        payload: str,
        push_id: str,
        *,
        retain_ms: int,
        seen_ms: int,
        recent: int,
        now: int | None = None,
    ) -> tuple[int, bool, int]:
        """Complete the tasks waiting for owner's `key` → (delivered, duplicate, dispatched)."""
        args = [*self._head(now), owner, key, payload, push_id, retain_ms, seen_ms, recent]
        delivered, duplicate, dispatched = await self._s["deliver_event"](args=args)
        return int(delivered), bool(duplicate), int(dispatched)
