"""python: a callable ("pkg.mod:func"), an inline script, or a script path, in a subprocess.

Never on the worker's own loop. The callables of a batch run in warm interpreters
(`python -m worker.pyserve`, see pywarm.py) that import once and run many tasks; each task
runs as `python -m worker.pyrun` would run it alone: import, call with the rendered kwargs
(and `inputs=` if it takes that), its return value written as the result. The Launch below
is that pyrun command; a warm interpreter takes its env (DAGB_KWARGS, DAGB_ERROR, …) and the
callable from it. Inline scripts and script paths run one process each.
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
from worker.executors.pywarm import run_warm

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from broker.wire import Completion, TaskMessage
    from worker.executors.attempt import ProcessRunner
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
        """Callables in warm interpreters (pywarm.py); scripts and commands one process each."""
        warm = [h for h in tasks if h.msg.spec.callable]
        cold = [h for h in tasks if not h.msg.spec.callable]

        async def attempt(handle: TaskHandle, runner: ProcessRunner) -> Completion:
            return await run_attempt(handle, ctx, build_python, runner)

        done_warm, done_cold = await asyncio.gather(
            run_warm(warm, ctx, attempt),
            asyncio.gather(*(run_attempt(h, ctx, build_python) for h in cold)),
        )
        by_key = dict(zip((h.key for h in warm + cold), [*done_warm, *done_cold], strict=True))
        return [by_key[h.key] for h in tasks]


register_executor(PythonExecutor())
