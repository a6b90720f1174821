"""A task's artifacts on the worker: stage its `inputs` before it runs, upload its `outputs`
after it succeeded (and index them before the completion is reported).

Names are paths relative to the task's workdir. A name that is absolute or has a `..` (or
empty) component is refused, and so is a file whose real path (symlinks followed) is outside
the workdir: a task can neither publish the worker's files nor have a staged input written
elsewhere. A task with inputs or outputs and no `workdir` of its own runs in a fresh
directory of its attempt (`{data_dir}/work/{run}/{node}.{n}/wd`), removed afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from broker.artifacts import (
    ArtifactError,
    ArtifactRecord,
    LocalStore,
    find_artifacts,
    record_artifacts,
    store_from_url,
)
from broker.artifacts.index import is_glob
from worker.logs import task_extra

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.artifacts import ArtifactStore
    from broker.keys import Keys
    from broker.wire import TaskMessage
    from worker.config import WorkerSettings
    from worker.executors.base import ExecContext
    from worker.executors.process import ProcessResult

logger = logging.getLogger(__name__)

MAX_OUTPUT_FILES = 10_000  # per attempt, over all patterns
WORKDIR_NAME = "wd"


def store_from_settings(settings: WorkerSettings) -> ArtifactStore:
    """The store a worker's settings name (`--artifacts`, default `{data_dir}/artifacts`)."""
    url = settings.artifacts_url or str(Path(settings.data_dir) / "artifacts")
    endpoint = settings.s3_endpoint_url or settings.aws_endpoint_url or None
    return store_from_url(url, endpoint_url=endpoint, region=settings.aws_region or None)


def store_for(ctx: ExecContext) -> ArtifactStore:
    """The worker's store: the one it was configured with, else `{data_dir}/artifacts`."""
    configured: ArtifactStore | None = getattr(ctx, "artifacts", None)  # ExecContext.artifacts
    return configured if configured is not None else LocalStore(ctx.data_dir / "artifacts")


def relative_parts(name: str, what: str) -> tuple[str, ...]:
    """The components of a relative name; ArtifactError for `/x`, `a/../b`, `a//b`, `./a`."""
    path = PurePosixPath(name)
    parts = name.split("/")
    if not name or path.is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise ArtifactError(f"{what} {name!r}: must be a relative path without '.' or '..'")
    return tuple(parts)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


# -- inputs ----------------------------------------------------------------------------------
def _input_dest(workdir: Path, name: str) -> Path:
    """Blocking: where a staged input goes; its directory made, and checked to be inside."""
    root = workdir.resolve()
    dest = root.joinpath(*relative_parts(name, "input"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(dest.parent, root) or dest.is_dir():
        raise ArtifactError(f"input {name!r}: cannot be placed inside the workdir")
    return dest


async def stage_inputs(
    msg: TaskMessage, workdir: Path, store: ArtifactStore, redis: Redis, keys: Keys
) -> list[ArtifactRecord]:
    """Download every `spec.inputs` artifact into workdir; ArtifactError names a missing one.

    A name is resolved in the run's index: the output of that name of one of the task's
    parents, else of any task of the run; the most recent if several. A glob stages every
    artifact whose name matches (at least one must).
    """
    staged: list[ArtifactRecord] = []
    for name in msg.spec.inputs:
        relative_parts(name, "input")
        records = await find_artifacts(redis, keys, msg.run, name, msg.parents)
        if not records:
            raise ArtifactError(
                f"input artifact {name!r} not found: no upstream task of run {msg.run} "
                "stored an output with that name"
            )
        for record in records:
            dest = await asyncio.to_thread(_input_dest, workdir, record.name)
            try:
                await store.get_file(record.sha256, dest)
            except ArtifactError as e:
                raise ArtifactError(f"input artifact {record.name!r}: {e}") from e
            except Exception as e:
                raise ArtifactError(
                    f"input artifact {record.name!r}: download failed: {type(e).__name__}: {e}"
                ) from e
            staged.append(record)
    return staged


# -- outputs ---------------------------------------------------------------------------------
def _matches(root: Path, pattern: str) -> list[Path]:
    parts = relative_parts(pattern, "output")
    if is_glob(pattern):
        return sorted(p for p in root.glob(pattern) if not p.is_dir())
    path = root.joinpath(*parts)
    if path.is_dir():
        raise ArtifactError(f"output {pattern!r} is a directory (declare a glob such as "
                            f"'{pattern}/**/*')")
    return [path] if os.path.lexists(path) else []


def match_outputs(workdir: Path, patterns: list[str]) -> dict[str, Path]:
    """Blocking: {name: real path} of every file the patterns match; ArtifactError names a
    pattern that matches nothing, or a match that escapes the workdir."""
    root = workdir.resolve()
    found: dict[str, Path] = {}
    for pattern in patterns:
        matched = _matches(root, pattern)
        if not matched:
            raise ArtifactError(f"declared output {pattern!r} matched no file in the workdir")
        for path in matched:
            name = path.relative_to(root).as_posix()
            real = path.resolve()
            if not real.is_relative_to(root):
                raise ArtifactError(f"output {name!r} resolves outside the workdir (symlink)")
            if not real.is_file():
                raise ArtifactError(f"output {name!r} is not a regular file")
            found[name] = real
        if len(found) > MAX_OUTPUT_FILES:
            raise ArtifactError(f"outputs match more than {MAX_OUTPUT_FILES} files")
    return found


async def upload_outputs(
    msg: TaskMessage, workdir: Path, store: ArtifactStore, redis: Redis, keys: Keys
) -> list[ArtifactRecord]:
    """Store every file `spec.outputs` matches, then index them all in one HSET.

    ArtifactError (naming the output) if a pattern matches nothing or a file cannot be stored;
    nothing is indexed then.
    """
    if not msg.spec.outputs:
        return []
    files = await asyncio.to_thread(match_outputs, workdir, list(msg.spec.outputs))
    records: list[ArtifactRecord] = []
    for name, path in files.items():
        try:
            info = await store.put_file(path)
        except Exception as e:
            raise ArtifactError(
                f"output {name!r}: upload failed: {type(e).__name__}: {e}"
            ) from e
        records.append(ArtifactRecord(
            sha256=info.sha256, size=info.size, task=msg.node, name=name,
            attempt=msg.attempt, created_at=int(time.time() * 1000),
        ))
    await record_artifacts(redis, keys, msg.run, records)
    return records


# -- the two hooks of a subprocess attempt (worker/executors/attempt.py) ------------------------
def _has_artifacts(msg: TaskMessage) -> bool:
    return bool(msg.spec.inputs or msg.spec.outputs)


async def prepare_workdir(
    ctx: ExecContext, msg: TaskMessage, attempt_dir: Path, cwd: str | None
) -> str | None:
    """Before the start: → the cwd to run in, with the task's inputs staged into it.

    Raises ArtifactError (the attempt fails with its message).
    """
    if not _has_artifacts(msg):
        return cwd
    workdir = Path(cwd) if cwd else attempt_dir / WORKDIR_NAME
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    if msg.spec.inputs:
        staged = await stage_inputs(msg, workdir, store_for(ctx), ctx.redis, ctx.keys)
        logger.info("%s/%s#%d: staged %d input(s)", msg.run, msg.node, msg.attempt,
                    len(staged), extra=task_extra(msg))
    return str(workdir)


async def store_outputs(
    ctx: ExecContext, msg: TaskMessage, cwd: str | None, proc: ProcessResult
) -> str:
    """After the process ended: if it succeeded, upload and index the outputs.

    → '' or why the attempt fails after all.
    """
    if not msg.spec.outputs or proc.returncode != 0 or proc.timed_out or proc.stopped:
        return ""
    try:
        records = await upload_outputs(
            msg, Path(cwd or "."), store_for(ctx), ctx.redis, ctx.keys
        )
    except ArtifactError as e:
        return str(e)
    logger.info("%s/%s#%d: stored %d output(s) in %s", msg.run, msg.node, msg.attempt,
                len(records), store_for(ctx).url, extra=task_extra(msg))
    return ""
