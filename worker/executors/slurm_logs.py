"""Blocking file helpers of the SLURM executor (called through asyncio.to_thread).

A job element writes stdout + stderr to `{job dir}/{index}.out`; the worker appends what is
new there to the attempt's log file at every poll, so `logs` shows a running job's output.
The attempt log holds nothing but copied bytes until the attempt ends, so after a worker
restart the copy resumes at the log's current size, less the copy of the batch's init output
at its head, whose size is recorded in the attempt's work dir before it is written.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.executors.paths import AttemptPaths

CHUNK_BYTES = 1 << 20
SKIP_FILE = "log-skip"  # in the attempt's work dir: bytes at the head of its log not copied


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def copy_new(src: Path, dst: Path, pos: int) -> int:
    """Append src[pos:] to dst; → the new position (pos if src does not exist yet)."""
    try:
        f = src.open("rb")
    except FileNotFoundError:
        return pos
    with f:
        f.seek(pos)
        data = f.read(CHUNK_BYTES)
        if not data:
            return pos
        dst.parent.mkdir(parents=True, exist_ok=True)
        with dst.open("ab") as out:
            while data:
                out.write(data)
                pos += len(data)
                data = f.read(CHUNK_BYTES)
    return pos


def copied_bytes(paths: AttemptPaths) -> int:
    """How much of its element's output the attempt log already holds."""
    try:
        skip = int((paths.work / SKIP_FILE).read_text())
    except (FileNotFoundError, ValueError):
        skip = 0
    return max(0, log_size(paths.log) - skip)


def has_init_copy(paths: AttemptPaths) -> bool:
    return (paths.work / SKIP_FILE).exists()


def add_init_copy(paths: AttemptPaths, text: bytes) -> None:
    """Append the init's copy to the attempt log, its size recorded first (copied_bytes)."""
    paths.work.mkdir(parents=True, exist_ok=True)
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    (paths.work / SKIP_FILE).write_text(str(log_size(paths.log) + len(text)))
    with paths.log.open("ab") as f:
        f.write(text)


def write_script(job_dir: Path, name: str, text: str) -> Path:
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / name
    path.write_text(text)
    path.chmod(0o700)
    return path


def remove_output(out_path: Path) -> None:
    """Remove one element's output; the job directory too once no element output is left."""
    out_path.unlink(missing_ok=True)
    job_dir = out_path.parent
    with contextlib.suppress(OSError):
        if not any(p.suffix == ".out" for p in job_dir.iterdir()):
            shutil.rmtree(job_dir, ignore_errors=True)


def prepare_attempt_dir(paths: AttemptPaths, inputs_json: bytes) -> None:
    """The attempt's work dir with DAGB_INPUTS written, a stale result removed; log dir made."""
    paths.work.mkdir(parents=True, exist_ok=True)
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    paths.result.unlink(missing_ok=True)
    paths.inputs.write_bytes(inputs_json)
