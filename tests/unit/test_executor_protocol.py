"""The executor protocol (worker/executors/base.py) holds for every registered executor, and
re-attach is an optional capability that the slurm executor has and the others do not."""

from __future__ import annotations

import inspect

import pytest

from worker.executors import REGISTRY, slurm
from worker.executors.aws_batch import AwsBatchExecutor
from worker.executors.base import Executor, Reattachable, reattachable_executors


def test_every_registered_executor_satisfies_the_protocol() -> None:
    assert {"shell", "python", "noop"} <= set(REGISTRY)
    for name, ex in REGISTRY.items():
        assert isinstance(ex, Executor), name
        assert ex.name == name and isinstance(ex.marks_running, bool), name
        assert inspect.iscoroutinefunction(ex.run_batch), name
        params = list(inspect.signature(ex.run_batch).parameters)
        assert params == ["tasks", "ctx"], (name, params)


def test_aws_batch_satisfies_the_protocol_too() -> None:
    """Registered only with a job queue; its class must fit all the same."""
    assert inspect.iscoroutinefunction(AwsBatchExecutor.run_batch)
    assert AwsBatchExecutor.name == "aws_batch"
    assert isinstance(AwsBatchExecutor.marks_running, bool)


def test_slurm_is_the_reattachable_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    """slurm registers only where sbatch is on PATH: put it in the registry either way."""
    monkeypatch.setitem(REGISTRY, "slurm", slurm.EXECUTOR)
    assert isinstance(slurm.EXECUTOR, Reattachable)
    assert [ex.name for ex in reattachable_executors()] == ["slurm"]
    for method in ("find_reattachable", "reattach"):
        impl = getattr(slurm.EXECUTOR, method)
        assert inspect.iscoroutinefunction(impl), method
        want = list(inspect.signature(getattr(Reattachable, method)).parameters)[1:]
        assert list(inspect.signature(impl).parameters) == want, method
