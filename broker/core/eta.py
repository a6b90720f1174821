"""Estimated start and finish times: a list-scheduling simulation of a run's remaining DAG.

Pure: the caller supplies each task's state, parents, class and expected duration, the free
slots per class and the work queued ahead of the run; `simulate` returns expected start and
finish per task and the run's ETA. Rules:

* a finished task keeps its real times; a running one finishes at started + expected duration,
  but never before `now` (an overrunning task's estimate grows with the clock, never in the past);
* a waiting task becomes ready when its last parent is expected to finish, then takes the
  earliest free slot of its class (higher priority first among tasks ready at the same time);
* work ahead of the run in a class's queue occupies that class's slots first;
* a task of a class that no runner serves has no estimate (nor do its descendants);
* so has a parked task (ready, but bigger than every live runner of its class: it waits for
  a runner that does not exist yet), and so have its descendants; it takes no slot meanwhile.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Sequence

import msgspec

FINISHED = frozenset({"succeeded", "failed", "upstream_failed", "cancelled"})
ACTIVE = frozenset({"running", "dispatched"})


class TaskInput(msgspec.Struct, kw_only=True):
    id: str
    state: str
    rclass: str
    parents: list[str] = []
    priority: int = 0
    duration_s: float | None = None  # expected; None = unknown (counted as 0, flagged)
    started_at_ms: int | None = None
    finished_at_ms: int | None = None
    parked: bool = False  # ready, but no live runner of its class can take it


class TaskEstimate(msgspec.Struct, kw_only=True):
    id: str
    start_ms: int | None
    finish_ms: int | None
    duration_s: float | None
    known: bool  # False: no history/hint, no runner serves its class, or it is parked


class RunEstimate(msgspec.Struct, kw_only=True):
    now_ms: int
    eta_ms: int | None
    tasks: list[TaskEstimate]
    unknown: int  # tasks without a duration estimate
    unserved_classes: list[str]
    parked: list[str] = []  # ids of parked tasks (no estimate for them or below them)


def duration_stats(durations_s: Sequence[float]) -> tuple[float, float] | None:
    """(median, p80) of past durations; None when there are none."""
    if not durations_s:
        return None
    values = sorted(durations_s)
    p80 = values[min(len(values) - 1, int(round(0.8 * (len(values) - 1))))]
    return float(statistics.median(values)), float(p80)


def _slot_heaps(
    slots: dict[str, int], ahead_s: dict[str, float], now: int
) -> dict[str, list[int]]:
    """Per class, a heap of the times its slots become free (work ahead spread over them)."""
    heaps: dict[str, list[int]] = {}
    for rclass, n in slots.items():
        if n <= 0:
            continue
        backlog_ms = int(ahead_s.get(rclass, 0.0) * 1000 / n)
        heaps[rclass] = [now + backlog_ms] * n
    return heaps


def simulate(
    tasks: Sequence[TaskInput],
    slots: dict[str, int],
    now_ms: int,
    ahead_s: dict[str, float] | None = None,
) -> RunEstimate:
    """List-schedule the unfinished part of the run; see the module docstring for the rules."""
    by_id = {t.id: t for t in tasks}
    heaps = _slot_heaps(slots, ahead_s or {}, now_ms)
    sim = _Sim(by_id, now_ms)
    for t in tasks:
        for p in t.parents:
            if p in sim.children:
                sim.children[p].append(t.id)
    active: list[str] = []
    for t in tasks:
        if t.state in FINISHED:
            sim.start[t.id], sim.finish[t.id] = t.started_at_ms, t.finished_at_ms or now_ms
            sim.known[t.id] = True
        elif t.state in ACTIVE and t.started_at_ms:
            sim.start[t.id] = t.started_at_ms
            ends = max(t.started_at_ms + int((t.duration_s or 0.0) * 1000), now_ms)
            sim.finish[t.id] = ends
            sim.known[t.id] = t.duration_s is not None
            _hold_slot(heaps, t.rclass, ends)
            active.append(t.id)
        else:
            left = [p for p in t.parents if p in by_id and by_id[p].state not in FINISHED]
            sim.waiting[t.id] = len(left)
    for tid in active:  # their children wait only for them (and for finished parents)
        sim.release_children(tid)
    for tid, left in list(sim.waiting.items()):
        if left == 0 and tid not in sim.finish and all(
            by_id[p].state in FINISHED for p in by_id[tid].parents if p in by_id
        ):
            sim.push_ready(tid)
    sim.run(heaps)
    return _result(tasks, slots, sim.start, sim.finish, sim.known, now_ms)


def _hold_slot(heaps: dict[str, list[int]], rclass: str, until_ms: int) -> None:
    """A running task occupies the slot that frees earliest."""
    heap = heaps.get(rclass)
    if heap:
        heapq.heapreplace(heap, max(heap[0], until_ms))


class _Sim:
    """The mutable state of one simulation."""

    def __init__(self, by_id: dict[str, TaskInput], now_ms: int) -> None:
        self.by_id = by_id
        self.now_ms = now_ms
        self.start: dict[str, int | None] = {}
        self.finish: dict[str, int | None] = {}
        self.known: dict[str, bool] = {}
        self.children: dict[str, list[str]] = {tid: [] for tid in by_id}
        self.waiting: dict[str, int] = {}
        self.ready: list[tuple[int, int, int, str]] = []  # (ready at, -priority, order, id)
        self.order = {tid: i for i, tid in enumerate(by_id)}

    def push_ready(self, tid: str) -> None:
        ends = [self.finish.get(p) for p in self.by_id[tid].parents if p in self.by_id]
        if any(e is None for e in ends):
            _mark_unknown(tid, self.by_id, self.children, self.start, self.finish, self.known)
            return
        ready_at = max([self.now_ms, *(e for e in ends if e is not None)])
        heapq.heappush(self.ready, (ready_at, -self.by_id[tid].priority, self.order[tid], tid))

    def release_children(self, tid: str) -> None:
        for child in self.children[tid]:
            if child not in self.waiting:
                continue
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                self.push_ready(child)

    def run(self, heaps: dict[str, list[int]]) -> None:
        while self.ready:
            ready_at, _, _, tid = heapq.heappop(self.ready)
            t = self.by_id[tid]
            heap = heaps.get(t.rclass)
            if heap is None or t.parked:  # no runner (that fits): no estimate here or below
                _mark_unknown(tid, self.by_id, self.children, self.start, self.finish, self.known)
                continue
            begins = max(ready_at, heap[0])
            ends = begins + int((t.duration_s or 0.0) * 1000)
            heapq.heapreplace(heap, ends)
            self.start[tid], self.finish[tid] = begins, ends
            self.known[tid] = t.duration_s is not None
            self.release_children(tid)


def _mark_unknown(
    tid: str, by_id: dict[str, TaskInput], children: dict[str, list[str]],
    start: dict[str, int | None], finish: dict[str, int | None], known: dict[str, bool],
) -> None:
    stack = [tid]
    while stack:
        cur = stack.pop()
        if cur in finish:
            continue
        start[cur] = finish[cur] = None
        known[cur] = False
        stack.extend(children.get(cur, []))


def _result(
    tasks: Sequence[TaskInput], slots: dict[str, int], start: dict[str, int | None],
    finish: dict[str, int | None], known: dict[str, bool], now_ms: int,
) -> RunEstimate:
    out = [
        TaskEstimate(id=t.id, start_ms=start.get(t.id), finish_ms=finish.get(t.id),
                     duration_s=t.duration_s, known=known.get(t.id, False))
        for t in tasks
    ]
    finishes = [e.finish_ms for e in out]
    eta = None if any(f is None for f in finishes) else max([now_ms, *(f for f in finishes if f)])
    unserved = sorted({t.rclass for t in tasks
                       if t.state not in FINISHED and slots.get(t.rclass, 0) <= 0})
    unknown = sum(1 for t in tasks if t.state not in FINISHED and t.duration_s is None)
    parked = [t.id for t in tasks if t.parked and t.state not in FINISHED]
    return RunEstimate(now_ms=now_ms, eta_ms=eta, tasks=out, unknown=unknown,
                       unserved_classes=unserved, parked=parked)
