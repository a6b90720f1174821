"""InFlight: the entries this worker holds (read, not yet acknowledged), bounded by its slots
and, while they run, by the cores, memory and GPUs the runner offers.

A held task is RUNNING (its needs are counted against the runner's resources) or WAITING
(read and held, its lease renewed by the heartbeat, not started because its needs do not fit
what is free). Waiting tasks start in read order as running ones end (strict FIFO, see
worker/resources.py). The consumer reads only while a slot is free and nothing waits; the
heartbeat renews the lease of every held entry, waiting ones included; a cancel order finds
its task here whether it runs or waits; the drain waits for it to empty.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from broker.wire import Outcome
from worker.resources import Pool, admit, need_of, shortfall

if TYPE_CHECKING:
    from collections.abc import Iterable

    from worker.handle import TaskHandle
    from worker.resources import Amount


def _need(h: TaskHandle) -> Amount:
    return need_of(h.msg.spec)


class InFlight:
    def __init__(self, slots: int, offer: Amount) -> None:
        self.slots = slots
        self.pool = Pool(offer)
        self._held: dict[tuple[str, str], TaskHandle] = {}
        self._waiting: deque[TaskHandle] = deque()
        self._running: dict[tuple[str, str], Amount] = {}  # what each running task took
        self._changed = asyncio.Event()
        # the last read held only tasks needing no cores here (so far: none read, so a SLURM
        # runner's first read already takes a whole array's worth)
        self._coreless = True

    def __len__(self) -> int:
        return len(self._held)

    def free(self) -> int:
        """Free slots (a waiting task holds a slot too)."""
        return max(0, self.slots - len(self._held))

    def waiting(self) -> int:
        return len(self._waiting)

    def running(self) -> int:
        return len(self._running)

    def readable(self) -> bool:
        return self.free() > 0 and not self._waiting

    def read_count(self) -> int:
        """How many entries to read now: min(free slots, max(1, whole free cores)).

        Most tasks need one core (the default), so reading more entries than there are free
        cores would mostly hold tasks that cannot start here yet while another runner could
        run them now. At least one is read, so a runner whose cores are all busy still keeps
        the next task ready to start the moment one ends (and fractional tasks fit).
        When the last read held only tasks that need no cores here (slurm, ssh, aws_batch:
        they run elsewhere), and before the first read, it reads all free slots, so a SLURM
        runner on a small login node reads a whole job array's worth at once. (By default
        slots = cores, so for one-core tasks both bounds agree anyway.)
        """
        if self._waiting:
            return 0
        if self._coreless:
            return self.free()
        return min(self.free(), max(1, self.pool.free.whole_cores))

    def add(self, handles: Iterable[TaskHandle]) -> None:
        """Hold tasks that already run (re-attached): their needs count at once."""
        for h in handles:
            self._held[h.key] = h
            self._running[h.key] = _need(h)
            self.pool.take(_need(h))

    def hold(self, handles: Iterable[TaskHandle], runner: str) -> list[TaskHandle]:
        """Hold read tasks as waiting, in read order. → the ones that can never fit this
        runner: stopped (handed back, with the missing capability as reason) and held until
        reported, never queued."""
        never: list[TaskHandle] = []
        handles = list(handles)
        if handles:
            self._coreless = all(_need(h).millicores == 0 for h in handles)
        for h in handles:
            self._held[h.key] = h
            reason = shortfall(_need(h), self.pool.total, runner)
            if reason is None:
                self._waiting.append(h)
            else:
                h.request_stop(Outcome.HANDED_BACK, reason)
                never.append(h)
        return never

    def admit(self) -> list[TaskHandle]:
        """Start waiting tasks from the head while the head fits. → the started ones."""
        started = admit(self.pool, self._waiting, _need)
        for h in started:
            self._running[h.key] = _need(h)
        if started:
            self._changed.set()
        return started

    def withdraw(self, handles: Iterable[TaskHandle]) -> list[TaskHandle]:
        """Take these out of the waiting line (they stay held until reported).
        → the ones that were waiting."""
        keys = {h.key for h in handles}
        out = [h for h in self._waiting if h.key in keys]
        if out:
            self._waiting = deque(h for h in self._waiting if h.key not in keys)
            self._changed.set()
        return out

    def withdraw_stopped(self) -> list[TaskHandle]:
        """Take waiting tasks that were stopped meanwhile (e.g. fenced) out of the line."""
        return self.withdraw([h for h in self._waiting if h.stop_outcome is not None])

    def withdraw_all(self) -> list[TaskHandle]:
        """Empty the waiting line (shutdown). → what waited, in order."""
        out = list(self._waiting)
        self._waiting.clear()
        self._changed.set()
        return out

    def discard(self, handles: Iterable[TaskHandle]) -> None:
        """Forget reported tasks; a running one gives its resources back."""
        gone: set[tuple[str, str]] = set()
        for h in handles:
            self._held.pop(h.key, None)
            took = self._running.pop(h.key, None)
            if took is not None:
                self.pool.release(took)
            gone.add(h.key)
        if any(h.key in gone for h in self._waiting):
            self._waiting = deque(h for h in self._waiting if h.key not in gone)
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

    async def wait_readable(self) -> None:
        """Until a slot is free and nothing waits."""
        while not self.readable():
            await self._wait_change()

    async def wait_empty(self) -> None:
        """Until nothing is held."""
        while self._held:
            await self._wait_change()
