"""Pure parts of the aws_batch executor: job definitions, per-task scripts, array chunks,
and what a DescribeJobs record means for a task.

Every task becomes one shell script held in an environment variable of the job
(`DAGB_CMD_{i}`); the container runs a fixed dispatcher that evaluates the script of its
array index (`AWS_BATCH_JOB_ARRAY_INDEX`, 0 for a single job). So one array job carries a
whole batch even though each task's command is different.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.core.template import render
from broker.wire import Outcome

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from broker.spec import TaskSpec
    from broker.wire import TaskMessage
    from worker.executors.aws_config import AwsBatchConfig

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})
DESCRIBE_MAX_JOBS = 100  # DescribeJobs takes at most 100 ids
ARRAY_MAX_SIZE = 10_000  # an array job has 2 … 10,000 children
OVERRIDES_MAX_BYTES = 24 * 1024  # kept well below SubmitJob's request limit
DISPATCHER = 'eval "s=\\$DAGB_CMD_${AWS_BATCH_JOB_ARRAY_INDEX:-0}"; eval "$s"'
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class JobSpecError(ValueError):
    """A task cannot become a Batch job (reported as its failure reason)."""


@dataclass(frozen=True, slots=True)
class JobShape:
    """What a job definition fixes: tasks of one shape share a definition (and an array)."""

    image: str
    vcpus: int
    memory_mb: int
    gpus: int
    job_role_arn: str | None

    def definition_name(self, prefix: str) -> str:
        basis = json.dumps([self.image, self.vcpus, self.memory_mb, self.gpus, self.job_role_arn])
        return f"{prefix}-{hashlib.sha1(basis.encode()).hexdigest()[:16]}"

    def container_properties(self) -> dict[str, Any]:
        requirements = [
            {"type": "VCPU", "value": str(self.vcpus)},
            {"type": "MEMORY", "value": str(self.memory_mb)},
        ]
        if self.gpus:
            requirements.append({"type": "GPU", "value": str(self.gpus)})
        props: dict[str, Any] = {
            "image": self.image, "command": ["/bin/sh", "-c", DISPATCHER],
            "resourceRequirements": requirements,
        }
        if self.job_role_arn:
            props["jobRoleArn"] = self.job_role_arn
        return props


def job_shape(spec: TaskSpec, config: AwsBatchConfig) -> JobShape:
    if not spec.image:
        raise JobSpecError("an aws_batch task needs an image")
    return JobShape(
        image=spec.image, vcpus=max(1, math.ceil(spec.cores)),
        memory_mb=spec.memory_mb or config.default_memory_mb, gpus=spec.gpus,
        job_role_arn=config.job_role_arn,
    )


def _command_text(command: str | list[str] | None, values: Mapping[str, Any]) -> str:
    if isinstance(command, str):
        return render(command, values, shell_quote=True)
    if isinstance(command, list) and command:
        return shlex.join(render(arg, values) for arg in command)
    raise JobSpecError("an aws_batch task needs a command")


def task_script(msg: TaskMessage, values: Mapping[str, Any]) -> str:
    """The shell script one task runs in its container: its environment, then its command."""
    try:
        env = {k: render(v, values) for k, v in msg.spec.env.items()}
        command = _command_text(msg.spec.command, values)
        workdir = render(msg.spec.workdir, values) if msg.spec.workdir else None
    except KeyError as e:
        raise JobSpecError(f"unknown placeholder {{{{ {e.args[0]} }}}}") from e
    env.update(DAGB_RUN=msg.run, DAGB_NODE=msg.node, DAGB_TASK=msg.tpl,
               DAGB_ATTEMPT=str(msg.attempt))
    lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items() if k.isidentifier()]
    if workdir:
        lines.append(f"cd {shlex.quote(workdir)} || exit 1")
    lines.append(command)
    return "\n".join(lines)


def chunk_scripts(
    scripts: Sequence[str], max_bytes: int = OVERRIDES_MAX_BYTES, max_size: int = ARRAY_MAX_SIZE
) -> list[list[int]]:
    """Split task indices into submissions whose scripts fit one request (greedy, in order).
    A single script larger than max_bytes is a JobSpecError."""
    chunks: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, script in enumerate(scripts):
        size = len(script.encode()) + 32  # + the variable's name and JSON framing
        if size > max_bytes:
            raise JobSpecError(f"the command is too long for aws_batch ({size} bytes)")
        if current and (used + size > max_bytes or len(current) >= max_size):
            chunks.append(current)
            current, used = [], 0
        current.append(i)
        used += size
    if current:
        chunks.append(current)
    return chunks


def container_overrides(scripts: Sequence[str]) -> dict[str, Any]:
    env = [{"name": f"DAGB_CMD_{i}", "value": s} for i, s in enumerate(scripts)]
    return {"environment": env, "command": ["/bin/sh", "-c", DISPATCHER]}


def job_name(prefix: str, *parts: str) -> str:
    """A valid Batch job name (letters, digits, - and _; at most 128)."""
    return _NAME_UNSAFE.sub("_", "-".join((prefix, *parts)))[:128]


def _exit_code(job: Mapping[str, Any]) -> int | None:
    code = (job.get("container") or {}).get("exitCode")
    if code is None and job.get("attempts"):
        code = (job["attempts"][-1].get("container") or {}).get("exitCode")
    return int(code) if code is not None else None


def _failure_reason(job: Mapping[str, Any], code: int | None) -> str:
    attempts = job.get("attempts") or [{}]
    why = (job.get("statusReason") or (attempts[-1].get("statusReason"))
           or ((attempts[-1].get("container") or {}).get("reason")) or "")
    text = f"aws batch job {job.get('jobId', '?')} failed"
    if why:
        text += f": {why}"
    if code is not None:
        text += f" (exit code {code})"
    return text


def job_outcome(job: Mapping[str, Any]) -> tuple[Outcome, int | None, str] | None:
    """A DescribeJobs record → (outcome, exit code, reason), or None while it is not final."""
    status = job.get("status")
    if status not in TERMINAL_STATUSES:
        return None
    code = _exit_code(job)
    if status == "SUCCEEDED":
        return Outcome.SUCCEEDED, 0 if code is None else code, ""
    return Outcome.FAILED, code, _failure_reason(job, code)


def backoff(initial_s: float, factor: float, max_s: float) -> Iterator[float]:
    """initial, initial × factor, … capped at max_s, forever."""
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * factor, max_s)
