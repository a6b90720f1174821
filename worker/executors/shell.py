"""shell: a command string through /bin/sh -c (values shell-quoted), or an argv list exec'd."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from broker.core.template import render
from worker.executors.attempt import Launch, LaunchError, run_attempt
from worker.executors.base import register_executor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from broker.wire import Completion, TaskMessage
    from worker.executors.base import ExecContext
    from worker.executors.paths import AttemptPaths
    from worker.handle import TaskHandle

SHELL = "/bin/sh"


def build_shell(
    msg: TaskMessage, values: Mapping[str, Any], paths: AttemptPaths, ctx: ExecContext
) -> Launch:
    command = msg.spec.command
    if isinstance(command, str):
        return Launch([SHELL, "-c", render(command, values, shell_quote=True)])
    if isinstance(command, list):
        return Launch([render(arg, values) for arg in command])
    raise LaunchError("a shell task needs a command")


class ShellExecutor:
    name = "shell"
    marks_running = True

    async def run_batch(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        return list(await asyncio.gather(*(run_attempt(h, ctx, build_shell) for h in tasks)))


register_executor(ShellExecutor())
