"""slurm: a batch of tasks is ONE `sbatch --array` submission; element i runs task i.

For each task the executor renders the command (a string runs through /bin/sh -c with its
values shell-quoted, a list is exec'd as is), writes DAGB_INPUTS into the attempt's work dir
(under the worker's data dir, which must be on storage the compute nodes share), and puts
argv, env and directory, all shell-quoted, in a generated batch script (slurm_script.py).
Resources map to sbatch options; tasks whose options differ go in separate arrays.

A node's `init` is one more job per batch, which the batch's arrays depend on (slurm_init.py).

After sbatch the task hash gets `slurm_job` (`<id>_<index>`), `slurm_attempt`, `slurm_out`
and `slurm_init` (the init job's id, '' if none). A task whose current attempt already has
a job (a re-delivered entry, or a worker restarted over its own pending entries:
slurm_reattach.py) is followed again instead of being submitted twice, its init job too if
that had not ended yet; a job left over from an older attempt is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import RedisError

from broker.wire import Outcome
from worker.batchinit import FAILED_PREFIX, InitError, init_command
from worker.executors import slurm_reattach
from worker.executors.attempt import LaunchError
from worker.executors.base import register_executor
from worker.executors.inputs import fetch_inputs
from worker.executors.paths import AttemptPaths, safe_part
from worker.executors.slurm_cli import SlurmError, scancel, submit
from worker.executors.slurm_init import reattach_inits, submit_init
from worker.executors.slurm_logs import (
    copied_bytes,
    has_init_copy,
    prepare_attempt_dir,
    write_script,
)
from worker.executors.slurm_script import (
    OUTPUT_PATTERN,
    SCRIPT_NAME,
    SlurmConfig,
    batch_script,
    job_options,
    sbatch_argv,
)
from worker.executors.slurm_task import Tracked, build_element, finish, now_ms
from worker.executors.slurm_watch import watch
from worker.logs import task_extra
from worker.logship import LogShippers

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from redis.asyncio import Redis

    from broker.keys import Keys
    from broker.wire import Completion
    from worker.batchinit import InitCommand
    from worker.config import WorkerSettings
    from worker.executors.base import ExecContext
    from worker.executors.slurm_init import InitJob
    from worker.handle import TaskHandle
    from worker.inflight import InFlight

logger = logging.getLogger(__name__)

JOB_FIELDS = ("slurm_job", "slurm_attempt", "slurm_out", "slurm_init")


def job_dir_for(data_dir: Path) -> Path:
    return data_dir / "slurm" / uuid.uuid4().hex[:16]


class SlurmExecutor:
    name = "slurm"
    marks_running = True

    def __init__(self, config: SlurmConfig | None = None) -> None:
        self.config = config or SlurmConfig()

    def configure(self, config: SlurmConfig) -> None:
        self.config = config

    async def run_batch(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        env = dict(ctx.base_env)
        tracked = [Tracked(h, AttemptPaths.for_task(ctx.data_dir, h.msg)) for h in tasks]
        fresh, inits = await self._reattach(tracked, ctx, env)  # (files left as they are)
        await self._prepare(fresh, ctx)
        size = max(1, self.config.max_array)
        for (opts, cmd), group in self._groups([t for t in fresh if t.early is None],
                                               ctx.runner_id).items():
            init = await self._submit_init(cmd, opts, group, ctx, env) if cmd else None
            if cmd is not None and init is None:
                continue  # its tasks failed
            inits += [init] if init else []
            for i in range(0, len(group), size):
                await self._submit(group[i : i + size], ctx, env, init)
        # live logs: each poll copies new element output into the attempt logs, shipped from
        # there; the last copy and the worker's note (in finish) go out when the block exits
        async with LogShippers(ctx.redis, ctx.keys, [(t.msg, t.paths.log) for t in tracked],
                               interval_s=min(1.0, self.config.poll_interval_s)):
            await watch(tracked, self.config, env, inits)
            return list(await asyncio.gather(
                *(asyncio.to_thread(finish, t, ctx.runner_id) for t in tracked)
            ))

    async def _prepare(self, tracked: list[Tracked], ctx: ExecContext) -> None:
        for t in tracked:
            try:
                t.element = build_element(t.msg, t.paths)
                inputs = await fetch_inputs(ctx.redis, ctx.keys, t.msg)
                await asyncio.to_thread(prepare_attempt_dir, t.paths, msgspec.json.encode(inputs))
            except LaunchError as e:
                t.fail_early(Outcome.FAILED, str(e), ctx.runner_id)

    async def _reattach(
        self, tracked: list[Tracked], ctx: ExecContext, env: dict[str, str]
    ) -> tuple[list[Tracked], list[InitJob]]:
        """Follow jobs this attempt already has (and their init jobs not yet copied into
        their logs); cancel older attempts' jobs. → (to submit, init jobs followed)."""
        pipe = ctx.redis.pipeline(transaction=False)
        for t in tracked:
            pipe.hmget(ctx.keys.task(t.msg.run, t.msg.node), JOB_FIELDS)
        rows: list[list[Any]] = await pipe.execute()
        fresh: list[Tracked] = []
        stale: list[str] = []
        waiting: dict[str, list[Tracked]] = {}  # init job id → its tasks followed again
        for t, (job, attempt, out, init) in zip(tracked, rows, strict=True):
            if job and attempt == str(t.msg.attempt) and "_" in job:
                t.job_id, _, index = job.partition("_")
                t.index, t.out_path = int(index), Path(out) if out else None
                t.log_pos = await asyncio.to_thread(copied_bytes, t.paths)
                if init and not await asyncio.to_thread(has_init_copy, t.paths):
                    waiting.setdefault(init, []).append(t)
                t.submitted_at_ms = now_ms()
                logger.info("%s/%s#%d: following SLURM job %s again", t.msg.run, t.msg.node,
                            t.msg.attempt, job, extra=task_extra(t.msg))
                continue
            if job:
                stale.append(job)
            fresh.append(t)
        if stale:
            logger.info("cancelling SLURM job(s) of earlier attempts: %s", " ".join(stale))
            await scancel(stale, env)
        return fresh, reattach_inits(waiting, ctx.data_dir)

    def _groups(
        self, fresh: list[Tracked], runner: str
    ) -> dict[tuple[tuple[str, ...], InitCommand | None], list[Tracked]]:
        """Tasks with equal sbatch options and equal rendered init (one init job each)."""
        groups: dict[tuple[tuple[str, ...], InitCommand | None], list[Tracked]] = {}
        for t in fresh:
            if t.handle.stop_outcome is not None:
                t.fail_early(t.handle.stop_outcome, t.handle.stop_reason, runner)
                continue
            try:
                cmd = init_command(t.msg)
            except InitError as e:
                t.fail_early(Outcome.FAILED, FAILED_PREFIX + str(e), runner)
                continue
            groups.setdefault((job_options(t.msg.spec, self.config), cmd), []).append(t)
        return groups

    async def _submit_init(
        self, cmd: InitCommand, opts: tuple[str, ...], group: list[Tracked], ctx: ExecContext,
        env: dict[str, str],
    ) -> InitJob | None:
        """sbatch the group's init job; None (its tasks failed) if SLURM refused it."""
        try:
            return await submit_init(cmd, opts, group, ctx.data_dir, env)
        except SlurmError as e:
            for t in group:
                t.fail_early(Outcome.FAILED, FAILED_PREFIX + str(e), ctx.runner_id)
            return None

    async def _submit(self, group: list[Tracked], ctx: ExecContext, env: dict[str, str],
                      init: InitJob | None = None) -> None:
        opts = job_options(group[0].msg.spec, self.config)
        job_dir = job_dir_for(ctx.data_dir)
        name = safe_part(f"dagb-{group[0].msg.tpl}")[:64]
        try:
            script = batch_script([t.element for t in group if t.element is not None])
            await asyncio.to_thread(write_script, job_dir, SCRIPT_NAME, script)
            job_id = await submit(sbatch_argv(opts, len(group), str(job_dir), name,
                                              after=init.job_id if init else ""), env)
        except (SlurmError, OSError) as e:
            await asyncio.to_thread(shutil.rmtree, job_dir, True)
            for t in group:
                t.fail_early(Outcome.FAILED, f"sbatch failed: {e}", ctx.runner_id)
            return
        at = now_ms()
        pipe = ctx.redis.pipeline(transaction=False)
        for i, t in enumerate(group):
            t.job_id, t.index, t.submitted_at_ms = job_id, i, at
            t.out_path = job_dir / OUTPUT_PATTERN.replace("%a", str(i))
            pipe.hset(ctx.keys.task(t.msg.run, t.msg.node), mapping={
                "slurm_job": t.element_id, "slurm_attempt": t.msg.attempt,
                "slurm_out": str(t.out_path), "slurm_init": init.job_id if init else "",
            })
        try:
            await pipe.execute()
        except RedisError as e:  # the job runs all the same; only a restart could not find it
            logger.warning("cannot record SLURM job %s in its task hashes: %s", job_id, e)
        logger.info("submitted SLURM job array %s (%d task(s), %s): %s", job_id, len(group),
                    " ".join(opts), ", ".join(f"{t.msg.run}/{t.msg.node}" for t in group[:5]))

    # -- re-attach (the optional Reattachable protocol, worker/executors/base.py) ----------
    async def find_reattachable(
        self, redis: Redis, keys: Keys, streams: Iterable[str], runner_id: str,
        held: InFlight | None = None,
    ) -> list[TaskHandle]:
        """This runner's pending slurm entries whose job its previous process submitted."""
        return await slurm_reattach.find_reattachable(
            redis, keys, streams, runner_id, held=held, executor=self.name
        )

    async def reattach(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        """Follow their jobs: run_batch follows a job the attempt already has, never
        submitting it again (and cancels on a stop request, as for any batch)."""
        return await self.run_batch(tasks, ctx)


def slurm_config(settings: WorkerSettings) -> SlurmConfig:
    return SlurmConfig(
        partition=settings.slurm_partition or None, account=settings.slurm_account or None,
        poll_interval_s=settings.slurm_poll_interval_s,
    )


def configure_slurm(settings: WorkerSettings) -> None:
    """Apply the worker's SLURM settings (before it registers)."""
    EXECUTOR.configure(slurm_config(settings))


EXECUTOR = SlurmExecutor()

if shutil.which("sbatch"):  # offered only where the SLURM client is installed
    register_executor(EXECUTOR)
