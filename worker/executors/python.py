"""python: a callable ("pkg.mod:func"), an inline script, or a script path, in a subprocess.

Never on the worker's own loop: a callable runs through `python -m worker.pyrun`, which
imports it, calls it with the rendered kwargs (and `inputs=` if it takes that), and writes
its return value as the result.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from broker.core.template import render, render_any
from worker.executors.attempt import Launch, LaunchError, run_attempt
from worker.executors.base import register_executor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from broker.wire import Completion, TaskMessage
    from worker.executors.base import ExecContext
    from worker.executors.paths import AttemptPaths
    from worker.handle import TaskHandle

# The directory holding the `worker` package, so `-m worker.pyrun` resolves even when the
# worker runs from a source tree rather than an installed package.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _pythonpath(base_env: Mapping[str, str]) -> str:
    current = base_env.get("PYTHONPATH", "")
    return f"{current}{os.pathsep}{PACKAGE_ROOT}" if current else PACKAGE_ROOT


def _callable_launch(
    msg: TaskMessage, values: Mapping[str, Any], paths: AttemptPaths, ctx: ExecContext
) -> Launch:
    assert msg.spec.callable is not None
    kwargs = render_any(msg.spec.kwargs, values)
    try:
        kwargs_json = msgspec.json.encode(kwargs).decode()
    except TypeError as e:
        raise LaunchError(f"kwargs are not JSON-serialisable: {e}") from e
    return Launch(
        [sys.executable, "-m", "worker.pyrun", msg.spec.callable],
        env={"DAGB_KWARGS": str(paths.kwargs), "DAGB_ERROR": str(paths.error),
             "PYTHONPATH": _pythonpath(ctx.base_env)},
        files={paths.kwargs: kwargs_json},
    )


def build_python(
    msg: TaskMessage, values: Mapping[str, Any], paths: AttemptPaths, ctx: ExecContext
) -> Launch:
    spec = msg.spec
    unbuffered = {"PYTHONUNBUFFERED": "1"}
    if spec.callable:
        launch = _callable_launch(msg, values, paths, ctx)
        launch.env.update(unbuffered)
        return launch
    if spec.script is not None:
        return Launch([sys.executable, "-c", render(spec.script, values)], env=unbuffered)
    if isinstance(spec.command, str):
        args = shlex.split(render(spec.command, values, shell_quote=True))
        return Launch([sys.executable, *args], env=unbuffered)
    if isinstance(spec.command, list):
        return Launch([sys.executable, *(render(a, values) for a in spec.command)], env=unbuffered)
    raise LaunchError("a python task needs one of callable, script, command")


class PythonExecutor:
    name = "python"
    marks_running = True

    async def run_batch(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        return list(await asyncio.gather(*(run_attempt(h, ctx, build_python) for h in tasks)))


register_executor(PythonExecutor())
