"""Pure decisions about a finished attempt: its outcome, reason, and result from the result file."""

from __future__ import annotations

import signal
from typing import Any

import msgspec

from broker.wire import Outcome

RESULT_MAX_BYTES = 64 * 1024
TAIL_CHARS = 4000


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def out_of_memory(limit_mb: int) -> str:
    return f"out of memory: exceeded its memory limit of {limit_mb} MiB"


def classify(
    returncode: int, *, timed_out: bool, timeout_s: float | None,
    stop_outcome: Outcome | None, stop_reason: str, oom_limit_mb: int | None = None,
) -> tuple[Outcome, str]:
    """→ (outcome, reason) of a process that ended (reason '' on success). `oom_limit_mb`:
    the kernel OOM-killed in the task's memory cgroup of that limit (see memlimit.py)."""
    if stop_outcome is not None:
        return stop_outcome, stop_reason
    if timed_out:
        return Outcome.FAILED, f"timeout after {timeout_s}s"
    if returncode == 0:
        return Outcome.SUCCEEDED, ""
    if oom_limit_mb is not None:
        return Outcome.FAILED, out_of_memory(oom_limit_mb)
    if returncode < 0:
        return Outcome.FAILED, f"killed by signal {signal_name(-returncode)}"
    return Outcome.FAILED, f"exit code {returncode}"


def parse_result(data: bytes | None) -> tuple[Any, str]:
    """Content of the result file → (value, error); no file or an empty one is None."""
    if not data or not data.strip():
        return None, ""
    if len(data) > RESULT_MAX_BYTES:
        return None, f"result is {len(data)} bytes; the limit is {RESULT_MAX_BYTES} (64 KiB)"
    try:
        return msgspec.json.decode(data), ""
    except msgspec.DecodeError as e:
        return None, f"result is not valid JSON: {e}"


def parse_error(data: bytes | None) -> str:
    """worker.pyrun's error file ({"type", "message"}) → 'Type: message'."""
    if not data:
        return ""
    try:
        err = msgspec.json.decode(data, type=dict[str, str])
    except msgspec.DecodeError:
        return ""
    kind, message = err.get("type", "Exception"), err.get("message", "")
    return f"{kind}: {message}" if message else kind


def tail_text(data: bytes, max_chars: int = TAIL_CHARS) -> str:
    return data.decode("utf-8", errors="replace")[-max_chars:]
