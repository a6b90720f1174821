"""Pure resource accounting: what a task needs, what the runner has free, who runs next.

A runner offers cores, memory (MiB) and GPUs; each task needs some of each (TaskSpec `cores`,
`memory_mb` or 0, `gpus`). Cores are counted in thousandths (`millicores`) so sums of
fractional requests (0.1 + 0.2 …) stay exact and a full runner is never over-committed by a
rounding error.

Admission is strict FIFO: tasks start in the order they were read, and the head of the
waiting line blocks everything behind it until it fits. A small task is never let past a big
one, so the big one cannot starve (it gets its turn as soon as enough running work ends).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

import msgspec

from broker.core.fit import NO_LOCAL_NEEDS

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable

    from broker.spec import TaskSpec

T = TypeVar("T")

MILLI = 1000


def to_millicores(cores: float) -> int:
    """Cores → thousandths of a core, rounded up (a request is never shrunk)."""
    return math.ceil(round(cores * MILLI, 6))


def format_cores(millicores: int) -> str:
    """4000 → "4", 500 → "0.5", 1250 → "1.25": the flat text the runner hash carries."""
    whole, frac = divmod(max(millicores, 0), MILLI)
    return str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")


def format_memory(mb: int) -> str:
    """MiB in words for messages: 8192 → "8 GiB", 1500 → "1500 MiB"."""
    return f"{mb // 1024} GiB" if mb and mb % 1024 == 0 else f"{mb} MiB"


class Amount(msgspec.Struct, frozen=True):
    """An amount of resources: a task's need, a runner's offer, or what is free."""

    millicores: int = 0
    memory_mb: int = 0
    gpus: int = 0

    @classmethod
    def of(cls, cores: float, memory_mb: int | None, gpus: int) -> Amount:
        return cls(to_millicores(cores), memory_mb or 0, gpus)

    def __add__(self, o: Amount) -> Amount:
        return Amount(self.millicores + o.millicores, self.memory_mb + o.memory_mb,
                      self.gpus + o.gpus)

    def __sub__(self, o: Amount) -> Amount:
        return Amount(self.millicores - o.millicores, self.memory_mb - o.memory_mb,
                      self.gpus - o.gpus)

    def fits_in(self, room: Amount) -> bool:
        return (self.millicores <= room.millicores and self.memory_mb <= room.memory_mb
                and self.gpus <= room.gpus)

    @property
    def whole_cores(self) -> int:
        return max(0, self.millicores // MILLI)


# Tasks that run elsewhere (SLURM, SSH, AWS: their cores, memory and GPUs are the cluster's)
# or run nothing (noop) only take a slot here; the broker's fit check skips them too.
NOTHING = Amount.of(0, 0, 0)


def need_of(spec: TaskSpec) -> Amount:
    """What one task needs from this runner while it runs."""
    if spec.executor in NO_LOCAL_NEEDS:
        return NOTHING
    return Amount.of(spec.cores, spec.memory_mb, spec.gpus)


def shortfall(need: Amount, total: Amount, runner: str) -> str | None:
    """Why `need` can never fit a runner offering `total`, or None when it can.

    e.g. "needs 8 cores; runner w1 offers 4" or "needs 64 GiB memory, 2 GPUs; runner w1
    offers 16 GiB memory, 0 GPUs".
    """
    gaps: list[tuple[str, str, str]] = []  # (what is needed, offer in full, offer short)
    if need.millicores > total.millicores:
        offer = format_cores(total.millicores)
        gaps.append((f"{format_cores(need.millicores)} cores", f"{offer} cores", offer))
    if need.memory_mb > total.memory_mb:
        offer = format_memory(total.memory_mb)
        gaps.append((f"{format_memory(need.memory_mb)} memory", f"{offer} memory", offer))
    if need.gpus > total.gpus:
        gaps.append((f"{need.gpus} GPUs", f"{total.gpus} GPUs", str(total.gpus)))
    if not gaps:
        return None
    if len(gaps) == 1:  # the unit is already named: "needs 8 cores; runner w1 offers 4"
        return f"needs {gaps[0][0]}; runner {runner} offers {gaps[0][2]}"
    return (f"needs {', '.join(g[0] for g in gaps)}; "
            f"runner {runner} offers {', '.join(g[1] for g in gaps)}")


class Pool:
    """The runner's total offer and what the running tasks use of it."""

    def __init__(self, total: Amount) -> None:
        self.total = total
        self.used = Amount()

    @property
    def free(self) -> Amount:
        return self.total - self.used

    def fits(self, need: Amount) -> bool:
        """Fits in what is free right now."""
        return need.fits_in(self.free)

    def take(self, need: Amount) -> None:
        """Count `need` as used (unconditionally: re-attached work is already running)."""
        self.used = self.used + need

    def release(self, need: Amount) -> None:
        self.used = self.used - need


def admit(pool: Pool, waiting: deque[T], need: Callable[[T], Amount]) -> list[T]:
    """Strict FIFO: pop the head while it fits the free resources, taking them. → started."""
    started: list[T] = []
    while waiting and pool.fits(need(waiting[0])):
        item = waiting.popleft()
        pool.take(need(item))
        started.append(item)
    return started
