"""Executors: each runs a batch of tasks of one kind. Importing this package registers them.

slurm registers only where sbatch is on PATH; ssh only where asyncssh is installed.
`configure_executors(settings)` applies the worker's settings to them (call it before the
worker registers, so that what it advertises is what it can run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.executors import noop, python, shell, slurm
from worker.executors.base import REGISTRY, ExecContext, Executor, get_executor

if TYPE_CHECKING:
    from worker.config import WorkerSettings

try:
    from worker.executors import ssh
except ImportError:  # asyncssh is not installed: no ssh executor on this runner
    ssh = None  # type: ignore[assignment]


def configure_executors(settings: WorkerSettings) -> None:
    """SLURM defaults and the SSH inventory from the worker's settings."""
    slurm.configure_slurm(settings)
    if ssh is not None:
        ssh.configure_ssh(settings)


__all__ = [
    "REGISTRY", "ExecContext", "Executor", "configure_executors", "get_executor", "noop",
    "python", "shell", "slurm", "ssh",
]
