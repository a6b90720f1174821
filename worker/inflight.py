"""InFlight: the entries this worker holds (read, not yet acknowledged), bounded by its slots.

The consumer reads only `free()` entries; the heartbeat renews the lease of every held entry;
a cancel order finds its task here; the drain waits for it to empty.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from worker.handle import TaskHandle


class InFlight:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._held: dict[tuple[str, str], TaskHandle] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._held)

    def free(self) -> int:
        return max(0, self.slots - len(self._held))

    def add(self, handles: Iterable[TaskHandle]) -> None:
        for h in handles:
            self._held[h.key] = h

    def discard(self, handles: Iterable[TaskHandle]) -> None:
        for h in handles:
            self._held.pop(h.key, None)
        self._changed.set()

    def handles(self) -> list[TaskHandle]:
        return list(self._held.values())

    def find(self, run: str, node: str) -> list[TaskHandle]:
        return [h for h in self._held.values() if h.msg.run == run and h.msg.node == node]

    def ids_by_stream(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for stream, msg_id in self._held:
            out.setdefault(stream, []).append(msg_id)
        return out

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def wait_free(self) -> None:
        """Until at least one slot is free."""
        while self.free() <= 0:
            await self._wait_change()

    async def wait_empty(self) -> None:
        """Until nothing is held."""
        while self._held:
            await self._wait_change()
