"""Following the elements of submitted job arrays until each one is final.

Each round: one `squeue` per array job (plus `scontrol`, then `sacct`, for the elements that
ended or left the queue, to learn their exit code); scancel what was cancelled, stopped or
timed out; copy new output into the attempt logs; then wait for the poll interval, a stop
request or the next timeout, whichever comes first. The timeout counts from the moment an
element is first seen running, not from its submission (queue time is not run time).
The batch's init jobs are followed first in each round (slurm_init.py), and the watch goes
on until they have ended too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from broker.wire import Outcome
from worker.executors.slurm_cli import SlurmUnavailable, job_states, scancel
from worker.executors.slurm_init import follow_inits
from worker.executors.slurm_logs import copy_new
from worker.executors.slurm_state import ElementState
from worker.executors.slurm_task import now_ms

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from worker.executors.slurm_init import InitJob
    from worker.executors.slurm_script import SlurmConfig
    from worker.executors.slurm_task import Tracked

logger = logging.getLogger(__name__)


def _apply(t: Tracked, st: ElementState | None, config: SlurmConfig) -> None:
    if st is None:
        t.unknown_polls += 1
        if t.unknown_polls >= config.unknown_polls:
            t.final = ElementState("UNKNOWN", "not known to squeue, scontrol or sacct")
            t.stop = t.stop or (Outcome.LOST, f"slurm: job {t.element_id} is unknown to SLURM")
        return
    t.unknown_polls = 0
    if st.started and t.started_mono is None:
        t.started_mono, t.started_at_ms = time.monotonic(), now_ms()
    if st.final:
        t.final = st


async def _poll(active: list[Tracked], config: SlurmConfig, env: Mapping[str, str]) -> None:
    by_job: dict[str, list[Tracked]] = {}
    for t in active:
        by_job.setdefault(t.job_id, []).append(t)
    for job_id, group in by_job.items():
        try:
            states = await job_states(job_id, [t.index for t in group], env)
        except SlurmUnavailable as e:
            logger.warning("cannot get the state of SLURM job %s (will retry): %s", job_id, e)
            continue
        for t in group:
            _apply(t, states.get(t.index), config)


def _stop_reason(t: Tracked, now: float) -> tuple[Outcome, str] | None:
    h = t.handle
    if h.stop_outcome is not None:
        return h.stop_outcome, h.stop_reason
    timeout_s = t.msg.spec.timeout_s
    if timeout_s and t.started_mono is not None and now - t.started_mono >= timeout_s:
        return Outcome.FAILED, f"timeout after {timeout_s}s"
    return None


async def _cancel(active: list[Tracked], config: SlurmConfig, env: Mapping[str, str]) -> None:
    """scancel the elements that must stop (again, if an earlier scancel failed)."""
    now = time.monotonic()
    send: list[Tracked] = []
    for t in active:
        if t.stop is None:
            t.stop = _stop_reason(t, now)
            if t.stop is None:
                continue
            t.cancelled_mono = now
        assert t.cancelled_mono is not None
        if now - t.cancelled_mono > config.cancel_wait_s:
            logger.warning("SLURM job %s still not ended %.0fs after it was cancelled; giving "
                           "up on it", t.element_id, config.cancel_wait_s)
            t.final = ElementState("CANCELLED", "scancel not confirmed")
        elif not t.scancelled:
            send.append(t)
    if send:
        ok = await scancel([t.element_id for t in send], env)
        for t in send:
            logger.info("scancel %s (%s/%s#%d): %s", t.element_id, t.msg.run, t.msg.node,
                        t.msg.attempt, t.stop[1] if t.stop else "")
            t.scancelled = ok


def _copy_logs(active: list[Tracked]) -> None:
    """Blocking: append new output of started elements to their attempt logs."""
    for t in active:
        if t.out_path is not None and t.copying:
            t.log_pos = copy_new(t.out_path, t.paths.log, t.log_pos)


async def _pause(active: list[Tracked], config: SlurmConfig) -> None:
    """Sleep until the next poll, a stop request, or the nearest timeout."""
    now = time.monotonic()
    delay_s = config.poll_interval_s
    events = []
    for t in active:
        if t.stop is not None:
            continue
        events.append(t.handle.stop_event())
        timeout_s = t.msg.spec.timeout_s
        if timeout_s and t.started_mono is not None:
            delay_s = min(delay_s, max(0.0, t.started_mono + timeout_s - now))
    if any(e.is_set() for e in events):
        return
    if not events:
        await asyncio.sleep(delay_s)
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def watch(tracked: list[Tracked], config: SlurmConfig, env: Mapping[str, str],
                inits: Sequence[InitJob] = ()) -> None:
    """Return when every submitted element and init job is final (or given up on)."""
    while (active := [t for t in tracked if t.watching]) or any(j.watching for j in inits):
        await follow_inits(inits, config, env)
        await _poll(active, config, env)
        active = [t for t in active if t.watching]
        await _cancel(active, config, env)
        await asyncio.to_thread(_copy_logs, active)
        active = [t for t in active if t.watching]
        if active or any(j.watching for j in inits):
            await _pause(active, config)
