"""slurm: a batch's `init` is its own small sbatch job; the batch's arrays wait for it.

batchinit.py renders it (run parameters only), and words the reasons. Here it becomes one
job (no --array; the arrays' other options: partition, account, resources, --time), its
script like an element's (cd to the node's workdir, the node's env exported, exec), its
output in `{data_dir}/slurm/init/{job id}.out`. Each array of the batch is submitted with
`--dependency=afterok:<init job>` and `--kill-on-invalid-dep=yes`: SLURM starts the elements
only once the init succeeded, on the cluster, once per batch; if it failed, SLURM cancels
them (DependencyNeverSatisfied) without running any.

The watcher follows an init job like an element (slurm_watch.py calls `follow_inits` each
round): once it is final, its output moves to `{data_dir}/logs/_init/slurm-{id}.log` and is
copied into each waiting task's log (before the element's own output, which is held back
until then); if it failed, each task not already stopped gets `init failed: exit N` (or
`timed out after Ns`, `killed by signal S`, `slurm: STATE`; LOST if the init's node failed)
and its element is scancelled, so nothing stays queued. The node's timeout counts from the
init's start; a stop of all its tasks (cancel, shutdown) scancels it too.

The init job id is recorded in the task hashes (`slurm_init`), so a restarted worker that
re-attaches to the arrays follows a still unfinished init as well (slurm.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from broker.wire import Outcome
from worker.batchinit import (
    FAILED_PREFIX,
    InitError,
    copy_text,
    init_command,
    init_log_path,
    reason_for,
)
from worker.executors.outcome import signal_name
from worker.executors.paths import safe_part
from worker.executors.slurm_cli import SlurmError, SlurmUnavailable, job_states, scancel, submit
from worker.executors.slurm_logs import add_init_copy
from worker.executors.slurm_script import (
    Element,
    ScriptError,
    check_env,
    init_sbatch_argv,
    init_script,
)
from worker.executors.slurm_state import LOST_STATES, REST, ElementState, element_state

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from worker.batchinit import InitCommand
    from worker.executors.slurm_script import SlurmConfig
    from worker.executors.slurm_task import Tracked

logger = logging.getLogger(__name__)


def init_dir(data_dir: Path) -> Path:
    return data_dir / "slurm" / "init"


def init_out(data_dir: Path, job_id: str) -> Path:
    return init_dir(data_dir) / f"{job_id}.out"


@dataclass(eq=False)
class InitJob:
    """A batch's init job while the executor follows it, and the tasks that wait for it."""

    cmd: InitCommand
    job_id: str
    out_path: Path  # SLURM writes its output here
    log: Path  # where the output is kept once it ended
    dependents: list[Tracked] = field(default_factory=list)
    started_mono: float | None = None
    final: ElementState | None = None
    stop: str = ""  # why the worker scancels it ('timed out after Ns', 'stopped')
    cancelled_mono: float = 0.0
    scancelled: bool = False
    unknown_polls: int = 0
    copied: bool = False  # its output is in the dependents' logs

    @property
    def watching(self) -> bool:
        return self.final is None


def init_element(cmd: InitCommand) -> Element:
    """What the init job runs (ScriptError for an invalid env name)."""
    env = dict(cmd.env)
    check_env(env)
    return Element(argv=list(cmd.argv), env=env, cwd=cmd.cwd)


async def submit_init(
    cmd: InitCommand, options: Sequence[str], group: Sequence[Tracked], data_dir: Path,
    env: Mapping[str, str],
) -> InitJob:
    """sbatch the init job for these tasks. SlurmError (the reason, after `init failed: `)
    if it cannot be."""
    d = init_dir(data_dir)
    script = d / f"{uuid.uuid4().hex[:16]}.sh"
    name = safe_part(f"dagb-init-{group[0].msg.tpl}")[:64]
    try:
        text = init_script(init_element(cmd))
    except ScriptError as e:
        raise SlurmError(str(e)) from e
    try:
        await asyncio.to_thread(_write, script, text)
        job_id = await submit(init_sbatch_argv(options, str(d), name, str(script)), env)
    except (SlurmError, OSError) as e:
        raise SlurmError(f"sbatch failed: {e}") from e
    finally:  # sbatch sent the script to the controller
        await asyncio.to_thread(script.unlink, True)
    logger.info("submitted SLURM init job %s for %d task(s): %s", job_id, len(group),
                cmd.shown())
    return following(cmd, job_id, data_dir, group)


def following(cmd: InitCommand, job_id: str, data_dir: Path,
              dependents: Sequence[Tracked]) -> InitJob:
    """An InitJob for a submitted job; its dependents point at it."""
    job = InitJob(cmd, job_id, init_out(data_dir, job_id),
                  init_log_path(data_dir, f"slurm-{job_id}"), list(dependents))
    for t in dependents:
        t.init = job
    return job


def reattach_inits(waiting: Mapping[str, Sequence[Tracked]], data_dir: Path) -> list[InitJob]:
    """After a worker restart: follow again the init jobs (id → their re-attached tasks)
    whose output is not in those tasks' logs yet."""
    jobs: list[InitJob] = []
    for job_id, group in waiting.items():
        try:
            cmd = init_command(group[0].msg)
        except InitError:
            continue
        if cmd is not None:
            logger.info("following SLURM init job %s again (%d task(s))", job_id, len(group))
            jobs.append(following(cmd, job_id, data_dir, group))
    return jobs


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o700)


def init_verdict(st: ElementState, stop: str) -> tuple[Outcome | None, str]:
    """Pure: the init job's final state → (None, '') if it succeeded, else (the outcome of
    its tasks, why, after `init failed: `)."""
    if stop:
        return Outcome.FAILED, stop
    code, sig = st.exit_code, st.signal
    if st.state == "COMPLETED" and not code and not sig:
        return None, ""
    if st.state in LOST_STATES or st.state == "UNKNOWN":
        return Outcome.LOST, f"slurm: {st.state}"
    if st.state in ("FAILED", "COMPLETED"):
        why = reason_for(code, signal=signal_name(sig) if sig and not code else "")
        return Outcome.FAILED, why or f"slurm: {st.state}"
    return Outcome.FAILED, f"slurm: {st.state}"  # CANCELLED, TIMEOUT, OUT_OF_MEMORY, …


def _apply(job: InitJob, st: ElementState | None, config: SlurmConfig) -> None:
    if st is None:
        job.unknown_polls += 1
        if job.unknown_polls >= config.unknown_polls:
            job.final = ElementState("UNKNOWN", "not known to squeue, scontrol or sacct")
        return
    job.unknown_polls = 0
    if st.started and job.started_mono is None:
        job.started_mono = time.monotonic()
    if st.final:
        job.final = st


def _why_stop(job: InitJob, now: float) -> str:
    timeout_s = job.cmd.timeout_s
    if timeout_s and job.started_mono is not None and now - job.started_mono >= timeout_s:
        return f"timed out after {timeout_s}s"
    if all(t.stop is not None or not t.watching for t in job.dependents):
        return "stopped"  # nobody waits for it any more (cancel, shutdown)
    return ""


async def _cancel(jobs: list[InitJob], config: SlurmConfig, env: Mapping[str, str]) -> None:
    now = time.monotonic()
    for job in jobs:
        if not job.stop:
            job.stop = _why_stop(job, now)
            if not job.stop:
                continue
            job.cancelled_mono = now
        if now - job.cancelled_mono > config.cancel_wait_s:
            logger.warning("SLURM init job %s still not ended %.0fs after it was cancelled; "
                           "giving up on it", job.job_id, config.cancel_wait_s)
            job.final = ElementState("CANCELLED", "scancel not confirmed")
        elif not job.scancelled:
            logger.info("scancel init job %s: %s", job.job_id, job.stop)
            job.scancelled = await scancel([job.job_id], env)


def _end_text(job: InitJob) -> str:
    st = job.final
    assert st is not None
    code = f", exit {st.exit_code}" if st.exit_code is not None else ""
    return f"{st.state}{code} (SLURM job {job.job_id})" + (f": {job.stop}" if job.stop else "")


def _finish(job: InitJob) -> None:
    """Blocking: keep its output as the init log, copy it into each dependent's log."""
    with contextlib.suppress(FileNotFoundError):
        job.log.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(job.out_path, job.log)
    text = copy_text(job.log, job.cmd, len(job.dependents), _end_text(job))
    for t in job.dependents:
        add_init_copy(t.paths, text)


async def _ended(job: InitJob) -> None:
    """Its output to the task logs; if it failed, its tasks are stopped with the reason."""
    assert job.final is not None
    outcome, why = init_verdict(job.final, "" if job.stop == "stopped" else job.stop)
    logger.info("SLURM init job %s for %d task(s) %s", job.job_id, len(job.dependents),
                f"failed: {why}" if outcome else "done")
    await asyncio.to_thread(_finish, job)
    job.copied = True
    if outcome is None:
        return
    now = time.monotonic()
    for t in job.dependents:
        if t.stop is None and t.started_mono is None:  # (scancelled by the watcher)
            t.stop, t.cancelled_mono = (outcome, FAILED_PREFIX + why), now


async def follow_inits(
    jobs: Sequence[InitJob], config: SlurmConfig, env: Mapping[str, str]
) -> None:
    """One round for the init jobs still followed: poll, scancel what must stop, and act on
    the ones that ended."""
    active = [j for j in jobs if j.watching]
    for job in active:
        try:
            states = await job_states(job.job_id, [REST], env)
        except SlurmUnavailable as e:
            logger.warning("cannot get the state of SLURM init job %s (will retry): %s",
                           job.job_id, e)
            continue
        _apply(job, element_state(states, REST), config)
    await _cancel([j for j in active if j.watching], config, env)
    for job in jobs:
        if not job.watching and not job.copied:
            await _ended(job)
