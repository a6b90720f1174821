"""The SLURM client commands (sbatch, squeue, scontrol, sacct, scancel), run without a shell.

They run with the worker's environment (SLURM_CONF, PATH), never block the loop, and are
bounded in time. A query that fails for a reason other than "no such job" raises
SlurmUnavailable: the caller polls again later instead of deciding anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from worker.executors.slurm_script import parse_job_id
from worker.executors.slurm_state import element_state, parse_sacct, parse_scontrol, parse_squeue

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from worker.executors.slurm_state import ElementState

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 60.0
SQUEUE_FORMAT = "%i|%T|%r"
SACCT_FORMAT = "JobID,State,ExitCode"
UNKNOWN_JOB = "invalid job id"  # squeue / scontrol, when the controller forgot the job


class SlurmError(Exception):
    """A SLURM command failed (its stderr is the message)."""


class SlurmUnavailable(SlurmError):
    """A query could not be answered now (controller down, timeout): ask again later."""


async def run_command(
    argv: Sequence[str], env: Mapping[str, str], timeout_s: float = COMMAND_TIMEOUT_S
) -> tuple[int, str, str]:
    """→ (exit code, stdout, stderr). OSError if the program is missing."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=dict(env),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def submit(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Run sbatch; → the job id. SlurmError with sbatch's message on failure."""
    code, out, err = await run_command(argv, env)
    if code != 0:
        raise SlurmError(err.strip() or out.strip() or f"sbatch exited {code}")
    try:
        return parse_job_id(out)
    except ValueError as e:
        raise SlurmError(str(e)) from e


async def _query(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """stdout; None when SLURM does not know the job; SlurmUnavailable otherwise."""
    try:
        code, out, err = await run_command(argv, env)
    except (OSError, TimeoutError) as e:
        raise SlurmUnavailable(f"{argv[0]}: {e}") from e
    if code == 0:
        return out
    if UNKNOWN_JOB in err.lower():
        return None
    raise SlurmUnavailable(f"{argv[0]} exited {code}: {err.strip()}")


async def squeue_states(job_id: str, env: Mapping[str, str]) -> dict[int, ElementState] | None:
    out = await _query(
        ["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", SQUEUE_FORMAT], env
    )
    return None if out is None else parse_squeue(out, job_id)


async def scontrol_states(
    job_id: str, env: Mapping[str, str]
) -> dict[int, ElementState] | None:
    out = await _query(["scontrol", "-o", "show", "job", job_id], env)
    return None if out is None else parse_scontrol(out, job_id)


async def sacct_states(job_id: str, env: Mapping[str, str]) -> dict[int, ElementState] | None:
    """None also when accounting is disabled (no slurmdbd) or sacct is not installed."""
    try:
        out = await _query(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", SACCT_FORMAT], env)
    except SlurmUnavailable as e:
        logger.debug("sacct cannot tell: %s", e)
        return None
    return None if out is None else parse_sacct(out, job_id)


async def job_states(
    job_id: str, wanted: Iterable[int], env: Mapping[str, str]
) -> dict[int, ElementState]:
    """States of the wanted elements SLURM knows; finished ones with their exit codes (a job
    that is not an array: wanted [REST])."""
    queued = await squeue_states(job_id, env) or {}
    states = {i: st for i in wanted if (st := element_state(queued, i)) is not None}
    need = {i for i in wanted if i not in states or states[i].final}
    if need:
        detail = await scontrol_states(job_id, env)
        if detail is None or any(element_state(detail, i) is None for i in need):
            detail = {**(await sacct_states(job_id, env) or {}), **(detail or {})}
        for i in need:
            if (st := element_state(detail, i)) is not None:
                states[i] = st
    return states


async def scancel(element_ids: Sequence[str], env: Mapping[str, str]) -> bool:
    """scancel `<id>_<index>`…; → False (logged) if it failed. A finished job is no error."""
    if not element_ids:
        return True
    try:
        code, _, err = await run_command(["scancel", *element_ids], env)
    except (OSError, TimeoutError) as e:
        logger.warning("scancel %s failed: %s", " ".join(element_ids), e)
        return False
    if code != 0 and UNKNOWN_JOB not in err.lower():
        logger.warning("scancel %s exited %d: %s", " ".join(element_ids), code, err.strip())
        return False
    return True
