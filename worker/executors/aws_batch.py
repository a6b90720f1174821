"""aws_batch: each task runs as an AWS Batch job in the container image the node names.

One executor call submits its batch: tasks of one shape (image, vCPUs, memory, GPUs) share a
job definition (registered once, found again by name) and go out as one array job (a single
job for a lone task; several arrays if the commands do not fit one request). The executor
then polls DescribeJobs with exponential backoff and maps each job's final status to a
completion: SUCCEEDED, or FAILED with Batch's statusReason and the container's exit code.
A cancel or shutdown stops a task by TerminateJob at once; so does its timeout. Each poll
also copies the new container output of started jobs from CloudWatch Logs into the attempt
logs (aws_logs.py), which are shipped live to `dagb:log` with the executor's own notes.

The executor is offered only by a worker configured with a job queue (`enable_aws_batch`).
aiobotocore is imported on first use. Jobs run on AWS, not on the worker: DAGB_RESULT,
DAGB_INPUTS and artifacts are not available to them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.wire import Completion, Outcome
from worker.executors.attempt import task_values
from worker.executors.aws_jobs import (
    DESCRIBE_MAX_JOBS,
    JobShape,
    JobSpecError,
    backoff,
    chunk_scripts,
    container_overrides,
    job_name,
    job_outcome,
    job_shape,
    task_script,
)
from worker.executors.aws_logs import JobLogTail, stream_of
from worker.executors.base import register_executor
from worker.executors.paths import AttemptPaths
from worker.logs import task_extra
from worker.logship import LogShippers

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from worker.executors.aws_config import AwsBatchConfig
    from worker.executors.base import ExecContext
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)

MAX_MISSES = 3  # a submitted job absent from DescribeJobs this many times in a row is lost
MIN_BATCH_TIMEOUT_S = 60  # Batch's own attemptDurationSeconds minimum


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class _Slot:
    """One submitted task: its job (a child `{array}:{i}` in an array) and its deadline."""

    index: int
    handle: TaskHandle
    job_id: str
    array_id: str | None
    deadline: float | None  # loop time
    log: JobLogTail  # the container's CloudWatch stream → the attempt log
    misses: int = 0


def _write_notes(notes: Iterable[tuple[Path, str]]) -> None:
    for path, text in notes:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(f"[dagbroker] {text}\n")


class _Call:
    """One run_batch: submit the tasks, watch their jobs, collect a completion per task."""

    def __init__(
        self, executor: AwsBatchExecutor, config: AwsBatchConfig, client: Any, logs: Any,
        ctx: ExecContext, tasks: Sequence[TaskHandle],
    ) -> None:
        self.executor = executor
        self.config = config
        self.batch = client
        self.logs = logs  # CloudWatch Logs client
        self.ctx = ctx
        self.tasks = tasks
        self.done: dict[int, Completion] = {}
        self.slots: list[_Slot] = []
        self.submitted_ms: dict[int, int] = {}  # task index → when its job was submitted
        self.loop = asyncio.get_running_loop()

    # -- completions ------------------------------------------------------------------
    def _log_path(self, h: TaskHandle) -> Path:
        return AttemptPaths.for_task(self.ctx.data_dir, h.msg).log

    async def finish(self, items: Sequence[tuple[int, Outcome, int | None, str, str]]) -> None:
        """items: (index, outcome, exit code, reason, note for the task's log)."""
        await asyncio.to_thread(_write_notes, [(self._log_path(self.tasks[i]), note)
                                               for i, *_, note in items])
        for i, outcome, code, reason, note in items:
            m = self.tasks[i].msg
            self.done[i] = Completion(
                run=m.run, node=m.node, attempt=m.attempt, outcome=outcome,
                runner=self.ctx.runner_id, exit_code=code, reason=reason, tail=note,
                started_at_ms=self.submitted_ms.get(i) or now_ms(), finished_at_ms=now_ms(),
            )
            logger.info("%s/%s#%d %s%s", m.run, m.node, m.attempt, outcome.value,
                        f": {reason}" if reason else "", extra=task_extra(m))

    async def fail(self, indices: Iterable[int], reason: str) -> None:
        await self.finish([(i, Outcome.FAILED, None, reason, reason) for i in indices])

    # -- submission ---------------------------------------------------------------------
    async def submit_all(self) -> list[_Slot]:
        groups: dict[JobShape, list[tuple[int, str]]] = {}
        for i, h in enumerate(self.tasks):
            if h.stop_outcome is not None:
                await self.finish([(i, h.stop_outcome, None, h.stop_reason, h.stop_reason)])
                continue
            try:
                shape = job_shape(h.msg.spec, self.config)
                script = task_script(h.msg, task_values(h.msg))
            except JobSpecError as e:
                await self.fail([i], str(e))
                continue
            groups.setdefault(shape, []).append((i, script))
        slots: list[_Slot] = []
        for shape, items in groups.items():
            slots += await self._submit_shape(shape, items)
        return slots

    async def _submit_shape(self, shape: JobShape, items: list[tuple[int, str]]) -> list[_Slot]:
        try:
            definition = await self.executor.definition(self.batch, shape, self.config)
            chunks = chunk_scripts([script for _, script in items])
        except Exception as e:
            await self.fail([i for i, _ in items], f"aws batch: {type(e).__name__}: {e}")
            return []
        slots: list[_Slot] = []
        for chunk in chunks:
            part = [items[k] for k in chunk]
            try:
                slots += await self._submit(definition, part)
            except Exception as e:
                reason = f"aws batch submit failed: {type(e).__name__}: {e}"
                await self.fail([i for i, _ in part], reason)
        return slots

    def _timeout(self, items: list[tuple[int, str]]) -> dict[str, Any]:
        limits = [self.tasks[i].msg.spec.timeout_s for i, _ in items]
        if any(t is None for t in limits):
            return {}
        longest = max(t for t in limits if t is not None)
        return {"timeout": {"attemptDurationSeconds": max(MIN_BATCH_TIMEOUT_S,
                                                          math.ceil(longest) + 30)}}

    async def _submit(self, definition: str, items: list[tuple[int, str]]) -> list[_Slot]:
        first = self.tasks[items[0][0]].msg
        array = len(items) > 1
        label = f"{first.tpl}-x{len(items)}" if array else first.node
        response = await self.batch.submit_job(
            jobName=job_name(self.config.name_prefix, first.run, label),
            jobQueue=self.config.job_queue, jobDefinition=definition,
            containerOverrides=container_overrides([s for _, s in items]),
            tags={"dagbroker-run": first.run}, **self._timeout(items),
            **({"arrayProperties": {"size": len(items)}} if array else {}),
        )
        job_id = response["jobId"]
        submitted = now_ms()
        slots = []
        notes = []
        for k, (i, _) in enumerate(items):
            h = self.tasks[i]
            timeout_s = h.msg.spec.timeout_s
            self.submitted_ms[i] = submitted
            slots.append(_Slot(
                index=i, handle=h, job_id=f"{job_id}:{k}" if array else job_id,
                array_id=job_id if array else None,
                deadline=self.loop.time() + timeout_s if timeout_s else None,
                log=JobLogTail(self._log_path(h)),
            ))
            notes.append((self._log_path(h), f"aws batch job {slots[-1].job_id} submitted "
                                             f"to {self.config.job_queue}"))
        await asyncio.to_thread(_write_notes, notes)
        logger.info("submitted aws batch job %s (%d task(s)) to %s", job_id, len(items),
                    self.config.job_queue)
        return slots

    # -- watching ---------------------------------------------------------------------------
    async def watch(self, slots: list[_Slot]) -> None:
        pending = {s.job_id: s for s in slots}
        delays = backoff(self.config.poll_initial_s, self.config.poll_factor,
                         self.config.poll_max_s)
        try:
            while pending:
                await self._wait(pending.values(), next(delays))
                await self._stop_requested(pending)
                await self._timeouts(pending)
                if pending:
                    await self._poll(pending)
        except BaseException:
            if pending:
                await asyncio.shield(self.terminate(list(pending.values()), "worker stopped"))
            raise

    async def _wait(self, slots: Iterable[_Slot], delay_s: float) -> None:
        """Sleep delay_s (or until the nearest deadline), waking at once on a stop request."""
        deadlines = [s.deadline for s in slots if s.deadline is not None]
        if deadlines:
            delay_s = max(0.0, min(delay_s, min(deadlines) - self.loop.time()))
        waiters = [asyncio.ensure_future(s.handle.stop_event().wait()) for s in slots]
        try:
            await asyncio.wait(waiters, timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _stop_requested(self, pending: dict[str, _Slot]) -> None:
        stopped = [s for s in pending.values() if s.handle.stop_outcome is not None]
        if not stopped:
            return
        by_reason: dict[str, list[_Slot]] = {}
        for s in stopped:
            del pending[s.job_id]
            by_reason.setdefault(s.handle.stop_reason or "stopped", []).append(s)
        for reason, group in by_reason.items():
            await self.terminate(group, reason)
        await self.finish([
            (s.index, s.handle.stop_outcome or Outcome.CANCELLED, None, s.handle.stop_reason,
             f"aws batch job {s.job_id} terminated: {s.handle.stop_reason}") for s in stopped
        ])

    async def _timeouts(self, pending: dict[str, _Slot]) -> None:
        now = self.loop.time()
        late = [s for s in pending.values() if s.deadline is not None and now >= s.deadline]
        if not late:
            return
        for s in late:
            del pending[s.job_id]
        await self.terminate(late, "timeout")
        items = []
        for s in late:
            reason = f"timeout after {s.handle.msg.spec.timeout_s}s"
            items.append((s.index, Outcome.FAILED, None, reason,
                          f"aws batch job {s.job_id} terminated: {reason}"))
        await self.finish(items)

    async def _describe(self, job_ids: list[str]) -> dict[str, dict[str, Any]] | None:
        jobs: dict[str, dict[str, Any]] = {}
        try:
            for start in range(0, len(job_ids), DESCRIBE_MAX_JOBS):
                r = await self.batch.describe_jobs(jobs=job_ids[start:start + DESCRIBE_MAX_JOBS])
                jobs.update({j["jobId"]: j for j in r.get("jobs", [])})
        except Exception as e:  # throttling, network: keep the jobs, ask again later
            logger.warning("aws batch DescribeJobs failed: %s: %s", type(e).__name__, e)
            return None
        return jobs

    async def _poll(self, pending: dict[str, _Slot]) -> None:
        jobs = await self._describe(list(pending))
        if jobs is None:
            return
        items = []
        pulls = []
        for job_id, slot in list(pending.items()):
            job = jobs.get(job_id)
            if job is not None and (stream := stream_of(job)):
                slot.log.stream = stream
            if slot.log.stream is not None:
                pulls.append(slot.log.pull(self.logs))  # before its end note, if it ended
            if job is None:
                slot.misses += 1
                if slot.misses >= MAX_MISSES:
                    del pending[job_id]
                    reason = f"aws batch job {job_id} is unknown to AWS Batch"
                    items.append((slot.index, Outcome.FAILED, None, reason, reason))
                continue
            slot.misses = 0
            outcome = job_outcome(job)
            if outcome is not None:
                del pending[job_id]
                result, code, reason = outcome
                note = f"aws batch job {job_id} {job['status']}" + (f": {reason}" if reason else "")
                items.append((slot.index, result, code, reason, note))
        await asyncio.gather(*pulls)
        if items:
            await self.finish(items)

    async def terminate(self, slots: list[_Slot], reason: str) -> None:
        """TerminateJob for each job; a whole array at once when all its children stop."""
        wanted = {s.job_id for s in slots}
        by_array: dict[str, list[str]] = {}
        for s in slots:
            if s.array_id is not None:
                by_array.setdefault(s.array_id, []).append(s.job_id)
        targets = [s.job_id for s in slots if s.array_id is None]
        for array_id, children in by_array.items():
            siblings = [s.job_id for s in self._unfinished(array_id)]
            targets += [array_id] if set(siblings) <= wanted else children
        for job_id in targets:
            try:
                await self.batch.terminate_job(jobId=job_id, reason=f"dagbroker: {reason}"[:256])
            except Exception as e:
                logger.warning("aws batch TerminateJob %s failed: %s: %s", job_id,
                               type(e).__name__, e)

    def _unfinished(self, array_id: str) -> list[_Slot]:
        return [s for s in self.slots if s.array_id == array_id and s.index not in self.done]

    async def run(self) -> list[Completion]:
        self.slots = await self.submit_all()
        await self.watch(list(self.slots))
        return [self.done[i] for i in range(len(self.tasks))]


class AwsBatchExecutor:
    name = "aws_batch"
    marks_running = True

    def __init__(self, config: AwsBatchConfig | None = None) -> None:
        self.config = config
        self._session: Any = None
        self._definitions: dict[str, str] = {}  # job definition name → ARN
        self._lock = asyncio.Lock()

    def client(self, config: AwsBatchConfig, service: str = "batch") -> Any:
        if self._session is None:
            from aiobotocore.session import get_session

            self._session = get_session()
        return self._session.create_client(service, **config.client_kwargs())

    async def definition(self, client: Any, shape: JobShape, config: AwsBatchConfig) -> str:
        """The ARN of the job definition for this shape: cached, found by name, or registered."""
        name = shape.definition_name(config.name_prefix)
        async with self._lock:
            if name not in self._definitions:
                r = await client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
                found = [d for d in r.get("jobDefinitions", []) if d.get("status") == "ACTIVE"]
                if found:
                    arn = max(found, key=lambda d: int(d.get("revision", 0)))["jobDefinitionArn"]
                else:
                    arn = (await client.register_job_definition(
                        jobDefinitionName=name, type="container",
                        containerProperties=shape.container_properties(),
                        retryStrategy={"attempts": 1},
                    ))["jobDefinitionArn"]
                    logger.info("registered aws batch job definition %s for %s", name,
                                shape.image)
                self._definitions[name] = arn
            return self._definitions[name]

    async def run_batch(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        config = self.config or getattr(ctx, "aws_batch", None)  # ExecContext.aws_batch
        if config is None:
            reason = f"aws_batch is not configured on runner {ctx.runner_id} (no job queue)"
            return [_failed(h, ctx, reason) for h in tasks]
        logs = [(h.msg, AttemptPaths.for_task(ctx.data_dir, h.msg).log) for h in tasks]
        async with (
            self.client(config) as client, self.client(config, "logs") as cloudwatch,
            LogShippers(ctx.redis, ctx.keys, logs),  # notes and container output, live
        ):
            return await _Call(self, config, client, cloudwatch, ctx, tasks).run()


def _failed(h: TaskHandle, ctx: ExecContext, reason: str) -> Completion:
    m, now = h.msg, now_ms()
    return Completion(run=m.run, node=m.node, attempt=m.attempt, outcome=Outcome.FAILED,
                      runner=ctx.runner_id, reason=reason, started_at_ms=now, finished_at_ms=now)


def enable_aws_batch(config: AwsBatchConfig) -> AwsBatchExecutor:
    """Offer aws_batch on this worker (call before it registers): register the executor."""
    executor = AwsBatchExecutor(config)
    register_executor(executor)
    return executor
