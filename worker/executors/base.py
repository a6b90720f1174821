"""The Executor protocol, the context executors get, and the registry of executors by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from redis.asyncio import Redis

    from broker.artifacts import ArtifactStore
    from broker.keys import Keys
    from broker.wire import Completion
    from worker.executors.aws_config import AwsBatchConfig
    from worker.handle import TaskHandle


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


class Executor(Protocol):
    """Runs the tasks of one batch and returns one Completion per task, in order.

    It must not raise for a task's own failure (that is a FAILED completion), must kill
    what it started when a handle's stop is requested, and must never block the loop.
    """

    name: str
    marks_running: bool  # False: the worker skips Scripts.start (noop: nothing to run)

    async def run_batch(
        self, tasks: Sequence[TaskHandle], ctx: ExecContext
    ) -> list[Completion]: ...


REGISTRY: dict[str, Executor] = {}


def register_executor(executor: Executor) -> Executor:
    REGISTRY[executor.name] = executor
    return executor


def get_executor(name: str) -> Executor | None:
    return REGISTRY.get(name)
