"""Executors: each runs a batch of tasks of one kind. Importing this package registers them."""

from __future__ import annotations

from worker.executors import noop, python, shell
from worker.executors.base import REGISTRY, ExecContext, Executor, get_executor

__all__ = ["REGISTRY", "ExecContext", "Executor", "get_executor", "noop", "python", "shell"]
