"""noop: succeeds at once, runs nothing. The hot path of the throughput benchmark."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from broker.wire import Completion, Outcome
from worker.executors.base import register_executor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from worker.executors.base import ExecContext
    from worker.handle import TaskHandle


class NoopExecutor:
    name = "noop"
    marks_running = False

    async def run_batch(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        now_ms = int(time.time() * 1000)
        succeeded, runner = Outcome.SUCCEEDED, ctx.runner_id
        return [
            Completion(
                run=h.msg.run, node=h.msg.node, attempt=h.msg.attempt, outcome=succeeded,
                runner=runner, exit_code=0, started_at_ms=now_ms, finished_at_ms=now_ms,
            )
            for h in tasks
        ]


register_executor(NoopExecutor())
