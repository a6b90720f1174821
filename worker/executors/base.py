"""The executor protocol, the context executors get, and the registry of executors by name.

One small protocol, three operations:

- **run_batch** (`Executor`, every executor): run the tasks of one batch, one Completion each;
- **cancel** (`Executor`, every executor): not a method but a contract. A task is cancelled
  (cancel order, fencing, shutdown) through its handle: `TaskHandle.request_stop(outcome,
  reason)` sets `handle.stop_event()`, and the executor running it must watch that event and
  stop what it started for the task (a process group: SIGTERM, SIGKILL after kill_grace_s; a
  SLURM job: scancel; an AWS job: TerminateJob), then report the handle's stop_outcome;
- **reattach** (`Reattachable`, optional): an executor whose work outlives the worker process
  (SLURM jobs) finds, when the worker starts again under the same runner id, the tasks its
  previous process left running and follows them instead of starting them again. The worker
  asks every registered executor that has it (`reattachable_executors()`, Worker.start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from redis.asyncio import Redis

    from broker.artifacts import ArtifactStore
    from broker.keys import Keys
    from broker.wire import Completion
    from worker.executors.aws_config import AwsBatchConfig
    from worker.handle import TaskHandle
    from worker.inflight import InFlight


@dataclass(frozen=True)
class ExecContext:
    """What an executor may use besides the tasks themselves."""

    runner_id: str
    redis: Redis  # for reading parents' results (inputs)
    keys: Keys
    data_dir: Path
    kill_grace_s: float  # SIGTERM → SIGKILL of a process group
    base_env: Mapping[str, str]  # the worker's environment, inherited by every task
    artifacts: ArtifactStore | None = None  # None: {data_dir}/artifacts
    aws_batch: AwsBatchConfig | None = None  # None: aws_batch not offered


@runtime_checkable
class Executor(Protocol):
    """Runs the tasks of one batch and returns one Completion per task, in order.

    It must not raise for a task's own failure (that is a FAILED completion) and must never
    block the loop. Cancel: while a task runs, the executor watches `handle.stop_event()`;
    once it is set (`TaskHandle.request_stop`), it kills what it started for that task and
    reports `handle.stop_outcome` with `handle.stop_reason`. A task stopped before the
    executor started it is reported the same way without starting it.
    """

    name: str
    marks_running: bool  # False: the worker skips Scripts.start (noop: nothing to run)

    async def run_batch(
        self, tasks: Sequence[TaskHandle], ctx: ExecContext
    ) -> list[Completion]: ...


@runtime_checkable
class Reattachable(Protocol):
    """Optional: an executor whose tasks outlive the worker process can follow them again.

    Worker.start, after registering and creating the consumer groups, calls
    `find_reattachable` of every registered executor that has it; the handles it returns
    are held like read tasks and passed to `reattach`, whose completions the worker reports
    like a batch's. Tasks are not marked running again (they are) nor started twice.
    """

    name: str  # an Executor's too: only registered executors are asked

    async def find_reattachable(
        self, redis: Redis, keys: Keys, streams: Iterable[str], runner_id: str,
        held: InFlight | None = None,
    ) -> list[TaskHandle]:
        """Handles for entries pending on this runner's consumer whose task this executor
        can follow again (entries already in `held` are skipped: calling it twice is safe)."""
        ...

    async def reattach(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        """Follow those tasks to their end: one Completion per task, in order (cancel as in
        run_batch: watch each handle's stop_event)."""
        ...


REGISTRY: dict[str, Executor] = {}


def register_executor(executor: Executor) -> Executor:
    REGISTRY[executor.name] = executor
    return executor


def get_executor(name: str) -> Executor | None:
    return REGISTRY.get(name)


def reattachable_executors() -> list[Reattachable]:
    """The registered executors that can re-attach, in registration order."""
    return [e for e in REGISTRY.values() if isinstance(e, Reattachable)]
